"""Database snapshots of a backend service's database(s): taken, listed, restored, deleted, pruned, exported to a
file and imported from one.

Two kinds:
* `copy` — a copy inside the database server itself (CREATE DATABASE ... TEMPLATE, made by the agent through
  the app's own connection): about a second for a few hundred MB, where pg_dump takes several. A restore makes a
  fresh copy of it and swaps it in by renaming, so the snapshot stays. It lives as long as the server's data
  (the db volume: `devtool down --volumes` says so before deleting it).
* `dump` — a pg_dump file on this machine: taken where the server refuses copies (no CREATEDB, not the owner of
  the database), and what `snapshot import` brings in. Dumps are made by the dialect's tools next to the backend.

Every snapshot belongs to its checkout (the folder and the compose project name: the state folder is keyed by
both, and the metadata names the folder), its backend service and the database(s) it was taken from: `restore
--latest` looks only at the service's own, and restoring into another database is refused with the reason.
Each snapshot's metadata is one JSON file (format 2) in the project's state folder; `databases` is a list: the
app's main database and, in a multi-database project (SQLALCHEMY_BINDS), each bind's. A snapshot always holds
every database of the app (not only those a migration touches): a restore then puts them all back together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from toolkit import __version__
from toolkit.agent.protocol import (SNAPSHOT_MARK, ConnectionRequest, CopyRequest, Database, DropCopiesRequest,
                                    ErrorCode, RestoreCopyRequest, RevisionsRequest, SnapshotDatabase, decode)
from toolkit.dialects import for_database
from toolkit.errors import DevtoolError, ExitCode
from toolkit.state import known_projects, project_state, state_home

if TYPE_CHECKING:
    from toolkit.context import Context

FORMAT = 2  # of the metadata; a file from a newer devtool (higher format) is refused, not misread
COPY, DUMP = "copy", "dump"
SUBCOMMANDS = ("list", "delete", "prune", "export", "import")  # not usable as snapshot names
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DATA_DIRECTORY = "/var/lib/postgresql/data"  # where the postgres image keeps the server's data (PGDATA)


@dataclass
class Snapshot:
    """One snapshot's metadata (typing's Optional/List: decoded on Python 3.9 too)."""

    name: str
    kind: str  # COPY (inside the database server) or DUMP (a file on this machine)
    created: str  # ISO 8601, UTC
    reason: str  # manual, before migration, imported from FILE
    project: str
    service: Optional[str]  # the backend service it belongs to (None: taken by devtool 0.1, before services)
    databases: List[SnapshotDatabase] = field(default_factory=list)
    size: int = 0  # bytes, all databases
    seconds: float = 0.0  # how long taking it took
    path: Optional[str] = None  # DUMP: the main database's file (each database's: databases[].file)
    db_service: Optional[str] = None  # the project's service running the server (None: a server outside it)
    devtool: str = __version__
    format: int = FORMAT
    sha256: Optional[str] = None  # imported dumps: the file's content, so the same file is not imported twice
    origin: Optional[Dict[str, Any]] = None  # imported: what the file said about where it came from
    checkout: Optional[str] = None  # the folder of the checkout it belongs to (None: taken before devtool recorded
    # it; the state folder it lies in, keyed by folder and project name, says whose it is)

    @property
    def main(self) -> SnapshotDatabase | None:
        return next((d for d in self.databases if d.bind is None), None)

    @property
    def revision(self) -> list[str]:
        """The main database's alembic revision(s) when it was taken."""
        return self.main.revision if self.main else []

    @property
    def database(self) -> str | None:
        return self.main.database.name if self.main else None

    @property
    def database_names(self) -> str:
        """Every database it holds, the main one first: "main" or "main, analytics" (a bind's)."""
        return ", ".join(str(d.database.name) for d in self.databases) or "-"

    @property
    def age_seconds(self) -> float:
        return max((datetime.now(timezone.utc) - datetime.fromisoformat(self.created)).total_seconds(), 0.0)

    def record(self) -> dict:
        """What the metadata file holds (`database` and `revision` too, for readers of the first format)."""
        return {**dataclasses.asdict(self), "database": self.database, "revision": self.revision}

    def as_json(self) -> dict:
        return {**self.record(), "age_seconds": round(self.age_seconds, 1)}

    @classmethod
    def from_json(cls, data: dict) -> Snapshot:
        if data.get("format", 1) < 2:  # devtool 0.1: one pg_dump file, no service, no kind
            data = {"name": data["name"], "kind": DUMP, "created": data["created"], "reason": data.get("reason", ""),
                    "project": data.get("project", ""), "service": None, "size": data.get("size", 0),
                    "seconds": data.get("seconds", 0.0), "path": data.get("path"), "devtool": "0.1",
                    "databases": [{"database": {"backend": "postgresql", "name": data.get("database")},
                                   "revision": data.get("revision") or [], "size": data.get("size", 0),
                                   "file": data.get("path")}]}
        return decode(cls, data)


