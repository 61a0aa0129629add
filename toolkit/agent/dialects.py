"""What depends on the database engine inside the agent: the migration lock (locks.py), how a revision is
applied and reported when it fails, snapshot copies inside the database server, snapshots of database files
(sqlite.py), how tools beside the backend reach the database (mysql.py for MySQL/MariaDB), the lint rules, the
apply's timeouts and who blocks them, and what rehearse and replay read from the catalog."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .app import error_text, fail, first_line, log, reported_version
from .client import client_gone
from .lint import Linter
from .locks import FileLock, Locks, MySQLLock, NoLock, PostgresLock
from .mysql import engine_label, mysql_connection, mysql_connection_lost, statements_that_stay
from .protocol import COPY_PREFIX, LOCK_KEY, SNAPSHOT_MARK, ErrorCode
from .sqlite import SQLiteFiles, sqlite_connection, transactional_ddl


LOCKS = {"postgresql": PostgresLock, "mysql": MySQLLock, "mariadb": MySQLLock, "sqlite": FileLock}


def migration_lock(session, deadline_seconds: float) -> Locks:
    """devtool's migration lock on every database of the app (the main one and each bind's): two devtool runs
    never interleave. Taken in one order for everyone, by where the database is (not by bind names, which
    another app may give differently), so two runs never deadlock."""
    order = sorted(session.databases(), key=lambda d: (d[1].get_backend_name(), d[1].host or "", d[1].port or 0,
                                                        d[1].database or ""))
    return Locks([LOCKS.get(url.get_backend_name(), NoLock)(session.engine(bind), deadline_seconds)
                  for bind, url in order])


# ---------------------------------------------------------------------------------------------- applying

# Databases where each schema change commits itself: a revision that fails half-way stays half-applied.
PARTIAL = {"mysql": statements_that_stay, "mariadb": statements_that_stay}
TRANSACTIONAL_DDL = {"sqlite": transactional_ddl}  # made to roll a failed revision back whole


class Applying:
    """While revisions are applied: each revision's statements as they run (so a failure can say which of them
    stay, where schema changes commit at once), and DDL inside the revision's transaction where the driver
    would otherwise commit it statement by statement."""

    def __init__(self, session) -> None:
        self.engine, self.backend = session.engine(), session.database().backend
        self.ran: List[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.ran.append(" ".join(str(statement).split()))

    def __enter__(self) -> "Applying":
        from sqlalchemy import event

        if self.backend in TRANSACTIONAL_DDL:
            TRANSACTIONAL_DDL[self.backend](self.engine)
        event.listen(self.engine, "after_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "after_cursor_execute", self._record)

    def next_revision(self) -> None:
        self.ran = []

    def stayed(self) -> List[str]:
        """The statements of the failed revision that stay in the database (none where it rolled back)."""
        return PARTIAL[self.backend](self.ran) if self.backend in PARTIAL else []

    def engine_label(self) -> str:
        return engine_label(self.engine)


# ---------------------------------------------------------------------------------------------- snapshot copies

IN_USE = "55006"  # object_in_use: other sessions are connected to the database
NO_PRIVILEGE = "42501"  # insufficient_privilege
NEW_PREFIX, OLD_PREFIX = "devtool_new_", "devtool_old_"  # a restore's fresh copy, and the database it replaced


def _quoted(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def _literal(text: str) -> str:
    """A string constant that means the same whatever standard_conforming_strings says: dollar-quoted."""
    tag = "$devtool$"
    while tag in text:
        tag = "$devtool%d$" % (len(tag) + len(text))
    return tag + text + tag


def _sqlstate(exc: BaseException) -> Optional[str]:
    original = getattr(exc, "orig", None) or exc
    return getattr(original, "pgcode", None) or getattr(original, "sqlstate", None)


@dataclass
class Swap:
    """One database of a restore: its fresh copy of the snapshot's copy, and the name the old one takes."""

    copy: str
    target: str
    fresh: str
    replaced: str
    owner: Optional[str]


