"""The one contract between devtool on the host and its agent in the container.

Both sides import this module: the host as `toolkit.agent.protocol`, the agent (copied into the container as
the package `devtool_agent`) as `devtool_agent.protocol`. Requests and results are dataclasses that travel as
JSON; status values, risks and error codes are defined here once. Standard library only, Python 3.8+.

A request goes to the agent as one JSON argument; its answer is one line on stdout behind RESULT_MARK:
`{"ok": true, "result": {...}}` or `{"ok": false, "failure": {...}}`. Lines the agent writes to stderr behind
LOG_MARK are progress meant for the user; a line behind KEEP_MARK carries a revision file the agent has just
applied (a RevisionFile: devtool keeps a copy, so it can downgrade it after a git checkout removed it); a line
behind DEBUG_MARK is shown only with -v (also among flask's own output); everything else on stderr is the app's and the libraries' output.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

RESULT_MARK = "\x1edevtool-result "
LOG_MARK = "devtool: "
KEEP_MARK = "\x1edevtool-keep "
DEBUG_MARK = "\x1edevtool-debug "
FLASK_DATABASE_LOST = 29  # the exit code of `flask ...` through devtool when the database went away (ExitCode 29)
LOCK_KEY = 72731001  # the Postgres advisory lock every devtool migration takes
COPY_PREFIX = "devtool_snap_"  # snapshot copies inside the database server: COPY_PREFIX + token
REHEARSAL_PREFIX = "devtool_rh_"  # a rehearsal's copy: REHEARSAL_PREFIX + <unix time>_<hex>, dropped when done
SNAPSHOT_MARK = "devtool-snapshot "  # a copy's COMMENT: this mark, then the snapshot's metadata as JSON
WRITING_SUBCOMMANDS = ("init", "revision", "migrate", "merge", "edit")  # `flask db ...` that write revision files


class Status:
    """What a migrate or upgrade request did."""

    APPLIED = "applied"  # revisions were applied
    UP_TO_DATE = "up_to_date"  # upgrade: nothing was pending
    NO_CHANGES = "no_changes"  # migrate: the models match the database, no revision written
    GENERATED = "generated"  # migrate --no-upgrade: revision written, not applied
    NEEDS_REVIEW = "needs_review"  # flagged changes not approved: nothing flagged applied, a new file is kept


class Risk:
    SAFE = "safe"
    RISKY = "risky"  # may fail on existing rows (NOT NULL without a default)
    RENAME = "rename"  # probably a rename written as drop + add: the rows would be lost
    DESTRUCTIVE = "destructive"  # drops or casts data
    SNAPSHOT_FIRST = (DESTRUCTIVE, RENAME)  # a snapshot is taken before these are applied


class Severity:
    """How much a lint finding matters: errors stop migrate (without --yes) and fail check and lint."""

    ERROR = "error"
    WARNING = "warning"


class ErrorCode:
    APP_NOT_LOADED = "app_not_loaded"
    DATABASE_UNREACHABLE = "database_unreachable"  # connecting to (or reading) the app's database failed
    NO_FLASK_MIGRATE = "no_flask_migrate"
    NO_MIGRATIONS = "no_migrations"
    MODELS_NOT_IMPORTED = "models_not_imported"
    MULTIPLE_HEADS = "multiple_heads"
    REVISION_UNREADABLE = "revision_unreadable"  # a file of the migrations folder Python cannot read
    HISTORY_BROKEN = "history_broken"  # a revision refers to one no file defines, or the history has a cycle
    GENERATE_FAILED = "generate_failed"
    UPGRADE_FAILED = "upgrade_failed"  # the failing revision rolled back whole
    PARTLY_APPLIED = "partly_applied"  # the failing revision's first statements stay (MySQL commits DDL at once)
    LOCK_UNAVAILABLE = "lock_unavailable"  # devtool's migration lock could not be taken (its file, say)
    LOCK_TIMEOUT = "lock_timeout"  # another devtool migration held the migration lock past the deadline
    LOCK_BLOCKED = "lock_blocked"  # a revision's statement waited past lock_timeout, every retry (the holder named)
    NOT_REDIRECTED = "not_redirected"  # rehearse/replay: env.py does not connect to the copy devtool made
    REHEARSAL_COPY_FAILED = "rehearsal_copy_failed"  # the database server would not copy the database
    NO_SUCH_REVISION = "no_such_revision"  # a revision the user named is not in the history
    STATEMENT_TIMEOUT = "statement_timeout"  # a revision's statement ran past statement_timeout
    DATABASE_LOST = "database_lost"  # the database stopped answering (restarted, network cut): what was done named
    INTERRUPTED = "interrupted"  # devtool went away (Ctrl-C, killed): stopped at a revision boundary
    ORPHANED = "orphaned"  # the database is at a revision the checkout does not have (a git checkout removed it)
    NO_COPY = "no_copy"  # sync: a revision to downgrade has no copy among those devtool sent
    COPIES_UNTRUSTED = "copies_untrusted"  # sync: the folder of copies is not one devtool made
    DOWNGRADE_FAILED = "downgrade_failed"  # sync: a revision's downgrade() failed (it was rolled back)
    AGENT_FAILED = "agent_failed"  # anything unexpected: the exception's first line
    COPY_UNSUPPORTED = "copy_unsupported"  # the server will not copy the database (privileges, engine): dump it
    SNAPSHOT_MISSING = "snapshot_missing"  # the snapshot's copy is no longer on the database server
    SNAPSHOT_MISMATCH = "snapshot_mismatch"  # the snapshot was taken from another database than the app's
    SNAPSHOT_FAILED = "snapshot_failed"  # the server refused the copy, the restore or the drop
    NOT_WRITABLE = "not_writable"  # the agent's user may not write a folder it must write (path, user, owner)


# ---------------------------------------------------------------------------------------------- values


@dataclass
class Revision:
    id: str
    message: str
    path: str
    host_path: Optional[str] = None  # where the file lies on the host (filled in by the host)


@dataclass
class Change:
    """One Alembic operation of a revision, as the review judges it."""

    op: str
    label: str
    table: Optional[str] = None
    column: Optional[str] = None  # the column, or the columns an index or constraint covers ("a, b")
    risk: str = Risk.SAFE
    reason: str = ""
    revision: Optional[str] = None  # set where changes of several revisions are listed together
    # a multi-database revision (flask db init --multidb): the database it runs in, as Flask-Migrate names
    # engines ('' the main database, else the bind's key); None in a single-database revision
    bind: Optional[str] = None
    name: Optional[str] = None  # the index, constraint or enum type the operation names


@dataclass
class Finding:
    """A lint rule that matched one operation of a revision (agent/lint.py)."""

    rule: str
    severity: str
    message: str  # what this operation does, e.g. "adds NOT NULL column users.age without a server default"
    why: str = ""
    safe: str = ""  # the safe way
    line: Optional[int] = None
    table: Optional[str] = None
    column: Optional[str] = None
    allowed: Optional[str] = None  # the reason of a `# devtool: allow <rule> <reason>` that silences it
    revision: Optional[str] = None  # set where findings of several revisions are listed together
    path: Optional[str] = None

    @property
    def blocking(self) -> bool:
        return self.severity == Severity.ERROR and self.allowed is None


@dataclass
class PendingRevision(Revision):
    changes: List[Change] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)


@dataclass
class RevisionFile:
    """A revision file the agent applied, as it was (KEEP_MARK line): devtool keeps a copy on the host."""

    id: str
    message: str
    down: List[str]  # its down_revision(s); empty for a first revision
    path: str
    content: str  # the file's bytes, base64


@dataclass
class Database:
    backend: str
    host: Optional[str] = None
    port: Optional[int] = None
    name: Optional[str] = None
    user: Optional[str] = None


@dataclass
class SnapshotDatabase:
    """One database in a snapshot: the app's main database (bind None; later also each bind's). A snapshot
    holds a list of them, so a project with several databases needs no new format."""

    database: Database  # where it was taken from, as the backend sees it
    bind: Optional[str] = None
    copy: Optional[str] = None  # kind "copy": the database on the same server that holds the copy
    file: Optional[str] = None  # kind "dump": its dump file on the host
    revision: List[str] = field(default_factory=list)  # alembic_version when it was taken
    size: int = 0  # bytes (the copy's database size, or the dump file's)
    server_version: Optional[str] = None


@dataclass
class DatabaseTarget:
    """A database the agent works on instead of the app's own: a copy on the same server (`name` only), or a
    throw-away server (`host`, `port`, `user`, `password`). Every connection proves it reaches it: `check_sql`
    must return `check_value` there."""

    name: str
    check_sql: str
    check_value: str
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    password: Optional[str] = None


@dataclass
class UnloadedModel:
    model: str  # the class name
    module: str
    table: str
    file: Optional[str] = None
    import_line: str = ""
    fixed_in: Optional[str] = None  # --fix-imports: the file the import line was added to


@dataclass
class Unwritable:
    """A folder the agent's user may not create files in."""

    path: str
    user: List[int]  # [uid, gid] the agent runs as
    owner: List[int]  # [uid, gid] of the folder