@dataclass
class ExportResult:
    snapshot: Snapshot
    file: str
    size: int


@dataclass
class ProjectSnapshots:
    """One project devtool keeps state for (`snapshot list --all`); `exists` False: its directory is gone."""

    name: str
    directory: str | None
    exists: bool
    state: str
    snapshots: list[Snapshot]


# ---------------------------------------------------------------------------------------------- where

def snapshot_dir(ctx: Context) -> Path:
    return project_state(ctx.project) / "snapshots"


def _legacy_dir(ctx: Context) -> Path:
    """devtool 0.1 kept dumps under snapshots/<project name>, whatever the folder: see _claim_legacy."""
    return state_home() / "snapshots" / ctx.project.name


def _claim_legacy(ctx: Context) -> None:
    """devtool 0.1's dumps of this project name move into this checkout's folder (recording it as theirs), unless
    devtool knows another existing checkout with the name: then they stay where they are, listed by neither,
    and devtool says so (one checkout never lists or restores another's)."""
    legacy = _legacy_dir(ctx)
    found = _read_folder(legacy)
    if not found:
        return
    mine = str(ctx.project.directory)
    others = sorted(info["directory"] for _, info in known_projects()
                    if info.get("name") == ctx.project.name and info.get("directory") not in (None, mine)
                    and Path(info["directory"]).is_dir())
    if others:
        ctx.out.warn(f"{len(found)} snapshot(s) of devtool 0.1 in {legacy} belong to project {ctx.project.name} of "
                     f"an unknown folder ({mine} or {', '.join(others)}): not listed. Move them into the right "
                     f"checkout's {project_state(ctx.project).parent}/{ctx.project.name}-*/snapshots folder.")
        return
    folder = snapshot_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    for snapshot in found:
        old_meta = _meta_file(ctx, snapshot)
        for file in {snapshot.path, *(d.file for d in snapshot.databases)} - {None}:
            moved = str(folder / Path(file).name)
            shutil.move(file, moved)
            snapshot.path = moved if snapshot.path == file else snapshot.path
            for database in snapshot.databases:
                database.file = moved if database.file == file else database.file
        snapshot.checkout = mine
        _write(ctx, snapshot)
        old_meta.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        legacy.rmdir()
    ctx.out.info(f"Moved {len(found)} snapshot(s) of devtool 0.1 into this checkout's state folder {folder}.")


def _meta_file(ctx: Context, snapshot: Snapshot) -> Path:
    return Path(snapshot.path).with_suffix(".json") if snapshot.path else snapshot_dir(ctx) / f"{snapshot.name}.json"


