"""The Docker engine through docker-py: connecting, finding compose containers, running commands in them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from toolkit.errors import DevtoolError, ExitCode

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
NUMBER_LABEL = "com.docker.compose.container-number"
SIDECAR_LABEL = "org.devtool.sidecar"  # devtool's throw-away containers (value: the compose project)
SIDECAR_LIFETIME = 3600  # seconds: a sidecar left behind by a killed devtool stops and removes itself


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
    """docker-py ignores `docker context use` and DOCKER_CONTEXT; honour them the way the CLI does."""
    wanted = os.environ.get("DOCKER_CONTEXT")
    try:
        context = _selected_context()
    except Exception:  # a broken context store: the CLI would complain; fall back to the default socket
        context = None
        if not wanted:
            return None
    if wanted and context is None:
        raise DevtoolError(f"Docker context {wanted!r} (from DOCKER_CONTEXT) does not exist or cannot be read.",
                           hint="`docker context ls` lists the contexts; unset DOCKER_CONTEXT for the default one.",
                           exit_code=ExitCode.DOCKER_UNAVAILABLE)
    if context is None or context.name == "default" or not context.Host:
        return None
    return docker.DockerClient(base_url=context.Host, tls=context.TLSConfig or False,
                               use_ssh_client=context.Host.startswith("ssh://"))


def _selected_context() -> Any:
    """The context the CLI would use without DOCKER_HOST: DOCKER_CONTEXT, else the store's current one."""
    from docker.context import ContextAPI

    wanted = os.environ.get("DOCKER_CONTEXT")
    return _named_context(wanted) if wanted else ContextAPI.get_current_context()


def _named_context(name: str) -> Any:
    """ContextAPI.get_context, except that docker-py finds the context store only beside an existing
    config.json; the CLI keeps it in $DOCKER_CONFIG (else ~/.docker) either way, so look there too."""
    import hashlib
    import json
    from pathlib import Path

    from docker.context import Context, ContextAPI
    from docker.tls import TLSConfig

    context = ContextAPI.get_context(name)
    if context is not None or name == "default":
        return context
    store = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "contexts"
    key = hashlib.sha256(name.encode("utf-8")).hexdigest()
    try:
        meta = json.loads((store / "meta" / key / "meta.json").read_text(encoding="utf-8"))
        context = Context(meta["Name"], endpoints=meta.get("Endpoints"))
    except (OSError, ValueError, KeyError):
        return None
    tls = store / "tls" / key / "docker"  # ca.pem, cert.pem, key.pem, as docker-py's own loader reads them
    files = {f.name[:2]: str(f) for f in tls.iterdir()} if tls.is_dir() else {}
    if {"ca", "ce", "ke"} <= set(files):
        verify = None if context.endpoints["docker"].get("SkipTLSVerify") else True
        context.tls_cfg["docker"] = TLSConfig(client_cert=(files["ce"], files["ke"]), ca_cert=files["ca"],
                                              verify=verify)
    return context


def engine_address() -> str:
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
    try:
        context = _selected_context()
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


def project_volumes(client: Any, project: str) -> list[str]:
    """The names of the volumes compose made for a project."""
    return sorted(v.name for v in client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"}))


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
    stdin: bool = False,
    user: str | None = None,
    on_stop: Callable[[str], None] | None = None,
) -> int:
    """Run a command in a container, hand over stdout/stderr as they arrive, return its exit code.
    `stdin`: attach the command's stdin and keep it open, so it reads end-of-file exactly when this process
    goes away (devtool's agent starts nothing new then) or, with `on_stop`, when this process is told to stop
    (SIGINT, SIGTERM, SIGHUP: see Stopping). `user`: run as this user (default: the container's)."""
    from docker.errors import APIError

    api = client.api
    try:
        exec_id = api.exec_create(container_id, command, environment=environment, workdir=workdir,
                                  stdin=stdin, user=user or "")["Id"]
        if stdin and on_stop is not None:
            _attached(api.exec_start(exec_id, socket=True), on_output, on_stop)
        else:
            for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
                on_output(stdout, stderr)
        return api.exec_inspect(exec_id)["ExitCode"]
    except APIError as exc:
        raise DevtoolError(f"The Docker engine refused to run the command: {exc.explanation or exc}.",
                           hint="Is the container still running? `devtool status` shows the stack.",
                           exit_code=ExitCode.STACK_FAILED) from None


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, a process manager's stop, a closed terminal
STOP_DEADLINE = 30.0  # seconds devtool waits for the command's answer once it was told to stop


class Abandoned(Exception):
    """Told to stop, the command did not end in time, or a second signal came: left without its answer."""