class PostgresCopies:
    """Snapshots inside the app's own Postgres server. CREATE DATABASE ... TEMPLATE copies the database's files
    (about a second for 300 MB, where pg_dump takes several); a restore makes a fresh copy of the copy and swaps
    it in by renaming, in one transaction, so the snapshot stays for the next restore. Needs CREATEDB and the
    ownership of the app's database; without them, COPY_UNSUPPORTED tells the host to use pg_dump instead.

    Statements run on a maintenance database (postgres, else template1) through the app's own driver, in
    autocommit, on the raw DB-API cursor (DDL takes no parameters; names and comments are quoted here)."""

    POLL = 0.2
    # Postgres 15+ copies either through the WAL (fast for small databases) or file by file after a checkpoint
    # (faster for large ones); below this size, WAL_LOG.
    FILE_COPY_FROM = 64 * 1024 * 1024

    def __init__(self, url, wait: float) -> None:
        self.url, self.wait = url, wait
        self.engine, self.connection = self._maintenance()
        self.cursor = self.connection.cursor()
        self.version = int(self._scalar("SHOW server_version_num"))
        self.server_version = self._scalar("SHOW server_version")

    def _maintenance(self):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        problems = []
        for name in ("postgres", "template1"):
            engine = create_engine(self.url.set(database=name), poolclass=NullPool, isolation_level="AUTOCOMMIT")
            try:
                return engine, engine.raw_connection()
            except Exception as exc:
                problems.append("%s: %s" % (name, first_line(exc)))
                engine.dispose()
        raise fail(ErrorCode.COPY_UNSUPPORTED, "devtool cannot connect to a maintenance database of the server "
                   "(%s)." % "; ".join(problems))

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.engine.dispose()

    def __enter__(self) -> "PostgresCopies":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- statements
    def _execute(self, sql: str, *params) -> None:
        self.cursor.execute(sql, params) if params else self.cursor.execute(sql)

    def _scalar(self, sql: str, *params):
        self._execute(sql, *params)
        row = self.cursor.fetchone()
        return row[0] if row else None

    def exists(self, name: str) -> bool:
        return self._scalar("SELECT count(*) FROM pg_database WHERE datname = %s", name) == 1

    def comment(self, name: str) -> Optional[str]:
        return self._scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                            name)

    def size(self, name: str) -> int:
        return int(self._scalar("SELECT pg_database_size(%s)", name) or 0)

    def _strategy(self, source: str) -> str:
        if self.version < 150000:
            return ""  # always a file copy
        return " STRATEGY %s" % ("FILE_COPY" if self.size(source) >= self.FILE_COPY_FROM else "WAL_LOG")

    # -- waiting for the database to be free
    def _close_connections(self, name: str) -> int:
        """Terminate the other sessions on `name` (the app's pool reconnects); the ones this role may not
        terminate are left, and named if they keep the copy from happening."""
        self._execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", name)
        closed = 0
        for (pid,) in self.cursor.fetchall():
            try:
                closed += bool(self._scalar("SELECT pg_terminate_backend(%s)", pid))
            except Exception:
                pass
        return closed

    def _sessions(self, name: str) -> str:
        self._execute("SELECT usename, application_name, client_addr FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", name)
        rows = self.cursor.fetchall()
        described = ["user %s%s%s" % (r[0], ", %s" % r[1] if r[1] else "", ", from %s" % r[2] if r[2] else "")
                     for r in rows[:3]]
        return "%d session(s): %s" % (len(rows), "; ".join(described)) if rows else "no session any more"

    def _wait_for_migrations(self, name: str, deadline: float) -> None:
        """A devtool migration running on `name` finishes first (its advisory lock)."""
        waiting = False
        while self._scalar("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                           "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND d.datname = %s",
                           LOCK_KEY, name):
            if not waiting:
                log("a migration is running on database %s; waiting up to %.0f s for it to finish"
                    % (name, max(deadline - time.monotonic(), 0)))
                waiting = True
            self._stop_if_gone("waiting for a migration to finish")
            if time.monotonic() > deadline:
                raise fail(ErrorCode.SNAPSHOT_FAILED, "A migration of database %s was still running after %.0f s; "
                           "nothing was changed." % (name, self.wait))
            time.sleep(self.POLL)

    def _stop_if_gone(self, doing: str) -> None:
        if client_gone():
            raise fail(ErrorCode.INTERRUPTED, "devtool went away while %s; nothing was changed." % doing)

    def _while_in_use(self, name: str, statement, doing: str) -> int:
        """Close the sessions on `name`, then run `statement()`; again while other sessions hold the database
        (a pool reconnecting in between), until the deadline. The connections closed, in total."""
        deadline = time.monotonic() + self.wait
        closed, said = 0, False
        while True:
            self._wait_for_migrations(name, deadline)
            self._stop_if_gone(doing)
            closed += self._close_connections(name)
            try:
                statement()
                return closed
            except Exception as exc:
                if _sqlstate(exc) == NO_PRIVILEGE:
                    raise fail(ErrorCode.COPY_UNSUPPORTED, "The database server refused %s: %s" % (
                        doing, first_line(exc)), error=error_text(exc))
                if _sqlstate(exc) != IN_USE:
                    raise fail(ErrorCode.SNAPSHOT_FAILED, "The database server refused %s: %s" % (
                        doing, first_line(exc)), error=error_text(exc))
                if time.monotonic() > deadline:
                    raise fail(ErrorCode.SNAPSHOT_FAILED, "Database %s was still in use after %.0f s (%s) while %s;"
                               " nothing was changed." % (name, self.wait, self._sessions(name), doing))
                if not said:
                    log("database %s is in use (%s); closing its connections again" % (name, self._sessions(name)))
                    said = True
                time.sleep(self.POLL)

    # -- the three operations
    def copy(self, source: str, target: str, comment: str) -> int:
        """`target` becomes a copy of `source`, with `comment` on it; the connections closed for it."""
        strategy = self._strategy(source)
        closed = self._while_in_use(source, lambda: self._execute("CREATE DATABASE %s TEMPLATE %s%s" % (
            _quoted(target), _quoted(source), strategy)), "copying database %s" % source)
        try:
            self._execute("COMMENT ON DATABASE %s IS %s" % (_quoted(target), _literal(comment)))
        except Exception:
            self._execute("DROP DATABASE IF EXISTS %s" % _quoted(target))
            raise
        return closed

    def check_copy(self, copy: str) -> None:
        """The snapshot's copy is still on the server, with devtool's mark."""
        if not self.exists(copy) or not (self.comment(copy) or "").startswith(SNAPSHOT_MARK):
            raise fail(ErrorCode.SNAPSHOT_MISSING, "The snapshot's copy %s is no longer on the database server "
                       "(its volume was removed, or it was dropped by hand); nothing was restored." % copy)

    def restore(self, copy: str, target: str, token: str) -> int:
        """`target` becomes a fresh copy of `copy`: made aside, then swapped in by two renames in one
        transaction (all or nothing); the database it replaces is dropped. The connections closed for it."""
        swap = self.prepare(copy, target, token)
        try:
            closed = self.swap(swap)
        except BaseException:
            self.discard(swap)
            raise
        self.finish(swap)
        return closed

    # A restore in steps, so that several databases are put back together: every fresh copy is made first, then
    # each is swapped in (a swap that fails puts the ones before it back), and only then are the replaced
    # databases dropped.
    def prepare(self, copy: str, target: str, token: str) -> "Swap":
        """A fresh copy of `copy` beside `target`, owned by its owner."""
        self.check_copy(copy)
        swap = Swap(copy=copy, target=target, fresh=NEW_PREFIX + token, replaced=OLD_PREFIX + token,
                    owner=self._scalar("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", target))
        owner_clause = " OWNER %s" % _quoted(swap.owner) if swap.owner else ""
        strategy = self._strategy(copy)
        self._while_in_use(copy, lambda: self._execute("CREATE DATABASE %s TEMPLATE %s%s%s" % (
            _quoted(swap.fresh), _quoted(copy), owner_clause, strategy)), "copying the snapshot %s" % copy)
        return swap

    def _renames(self, pairs) -> None:
        try:
            self._execute("BEGIN")
            for old, new in pairs:
                self._execute("ALTER DATABASE %s RENAME TO %s" % (_quoted(old), _quoted(new)))
            self._execute("COMMIT")
        except Exception:
            self._execute("ROLLBACK")
            raise

    def swap(self, swap: "Swap") -> int:
        """The fresh copy becomes `target` (the old one is kept aside); the connections closed for it."""
        self._stop_if_gone("restoring (before the swap)")
        pairs = ([(swap.target, swap.replaced)] if swap.owner else []) + [(swap.fresh, swap.target)]
        return self._while_in_use(swap.target, lambda: self._renames(pairs),
                                  "swapping the snapshot in for database %s" % swap.target)

    def unswap(self, swap: "Swap") -> None:
        """Undo swap(): the database it replaced is `target` again."""
        pairs = [(swap.target, swap.fresh)] + ([(swap.replaced, swap.target)] if swap.owner else [])
        self._while_in_use(swap.target, lambda: self._renames(pairs), "putting database %s back" % swap.target)

    def discard(self, swap: "Swap") -> None:
        self._execute("DROP DATABASE IF EXISTS %s" % _quoted(swap.fresh))

    def finish(self, swap: "Swap") -> None:
        """Drop the database the swap replaced."""
        if swap.owner:
            try:
                self._execute("DROP DATABASE IF EXISTS %s%s" % (_quoted(swap.replaced),
                                                                " WITH (FORCE)" if self.version >= 130000 else ""))
            except Exception as exc:
                log("could not drop %s (the data the restore replaced): %s" % (swap.replaced, first_line(exc)))

    # -- scratch copies devtool makes for itself (a rehearsal's): never a snapshot, gone when done
    def scratch_copies(self, prefix: str) -> List[str]:
        self._execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", prefix)
        return [row[0] for row in self.cursor.fetchall()]

    def drop_scratch(self, name: str, prefix: str) -> None:
        if not name.startswith(prefix):
            raise fail(ErrorCode.AGENT_FAILED, "%s is not a scratch copy of devtool's; not dropped." % name)
        self._close_connections(name)
        self._execute("DROP DATABASE IF EXISTS %s%s" % (_quoted(name), " WITH (FORCE)" if self.version >= 130000
                                                        else ""))

    def drop(self, names: List[str]) -> Tuple[List[str], List[str]]:
        """Drop snapshot copies; a database devtool did not make (no prefix or no mark) is never dropped."""
        dropped, missing = [], []
        for name in names:
            if not name.startswith(COPY_PREFIX):
                raise fail(ErrorCode.SNAPSHOT_FAILED, "%s is not a devtool snapshot copy; not dropped." % name)
            if not self.exists(name):
                missing.append(name)
                continue
            if not (self.comment(name) or "").startswith(SNAPSHOT_MARK):
                raise fail(ErrorCode.SNAPSHOT_FAILED, "Database %s does not carry devtool's snapshot mark; not "
                           "dropped." % name)
            try:
                self._execute("DROP DATABASE %s" % _quoted(name))
            except Exception as exc:
                raise fail(ErrorCode.SNAPSHOT_FAILED, "Dropping snapshot copy %s failed: %s" % (
                    name, first_line(exc)), error=error_text(exc))
            dropped.append(name)
        return dropped, missing


