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
# A restart policy turns a crash into a container that runs again: a backend with one (and a service `up --force`
# restarted because it kept exiting) must stay up this long before `up` says the stack is up.
RESTART_SETTLE = 3.0
RESTART_POLICIES = ("always", "unless-stopped", "on-failure")


def up(ctx: Context, *, force: bool = False, settle: bool = True) -> list[Any]:
    """Bring the stack up to date with the compose model and return its containers once every active service is
    running and healthy. Every command that needs the stack goes through here, so a container whose
    configuration changed (an edited env_file, a new DATABASE_URL) is recreated before anything uses it.
    `settle`: also make sure a freshly started backend stays up (what `devtool up` promises); commands that go
    on to exec into the backend skip it: a backend that dies under the exec is explained the same way."""
    project = ctx.project
    ctx.containers()  # an unreachable engine or another checkout's stack is reported as such, before compose runs
    watch: set[str] = set()
    if not force:
        ready, change = _unchanged_and_ready(ctx)
        if ready is not None:
            ctx.out.debug("stack unchanged since the last `up` and healthy: compose not needed")
            return ready
        if change:
            ctx.out.info(f"{change}: updating the stack (docker compose up -d).")
    command, notice = compose.compose_command()
    if notice:
        ctx.out.warn(notice)
    with ctx.out.status(f"Starting {project.name} (docker compose up -d)…"):
        result = compose.run(project, ["up", "-d"], capture=not ctx.settings.verbose)
    if result.returncode != 0:
        failed = _failed_services(ctx, active_containers(ctx))
        raise DevtoolError(
            f"`docker compose up` failed for project {project.name}.",
            detail=(_tail(result.stderr or "", 15) + ("\n" + failed if failed else "")).strip() or None,
            hint="Fix the error above; `devtool up -v` shows compose's full output.",
            exit_code=ExitCode.STACK_FAILED)
    if force:
        watch = _restart_looping(ctx)
    with ctx.out.status("Waiting for services to be healthy…"):
        containers = wait_ready(ctx, settle=settle, watch=watch)
    _remember(ctx, containers)
    return containers


def _restart_looping(ctx: Context) -> set[str]:
    """`up --force`: restart (through the engine) the services whose restart policy restarted them since they were
    started, so that Docker counts afresh, and return them: `up` watches them for RESTART_SETTLE seconds. This
    is the way on after fixing the cause of a crash loop (the fix may need no new container)."""
    looping = [c for c in active_containers(ctx) if restart_loop(c)]
    for container in looping:
        service = container.labels.get(SERVICE_LABEL, container.name)
        ctx.out.info(f"Service {service} {restart_loop(container)}: restarting it and watching it for "
                     f"{RESTART_SETTLE:.0f}s.")
        container.restart()
    return {c.labels.get(SERVICE_LABEL, c.name) for c in looping}


def active_containers(ctx: Context) -> list[Any]:
    """The project's containers of the services compose loads now (a service outside the active profiles, or
    one removed from the file, is none of devtool's business)."""
    return [c for c in ctx.containers() if c.labels.get(SERVICE_LABEL) in ctx.project.services]


def wait_ready(ctx: Context, *, settle: bool = True, watch: set[str] = frozenset()) -> list[Any]:
    """Poll the engine until every container runs (and is healthy where it has a healthcheck), or fail clearly.
    `watch`: services that must also stay up RESTART_SETTLE seconds (restarted by `up --force`)."""
    deadline = time.monotonic() + ctx.settings.wait_timeout
    backend = _backend_hint(ctx)
    while True:
        containers = active_containers(ctx)
        waiting = []
        for container in containers:
            service = container.labels.get(SERVICE_LABEL, container.name)
            problem, busy = _readiness(container, service == backend, settle, watched=service in watch,
                                       job=not ctx.project.has_healthcheck(service))
            if problem:
                raise _service_failed(container, problem, looping=problem == restart_loop(container))
            if busy:
                waiting.append(service)
        if containers and not waiting:
            return containers
        if time.monotonic() > deadline:
            names = ", ".join(sorted(set(waiting))) or "the stack"
            raise DevtoolError(f"Timed out after {ctx.settings.wait_timeout:.0f}s waiting for {names}.",
                               detail=_failed_services(ctx, containers, include=set(waiting)) or None,
                               hint="Look at `docker compose logs`; raise the deadline with DEVTOOL_WAIT_TIMEOUT.",
                               exit_code=ExitCode.STACK_FAILED)
        time.sleep(POLL_INTERVAL)


