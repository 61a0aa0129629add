"""MySQL and MariaDB: dumps with the server's own tools (mariadb-dump or mysqldump, and its client to restore),
run in the project's database container when the server runs there, else in a throw-away container of a
matching image that shares the backend's network. The app's password travels in the MYSQL_PWD variable of that
command only, never as an argument and never in output. The dump is SQL text, so the host reads it itself."""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from toolkit.dialects.base import DumpInfo, matching_hint
from toolkit.engine import ensure_image
from toolkit.errors import DevtoolError, ExitCode
from toolkit.masking import masker

if TYPE_CHECKING:
    from toolkit.agent.protocol import ConnectionResult, Database
    from toolkit.context import Context
    from toolkit.engine import Sidecar

# Every script reads the connection from DEVTOOL_DB_* (and MYSQL_PWD); tools of either server are found by name.
TOOLS = r"""
dumper="$(command -v mariadb-dump || command -v mysqldump || true)"
client="$(command -v mariadb || command -v mysql || true)"
if [ -z "$dumper" ] || [ -z "$client" ]; then echo "no mariadb-dump/mysqldump and client in this container" >&2; exit 90; fi
dump() { "$dumper" --protocol=tcp -h "$DEVTOOL_DB_HOST" -P "$DEVTOOL_DB_PORT" -u "$DEVTOOL_DB_USER" \
    --single-transaction --no-tablespaces --hex-blob --triggers --default-character-set=utf8mb4 \
    "$DEVTOOL_DB_NAME"; }
sql() { "$client" --protocol=tcp -h "$DEVTOOL_DB_HOST" -P "$DEVTOOL_DB_PORT" -u "$DEVTOOL_DB_USER" \
    --default-character-set=utf8mb4 "$@" "$DEVTOOL_DB_NAME"; }
"""
DUMP_SCRIPT = TOOLS + "dump\n"
# Exactly as in the dump: every table, view and sequence of the database goes first (tables made since too),
# then the dump is loaded, in one client session with foreign key checks off.
LOAD_SCRIPT = TOOLS + r"""
set -e
file="$1"
exec 3<"$file"  # open now: once started, the load reads it whole even if devtool stops and its folder goes
tail -c 200 "$file" | grep -q -- "-- Dump completed" || { echo "$file is not a complete dump" >&2; exit 91; }
{
  echo "SET FOREIGN_KEY_CHECKS=0;"
  sql -N -B -e "SELECT CONCAT(CASE table_type WHEN 'VIEW' THEN 'DROP VIEW IF EXISTS ' WHEN 'SEQUENCE' THEN 'DROP SEQUENCE IF EXISTS ' ELSE 'DROP TABLE IF EXISTS ' END, '\`', REPLACE(table_name, '\`', '\`\`'), '\`;') FROM information_schema.tables WHERE table_schema = DATABASE()"
  cat <&3
} | sql
"""
COMPLETE = "-- Dump completed"
VERSION = re.compile(r"^-- Server version\s+(.+)$", re.M)


# The driver's words (PyMySQL, mysqlclient) -> what to do.
CONNECTION_HINTS = (
    (r"Unknown MySQL server host|Name or service not known|Temporary failure in name resolution",
     "The backend cannot resolve the host {host}: it is neither a running service on the backend's network nor a "
     "known host. Fix the host in DATABASE_URL, or start that service (`devtool up`)."),
    (r"Connection refused|Can't connect to MySQL server",
     "Nothing accepts connections on {host}:{port}: the server is down or listens on another port. "
     "`devtool status` shows the stack; fix the port in DATABASE_URL if it is wrong."),
    (r"Access denied for user",
     "The server refused user {user} (password or host): DATABASE_URL's password does not match the database's. "
     "Note that the mariadb and mysql images apply MARIADB_PASSWORD / MYSQL_PASSWORD only when their data volume "
     "is first created."),
    (r"Unknown database",
     "The server has no database {name}: fix the name in DATABASE_URL, or create it (the image creates "
     "MARIADB_DATABASE / MYSQL_DATABASE only when its data volume is first created)."),
)


def major(server_version: str | None) -> str | None:
    """"10.11.6-MariaDB-0+deb12u1" -> "10.11"; "8.0.36" -> "8.0"."""
    found = re.match(r"(\d+)\.(\d+)", server_version or "")
    return f"{found.group(1)}.{found.group(2)}" if found else None


class MySQL:
    name = "mysql"
    copies = False  # no copies inside the server: every snapshot is a dump file
    dump_tool = "mariadb-dump"
    snapshots = "mariadb-dump files; a revision that fails half-way keeps its schema changes"
    lock = "GET_LOCK"

    def label(self, server_version: str | None) -> str:
        return "MariaDB" if "mariadb" in (server_version or "").lower() else "MySQL"

    @contextlib.contextmanager
    def dumps(self, ctx: Context, connection: ConnectionResult) -> Iterator[MySQLDumps]:
        masker.learn_environment(connection.environment)
        service = ctx.services.db_if_known(connection.database)
        if service is not None:
            with ctx.target.in_service(service, connection.environment) as tools:
                if tools is not None:
                    yield MySQLDumps(ctx, tools, connection, f"service {service}", lasting=True)
                    return
        image = self.tools_image(ctx, connection)
        with ctx.target.sidecar(image, connection.environment) as tools:
            yield MySQLDumps(ctx, tools, connection, image, lasting=False)

    def tools_image(self, ctx: Context, connection: ConnectionResult) -> str:
        """The configured image, else the server's own (mariadb:<version> or mysql:<version>)."""
        version = major(connection.server_version)
        image = ctx.settings.snapshot_image or f"{self.label(connection.server_version).lower()}:{version}"
        problem = ensure_image(ctx.client, image)
        if problem:
            database = connection.database
            raise DevtoolError(
                f"No dump tools for database {database.name} on {database.host}:{database.port} "
                f"({self.label(connection.server_version)} {version}): {problem}.",
                exit_code=ExitCode.SNAPSHOT_FAILED,
                hint="Make an image with mariadb-dump (or mysqldump) of that version available (`docker pull`), or "
                     "name one with snapshot_image in [tool.devtool] (or DEVTOOL_SNAPSHOT_IMAGE).")
        return image

    def import_problem(self, dumped: str | None, server: str | None) -> str | None:
        return None  # an SQL dump: any server of the same family loads it, or says why

    def connection_hint(self, database: Database, error: str) -> str | None:
        return matching_hint(CONNECTION_HINTS, database, error, 3306)