def postgres_connection(url) -> Tuple[Dict[str, str], Optional[str]]:
    """The libpq variables that reach the database as the app's URL does (pg_dump/pg_restore read them), and
    the server's version (the tools must match it); checked by connecting."""
    version = reported_version(url, "SHOW server_version")
    return libpq_environment(url), version


def libpq_environment(url) -> Dict[str, str]:
    """The libpq variables for the app's URL."""
    names = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
             "options": "PGOPTIONS", "application_name": "PGAPPNAME", "connect_timeout": "PGCONNECT_TIMEOUT"}
    env = {"PGHOST": url.host or "localhost", "PGPORT": str(url.port or 5432), "PGDATABASE": url.database or ""}
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    for key, value in (url.query or {}).items():
        if key == "host":  # a unix socket folder, or host list
            env["PGHOST"] = value if isinstance(value, str) else ",".join(value)
        elif key in names:
            env[names[key]] = value if isinstance(value, str) else value[0]
    # pg_dump / pg_restore get the deadlines too: a connect timeout, and the server ends a session whose client
    # vanished (libpq has no variables for the client's keepalives).
    bounded = postgres_connect_args(DEADLINES["connect_timeout"], DEADLINES["lost_after"],
                                    {"options": env.get("PGOPTIONS")})
    env.setdefault("PGCONNECT_TIMEOUT", str(bounded["connect_timeout"]))
    env["PGOPTIONS"] = str(bounded["options"])
    return env