def _readiness(container: Any, is_backend: bool, settle: bool, *, watched: bool = False,
               job: bool = True) -> tuple[str | None, bool]:
    """(what is wrong with the container, or None; whether it is still on its way). The same container state
    gives the same answer, whenever it is asked: a crash loop is a failure whether the engine shows the
    container running between two crashes or waiting to be restarted."""
    state = container.attrs.get("State", {})
    code = state.get("ExitCode")
    status = health(container)
    if container.status in ("exited", "dead"):
        if code or is_backend or not job:
            return f"exited with code {code}", False
        return None, False  # a one-shot job (no healthcheck) that did its work
    loop = restart_loop(container)
    if loop:
        return loop, False
    if container.status == "paused":
        return "is paused (`docker compose unpause`)", False
    if status == "unhealthy":
        return "is unhealthy", False
    if container.status == "created" or status == "starting":
        return None, True
    if (settle and is_backend or watched) and _running_for(container) < _settle_time(container, watched):
        return None, True  # a backend that crashes on start must be seen exiting, not as up
    return None, False


def restart_loop(container: Any) -> str | None:
    """What to say of a container that its restart policy restarted since it was last started, or None. Docker
    counts those restarts (RestartCount) and starts counting afresh whenever the container is started on
    purpose (compose up, restart, start: by devtool or by hand), so a count above zero means the service
    exited since it was started, whatever the engine shows at this instant (running again, or waiting to be
    restarted). Such a service is broken, not up."""
    if container.status == "restarting" or container.attrs.get("RestartCount"):
        return f"keeps exiting: {_restarts(container)}"
    return None


def _restarts(container: Any) -> str:
    count = container.attrs.get("RestartCount") or 0
    return f"its restart policy restarted it {count} time{'s' if count != 1 else ''} since it was started"


def _settle_time(container: Any, watched: bool) -> float:
    policy = ((container.attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    return RESTART_SETTLE if watched or policy in RESTART_POLICIES else BACKEND_SETTLE


def _running_for(container: Any) -> float:
    from datetime import datetime, timezone

    started = _started_at(container)
    return BACKEND_SETTLE if started is None else (datetime.now(timezone.utc) - started).total_seconds()


def _started_at(container: Any) -> Any:
    """When the container's main process last started (a timezone-aware datetime), or None."""
    import re
    from datetime import datetime

    started = container.attrs.get("State", {}).get("StartedAt", "")
    try:  # Docker gives nanoseconds and a Z; datetime takes microseconds and an offset
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", started).replace("Z", "+00:00"))
    except ValueError:
        return None


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
    if restart_loop(container) and container.status in ("running", "restarting"):
        return f"exiting again and again ({_restarts(container)})"
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


def explain_stopped(ctx: Context, container: Any, *, wait: float = 0.0) -> None:
    """A container that stopped or restarted under a command is the real cause of its failure: say so as `up`
    would (exit 6, its last log lines). `container.attrs` must be as they were when the command began. `wait`:
    the command was killed, and the engine notes a container's end only a moment after its processes die."""
    before = _lifetime(container)
    deadline = time.monotonic() + wait
    while True:
        try:
            container.reload()
        except Exception:  # removed altogether
            raise DevtoolError(f"Container {container.name} disappeared while devtool was using it.",
                               hint="Run `devtool up` and try again.", exit_code=ExitCode.STACK_FAILED) from None
        code = container.attrs.get("State", {}).get("ExitCode")
        if container.status != "running":
            raise _service_failed(container, f"exited with code {code} while devtool was using it (now "
                                             f"{container.status})", looping=container.status == "restarting")
        restarted = _lifetime(container) != before
        if time.monotonic() >= deadline:
            if restarted:  # running again: Docker has forgotten the code it exited with
                raise _service_failed(container, "exited while devtool was using it, and was restarted by its "
                                                 f"restart policy ({container.attrs.get('RestartCount')} restart(s))",
                                      looping=True)
            return
        time.sleep(POLL_INTERVAL / 2)  # a restarted one that crashes again shows its exit code


def _lifetime(container: Any) -> tuple:
    """Changes whenever the container's main process is started again."""
    return container.attrs.get("State", {}).get("StartedAt"), container.attrs.get("RestartCount")


def _service_failed(container: Any, what: str, *, looping: bool = False) -> DevtoolError:
    """`looping`: the restart policy restarts it; its logs are those of its last runs (where the crash is), and
    the way on restarts it (a container that has run again keeps its count until then)."""
    service = container.labels.get(SERVICE_LABEL, container.name)
    again = (f"`devtool up --force` (it restarts {service} and watches it for {RESTART_SETTLE:.0f}s)" if looping
             else "`devtool up` again")
    return DevtoolError(f"Service {service} {what}.", detail=_logs(container, all_runs=looping),
                        hint=f"Fix the cause in its logs above, then run {again}.",
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


def _logs(container: Any, lines: int = 20, *, all_runs: bool = False) -> str:
    """The last lines of the container's latest run, or (`all_runs`) of its last runs: a container its restart
    policy started again shows the crash only in the run before."""
    started = None if all_runs else _started_at(container)
    since = {"since": int(started.timestamp())} if started is not None and started.year > 1 else {}  # seconds
    try:
        return container.logs(tail=lines, **since).decode("utf-8", "replace").rstrip() or "(no output)"
    except Exception:
        return "(logs unavailable)"


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---- fast path: compose is slow to start; when nothing changed since our last `up`, ask the engine only.
# "Nothing changed" is judged on compose's own model (toolkit/project: every file compose read, every variable
# those files use), so an edited env_file, included or extended file changes the fingerprint.

def _engine_key() -> str:
    """Which engine (and compose settings) the recorded containers belong to."""
    return hashlib.sha256("".join(f"{n}={v}\0" for n, v in sorted(os.environ.items())
                                  if n.startswith(("COMPOSE_", "DOCKER_"))).encode()).hexdigest()


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
    """Per active service: the digest of its compose configuration and its containers, as `up` left them."""
    services = {name: {"digest": digest, "containers": sorted(c.id for c in service_containers(containers, name))}
                for name, digest in ctx.project.service_digests.items()}
    path = _state_file(ctx)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"engine": _engine_key(), "services": services}))
    except OSError:
        pass  # only the fast path is lost