@dataclass
class ModelChange:
    kind: str  # Alembic's diff kind: add_table, remove_column, modify_type, ...
    name: str
    bind: Optional[str] = None  # the database: None the main one, else the bind's key (SQLALCHEMY_BINDS)


# ---------------------------------------------------------------------------------------------- requests


@dataclass
class Request:
    """Settings every request carries. `action` (a class attribute, not a field) names the agent function."""

    action = ""
    flask_app: Optional[str] = None
    directory: Optional[str] = None  # the migrations folder, when configured
    warm: bool = True  # use (or start) the warm server in the container
    connect_timeout: float = 10.0  # seconds a connection to the database may take to open
    lost_after: float = 30.0  # seconds of silence from the database server after which a connection is lost


@dataclass
class MigrateRequest(Request):
    """Apply what is pending, autogenerate a revision, apply it; flagged changes need approval."""

    action = "migrate"
    message: str = ""
    upgrade: bool = True
    approved: List[str] = field(default_factory=list)  # revision ids whose flagged changes the user approved
    fix_imports: bool = False
    merge: bool = False
    lock_wait: float = 180.0
    lock_timeout: float = 5.0  # seconds a statement may wait for a table lock (0: no limit)
    statement_timeout: float = 600.0  # seconds a statement may run (0: no limit)
    lock_retries: int = 3  # a revision that hit lock_timeout is tried again this many times, with backoff