COPIES = {"postgresql": PostgresCopies}
CONNECTIONS = {"postgresql": postgres_connection, "mysql": mysql_connection, "mariadb": mysql_connection,
               "sqlite": sqlite_connection}
FILES = {"sqlite": SQLiteFiles}


def database_copies(url, wait: float):
    """Snapshot copies on the app's database server; COPY_UNSUPPORTED where devtool has none for its engine."""
    backend = url.get_backend_name()
    if backend not in COPIES:
        raise fail(ErrorCode.COPY_UNSUPPORTED, "devtool has no in-server copies for %s databases." % backend)
    return COPIES[backend](url, wait)


def connection_environment(url) -> Tuple[Dict[str, str], Optional[str]]:
    """How tools beside the backend reach the database at `url` (their environment), and the server version."""
    backend = url.get_backend_name()
    if backend not in CONNECTIONS:
        raise fail(ErrorCode.SNAPSHOT_FAILED, "devtool cannot dump %s databases yet." % backend)
    return CONNECTIONS[backend](url)


def dialect_of(engine) -> Tuple[str, Optional[str]]:
    """(postgresql, mysql, mariadb or sqlite; the server's version) of an engine that has connected."""
    name = "mariadb" if getattr(engine.dialect, "is_mariadb", False) else engine.dialect.name
    if name == "sqlite":
        return name, sqlite_connection(engine.url)[1]
    info = engine.dialect.server_version_info or ()
    return name, ".".join(str(p) for p in info if isinstance(p, int)) or None


