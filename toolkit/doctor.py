"""`devtool doctor`: every precondition of a working, migrated stack, checked in order, each with its fix."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from toolkit import migrations, orphans
from toolkit.agent.protocol import ErrorCode
from toolkit.dialects import describe
from toolkit.errors import DevtoolError

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not checked, because something it depends on failed
    detail: str = ""
    fix: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def run_checks(ctx: Context, *, deep: bool = True) -> list[Check]:
    """Cheap host and engine checks first; the in-container checks only when the backend runs.
    Without `deep`, stop after the checks that need no running stack (what `setup` checks before `up`)."""
    checks: list[Check] = []

    def add(name: str, ok: bool | None, detail: str = "", fix: str = "") -> bool:
        checks.append(Check(name, ok, detail, "" if ok else fix))
        return bool(ok)

    def skipped(*names: str) -> list[Check]:
        for name in names:
            add(name, None, "not checked: an earlier check failed")
        return checks

    later = ["Compose", "Compose file", "Backend service", "Containers running and healthy", *BACKEND_CHECKS]
    if not add("Docker CLI", bool(shutil.which("docker")), shutil.which("docker") or "not on PATH",
               "Install Docker (Docker Desktop, or the docker.io / docker-ce package)."):
        return skipped("Docker engine", *later)
    from toolkit.engine import engine_address

    try:
        version = ctx.client.version().get("Version", "?")
        add("Docker engine", True, f"{engine_address()}, version {version}")
    except DevtoolError as exc:
        add("Docker engine", False, exc.message, exc.hint or "")
        return skipped(*later)
    from toolkit import compose

    try:
        command, notice = compose.compose_command()
        add("Compose", True, "v1 docker-compose (upgrade to v2)" if notice else "v2 (docker compose)")
    except DevtoolError as exc:
        add("Compose", False, exc.message, exc.hint or "")
        return skipped(*later[1:])
    try:
        project = ctx.project  # compose's own reading (docker compose config), not only YAML
        notes = "".join(f"; compose warns: {w}" for w in project.warnings)
        profiles = f", profiles {', '.join(project.profiles)}" if project.profiles else ""
        add("Compose file", True, f"{', '.join(str(f) for f in project.files)} (project {project.name}{profiles})"
            f"{notes}")
    except DevtoolError as exc:
        add("Compose file", False, exc.message, exc.hint or "")
        return skipped(*later[2:])
    try:
        service = ctx.services.backend
        add("Backend service", True, service)
    except DevtoolError as exc:
        add("Backend service", False, exc.message, exc.hint or "")
        return skipped(*later[3:])
    if not deep:
        return checks
    if not _containers_check(ctx, add):
        return skipped(*later[4:])
    _backend_checks(ctx, add)
    return checks


def _migrations_folder_check(ctx: Context, directory: str, not_writable: Any, add: Any) -> None:
    """Where the folder is, whether the backend's user may write it, and whether the host shares it (a bind
    mount) or devtool copies through the engine."""
    folder = ctx.target.source(start=False).folder
    if not_writable is not None:
        (uid, gid), (owner, group) = not_writable.user, not_writable.owner
        host = ctx.target.host_path(not_writable.path) if folder.shared else None
        add("Migrations folder", False, f"{directory}: the backend runs as uid {uid} (gid {gid}) and may not write "
                                        f"new revision files into {not_writable.path} (owned by uid {owner}, gid "
                                        f"{group}{f'; on the host {host}' if host else ''})",
            f"`sudo chown -R {uid}:{gid} {host}`, or run the service as uid {owner} (`user:` in the compose file)."
            if host else f"Let uid {uid} write it in the image (`COPY --chown={uid}:{gid}`), or run the service as "
                         f"uid {owner} (`user:` in the compose file).")
    elif folder.shared:
        host = ctx.target.host_path(directory)
        add("Migrations folder", True, f"{directory}" + (f" (shared with the host: {host})" if host else ""))
    elif folder.host is not None:
        add("Migrations folder", True, f"{directory} in the container is not shared with the host (no bind mount): "
                                       f"devtool copies revision files to and from {folder.host}")
    else:
        add("Migrations folder", False, f"{directory} in the container is not shared with the host, and devtool cannot "
                                        f"tell where it is there: {folder.problem}",
            "Set migrations_dir in [tool.devtool] (relative to the backend's build context), or bind-mount the "
            "backend's source.")


def first_failure(checks: list[Check]) -> Check | None:
    return next((c for c in checks if c.ok is False), None)


def _containers_check(ctx: Context, add: Any) -> bool:
    from toolkit.engine import service_containers
    from toolkit.stack import active_containers, service_problem, unapplied_change

    try:
        containers = active_containers(ctx)
    except DevtoolError as exc:  # another checkout's stack: nothing here is this checkout's
        return add("Containers running and healthy", False, exc.message, exc.hint or "")
    bad = []
    for name in ctx.project.services:
        mine = service_containers(containers, name)
        problem = service_problem(ctx, name, mine[0] if mine else None)
        if problem:
            bad.append(f"{name}: {problem}")
    change = None if bad else unapplied_change(ctx)
    if change:
        bad.append(f"{change}; the containers run the old configuration")
    return add("Containers running and healthy", not bad, "; ".join(bad) or f"{len(containers)} running",
               "Run `devtool up` (it shows the failing service's logs; `devtool up --force` restarts a service that "
               "keeps exiting, once its cause is fixed).")


# What the agent looks at, in its order: a failure at one stage leaves the later ones not checked.
BACKEND_CHECKS = ["App loads in the backend", "Migrations folder", "Database reachable from the backend",
                  "Single head", "Database at head", "Models loaded by the app"]
FAILED_AT = {ErrorCode.APP_NOT_LOADED: "App loads in the backend",
             ErrorCode.NO_FLASK_MIGRATE: "App loads in the backend",
             ErrorCode.NO_MIGRATIONS: "Migrations folder", ErrorCode.REVISION_UNREADABLE: "Migrations folder",
             ErrorCode.HISTORY_BROKEN: "Migrations folder"}


def _backend_checks(ctx: Context, add: Any) -> None:
    try:
        status = migrations.status(ctx, models=True)
    except DevtoolError as exc:
        stage = FAILED_AT.get(exc.data.get("code"), "Migration state readable" if exc.data.get("code") else
                              "App loads in the backend")
        names = BACKEND_CHECKS if stage in BACKEND_CHECKS else BACKEND_CHECKS[:2] + [stage] + BACKEND_CHECKS[2:]
        at = names.index(stage)
        for name in names[:at]:
            add(name, True, "yes")
        add(stage, False, exc.message, exc.hint or "")
        for name in names[at + 1:]:
            add(name, None, "not checked: an earlier check failed")
        return
    add("App loads in the backend", True, "yes")
    _migrations_folder_check(ctx, status.directory, status.not_writable, add)
    reachable = status.database_error is None
    database = status.database
    add("Database reachable from the backend", reachable,
        "; ".join([describe(database, status.server_version, status.dialect)]
                  + [f"bind {b.bind}: {b.database.name} on {b.database.host}:{b.database.port}" for b in status.binds])
        if reachable else status.database_error,
        status.database_hint or "Check DATABASE_URL (and SQLALCHEMY_BINDS) and that the db service is healthy.")
    heads = status.heads
    add("Single head", len(heads) == 1, ", ".join(f"{h.id} ({h.message})" for h in heads) or "no revisions",
        'Merge them: `devtool migrate --merge "merge heads"`.' if len(heads) > 1 else
        'Create the first revision: `devtool migrate "initial"`.')
    head_ids = sorted(h.id for h in heads)
    behind_binds = [b for b in status.binds if sorted(b.current or []) != head_ids]
    at_head = reachable and sorted(status.current or []) == head_ids and not behind_binds
    report = orphans.trace(ctx, status)
    if report is not None:
        add("Database at head", False, "revisions applied that this checkout does not have: "
            + "; ".join(o.described() for o in report.orphans), f"{orphans.SYNC_HINT}.")
    else:
        add("Database at head", at_head if reachable else None,
            f"at {', '.join(status.current or []) or 'base'}, {len(status.pending)} pending"
            + "".join(f"; bind {b.bind} at {', '.join(b.current or []) or 'base'}" for b in behind_binds)
            if reachable else "not checked: the database cannot be reached",
            "Apply them: `devtool db upgrade` (or `devtool setup`).")
    missing, unscanned = status.unloaded_models, status.unscanned_modules
    add("Models loaded by the app", not missing and not unscanned,
        "; ".join([f"{m.model} ({m.module}): add `{m.import_line}`" for m in missing]
                  + [f"could not look at {u}" for u in unscanned]) or "all loaded",
        'Add the imports, or run `devtool migrate --fix-imports "msg"`.' if missing else
        "Fix the modules named (or move them out of the app's package).")
