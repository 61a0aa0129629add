"""Which service is the Flask backend, and running devtool's agent inside its container."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from toolkit.agent import RESULT_MARK
from toolkit.context import Context
from toolkit.engine import exec_stream
from toolkit.errors import DevtoolError, ExitCode
from toolkit.masking import masker

# Runs the agent with the Python that runs `flask` (venv, system Python or a uv-managed .venv), else python3.
# A fixed script: the request travels as an argument, never through the shell.
PYTHON_LAUNCHER = (
    'for f in "$(command -v flask 2>/dev/null)" ./.venv/bin/flask; do '
    'if [ -f "$f" ]; then read -r line < "$f"; case "$line" in "#!"*python*) exec ${line#??} "$@";; esac; fi; '
    "done; "
    'command -v python3 >/dev/null 2>&1 && exec python3 "$@"; exec python "$@"'
)
AGENT_SOURCE = Path(__file__).with_name("agent.py")


def resolve_service(ctx: Context) -> str:
    """--service (or configuration), else `backend`, else the one service with a Flask app and migrations."""
    services = ctx.project.services
    wanted = ctx.settings.backend_service
    if wanted:
        if wanted not in services:
            raise DevtoolError(f"Service {wanted!r} is not in the compose file (services: {', '.join(services)}).",
                               hint="Pick one of those with --service.", exit_code=ExitCode.SERVICE_NOT_FOUND)
        return wanted
    if "backend" in services:
        return "backend"
    candidates = [name for name in services if _runs_flask_with_migrations(ctx, name)]
    if len(candidates) == 1:
        ctx.out.debug(f"backend service detected: {candidates[0]}")
        return candidates[0]
    found = f"candidates: {', '.join(candidates)}" if candidates else f"services: {', '.join(services)}"
    raise DevtoolError(f"Cannot tell which service is the Flask backend ({found}).",
                       hint="Name it with --service NAME, or backend_service in [tool.devtool].",
                       exit_code=ExitCode.SERVICE_NOT_FOUND)


MIGRATION_GLOBS = ("migrations/env.py", "*/migrations/env.py", "*/*/migrations/env.py")  # e.g. src/db/migrations
MANIFEST_GLOBS = ("requirements*.txt", "requirements/*.txt", "pyproject.toml", "Pipfile")


def _runs_flask_with_migrations(ctx: Context, service: str) -> bool:
    """Judged from the files compose gives the service: build context, bind mounts (together) and env files."""
    project = ctx.project
    roots = [p for p in [project.build_context(service), *(m[0] for m in project.bind_mounts(service))]
             if p and p.is_dir()]
    # Code is often bind-mounted (migrations there) while the manifest is only in the build context.
    has_migrations = any(any(root.glob(pattern)) for root in roots for pattern in MIGRATION_GLOBS)
    manifests = [m for root in roots for pattern in MANIFEST_GLOBS for m in root.glob(pattern) if m.is_file()]
    uses_flask = any("flask" in m.read_text(errors="replace").lower() for m in manifests)
    return has_migrations and (uses_flask or _sets_flask_app(project, service))


def _sets_flask_app(project: Any, service: str) -> bool:
    """FLASK_APP in the service's `environment:` or in one of its `env_file:` files."""
    config = project.services.get(service, {})
    environment = config.get("environment") or {}
    names = set(environment if isinstance(environment, dict) else [e.split("=", 1)[0] for e in environment])
    env_files = config.get("env_file") or []
    for entry in [env_files] if isinstance(env_files, (str, dict)) else env_files:
        raw = entry.get("path") if isinstance(entry, dict) else entry  # long syntax: {path, required}
        path = project.directory / os.path.expanduser(str(raw or ""))
        if raw and path.is_file():
            from dotenv import dotenv_values

            names.update(dotenv_values(path))
    return "FLASK_APP" in names


def backend_container(ctx: Context, *, start: bool = True) -> Any:
    from toolkit.stack import service_container

    container = service_container(ctx, resolve_service(ctx), start=start)
    masker.learn_environment(container.attrs.get("Config", {}).get("Env") or [])
    return container


@functools.lru_cache(maxsize=1)
def _agent_source() -> tuple[str, str]:
    """(source, id): the id names the warm server, so a new devtool never talks to an old agent."""
    import hashlib

    source = AGENT_SOURCE.read_text(encoding="utf-8")
    return source, hashlib.sha1(source.encode()).hexdigest()[:12]


def agent_command(request: dict) -> list[str]:
    """The agent with its request; `warm` lets it use (or start) the warm server in the container."""
    source, agent_id = _agent_source()
    request = {"agent_id": agent_id, "warm": os.environ.get("DEVTOOL_WARM_AGENT", "1") != "0", **request}
    return ["sh", "-c", PYTHON_LAUNCHER, "devtool", "-c", source, json.dumps(request)]


def run_agent(ctx: Context, container: Any, request: dict) -> dict:
    """Run one agent action in the backend container and return its result (errors become DevtoolError)."""
    request = {"flask_app": ctx.settings.flask_app, "directory": ctx.settings.migrations_dir, **request}
    stdout, stderr = bytearray(), bytearray()

    def collect(out: bytes | None, err: bytes | None) -> None:
        if out:
            stdout.extend(out)
        if err:
            stderr.extend(err)
            if ctx.settings.verbose:
                ctx.out.raw(err, stderr=True)

    code = exec_stream(ctx.client, container.id, agent_command(request), on_output=collect)
    text = stdout.decode("utf-8", "replace")
    marker = text.rfind(RESULT_MARK)
    if marker < 0:
        log = stderr.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise DevtoolError(f"devtool's agent failed in container {container.name} (exit code {code}).",
                           detail="\n".join(log) or None,
                           hint="Does the container have Python with Flask installed? Run with -v for details.",
                           exit_code=ExitCode.MIGRATION_FAILED)
    if ctx.settings.verbose and text[:marker].strip():
        ctx.out.raw(text[:marker].encode(), stderr=True)
    return json.loads(text[marker + len(RESULT_MARK):].splitlines()[0])


def run_flask(ctx: Context, container: Any, args: list[str]) -> int:
    """`flask ARGS` in the backend container, output streamed live, exit code returned."""
    request = {"action": "flask", "args": args, "directory": ctx.settings.migrations_dir}

    def stream(out: bytes | None, err: bytes | None) -> None:
        if out:
            ctx.out.raw(out)
        if err:
            ctx.out.raw(err, stderr=True)

    return exec_stream(ctx.client, container.id, agent_command(request), on_output=stream)


def host_path(container: Any, path: str) -> str:
    """Where a file the container wrote lies on the host, through the container's bind mounts."""
    best = None
    for mount in container.attrs.get("Mounts") or []:
        target = mount.get("Destination", "").rstrip("/")
        if mount.get("Type") == "bind" and (path == target or path.startswith(target + "/")):
            if best is None or len(target) > len(best[0]):
                best = (target, mount["Source"])
    if best is None:
        return path
    return best[1].rstrip("/") + path[len(best[0]):]