def file_snapshots(url, wait: float):
    """Snapshots of the app's database file, taken and put back through the backend container."""
    backend = url.get_backend_name()
    if backend not in FILES:
        raise fail(ErrorCode.SNAPSHOT_FAILED, "%s databases are not files devtool can copy." % backend)
    return FILES[backend](url, wait)


# ---------------------------------------------------------------------------------------------- lost connections

DEADLINES = {"connect_timeout": 10.0, "lost_after": 30.0}  # this request's settings (connections.guard_connections)
SERVER_GONE = ("57P01", "57P02", "57P03")  # admin_shutdown, crash_shutdown, cannot_connect_now


def postgres_connect_args(connect_timeout: float, lost_after: float, given: Dict[str, object],
                          dbapi=None) -> Dict[str, object]:
    """libpq parameters that bound every wait on the server: a connect timeout, TCP keepalives on both ends
    (the server ends a session whose client vanished, and with it devtool's advisory lock) and, where libpq
    has it, a TCP user timeout for data the server never acknowledges. The app's own values win, except that
    the server-side keepalives are added to its `options`."""
    idle, interval = max(1, int(lost_after / 2)), max(1, int(lost_after / 6))
    args: Dict[str, object] = {"connect_timeout": max(2, int(round(connect_timeout))), "keepalives": 1,
                               "keepalives_idle": idle, "keepalives_interval": interval, "keepalives_count": 3}
    if _libpq_version(dbapi) >= 120000:
        args["tcp_user_timeout"] = int(lost_after * 1000)
    server = "-c tcp_keepalives_idle=%d -c tcp_keepalives_interval=%d -c tcp_keepalives_count=3" % (idle, interval)
    options = "%s %s" % (given["options"], server) if given.get("options") else server
    return dict(args, **{k: v for k, v in given.items() if k in args}, options=options)


def _libpq_version(dbapi) -> int:
    """libpq's version as the driver reports it (psycopg2, psycopg 3); 0 when it cannot be told."""
    for version in (lambda: dbapi.extensions.libpq_version(), lambda: dbapi.pq.version()):
        try:
            return int(version())
        except Exception:
            pass
    return 0


def postgres_connection_lost(exc: BaseException) -> bool:
    """The server went away (restarted, shut down, unreachable, silent past the keepalives), as opposed to a
    statement it refused: SQLAlchemy invalidated the connection, the SQLSTATE is a connection exception, or
    the driver's OperationalError came without any SQLSTATE (the server never answered)."""
    if getattr(exc, "connection_invalidated", False):
        return True
    state = _sqlstate(exc)
    if state:
        return state.startswith("08") or state in SERVER_GONE
    original = getattr(exc, "orig", None) or exc
    return type(original).__name__ == "OperationalError"


def invalidated(exc: BaseException) -> bool:
    """SQLAlchemy saw the connection break (an SQLite file has no server to lose)."""
    return bool(getattr(exc, "connection_invalidated", False))


CONNECT_ARGS = {"postgresql": postgres_connect_args}
LOST = {"postgresql": postgres_connection_lost, "mysql": mysql_connection_lost, "mariadb": mysql_connection_lost,
        "sqlite": invalidated}
DRIVERS = {"psycopg2": "postgresql", "psycopg": "postgresql", "pg8000": "postgresql", "asyncpg": "postgresql",
           "pymysql": "mysql", "MySQLdb": "mysql", "mysql": "mysql", "mariadb": "mysql", "sqlite3": "sqlite"}


def connect_args(dialect, connect_timeout: float, lost_after: float, given: Dict[str, object]):
    """The connection parameters that bound waits on this (SQLAlchemy) dialect's database, or None where
    devtool has none yet."""
    make = CONNECT_ARGS.get(dialect.name)
    return make(connect_timeout, lost_after, given, getattr(dialect, "dbapi", None)) if make else None


def connection_lost(backend: Optional[str], exc: BaseException) -> bool:
    """Whether `exc` means the database went away (backend None: the one whose driver raised it). Each engine's
    rule judges only its own driver's errors: an SQLite "no such table" is no lost server."""
    if backend is None:
        original = getattr(exc, "orig", None) or exc
        backend = DRIVERS.get(type(original).__module__.split(".")[0])
    return LOST.get(backend, invalidated)(exc)