class MySQLDumps:
    """The tools in `where`: the database service's own container (`lasting`: a command there outlives devtool),
    or a throw-away one (removed, with what runs in it, when devtool stops)."""

    def __init__(self, ctx: Context, tools: Sidecar, connection: ConnectionResult, where: str, *,
                 lasting: bool) -> None:
        self.ctx, self.tools, self.connection, self.where = ctx, tools, connection, where
        self.database, self.lasting = connection.database, lasting

    def _run(self, script: str, *args: str, into: BinaryIO | None = None) -> tuple[int, str]:
        errors = bytearray()

        def collect(out: bytes | None, err: bytes | None) -> None:
            if out and into is not None:
                into.write(out)
            errors.extend(err or b"")

        code = self.tools.run(["sh", "-c", script, "devtool", *args], collect)
        return code, bytes(errors).decode(errors="replace").strip()

    def _where(self) -> str:
        return f"database {self.database.name} on {self.database.host}:{self.database.port} ({self.where})"

    def dump(self, into: BinaryIO) -> None:
        code, errors = self._run(DUMP_SCRIPT, into=into)
        if code != 0:
            raise DevtoolError(f"mariadb-dump failed for {self._where()} (exit code {code}).", detail=errors or None,
                               exit_code=ExitCode.SNAPSHOT_FAILED)

    def restore(self, dump: Path) -> None:
        """Nothing rolls a MySQL load back, so what is there now is dumped first: a load that fails puts it
        back, and says so."""
        self.read(dump)  # a complete dump devtool can read, or nothing is touched
        with tempfile.NamedTemporaryFile(prefix="devtool-before-restore-", suffix=".sql", delete=False,
                                         dir=dump.parent) as before:
            try:
                self.dump(before)
            except BaseException:  # nothing was touched: no file left behind
                Path(before.name).unlink(missing_ok=True)
                raise
        kept = Path(before.name)
        try:
            code, errors = self._run(LOAD_SCRIPT, self.tools.put(dump, "restore.sql"))
        except KeyboardInterrupt:
            raise DevtoolError(
                f"Interrupted while loading {dump.name} into {self._where()}: "
                + ("the load goes on in that container until it is complete. " if self.lasting else
                   "the load stopped part-way, so the database is between the two. ")
                + f"What was there before is saved in {kept}.", exit_code=ExitCode.INTERRUPTED,
                hint=f"`devtool snapshot import {kept}`, then restore it, brings back what was there before.") \
                from None
        if code == 0:
            kept.unlink(missing_ok=True)
            return
        back, back_errors = self._run(LOAD_SCRIPT, self.tools.put(kept, "before.sql"))
        if back == 0:
            kept.unlink(missing_ok=True)
            raise DevtoolError(f"Restoring {dump.name} into {self._where()} failed; the database was put back as it "
                               f"was before.", detail=errors or None, exit_code=ExitCode.SNAPSHOT_FAILED)
        raise DevtoolError(f"Restoring {dump.name} into {self._where()} failed, and putting back what was there "
                           f"failed too: the database is part-way between the two. What was there is in {kept}.",
                           detail="\n".join(filter(None, [errors, back_errors])) or None,
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint=f"Fix the cause above, then `devtool snapshot import {kept}` and restore it.")

    def read(self, dump: Path) -> DumpInfo:
        return read_dump(dump)


def read_dump(dump: Path) -> DumpInfo:
    """What a mariadb-dump/mysqldump file says about itself: its server version and alembic_version rows; a
    DevtoolError when it is no complete dump (pure; tested without the engine)."""
    with open(dump, "rb") as handle:
        head = handle.read(4096).decode("utf-8", "replace")
        handle.seek(0, 2)
        handle.seek(max(handle.tell() - 200, 0))
        tail = handle.read().decode("utf-8", "replace")
    if not re.search(r"^-- (MariaDB|MySQL) dump", head[:1000], re.M) or COMPLETE not in tail:
        raise DevtoolError(f"{dump} is not a complete mariadb-dump or mysqldump file.",
                           exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Export snapshots with `devtool snapshot export NAME FILE` (or mariadb-dump).")
    version = VERSION.search(head)
    revision, rows = None, None
    with open(dump, encoding="utf-8", errors="replace") as handle:
        for line in handle:  # INSERT INTO `alembic_version` VALUES ('a'),('b'); on one line or several
            if rows is not None:
                rows += line
            elif line.startswith("INSERT INTO `alembic_version` VALUES"):
                rows = line
            elif line.startswith("CREATE TABLE `alembic_version`"):
                revision = []
            if rows is not None and rows.rstrip().endswith(";"):
                revision = sorted(re.findall(r"\('((?:[^'\\]|\\.)*)'\)", rows))
                break
    return DumpInfo(revision=revision, server_version=version.group(1).strip() if version else None)