@dataclass
class UpgradeRequest(Request):
    """Apply every pending revision; flagged changes need approval."""

    action = "upgrade"
    approved: List[str] = field(default_factory=list)
    lock_wait: float = 180.0
    lock_timeout: float = 5.0
    statement_timeout: float = 600.0
    lock_retries: int = 3


@dataclass
class LintRequest(Request):
    """Lint revisions: the given ones (ids or unique prefixes), every one (`all`), those after `since`, or by
    default the ones not yet applied."""

    action = "lint"
    revisions: List[str] = field(default_factory=list)
    all: bool = False
    since: Optional[str] = None


@dataclass
class StatusRequest(Request):
    action = "status"
    models: bool = False  # look for model classes the app never loads
    model_changes: bool = False  # compare the models with the database


@dataclass
class FlaskRequest(Request):
    """`flask ARGS` in the agent's process: output streams, the exit code passes through (no result line)."""

    action = "flask"
    args: List[str] = field(default_factory=list)


@dataclass
class DatabaseRequest(Request):
    """Which database the app uses (its URL's parts, no password); needs neither migrations nor Alembic."""

    action = "database"


@dataclass
class CommandsRequest(Request):
    """The installed Flask-Migrate's `flask db` subcommands (no app needed)."""

    action = "db_commands"


@dataclass
class CopyRequest(Request):
    """A snapshot inside the app's database server: each database copied (CREATE DATABASE ... TEMPLATE) into
    `<prefix><token>`, the connections the copy needs closed are closed; `comment` goes on each copy."""

    action = "snapshot_copy"
    token: str = ""
    comment: str = ""
    wait: float = 60.0  # seconds to wait for connections to close and for a running migration


@dataclass
class RestoreCopyRequest(Request):
    """Put each database back from its copy: a fresh copy of the copy, swapped in by renaming."""

    action = "snapshot_restore"
    databases: List[SnapshotDatabase] = field(default_factory=list)
    token: str = ""
    wait: float = 60.0


