"""Bringing the stack up (with a fast path when nothing changed), waiting until it is ready, taking it down."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import compose
from toolkit.engine import SERVICE_LABEL, health, service_containers
from toolkit.errors import DevtoolError, ExitCode
from toolkit.state import project_state

if TYPE_CHECKING:
    from toolkit.context import Context

POLL_INTERVAL = 0.2
BACKEND_SETTLE = 1.0  # seconds the backend must have stayed up after a (re)start


def up(ctx: Context, *, force: bool = False, settle: bool = True) -> list[Any]:
    """Start the stack and return its containers once every service is running and healthy.
    `settle`: also make sure a freshly started backend stays up (what `devtool up` promises); commands that
    go on to exec into the backend skip it, an exec into a crashed backend fails clearly anyway."""
    project = ctx.project
    ctx.containers()  # an unreachable engine or another checkout's stack is reported as such, before compose runs
    if not force:
        ready = _unchanged_and_ready(ctx)
        if ready is not None:
            ctx.out.debug("stack unchanged since the last `up` and healthy: compose not needed")
            return ready
    command, notice = compose.compose_command()
    if notice:
        ctx.out.warn(notice)
    with ctx.out.status(f"Starting {project.name} (docker compose up -d)…"):
        result = compose.run(project, ["up", "-d"], capture=not ctx.settings.verbose)
    if result.returncode != 0:
        failed = _failed_services(ctx, ctx.containers())
        raise DevtoolError(
            f"`docker compose up` failed for project {project.name}.",
            detail=(_tail(result.stderr or "", 15) + ("\n" + failed if failed else "")).strip() or None,
            hint="Fix the error above; `devtool up -v` shows compose's full output.",
            exit_code=ExitCode.STACK_FAILED)
    with ctx.out.status("Waiting for services to be healthy…"):
        containers = wait_ready(ctx, settle=settle)
    _remember(ctx, containers)
    return containers


def wait_ready(ctx: Context, *, settle: bool = True) -> list[Any]:
    """Poll the engine until every container runs (and is healthy where it has a healthcheck), or fail clearly."""
    deadline = time.monotonic() + ctx.settings.wait_timeout
    while True:
        containers = ctx.containers()
        waiting = []
        for container in containers:
            service = container.labels.get(SERVICE_LABEL, container.name)
            state = container.attrs.get("State", {})
            status = health(container)
            if container.status in ("exited", "dead") and (state.get("ExitCode") or service == _backend_hint(ctx)):
                raise _service_failed(container, f"exited with code {state.get('ExitCode')}")
            if status == "unhealthy":
                raise _service_failed(container, "is unhealthy")
            if container.status in ("created", "restarting") or status == "starting":
                waiting.append(service)
            elif settle and service == _backend_hint(ctx) and _running_for(container) < BACKEND_SETTLE:
                waiting.append(service)  # a backend that crashes on start must be seen exiting, not as up
        if containers and not waiting:
            return containers
        if time.monotonic() > deadline:
            names = ", ".join(sorted(set(waiting))) or "the stack"
            raise DevtoolError(f"Timed out after {ctx.settings.wait_timeout:.0f}s waiting for {names}.",
                               detail=_failed_services(ctx, containers, include=set(waiting)) or None,
                               hint="Look at `docker compose logs`; raise the deadline with DEVTOOL_WAIT_TIMEOUT.",
                               exit_code=ExitCode.STACK_FAILED)
        time.sleep(POLL_INTERVAL)


def _running_for(container: Any) -> float:
    import re
    from datetime import datetime, timezone

    started = container.attrs.get("State", {}).get("StartedAt", "")
    try:  # Docker gives nanoseconds and a Z; datetime takes microseconds and an offset
        moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started).replace("Z", "+00:00"))
    except ValueError:
        return BACKEND_SETTLE
    return (datetime.now(timezone.utc) - moment).total_seconds()


def down(ctx: Context, *, volumes: bool = False) -> None:
    args = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
    with ctx.out.status(f"Stopping {ctx.project.name}…"):
        result = compose.run(ctx.project, args, capture=not ctx.settings.verbose)
    if result.returncode != 0:
        raise DevtoolError(f"`docker compose down` failed for project {ctx.project.name}.",
                           detail=_tail(result.stderr or "", 15) or None, exit_code=ExitCode.STACK_FAILED)
    _state_file(ctx).unlink(missing_ok=True)


def service_problem(ctx: Context, service: str, container: Any | None) -> str | None:
    """What is wrong with a service's container (None when it is in order: running and healthy, or a one-shot
    job without a healthcheck that finished well)."""
    if container is None:
        return "not created"
    state = container.attrs.get("State", {})
    if container.status != "running":
        if (service != _backend_hint(ctx) and not ctx.project.has_healthcheck(service)
                and container.status == "exited" and state.get("ExitCode") == 0):
            return None
        return container.status + (f" (exit code {state.get('ExitCode')})" if container.status == "exited" else "")
    if health(container) not in (None, "healthy"):
        return health(container)
    return None


def _backend_hint(ctx: Context) -> str:
    """The backend service as the migration commands find it; "backend" when it cannot be resolved."""
    return ctx.services.backend_if_known or "backend"


def explain_stopped(ctx: Context, container: Any) -> None:
    """A container that stopped under a command is the real cause of its failure: say so as `up` would."""
    try:
        container.reload()
    except Exception:  # removed altogether
        raise DevtoolError(f"Container {container.name} disappeared while devtool was using it.",
                           hint="Run `devtool up` and try again.", exit_code=ExitCode.STACK_FAILED) from None
    if container.status != "running":
        raise _service_failed(container, f"stopped ({container.status}, exit code "
                                         f"{container.attrs.get('State', {}).get('ExitCode')})")


def _service_failed(container: Any, what: str) -> DevtoolError:
    service = container.labels.get(SERVICE_LABEL, container.name)
    return DevtoolError(f"Service {service} {what}.", detail=_logs(container),
                        hint="Fix the cause in its logs above, then run `devtool up` again.",
                        exit_code=ExitCode.STACK_FAILED)


def _failed_services(ctx: Context, containers: list[Any], include: set[str] | None = None) -> str:
    parts = []
    for container in containers:
        service = container.labels.get(SERVICE_LABEL, container.name)
        bad = container.status in ("exited", "dead") or health(container) == "unhealthy"
        if bad or (include and service in include):
            parts.append(f"--- {service} ({container.status}{', ' + health(container) if health(container) else ''})"
                         f", last log lines:\n{_logs(container)}")
    return "\n".join(parts)


def _logs(container: Any, lines: int = 20) -> str:
    try:
        return container.logs(tail=lines).decode("utf-8", "replace").rstrip() or "(no output)"
    except Exception:
        return "(logs unavailable)"


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---- fast path: compose is slow to start; when nothing changed since our last `up`, ask the engine only.

def _fingerprint(ctx: Context) -> str:
    project = ctx.project
    digest = hashlib.sha256()
    for path in [*project.files, project.directory / ".env"]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes() if path.is_file() else b"-")
    for name in sorted(os.environ):
        if name.startswith(("COMPOSE_", "DOCKER_")):
            digest.update(f"{name}={os.environ[name]}".encode())
    return digest.hexdigest()


def _state_file(ctx: Context) -> Path:
    return project_state(ctx.project) / "up.json"


def _image_ids(ctx: Context, containers: list[Any]) -> dict[str, str]:
    """The image each service's container should run now (tags may have moved to a new build)."""
    from docker.errors import ImageNotFound

    ids = {}
    for container in containers:
        service = container.labels.get(SERVICE_LABEL)
        config = ctx.project.services.get(service, {})
        image = config.get("image") or f"{ctx.project.name}-{service}"
        try:
            ids[service] = ctx.client.api.inspect_image(image)["Id"]
        except ImageNotFound:
            ids[service] = "missing"
    return ids