class Stopping:
    """While armed, the first stop signal closes the command's stdin (it reads end-of-file: devtool's agent
    finishes the step under way and starts nothing new) and calls `on_stop`; its output is still read, up to
    STOP_DEADLINE seconds, so that it can say what it did. A second signal, or the deadline, raises Abandoned."""

    def __init__(self, sock: Any, on_stop: Callable[[str], None]) -> None:
        self.sock, self.on_stop, self.stopped = sock, on_stop, None

    def _signal(self, number: int, frame: Any) -> None:
        import signal
        import socket

        name = signal.Signals(number).name
        if self.stopped:
            raise Abandoned(f"{name} again" if name == self.stopped else f"{self.stopped}, then {name}")
        self.stopped = name
        try:
            getattr(self.sock, "_sock", self.sock).shutdown(socket.SHUT_WR)
        except (OSError, AttributeError):
            raise Abandoned(f"{name}; the command's input could not be closed") from None
        signal.signal(signal.SIGALRM, self._deadline)
        signal.setitimer(signal.ITIMER_REAL, STOP_DEADLINE)
        try:
            self.on_stop(name)
        except OSError:  # the terminal is gone (SIGHUP): nobody to tell
            pass

    def _deadline(self, number: int, frame: Any) -> None:
        raise Abandoned(f"{self.stopped}, and no answer within {STOP_DEADLINE:.0f} s")

    @contextlib.contextmanager
    def armed(self) -> Iterator["Stopping"]:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield self
            return
        previous = {name: signal.signal(getattr(signal, name), self._signal) for name in STOP_SIGNALS
                    if signal.getsignal(getattr(signal, name)) != signal.SIG_IGN}  # ignored (nohup, &) stays so
        alarm = signal.getsignal(signal.SIGALRM)
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, alarm)
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)


def _attached(sock: Any, on_output: Callable[[bytes | None, bytes | None], None],
              on_stop: Callable[[str], None]) -> None:
    """The exec's multiplexed output on its raw socket, read to the end, stop signals armed."""
    from docker.utils.socket import STDERR, STDOUT, frames_iter

    try:
        with Stopping(sock, on_stop).armed():
            for stream, data in frames_iter(sock, tty=False):
                on_output(data if stream == STDOUT else None, data if stream == STDERR else None)
    finally:
        sock.close()


def ensure_image(client: Any, image: str) -> str | None:
    """None when `image` is there (pulled if needed), else why it is not."""
    from docker.errors import APIError, ImageNotFound

    try:
        client.images.get(image)
        return None
    except ImageNotFound:
        pass
    except APIError as exc:
        return f"the engine cannot inspect {image}: {exc.explanation or exc}"
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    try:
        client.images.pull(repository, tag=tag)
        return None
    except APIError as exc:
        return f"image {image} is not on this machine and cannot be pulled ({exc.explanation or exc})"


@dataclass
class Sidecar:
    """A container next to another one (a throw-away one, or a service's own): commands run in it (with
    `environment`), files go into private folders in it."""

    client: Any
    id: str
    environment: dict[str, str] | None = None
    folders: list[str] = field(default_factory=list)  # the private folders put() made

    def run(self, command: list[str], on_output: Callable[[bytes | None, bytes | None], None]) -> int:
        return exec_stream(self.client, self.id, command, on_output=on_output, environment=self.environment)

    def put(self, path: Path, name: str) -> str:
        """Copy a host file into a new private folder of the container's /tmp (streamed: dumps can be large);
        its path there."""
        folder = put_private(self.client, self.id, path, name)
        self.folders.append(folder)
        return f"{folder}/{name}"

    def clean(self) -> None:
        """Remove the folders put() made (a service's own container keeps running)."""
        if self.folders:
            exec_stream(self.client, self.id, ["rm", "-rf", "--", *self.folders], on_output=lambda out, err: None)
            self.folders.clear()


def put_private(client: Any, container_id: str, path: Path, name: str, *, mode: int = 0o700) -> str:
    """`path` as `name` in a new folder /tmp/devtool-<random> of the container, root's, that nobody else may
    write (`mode` 0o755 lets a container user that is not root read it); the folder's path."""
    import uuid

    folder = f"devtool-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, 0, 0
            tar.addfile(info)
            tar.add(str(path), arcname=f"{folder}/{name}", filter=lambda member: _owned_by_root(member, mode))
        archive.seek(0)
        _put_archive(client, container_id, archive)
    return f"/tmp/{folder}"