@dataclass
class DropCopiesRequest(Request):
    """Drop snapshot copies from the app's database server (only databases devtool made)."""

    action = "snapshot_drop"
    copies: List[str] = field(default_factory=list)


@dataclass
class ConnectionRequest(Request):
    """How to reach the app's database as the backend does (for pg_dump and pg_restore beside it)."""

    action = "connection"
    database: Optional[str] = None  # another database on the same server (a snapshot's copy)


@dataclass
class RevisionsRequest(Request):
    """Which of `revisions` this checkout's migrations lack."""

    action = "revisions"
    revisions: List[str] = field(default_factory=list)


@dataclass
class SyncRequest(Request):
    """Bring the database to the checkout's head: downgrade the revisions the checkout lacks (newest first,
    from the copies devtool put in `copies`), merge several heads with `merge`, then apply what is pending.
    Flagged changes need approval, as for migrate; `expected` are the revisions devtool planned to downgrade
    (the agent stops when the database has moved since)."""

    action = "sync"
    copies: Optional[str] = None  # a folder in the container holding the copies (made by devtool, checked)
    expected: List[str] = field(default_factory=list)
    approved: List[str] = field(default_factory=list)
    merge: bool = False
    lock_wait: float = 180.0
    lock_timeout: float = 5.0
    statement_timeout: float = 600.0
    lock_retries: int = 3


@dataclass
class RehearseRequest(Request):
    """Copy the app's database inside its server, apply the pending revisions to the copy statement by
    statement, downgrade and upgrade them again there, drop the copy; the app's own database is never used."""

    action = "rehearse"
    wait: float = 60.0  # seconds to wait for the connections the copy needs closed, and a running migration
    lock_timeout: float = 5.0
    statement_timeout: float = 600.0
    lock_retries: int = 0


@dataclass
class ReplayRequest(Request):
    """The whole history on `target`, an empty throw-away server: one head, upgrade one revision at a time, the
    models match at head, each downgrade then upgrade, and base leaves nothing behind."""

    action = "replay"
    target: Optional[DatabaseTarget] = None
    lock_timeout: float = 5.0
    statement_timeout: float = 600.0
    lock_retries: int = 0


@dataclass
class FileSnapshotRequest(Request):
    """A copy of the app's database file (SQLite), taken with the database's backup API under devtool's migration
    lock, in a new private folder of the container's /tmp; the host fetches it, then removes the folder."""

    action = "snapshot_file"
    wait: float = 60.0  # seconds to wait for a running migration (the lock) and for the database to be free


@dataclass
class RestoreFileRequest(Request):
    """Put the app's database file back from `path`, a copy the host sent into a folder of its own in /tmp (the
    folder goes afterwards)."""

    action = "restore_file"
    path: str = ""
    wait: float = 60.0


REQUESTS = {cls.action: cls for cls in (MigrateRequest, UpgradeRequest, StatusRequest, FlaskRequest,
                                        DatabaseRequest, CommandsRequest, CopyRequest, RestoreCopyRequest,
                                        DropCopiesRequest, ConnectionRequest, RevisionsRequest, SyncRequest,
                                        FileSnapshotRequest, RestoreFileRequest, LintRequest, RehearseRequest,
                                        ReplayRequest)}


# ---------------------------------------------------------------------------------------------- results


@dataclass
class MigrationResult:
    """The answer to MigrateRequest, UpgradeRequest and SyncRequest."""

    status: str
    database: Optional[Database] = None
    current_before: List[str] = field(default_factory=list)
    current_after: List[str] = field(default_factory=list)
    pending: List[PendingRevision] = field(default_factory=list)  # pending when the request began
    review: List[Change] = field(default_factory=list)  # flagged changes (pending and new), each with its revision
    findings: List[Finding] = field(default_factory=list)  # lint findings of those revisions, each with its revision
    upgraded_first: List[Revision] = field(default_factory=list)  # pending revisions applied before generating
    applied: List[Revision] = field(default_factory=list)  # every revision this request applied, in order
    downgraded: List[Revision] = field(default_factory=list)  # sync: revisions downgraded, newest first
    revision: Optional[Revision] = None  # the revision migrate wrote
    changes: List[Change] = field(default_factory=list)  # its operations
    merged: Optional[Revision] = None  # the merge revision --merge wrote
    fixed_imports: List[UnloadedModel] = field(default_factory=list)
    unscanned_modules: List[str] = field(default_factory=list)  # "module: why": not looked at for models
    lock_waited: float = 0.0
    snapshot: Optional[Dict[str, Any]] = None  # taken by the host before applying destructive changes
    rehearsal: Optional[Dict[str, Any]] = None  # migrate --rehearse: the host's rehearsal of the new revision


