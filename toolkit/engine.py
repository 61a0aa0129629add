"""The Docker engine through docker-py: connecting, finding compose containers, running commands in them."""

from __future__ import annotations

import os
from typing import Any, Callable

from toolkit.errors import DevtoolError, ExitCode

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
NUMBER_LABEL = "com.docker.compose.container-number"


def connect() -> Any:
    """A docker-py client for the engine the docker CLI would use (DOCKER_HOST, else the current context)."""
    import docker
    from docker.errors import DockerException

    host = os.environ.get("DOCKER_HOST")
    try:
        if host:
            client = docker.from_env(use_ssh_client=host.startswith("ssh://"))
        else:
            client = _client_from_context(docker) or docker.from_env()
        client.ping()
        return client
    except DockerException as exc:
        raise _engine_error(exc, host) from None


def _client_from_context(docker: Any) -> Any:
    """docker-py ignores `docker context use`; honour it the way the CLI does."""
    from docker.context import ContextAPI

    try:
        context = ContextAPI.get_current_context()
    except Exception:  # a broken context store: the CLI would complain; fall back to the default socket
        return None
    if context is None or context.name == "default" or not context.Host:
        return None
    return docker.DockerClient(base_url=context.Host, tls=context.TLSConfig or False,
                               use_ssh_client=context.Host.startswith("ssh://"))


def engine_address() -> str:
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        if context is not None and context.name != "default":
            return f"context {context.name} ({context.Host})"
    except Exception:
        pass
    return "unix:///var/run/docker.sock"


def _engine_error(exc: Exception, host: str | None) -> DevtoolError:
    text = str(exc)
    where = host or engine_address()
    if "Permission denied" in text or "PermissionError" in text:
        return DevtoolError(
            f"Permission denied on the Docker socket ({where}).",
            hint="Add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again), "
                 "or point DOCKER_HOST at an engine you may use.",
            exit_code=ExitCode.DOCKER_UNAVAILABLE,
        )
    return DevtoolError(
        f"Cannot reach the Docker engine at {where}.",
        hint="Start Docker (Docker Desktop, or `sudo systemctl start docker`), or fix DOCKER_HOST / `docker context`.",
        exit_code=ExitCode.DOCKER_UNAVAILABLE,
    )


def project_containers(client: Any, project: str, *, all: bool = True) -> list[Any]:
    """Every non-one-off container of a compose project, as compose labels it."""
    filters = {"label": [f"{PROJECT_LABEL}={project}", f"{ONEOFF_LABEL}=False"]}
    return client.containers.list(all=all, filters=filters)


def service_containers(containers: list[Any], service: str) -> list[Any]:
    """A service's containers, lowest container-number first (the one `docker compose exec` picks)."""
    mine = [c for c in containers if c.labels.get(SERVICE_LABEL) == service]
    return sorted(mine, key=lambda c: int(c.labels.get(NUMBER_LABEL, "0") or 0))


def health(container: Any) -> str | None:
    """'healthy', 'unhealthy', 'starting', or None where the container has no healthcheck."""
    state = container.attrs.get("State", {})
    return (state.get("Health") or {}).get("Status")


def exec_stream(
    client: Any,
    container_id: str,
    command: list[str],
    *,
    on_output: Callable[[bytes | None, bytes | None], None],
    environment: dict[str, str] | None = None,
    workdir: str | None = None,
) -> int:
    """Run a command in a container, hand over stdout/stderr as they arrive, return its exit code."""
    from docker.errors import APIError

    api = client.api
    try:
        exec_id = api.exec_create(container_id, command, environment=environment, workdir=workdir)["Id"]
        for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
            on_output(stdout, stderr)
        return api.exec_inspect(exec_id)["ExitCode"]
    except APIError as exc:
        raise DevtoolError(f"The Docker engine refused to run the command: {exc.explanation or exc}.",
                           hint="Is the container still running? `devtool status` shows the stack.",
                           exit_code=ExitCode.STACK_FAILED) from None