def _write(ctx: Context, snapshot: Snapshot) -> None:
    path = _meta_file(ctx, snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json-partial")
    partial.write_text(json.dumps(snapshot.record(), indent=2))
    partial.rename(path)


def _read_folder(folder: Path) -> list[Snapshot]:
    found = []
    for meta_file in folder.glob("*.json") if folder.is_dir() else []:
        try:
            snapshot = Snapshot.from_json(json.loads(meta_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or half-written by a killed devtool: never shown as a snapshot
        if snapshot.kind == COPY or (snapshot.path and Path(snapshot.path).is_file()):
            found.append(snapshot)
    return found


def list_snapshots(ctx: Context, service: str | None = None) -> list[Snapshot]:
    """The checkout's snapshots, newest first (only `service`'s when given)."""
    _claim_legacy(ctx)
    mine = str(ctx.project.directory)
    found = [s for s in _read_folder(snapshot_dir(ctx)) if s.checkout in (None, mine)]
    if service is not None:
        found = [s for s in found if s.service == service]
    return sorted(found, key=lambda s: s.created, reverse=True)


def list_checkout(ctx: Context) -> list[Snapshot]:
    """`snapshot list`: the checkout's snapshots, refused while another checkout's containers carry this project
    name (their database server is not this checkout's). Without an engine, the list is still this checkout's."""
    try:
        ctx.containers()
    except DevtoolError as exc:
        if exc.exit_code != ExitCode.DOCKER_UNAVAILABLE:
            raise
    return list_snapshots(ctx)


def list_all() -> list[ProjectSnapshots]:
    """Every project devtool keeps state for, whether its directory still exists, and its snapshots."""
    projects = []
    for folder, info in known_projects():
        directory = info.get("directory")
        snapshots = sorted(_read_folder(folder / "snapshots"), key=lambda s: s.created, reverse=True)
        projects.append(ProjectSnapshots(name=info.get("name") or folder.name, directory=directory,
                                         exists=bool(directory) and Path(directory).is_dir(), state=str(folder),
                                         snapshots=snapshots))
    return projects


# ---------------------------------------------------------------------------------------------- names

def validate_name(name: str | None) -> None:
    if name is None:
        return
    if not NAME_PATTERN.match(name):
        raise DevtoolError(f"Invalid snapshot name {name!r}.", exit_code=ExitCode.USAGE,
                           hint="Use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit.")
    if name in SUBCOMMANDS:
        raise DevtoolError(f"{name!r} is a `devtool snapshot` subcommand, not a snapshot name.",
                           exit_code=ExitCode.USAGE, hint="Pick another name.")


def _auto_name() -> str:
    return "auto-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _find(ctx: Context, name: str) -> Snapshot | None:
    return next((s for s in list_snapshots(ctx) if s.name == name), None)


def _named(ctx: Context, name: str, doing: str) -> Snapshot:
    """The project's snapshot `name`, which must belong to the backend service this command works on."""
    snapshot = _find(ctx, name)
    service = ctx.services.backend
    if snapshot is None:
        known = ", ".join(s.name for s in list_snapshots(ctx, service)[:5]) or "none yet"
        raise DevtoolError(f"No snapshot {name} for service {service} of project {ctx.project.name} "
                           f"(have: {known}).", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="`devtool snapshot list` shows them.")
    if snapshot.service not in (None, service):
        raise DevtoolError(f"Snapshot {name} belongs to service {snapshot.service} "
                           f"(database {snapshot.database_names}); "
                           f"this command works on service {service}: {doing} it here is refused.",
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint=f"Use `devtool --service {snapshot.service} ...` for that service's snapshots.")
    return snapshot


def _latest(ctx: Context) -> Snapshot:
    service = ctx.services.backend
    mine = list_snapshots(ctx, service)
    if mine:
        return mine[0]
    others = sorted({s.service or "?" for s in list_snapshots(ctx)})
    raise DevtoolError(f"No snapshot of service {service} in project {ctx.project.name} yet"
                       + (f" (there are snapshots of {', '.join(others)}, which never restore into {service})."
                          if others else "."), exit_code=ExitCode.SNAPSHOT_FAILED,
                       hint="Take one with `devtool snapshot`.")


# ---------------------------------------------------------------------------------------------- take

def take(ctx: Context, name: str | None = None, *, reason: str = "manual", database: Database | None = None,
         revision: list[str] | None = None) -> Snapshot:
    """Snapshot the backend service's database(s): a copy inside the server, else a pg_dump file; then keep the
    service's newest `snapshot_keep`. (`database` and `revision` are read by the agent; the arguments are
    accepted for callers of the first version.)"""
    validate_name(name)
    name = name or _auto_name()
    service = ctx.services.backend
    if _find(ctx, name):
        raise DevtoolError(f"Snapshot {name} already exists.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Pick another name, or `devtool snapshot delete` it first.")
    snapshot = Snapshot(name=name, kind=COPY, created=datetime.now(timezone.utc).isoformat(), reason=reason,
                        project=ctx.project.name, service=service, checkout=str(ctx.project.directory))
    started = time.monotonic()
    with ctx.out.status(f"Taking snapshot {name}…"):
        try:
            result = ctx.target.agent().call(CopyRequest(token=uuid.uuid4().hex[:12], comment=_mark(snapshot),
                                                         wait=ctx.settings.wait_timeout))
            snapshot.databases = result.databases
            if result.closed:
                ctx.out.info(f"Closed {result.closed} connection(s) to {snapshot.database_names} for the copy (the app "
                             f"reconnects on its next query).")
        except DevtoolError as exc:
            if exc.data.get("code") != ErrorCode.COPY_UNSUPPORTED:
                raise
            _dump(ctx, snapshot, copy_refused=exc.message)
    snapshot.size = sum(d.size for d in snapshot.databases)
    snapshot.seconds = round(time.monotonic() - started, 3)
    snapshot.db_service = ctx.services.db_if_known(snapshot.main.database) if snapshot.main else None
    _write(ctx, snapshot)
    try:
        prune(ctx)
    except DevtoolError as exc:  # the snapshot is taken: a failed clean-up must not stop what it protects
        ctx.out.warn(f"Snapshot {name} is taken, but older ones could not be pruned: {exc.message}")
    return snapshot


def _mark(snapshot: Snapshot) -> str:
    """The COMMENT on each copy: says what it is on the server, and travels inside `snapshot export` files."""
    label = {"format": FORMAT, "devtool": __version__, "name": snapshot.name, "created": snapshot.created,
             "reason": snapshot.reason, "project": snapshot.project, "service": snapshot.service}
    return SNAPSHOT_MARK + json.dumps(label)


def _dump(ctx: Context, snapshot: Snapshot, *, copy_refused: str) -> None:
    """The dump kind: pg_dump next to the backend into the state folder."""
    connection = ctx.target.agent().call(ConnectionRequest())
    database = connection.database
    if connection.others:  # a snapshot of the main database alone would restore a mismatched set
        raise DevtoolError(f"Cannot snapshot the {1 + len(connection.others)} databases of service "
                           f"{ctx.services.backend} ({', '.join(str(d.name) for d in [database, *connection.others])}):"
                           f" {_lower(copy_refused.rstrip('.'))}, and a dump snapshot holds one database only; "
                           f"nothing was taken.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Grant the app's role CREATEDB and the ownership of each database (copies inside "
                                "the server cover every database).")
    dialect = for_database(database)
    if dialect.copies:  # the server could have copied it: say why it did not
        ctx.out.info(f"{copy_refused.rstrip('.')}; taking a {dialect.dump_tool} instead (slower).")
    folder = snapshot_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{snapshot.name}.dump"
    partial = file.with_suffix(".partial")
    try:
        with dialect.dumps(ctx, connection) as tools, open(partial, "wb") as handle:
            tools.dump(handle)
    except DevtoolError as exc:
        partial.unlink(missing_ok=True)
        if not dialect.copies:
            raise
        raise DevtoolError(f"Cannot snapshot database {database.name} on {database.host}:{database.port}: "
                           f"{_lower(copy_refused.rstrip('.'))}, and {_lower(exc.message)}",
                           detail=exc.detail, exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Grant the app's role CREATEDB and the ownership of its database (fast copies), or: "
                                + _lower(exc.hint or "fix the cause above.")) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(file)
    snapshot.kind, snapshot.path = DUMP, str(file)
    snapshot.databases = [SnapshotDatabase(database=database, revision=connection.revision or [], file=str(file),
                                           size=file.stat().st_size, server_version=connection.server_version)]


def _lower(message: str) -> str:
    """A message continued inside a sentence."""
    return message[:1].lower() + message[1:]


# ---------------------------------------------------------------------------------------------- restore

def restore(ctx: Context, name: str | None) -> Snapshot:
    """Put the service's database(s) back exactly as in the snapshot (tables made since included); `name`
    None: the service's newest. Works at any revision: nothing here reads the migrations."""
    ctx.containers()  # first: another checkout's stack (or data) is refused before its snapshots are looked at
    snapshot = _named(ctx, name, "restoring") if name else _latest(ctx)  # a wrong name starts nothing
    agent = ctx.target.agent()
    with ctx.out.status(f"Restoring snapshot {snapshot.name}…"):
        if snapshot.kind == COPY:
            result = agent.call(RestoreCopyRequest(databases=snapshot.databases, token=uuid.uuid4().hex[:12],
                                                   wait=ctx.settings.wait_timeout))
            if result.closed:
                ctx.out.info(f"Closed {result.closed} connection(s) to {snapshot.database_names} for the swap (the app "
                             f"reconnects on its next query).")
        else:
            connection = agent.call(ConnectionRequest())
            _same_database(snapshot, connection.database, ctx.services.backend)
            with for_database(connection.database).dumps(ctx, connection) as tools:
                tools.restore(Path(snapshot.path))
    return snapshot


def _same_database(snapshot: Snapshot, now: Database, service: str) -> None:
    taken = snapshot.main.database
    known = [(a, b) for a, b in ((taken.name, now.name), (taken.host, now.host), (taken.port, now.port)) if a]
    if any(a != b for a, b in known):
        raise DevtoolError(f"Snapshot {snapshot.name} was taken from database {_where(taken)}; service {service} "
                           f"now uses {_where(now)}: restoring it there is refused.",
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Restore it where it came from, or take a snapshot of this database first.")


def _where(database: Database) -> str:
    return database.name + (f" on {database.host}:{database.port}" if database.host else "")


# ---------------------------------------------------------------------------------------------- housekeeping

def delete(ctx: Context, name: str) -> Snapshot:
    snapshot = _named(ctx, name, "deleting")
    _remove(ctx, [snapshot])
    return snapshot


def prune(ctx: Context, keep: int | None = None) -> list[Snapshot]:
    """Keep the backend service's newest `keep` (default: snapshot_keep) snapshots; the rest go."""
    keep = max(keep if keep is not None else ctx.settings.snapshot_keep, 0)
    doomed = list_snapshots(ctx, ctx.services.backend)[keep:]
    _remove(ctx, doomed)
    return doomed


def _remove(ctx: Context, snapshots: list[Snapshot]) -> None:
    """Copies are dropped from the server first (one agent call); metadata goes only for what is gone."""
    copies = [d.copy for s in snapshots if s.kind == COPY for d in s.databases if d.copy]
    if copies:
        result = ctx.target.agent().call(DropCopiesRequest(copies=copies))
        if result.missing:
            ctx.out.info(f"Already gone from the database server: {', '.join(result.missing)}.")
    for snapshot in snapshots:
        forget(ctx, snapshot)


def forget(ctx: Context, snapshot: Snapshot) -> None:
    """Remove a snapshot's files on this machine (its copy on the server is not touched)."""
    for file in {snapshot.path, *(d.file for d in snapshot.databases)} - {None}:
        Path(file).unlink(missing_ok=True)
    _meta_file(ctx, snapshot).unlink(missing_ok=True)


def prune_orphans() -> list[ProjectSnapshots]:
    """Remove devtool's state (snapshot files included) of projects whose directory no longer exists."""
    gone = [p for p in list_all() if not p.exists]
    for project in gone:
        shutil.rmtree(project.state, ignore_errors=True)
    return gone


def in_volumes(ctx: Context) -> list[Snapshot]:
    """Copy snapshots whose server keeps its data in a volume of this project (`down --volumes` deletes it)."""
    lost = []
    for snapshot in list_snapshots(ctx):
        service = snapshot.db_service
        if snapshot.kind != COPY or service not in ctx.project.services:
            continue
        data = str(dict(_environment(ctx.project.services[service])).get("PGDATA", DATA_DIRECTORY)).rstrip("/")
        on_host = any(data == target.rstrip("/") or data.startswith(target.rstrip("/") + "/")
                      for _, target in ctx.project.bind_mounts(service))
        if not on_host:
            lost.append(snapshot)
    return lost


def _environment(config: dict) -> list[tuple[str, str]]:
    environment = config.get("environment") or {}
    if isinstance(environment, dict):
        return [(k, str(v)) for k, v in environment.items()]
    return [tuple(e.split("=", 1)) for e in environment if "=" in e]


# ---------------------------------------------------------------------------------------------- files

def export(ctx: Context, name: str, file: Path, *, force: bool = False) -> ExportResult:
    """Write the snapshot as a pg_dump custom-format file; devtool's metadata rides in it as the database's
    COMMENT (pg_restore ignores it unless --create), so `snapshot import` on another machine can check it."""
    snapshot = _named(ctx, name, "exporting")
    if len(snapshot.databases) > 1:  # one file holds one database: exporting the main one alone would mislead
        raise DevtoolError(f"Snapshot {name} holds {len(snapshot.databases)} databases ({snapshot.database_names}); "
                           f"an export file holds one database, so exporting it is refused; nothing was written.",
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Restore it here with `devtool restore NAME`; exports of multi-database snapshots "
                                "are not supported yet.")
    file = file.expanduser().absolute()
    if file.exists() and (file.is_dir() or not force):
        raise DevtoolError(f"{file} already exists.", exit_code=ExitCode.USAGE,
                           hint="Name a new file, or pass --force to replace it.")
    partial = file.with_name(f".{file.name}.devtool-partial")
    try:
        if snapshot.kind == COPY:
            connection = ctx.target.agent().call(ConnectionRequest(database=snapshot.main.copy))
            with ctx.out.status(f"Exporting snapshot {name} (pg_dump)…"), \
                    for_database(connection.database).dumps(ctx, connection) as tools, open(partial, "wb") as handle:
                tools.dump(handle)
        else:
            shutil.copyfile(snapshot.path, partial)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DevtoolError(f"Cannot write {file}: {exc.strerror or exc}.", exit_code=ExitCode.SNAPSHOT_FAILED) \
            from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(file)
    return ExportResult(snapshot=snapshot, file=str(file), size=file.stat().st_size)


def import_file(ctx: Context, file: Path, name: str | None = None, *,
                allow_unknown_revision: bool = False) -> Snapshot:
    """Bring in a pg_dump custom-format file (from `snapshot export`, or pg_dump -Fc by hand) as a dump snapshot
    of this service's database. Refused, with the reason and nothing kept, when the file is no dump, comes from a
    newer devtool or a newer Postgres than the server, or is at a revision this checkout lacks
    (`allow_unknown_revision`: the hook for restoring and then syncing such a dump)."""
    file = file.expanduser().absolute()
    if not file.is_file():
        raise DevtoolError(f"No file {file}.", exit_code=ExitCode.USAGE, hint="Name a file `snapshot export` wrote.")
    validate_name(name)
    service = ctx.services.backend
    agent = ctx.target.agent()
    connection = agent.call(ConnectionRequest())
    with ctx.out.status(f"Reading {file.name}…"), for_database(connection.database).dumps(ctx, connection) as tools:
        info = tools.read(file)
    metadata = info.metadata or {}
    if metadata.get("format", FORMAT) > FORMAT:
        raise DevtoolError(f"{file.name} was exported by a newer devtool ({metadata.get('devtool')}, metadata format "
                           f"{metadata['format']}); this is devtool {__version__}.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Upgrade devtool, then import it again.")
    problem = for_database(connection.database).import_problem(info.server_version, connection.server_version)
    if problem:
        raise DevtoolError(f"{file.name} cannot be restored into the database of service {service}: {problem}.",
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Run the same or a newer major version, or export from a matching server.")
    if info.revision and not allow_unknown_revision:
        known = agent.call(RevisionsRequest(revisions=info.revision))
        if known.unknown:
            raise DevtoolError(f"{file.name} is at revision {', '.join(known.unknown)}, which this checkout's "
                               f"migrations do not have (heads: {', '.join(known.heads) or 'none'}); importing it "
                               f"is refused: its schema could not be migrated from here.",
                               exit_code=ExitCode.SNAPSHOT_FAILED,
                               hint="Check out the branch the dump was made on (its revision file is there), "
                                    "then import it again.")
    digest = _sha256(file)
    same = next((s for s in list_snapshots(ctx, service) if s.sha256 == digest), None)
    if same is not None and name in (None, same.name):
        ctx.out.info(f"{file.name} is already imported as snapshot {same.name}.")
        return same
    if name is not None and _find(ctx, name):
        raise DevtoolError(f"Snapshot {name} already exists.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Import it under another name: `devtool snapshot import FILE NAME`.")
    name = name or _free_name(ctx, _name_for(metadata.get("name") or file.stem))
    folder = snapshot_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.dump"
    partial = target.with_suffix(".partial")
    try:
        shutil.copyfile(file, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)
    snapshot = Snapshot(
        name=name, kind=DUMP, created=datetime.now(timezone.utc).isoformat(), reason=f"imported from {file.name}",
        project=ctx.project.name, service=service, path=str(target), sha256=digest,
        checkout=str(ctx.project.directory),
        db_service=ctx.services.db_if_known(connection.database),
        origin={**metadata, "file": str(file), "server_version": info.server_version},
        databases=[SnapshotDatabase(database=connection.database, revision=info.revision or [], file=str(target),
                                    size=target.stat().st_size, server_version=info.server_version)])
    snapshot.size = snapshot.databases[0].size
    _write(ctx, snapshot)
    return snapshot


def _free_name(ctx: Context, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `-3`... when a snapshot has that name already."""
    taken = {s.name for s in list_snapshots(ctx)}
    name, number = wanted, 1
    while name in taken:
        number += 1
        name = f"{wanted[:60]}-{number}"
    return name


def _name_for(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "imported"
    name = name if name[0].isalnum() else f"i{name}"
    return name[:64] if name not in SUBCOMMANDS else f"{name}-imported"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