@dataclass
class BindState:
    """One bound database of a multi-database app (SQLALCHEMY_BINDS): where it is and its revision."""

    bind: str
    database: Database
    current: Optional[List[str]] = None  # None: it could not be read (error says why)
    error: Optional[str] = None


@dataclass
class StatusResult:
    heads: List[Revision]
    database: Database
    directory: str
    current: Optional[List[str]] = None  # None: the database could not be read (database_error says why)
    database_error: Optional[str] = None
    database_hint: Optional[str] = None  # what to do about database_error (filled in by the host)
    pending: List[PendingRevision] = field(default_factory=list)
    unloaded_models: List[UnloadedModel] = field(default_factory=list)
    unscanned_modules: List[str] = field(default_factory=list)  # "module: why" for modules not looked at for models
    model_changes: List[ModelChange] = field(default_factory=list)
    orphans: List[str] = field(default_factory=list)  # current revisions the checkout does not have
    known: List[str] = field(default_factory=list)  # every revision of the checkout, filled only with orphans
    dialect: Optional[str] = None  # postgresql, mysql, mariadb, sqlite: the server devtool talked to
    server_version: Optional[str] = None  # known once the database was reached
    binds: List[BindState] = field(default_factory=list)  # a multi-database app's other databases
    not_writable: Optional[Unwritable] = None  # set when the agent's user may not write new revision files


@dataclass
class LintRule:
    id: str
    severity: str
    title: str
    why: str
    safe: str


@dataclass
class LintedRevision(Revision):
    findings: List[Finding] = field(default_factory=list)


@dataclass
class LintResult:
    dialect: str  # the database's backend; no rules for it: nothing was checked
    selection: str  # "pending", "given", "all" or "since <revision>"
    revisions: List[LintedRevision] = field(default_factory=list)  # oldest first
    rules: List[LintRule] = field(default_factory=list)
    server_version: Optional[int] = None
    current: Optional[List[str]] = None


@dataclass
class StatementReport:
    """One statement a revision ran on the copy, and what it did to the table it locked hardest."""

    revision: str
    sql: str
    seconds: float
    lock: Optional[str] = None  # the strongest lock mode it took (pg_locks), e.g. AccessExclusiveLock
    table: Optional[str] = None  # ... and on which table
    rewrote: List[str] = field(default_factory=list)  # tables whose file node it changed (a rewrite)
    rows: Optional[int] = None  # the table's row count afterwards
    outside_transaction: bool = False  # ran in an autocommit block: its locks are gone when it ends
    lock_held_before: bool = False  # the lock was taken by an earlier statement of the same transaction


@dataclass
class Phase:
    """One pass over the revisions: its outcome, and the revision that failed."""

    name: str  # "upgrade", "downgrade", "upgrade again"
    ok: bool
    seconds: float = 0.0
    revisions: List[str] = field(default_factory=list)  # the ones it went through
    failed: Optional[Revision] = None
    error: Optional[str] = None


@dataclass
class RehearsalResult:
    database: Database  # the copy
    current: List[str]  # where the copy (and the app's database) started
    pending: List[Revision] = field(default_factory=list)
    statements: List[StatementReport] = field(default_factory=list)
    phases: List[Phase] = field(default_factory=list)


@dataclass
class ReplayStep:
    name: str
    ok: Optional[bool]  # None: not run, because an earlier step failed
    detail: str = ""
    revision: Optional[Revision] = None  # the revision it failed on
    error: Optional[str] = None
    seconds: float = 0.0