def _owned_by_root(member: tarfile.TarInfo, mode: int) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    member.mode = mode & 0o644
    return member


def _put_archive(client: Any, container_id: str, archive: Any) -> None:
    from docker.errors import APIError

    try:
        client.api.put_archive(container_id, "/tmp", archive)
    except APIError as exc:
        raise DevtoolError(f"The Docker engine could not copy a file into the container: {exc.explanation or exc}.",
                           exit_code=ExitCode.SNAPSHOT_FAILED, hint="devtool needs a writable /tmp in it.") from None


def fetch_file(client: Any, container_id: str, path: str, into: Any) -> None:
    """Write the container's file `path` to `into` (streamed out of the engine's tar)."""
    from docker.errors import APIError

    try:
        stream, _ = client.api.get_archive(container_id, path)
        with tempfile.TemporaryFile() as archive:
            for chunk in stream:
                archive.write(chunk)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        shutil.copyfileobj(tar.extractfile(member), into)
                        return
    except APIError as exc:
        raise DevtoolError(f"The Docker engine could not copy {path} out of the container: "
                           f"{exc.explanation or exc}.", exit_code=ExitCode.SNAPSHOT_FAILED) from None
    raise DevtoolError(f"The Docker engine sent no file for {path}.", exit_code=ExitCode.SNAPSHOT_FAILED)


@contextlib.contextmanager
def inside(client: Any, container_id: str, environment: dict[str, str]) -> Iterator[Sidecar]:
    """A running container used like a sidecar (commands with `environment`); the files put in it go after."""
    tools = Sidecar(client, container_id, environment)
    try:
        yield tools
    finally:
        try:
            tools.clean()
        except DevtoolError:
            pass  # the container went away: so did its /tmp


@contextlib.contextmanager
def sidecar(client: Any, image: str, *, beside: str, environment: dict[str, str],
            labels: dict[str, str]) -> Iterator[Sidecar]:
    """A container of `image` in the network namespace of container `beside` (same DNS names, extra hosts and
    localhost), removed afterwards; left behind (devtool killed), it ends by itself after SIDECAR_LIFETIME."""
    from docker.errors import APIError, NotFound

    try:
        container = client.containers.run(image, [str(SIDECAR_LIFETIME)], entrypoint=["sleep"], detach=True,
                                          network_mode=f"container:{beside}", environment=environment,
                                          labels=labels, auto_remove=True)
    except APIError as exc:
        raise DevtoolError(f"The Docker engine could not start a {image} container next to the backend: "
                           f"{exc.explanation or exc}.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Is the backend container running? `devtool status` shows the stack.") from None
    try:
        yield Sidecar(client, container.id)
    finally:
        try:
            container.remove(force=True)
        except (NotFound, APIError):
            pass  # already gone (auto_remove)


def run_beside(client: Any, image: str, *, beside: str, name: str, lifetime: int, command: list[str],
               environment: dict[str, str], labels: dict[str, str], tmpfs: dict[str, str]) -> Any:
    """A helper container of `image` (a throw-away database) in the network namespace of container `beside`,
    with no volume; its own entrypoint runs under `timeout`, so one left behind by a killed devtool stops and
    removes itself after `lifetime` seconds."""
    from docker.errors import APIError, ImageNotFound

    try:
        entrypoint = client.images.get(image).attrs.get("Config", {}).get("Entrypoint") or []
        return client.containers.run(image, command, entrypoint=["timeout", str(lifetime), *entrypoint], name=name,
                                     detach=True, environment=environment, labels=labels, tmpfs=tmpfs,
                                     network_mode=f"container:{beside}", auto_remove=True)
    except ImageNotFound:
        raise DevtoolError(f"Image {image} is not on this engine.", exit_code=ExitCode.STACK_FAILED,
                           hint="Start the stack once (`devtool up`) so compose pulls or builds it.") from None
    except APIError as exc:
        raise DevtoolError(f"The Docker engine could not start a container from {image}: "
                           f"{exc.explanation or exc}.", exit_code=ExitCode.STACK_FAILED) from None


def remove_container(client: Any, container: Any) -> None:
    """Remove a helper container and its anonymous volumes, whatever state it is in."""
    from docker.errors import APIError, NotFound

    try:
        client.api.remove_container(container.id, force=True, v=True)
    except NotFound:
        pass
    except APIError as exc:
        if "already in progress" not in str(exc) and exc.status_code != 404:
            raise DevtoolError(f"Could not remove container {container.name}: {exc.explanation or exc}.",
                               hint=f"Remove it with `docker rm -f {container.name}`.",
                               exit_code=ExitCode.STACK_FAILED) from None