def _remember(ctx: Context, containers: list[Any]) -> None:
    state = {"fingerprint": _fingerprint(ctx), "containers": sorted(c.id for c in containers)}
    path = _state_file(ctx)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))
    except OSError:
        pass  # only the fast path is lost


def _unchanged_and_ready(ctx: Context) -> list[Any] | None:
    try:
        state = json.loads(_state_file(ctx).read_text())
    except (OSError, ValueError):
        return None
    if state.get("fingerprint") != _fingerprint(ctx):
        return None
    containers = ctx.containers()
    if sorted(c.id for c in containers) != state.get("containers"):
        return None
    services = {c.labels.get(SERVICE_LABEL) for c in containers}
    if services != set(ctx.project.services) - _inactive_profile_services(ctx):
        return None
    for container in containers:
        if container.status != "running" or health(container) not in (None, "healthy"):
            return None
    images = _image_ids(ctx, containers)
    if any(images[c.labels.get(SERVICE_LABEL)] != c.attrs.get("Image") for c in containers):
        return None
    return containers


def _inactive_profile_services(ctx: Context) -> set[str]:
    active = set(filter(None, os.environ.get("COMPOSE_PROFILES", "").split(",")))
    return {name for name, config in ctx.project.services.items()
            if config.get("profiles") and not active.intersection(config["profiles"])}


def service_container(ctx: Context, service: str, *, start: bool = True) -> Any:
    """The running container of a service (compose's pick: lowest number), starting the stack if needed."""
    containers = [c for c in service_containers(ctx.containers(), service) if c.status == "running"]
    if not containers and start:
        containers = [c for c in service_containers(up(ctx, settle=False), service) if c.status == "running"]
    if not containers:
        raise DevtoolError(f"Service {service} has no running container in project {ctx.project.name}.",
                           hint="Start the stack with `devtool up`.", exit_code=ExitCode.STACK_FAILED)
    return containers[0]