@dataclass
class ReplayResult:
    steps: List[ReplayStep] = field(default_factory=list)
    revisions: int = 0
    server_version: Optional[int] = None


@dataclass
class CommandsResult:
    commands: List[str]
    flask_migrate: Optional[str] = None


@dataclass
class CopyResult:
    databases: List[SnapshotDatabase]
    closed: int = 0  # connections to the app's database that were closed for the copy


@dataclass
class DropResult:
    dropped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # no longer on the server


@dataclass
class ConnectionResult:
    database: Database
    environment: Dict[str, str]  # libpq variables (PGHOST, PGPASSWORD, ...): a secret, never printed
    revision: Optional[List[str]] = None  # alembic_version of that database; None: it could not be read
    server_version: Optional[str] = None
    others: List[Database] = field(default_factory=list)  # the app's other databases (its binds'): not reached


@dataclass
class FileSnapshotResult:
    database: Database
    path: str  # in the container: the copy (snapshot_file), or the database file (restore_file)
    size: int = 0
    revision: Optional[List[str]] = None  # its alembic_version; None: it has none
    server_version: Optional[str] = None  # the database library's version (SQLite's)


@dataclass
class RevisionsResult:
    unknown: List[str]
    heads: List[str]


@dataclass
class Failure:
    """Why a request failed; the fields past `message` are filled where they apply."""

    code: str
    message: str
    error: Optional[str] = None  # the underlying error's text (the database's, Python's)
    path: Optional[str] = None  # the file concerned (an unreadable revision)
    directory: Optional[str] = None
    revision: Optional[Revision] = None  # the revision that failed
    applied: List[Revision] = field(default_factory=list)  # what this request applied before failing
    current: Optional[List[str]] = None  # the database's revision after the failure
    heads: List[Revision] = field(default_factory=list)
    models: List[UnloadedModel] = field(default_factory=list)
    statements: List[str] = field(default_factory=list)  # PARTLY_APPLIED: the failed revision's that stay
    database: Optional[Database] = None  # the database that could not be reached
    hint: Optional[str] = None  # a next step for this very failure (otherwise the code's own hint applies)
    blockers: List[str] = field(default_factory=list)  # the sessions that held the lock a revision waited for
    user: Optional[List[int]] = None  # [uid, gid] the agent runs as (a folder it may not write)
    owner: Optional[List[int]] = None  # [uid, gid] of that folder


RESULTS = {MigrateRequest: MigrationResult, UpgradeRequest: MigrationResult, StatusRequest: StatusResult,
           DatabaseRequest: Database, CommandsRequest: CommandsResult, CopyRequest: CopyResult,
           RestoreCopyRequest: CopyResult, DropCopiesRequest: DropResult, ConnectionRequest: ConnectionResult,
           RevisionsRequest: RevisionsResult, SyncRequest: MigrationResult, FileSnapshotRequest: FileSnapshotResult,
           RestoreFileRequest: FileSnapshotResult, LintRequest: LintResult, RehearseRequest: RehearsalResult,
           ReplayRequest: ReplayResult}


# ---------------------------------------------------------------------------------------------- JSON


def encode_request(request: Request) -> str:
    return json.dumps(dict(dataclasses.asdict(request), action=request.action))


def decode_request(text: str) -> Request:
    data = json.loads(text)
    return decode(REQUESTS[data.pop("action")], data)


def result_line(payload: Any) -> str:
    """The line that carries a result (a dataclass) or a Failure back to the host."""
    key = "failure" if isinstance(payload, Failure) else "result"
    body = {"ok": key == "result", key: dataclasses.asdict(payload)}
    return "\n" + RESULT_MARK + json.dumps(body, default=str) + "\n"


def decode(cls: Any, data: Dict[str, Any]) -> Any:
    """A dataclass (nested ones included) from its asdict() form; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _convert(hints[k], v) for k, v in data.items() if k in names})


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = getattr(hint, "__origin__", None), getattr(hint, "__args__", ())
    if origin is typing.Union:  # Optional[X]
        return _convert(next(a for a in args if a is not type(None)), value)
    if origin in (list, List):
        return [_convert(args[0], v) for v in value]
    if dataclasses.is_dataclass(hint):
        return decode(hint, value)
    return value