def _unchanged_and_ready(ctx: Context) -> tuple[list[Any] | None, str | None]:
    """(the containers, when compose has nothing to do; else what changed, when that is worth saying). Judged
    per active service, so activating a profile (a service more) changes nothing for the others."""
    try:
        state = json.loads(_state_file(ctx).read_text())
    except (OSError, ValueError):
        state = {}
    containers = active_containers(ctx)
    if not containers or state.get("engine") != _engine_key():
        return None, None
    recorded = state.get("services") or {}
    changed = sorted(name for name, digest in ctx.project.service_digests.items()
                     if name in recorded and recorded[name].get("digest") != digest)
    if changed:
        return None, f"The compose configuration of {', '.join(changed)} changed since the stack was started"
    for name in ctx.project.services:
        ids = sorted(c.id for c in service_containers(containers, name))
        if not ids or name not in recorded or recorded[name].get("containers") != ids:
            return None, None
    backend = _backend_hint(ctx)
    for container in containers:
        service = container.labels.get(SERVICE_LABEL)
        problem, busy = _readiness(container, service == backend, False, job=not ctx.project.has_healthcheck(service))
        if problem or busy:
            return None, None
    images = _image_ids(ctx, containers)
    rebuilt = sorted(s for c in containers if images[(s := c.labels.get(SERVICE_LABEL))] != c.attrs.get("Image"))
    if rebuilt:
        return None, f"The image of {', '.join(rebuilt)} changed since its container was created"
    return containers, None


def unapplied_change(ctx: Context) -> str | None:
    """What changed (compose model, images) since devtool last brought the running stack up, if anything."""
    return _unchanged_and_ready(ctx)[1]


def service_container(ctx: Context, service: str, *, start: bool = True) -> Any:
    """The running container of a service (compose's pick: lowest number). With `start`, the stack is brought
    up to date first (started, or recreated where its configuration or image changed)."""
    containers = up(ctx, settle=False) if start else ctx.containers()
    mine = service_containers(containers, service)
    for container in mine:  # running at this instant or not: the same answer every time
        if restart_loop(container):
            raise _service_failed(container, restart_loop(container), looping=True)
    running = [c for c in mine if c.status == "running"]
    if not running:
        raise DevtoolError(f"Service {service} has no running container in project {ctx.project.name}.",
                           hint="Start the stack with `devtool up`.", exit_code=ExitCode.STACK_FAILED)
    return running[0]