class EnumColumn:
    """A column whose type is (an array of) an enum type, with its server default as SQL text."""

    def __init__(self, schema, table: str, column: str, is_array: bool = False, default=None) -> None:
        self.schema, self.table, self.column = schema, table, column
        self.is_array, self.default = is_array, default

    def __repr__(self) -> str:
        return "%s.%s" % (self.table, self.column)


class PostgresEnums:
    """Postgres enum types: what the database defines (pg_enum, in label order), which columns use them, and the
    SQL that changes them. Types are keyed (schema, name), the schema None for the connection's default one."""

    def defined(self, connection):
        from sqlalchemy import text

        default = connection.dialect.default_schema_name
        found = {}
        for schema, name, label in connection.execute(text(
                "SELECT n.nspname, t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
                "JOIN pg_namespace n ON n.oid = t.typnamespace ORDER BY n.nspname, t.typname, e.enumsortorder")):
            found.setdefault((None if schema == default else schema, name), []).append(label)
        return found

    def columns(self, connection):
        from sqlalchemy import text

        default = connection.dialect.default_schema_name
        found = {}
        for type_schema, type_name, schema, table, column, is_array, column_default in connection.execute(text(
                "SELECT tn.nspname, t.typname, n.nspname, c.relname, a.attname, at.typcategory = 'A', "
                "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_type at ON at.oid = a.atttypid "
                "JOIN pg_type t ON t.oid = CASE WHEN at.typcategory = 'A' THEN at.typelem ELSE at.oid END "
                "JOIN pg_namespace tn ON tn.oid = t.typnamespace "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE t.typtype = 'e' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY n.nspname, c.relname, a.attnum")):
            key = (None if type_schema == default else type_schema, type_name)
            found.setdefault(key, []).append(EnumColumn(None if schema == default else schema, table, column,
                                                        bool(is_array), column_default))
        return found

    # The SQL, given the dialect's identifier quoting (`quote`): each statement one string.

    @staticmethod
    def literal(value: str) -> str:
        return "'%s'" % value.replace("'", "''")

    def type_name(self, quote, schema, name: str) -> str:
        return "%s.%s" % (quote(schema), quote(name)) if schema else quote(name)

    def create(self, quote, schema, name: str, labels) -> str:
        return "CREATE TYPE %s AS ENUM (%s)" % (self.type_name(quote, schema, name),
                                               ", ".join(self.literal(label) for label in labels))

    def drop(self, quote, schema, name: str) -> str:
        return "DROP TYPE %s" % self.type_name(quote, schema, name)

    def add_value(self, quote, schema, name: str, label: str, before=None, after=None) -> str:
        """ALTER TYPE ... ADD VALUE: Postgres 12+ runs it in a transaction, but the new label cannot be used before
        that transaction commits; the revision runs it in an autocommit block."""
        place = " BEFORE %s" % self.literal(before) if before is not None else (
            " AFTER %s" % self.literal(after) if after is not None else "")
        return "ALTER TYPE %s ADD VALUE IF NOT EXISTS %s%s" % (self.type_name(quote, schema, name),
                                                              self.literal(label), place)

    def recreate(self, quote, schema, name: str, labels, columns) -> list:
        """Labels removed or reordered: a new type replaces the old one, each column cast through text (a row
        holding a label that is gone makes it fail, and the transaction rolls back)."""
        old_name = name + "_old"
        full, old = self.type_name(quote, schema, name), self.type_name(quote, schema, old_name)
        statements = ["ALTER TYPE %s RENAME TO %s" % (full, quote(old_name)), self.create(quote, schema, name, labels)]
        for column in columns:
            table = self.type_name(quote, column.schema, column.table)
            target, through = (full + "[]", "text[]") if column.is_array else (full, "text")
            if column.default is not None:
                statements.append("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT" % (table, quote(column.column)))
            statements.append("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s::%s" % (
                table, quote(column.column), target, quote(column.column), through, target))
            if column.default is not None:
                statements.append("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s" % (
                    table, quote(column.column), column.default))
        statements.append("DROP TYPE %s" % old)
        return statements


ENUMS = {"postgresql": PostgresEnums}


def enum_support(dialect_name: str):
    """The enum-type handling of a database that has named enum types (Postgres), else None."""
    support = ENUMS.get(dialect_name)
    return support() if support else None
# ---------------------------------------------------------------------------------------------- dialects


def server_version(session) -> Optional[int]:
    """The server's version as a number (150004 for 15.4), None when the database cannot be reached."""
    engine = session.engine()
    try:
        if engine.dialect.server_version_info is None:  # known once a first connection was made
            with engine.connect():
                pass
    except Exception:
        return None
    parts = [p for p in (engine.dialect.server_version_info or ()) if isinstance(p, int)] + [0, 0]
    if len(parts) == 2:
        return None
    if parts[0] >= 10:  # 15.4 -> 150004
        return parts[0] * 10000 + parts[1]
    return parts[0] * 10000 + parts[1] * 100 + parts[2]  # 9.6.24 -> 90624


class Postgres:
    """What devtool knows about Postgres inside the agent: its lint rules, the apply's timeouts, who holds a
    lock, and what a statement did to a table (rehearse)."""

    name = "postgresql"
    shared_transactions = True  # quick revisions may share one: DDL is transactional, a failure rolls back whole
    LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of "canceling statement due to lock timeout"
    QUERY_CANCELED = "57014"  # ... due to statement timeout (or a cancel request)

    @property
    def rules(self):
        from .lint_postgres import RULES

        return RULES

    def set_timeouts(self, connection, lock_timeout: float, statement_timeout: float) -> None:
        """Session settings of the migration connection (0 turns a limit off, as in Postgres)."""
        from sqlalchemy import text

        connection.execute(text("SELECT set_config('lock_timeout', :lock, false), "
                                "set_config('statement_timeout', :statement, false)"),
                           {"lock": "%dms" % int(lock_timeout * 1000),
                            "statement": "%dms" % int(statement_timeout * 1000)})

    def sqlstate(self, exc: BaseException) -> Optional[str]:
        original = getattr(exc, "orig", None) or exc
        return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return self.sqlstate(exc) == self.LOCK_NOT_AVAILABLE

    def is_statement_timeout(self, exc: BaseException) -> bool:
        original = getattr(exc, "orig", None) or exc
        return self.sqlstate(exc) == self.QUERY_CANCELED and "statement timeout" in str(original)

    def backend_pid(self, connection) -> Optional[int]:
        from sqlalchemy import text

        return connection.execute(text("SELECT pg_backend_pid()")).scalar()

    def blockers(self, connection, pid: int) -> List[str]:
        """The sessions that block backend `pid` right now, each described for the user."""
        from sqlalchemy import text

        rows = connection.execute(text(
            "SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state, "
            "       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int, left(a.query, 120) "
            "FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(:pid)) ORDER BY a.pid"), {"pid": pid})
        return [describe_session(*row) for row in rows]


    def invalid_indexes(self, engine) -> List[str]:
        """Indexes a failed CREATE INDEX CONCURRENTLY left behind (invalid), by name as SQL can use it."""
        from sqlalchemy import text

        try:
            with engine.connect() as connection:
                return [row[0] for row in connection.execute(text(
                    "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"))]
        except Exception:  # the apply's own failure is what the user needs to hear about
            return []

    def drop_indexes(self, engine, names: List[str], lock_timeout: float) -> List[str]:
        """Drop these indexes (concurrently, waiting at most lock_timeout); the ones that could not be."""
        from sqlalchemy import text

        left = []
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("SELECT set_config('lock_timeout', :value, false)"),
                               {"value": "%dms" % int(lock_timeout * 1000)})
            for name in names:  # names from the catalog (regclass text): already quoted where SQL needs it
                try:
                    connection.execute(text("DROP INDEX CONCURRENTLY IF EXISTS %s" % name))
                except Exception:
                    left.append(name)
        return left

    def no_lock_timeout_outside_transactions(self, engine, lock_timeout: float):
        """Statements outside a transaction (autocommit blocks: CREATE INDEX CONCURRENTLY) wait for older
        transactions by design, and block nobody's reads or writes meanwhile: lock_timeout would only make
        them fail and leave an invalid index. Lifted for each such statement; returns the undo."""
        from sqlalchemy import event

        def before(conn, cursor, statement, parameters, context, executemany):
            if getattr(cursor.connection, "autocommit", False):
                self._set(cursor.connection, "0")

        def after(conn, cursor, statement, parameters, context, executemany):
            if getattr(cursor.connection, "autocommit", False):
                self._set(cursor.connection, "%dms" % int(lock_timeout * 1000))

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

        def undo() -> None:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)

        return undo

    def _set(self, connection, value: str) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", (value,))
        finally:
            cursor.close()

    # ---- rehearse: what a statement did, read from the catalog on the migration's own (DBAPI) connection

    LOCK_ORDER = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
                  "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

    def _rows(self, connection, sql: str, params=()):
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()

    def pid(self, connection) -> int:
        return self._rows(connection, "SELECT pg_backend_pid()")[0][0]

    def relations(self, connection) -> dict:
        """{oid: (name as SQL can use it, file node)} of the user's tables."""
        rows = self._rows(connection, "SELECT c.oid, c.oid::regclass::text, c.relfilenode FROM pg_class c "
                                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                      "WHERE c.relkind IN ('r', 'p', 'm') "
                                      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                                      "AND n.nspname NOT LIKE 'pg_toast%%'")
        return {oid: (name, node) for oid, name, node in rows}

    def locks(self, connection, pid: Optional[int] = None) -> set:
        """{(relation oid, mode)} granted to backend `pid` (default: this connection's)."""
        rows = self._rows(connection, "SELECT relation, mode FROM pg_locks WHERE locktype = 'relation' AND granted "
                                      "AND pid = coalesce(%s, pg_backend_pid())", (pid,))
        return {(oid, mode) for oid, mode in rows}

    def strongest(self, taken: set, names: dict):
        """(mode, table) of the strongest lock among `taken` on one of the user's tables; (None, None) if none."""
        mine = [(self.LOCK_ORDER.index(mode) if mode in self.LOCK_ORDER else -1, names[oid], mode)
                for oid, mode in taken if oid in names]
        if not mine:
            return None, None
        _, table, mode = max(mine)
        return mode, table

    def count(self, connection, table: str) -> Optional[int]:
        """Rows of `table` (a name from relations(), already quoted as SQL needs it). Inside the revision's
        transaction behind a savepoint: a failure here must not abort the revision."""
        in_transaction = not getattr(connection, "autocommit", False)
        cursor = connection.cursor()
        try:
            if in_transaction:
                cursor.execute("SAVEPOINT devtool_count")
            cursor.execute("SELECT count(*) FROM %s" % table)
            rows = cursor.fetchall()[0][0]
            if in_transaction:
                cursor.execute("RELEASE SAVEPOINT devtool_count")
            return rows
        except Exception:
            if in_transaction:
                cursor.execute("ROLLBACK TO SAVEPOINT devtool_count")
            return None
        finally:
            cursor.close()


    def leftovers(self, connection) -> List[str]:
        """Tables, views, sequences and types in the user's schemas (alembic_version aside), as "kind name"."""
        from sqlalchemy import text

        system = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' " \
                 "AND n.nspname NOT LIKE 'pg_temp%%'"
        rows = connection.execute(text((
            "SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'view ' "
            "       ELSE 'table ' END || c.oid::regclass::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relname <> 'alembic_version' AND {system} "
            "UNION ALL SELECT 'type ' || format_type(t.oid, NULL) FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'c', 'd', 'r', 'm') "
            "AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid) AND {system} "
            "ORDER BY 1").format(system=system).replace("%%", "%")))
        return [row[0] for row in rows]


def describe_session(pid, user, application, client, state, seconds, query) -> str:
    parts = ["pid %s" % pid, "user %s" % user]
    if application:
        parts.append("application %r" % application)
    if client:
        parts.append("client %s" % client)
    if state:
        parts.append("%s%s" % (state, " for %d s" % seconds if seconds is not None else ""))
    if query:
        parts.append("last query %r" % " ".join(str(query).split()))
    return ", ".join(parts)


class Generic:
    """A database devtool has no lint rules or timeouts for (MySQL, MariaDB, SQLite so far). Each revision has
    a transaction of its own: where schema changes commit at once, a shared one could not be replayed."""

    rules: list = []
    shared_transactions = False

    def __init__(self, name: str) -> None:
        self.name = name

    def set_timeouts(self, connection, lock_timeout: float, statement_timeout: float) -> None:
        pass

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return False

    def is_statement_timeout(self, exc: BaseException) -> bool:
        return False

    def backend_pid(self, connection) -> Optional[int]:
        return None

    def blockers(self, connection, pid: int) -> List[str]:
        return []

    def invalid_indexes(self, engine) -> List[str]:
        return []

    def drop_indexes(self, engine, names: List[str], lock_timeout: float) -> List[str]:
        return names

    def no_lock_timeout_outside_transactions(self, engine, lock_timeout: float):
        return lambda: None


DIALECTS = {Postgres.name: Postgres}


def dialect(session):
    backend = session.database().backend
    return DIALECTS[backend]() if backend in DIALECTS else Generic(backend)


def linter(session) -> Linter:
    """The lint rules of the app's database, with the server's version when it can be read."""
    chosen = dialect(session)
    return Linter(chosen.name, list(chosen.rules), server_version(session) if chosen.rules else None)
