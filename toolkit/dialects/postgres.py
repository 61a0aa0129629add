"""PostgreSQL: portable dumps with pg_dump / pg_restore of the server's major version, in a throw-away container
that shares the backend's network (so any Postgres the backend reaches, inside the project or not), connected
with the backend's own URL (its password travels in the container's environment, never in output)."""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ContextManager, Iterator

from toolkit.agent.protocol import SNAPSHOT_MARK, DatabaseTarget
from toolkit.dialects.base import DumpInfo, matching_hint
from toolkit.engine import ensure_image, exec_stream, remove_container, run_beside
from toolkit.errors import DevtoolError, ExitCode
from toolkit.masking import masker

if TYPE_CHECKING:
    from toolkit.agent.protocol import ConnectionResult, Database
    from toolkit.context import Context
    from toolkit.engine import Sidecar

# Exactly as in the dump, in one transaction: the schemas this role owns (public included) are dropped first,
# so tables made since the dump go too. pg_restore failing half-way means ROLLBACK, and a marker file says so.
RESTORE_SCRIPT = r"""
set -e
dump="$1"
rm -f "$dump.failed"
{
  echo "BEGIN;"
  echo "DO \$devtool\$ DECLARE s name; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public') LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END \$devtool\$;"
  echo "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"
  if pg_restore --no-owner --no-privileges -f - "$dump"; then echo "COMMIT;"; else touch "$dump.failed"; echo "ROLLBACK;"; fi
} | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
test ! -e "$dump.failed"
"""

# What a dump says about itself, in sections: its header, devtool's COMMENT on the database, alembic_version.
READ_SCRIPT = r"""
set -e
dump="$1"
pg_restore -l "$dump" > "$dump.list"
echo "@@header"; cat "$dump.list"
echo "@@comment"
pg_restore -C -l "$dump" | grep "COMMENT - DATABASE" > "$dump.comment" || true
if [ -s "$dump.comment" ]; then pg_restore -C -L "$dump.comment" -f - "$dump"; fi
echo "@@revision"
if grep -q "TABLE DATA [^ ]* alembic_version " "$dump.list"; then pg_restore -a -t alembic_version -f - "$dump"; else echo "(none)"; fi
"""


def major(server_version: str | None) -> str | None:
    """"15.4 (Debian ...)" -> "15"; "9.6.24" -> "9.6"."""
    found = re.match(r"(\d+)(?:\.(\d+))?", server_version or "")
    if not found:
        return None
    return found.group(1) if int(found.group(1)) >= 10 else f"{found.group(1)}.{found.group(2)}"


# The driver's words (libpq through psycopg 2 or 3) -> what to do.
CONNECTION_HINTS = (
    (r"could not translate host name|failed to resolve host|Name or service not known",
     "The backend cannot resolve the host {host}: it is neither a running service on the backend's network nor a "
     "known host. Fix the host in DATABASE_URL, or start that service (`devtool up`)."),
    (r"Connection refused|accepting TCP/IP connections",
     "Nothing accepts connections on {host}:{port}: the server is down or listens on another port. "
     "`devtool status` shows the stack; fix the port in DATABASE_URL if it is wrong."),
    (r"password authentication failed|no password supplied",
     "The server refused user {user}'s password: DATABASE_URL's password does not match the database's. Note that "
     "the postgres image applies POSTGRES_PASSWORD only when its data volume is first created."),
    (r'role "[^"]*" does not exist',
     "The server has no user {user}: fix the user in DATABASE_URL, or create the role."),
    (r'database "[^"]*" does not exist',
     "The server has no database {name}: fix the name in DATABASE_URL, or create it (the postgres image creates "
     "POSTGRES_DB only when its data volume is first created)."),
    (r"no pg_hba.conf entry",
     "The server's pg_hba.conf does not let the backend in: allow its address, or fix DATABASE_URL."),
    (r"the database system is (starting up|shutting down)",
     "The server is starting or stopping: wait for it (`devtool up` waits until it is healthy) and run again."),
    (r"timeout expired|timed out",
     "Connecting to {host}:{port} timed out: a firewall or a wrong host; check DATABASE_URL."),
)


class Postgres:
    name = "postgresql"
    copies = True
    dump_tool = "pg_dump"
    snapshots = "copies inside the server, else pg_dump files"
    lock = "advisory lock"

    def label(self, server_version: str | None) -> str:
        return "PostgreSQL"

    def import_problem(self, dumped: str | None, server: str | None) -> str | None:
        """pg_restore reads dumps of its own and older major versions only."""
        def key(version: str | None) -> tuple[int, ...] | None:
            found = major(version)
            return tuple(int(p) for p in found.split(".")) if found else None

        if key(dumped) and key(server) and key(dumped) > key(server):
            return f"it was dumped from Postgres {major(dumped)}, and the server runs Postgres {major(server)}"
        return None

    def connection_hint(self, database: Database, error: str) -> str | None:
        return matching_hint(CONNECTION_HINTS, database, error, 5432)

    @contextlib.contextmanager
    def dumps(self, ctx: Context, connection: ConnectionResult) -> Iterator[PostgresDumps]:
        masker.learn_environment(connection.environment)
        image = self.tools_image(ctx, connection)
        with ctx.target.sidecar(image, connection.environment) as sidecar:
            yield PostgresDumps(sidecar, connection, image)

    def tools_image(self, ctx: Context, connection: ConnectionResult) -> str:
        """pg_dump must be at least the server's version: the configured image, else the image of the
        project's service that runs this server, else postgres:<the server's major version>."""
        configured = ctx.settings.snapshot_image
        image = configured or _service_image(ctx, connection) or f"postgres:{major(connection.server_version)}"
        problem = ensure_image(ctx.client, image)
        if problem:
            database = connection.database
            raise DevtoolError(
                f"No pg_dump for database {database.name} on {database.host}:{database.port} (Postgres "
                f"{major(connection.server_version)}): {problem}.", exit_code=ExitCode.SNAPSHOT_FAILED,
                hint="Make an image with pg_dump of that version available (`docker pull`), or name one with "
                     "snapshot_image in [tool.devtool] (or DEVTOOL_SNAPSHOT_IMAGE).")
        return image

    def throwaway_server(self, ctx: Context, connection: ConnectionResult) -> ContextManager[DatabaseTarget]:
        """An empty server like the app's (the project's database image, else postgres:<its major version>),
        beside the backend, without a volume; removed when the block ends, whatever happens."""
        image = _service_image(ctx, connection) or f"postgres:{major(connection.server_version)}"
        problem = ensure_image(ctx.client, image)
        if problem:
            raise DevtoolError(f"No Postgres image for the throw-away server: {problem}.",
                               exit_code=ExitCode.STACK_FAILED,
                               hint="Start the stack once (`devtool up`), or `docker pull` that image.")
        return _throwaway_server(ctx, connection, image)


def _service_image(ctx: Context, connection: ConnectionResult) -> str | None:
    """The image the project's own database service runs (its pg_dump matches the server)."""
    from toolkit.engine import service_containers

    service = ctx.services.db_if_known(connection.database)
    if service is None:
        return None
    running = [c for c in service_containers(ctx.containers(), service) if c.status == "running"]
    return running[0].image.id if running else None


class PostgresDumps:
    def __init__(self, sidecar: Sidecar, connection: ConnectionResult, image: str) -> None:
        self.sidecar, self.connection, self.image = sidecar, connection, image
        self.database = connection.database

    def _fail(self, what: str, errors: bytes | bytearray, code: int) -> DevtoolError:
        detail = bytes(errors).decode(errors="replace").strip()
        return DevtoolError(f"{what} failed for database {self.database.name} on {self.database.host}:"
                            f"{self.database.port} (exit code {code}, {self.image}).", detail=detail or None,
                            exit_code=ExitCode.SNAPSHOT_FAILED)

    def dump(self, into: BinaryIO) -> None:
        errors = bytearray()

        def write(out: bytes | None, err: bytes | None) -> None:
            if out:
                into.write(out)
            if err:
                errors.extend(err)

        code = self.sidecar.run(["pg_dump", "-Fc"], write)
        if code != 0:
            raise self._fail("pg_dump", errors, code)

    def _put(self, dump: Path) -> str:
        return self.sidecar.put(dump, f"devtool-{uuid.uuid4().hex[:8]}.dump")

    def restore(self, dump: Path) -> None:
        inside = self._put(dump)
        errors = bytearray()
        code = self.sidecar.run(["sh", "-c", RESTORE_SCRIPT, "restore", inside],
                                lambda out, err: errors.extend(err or b""))
        if code != 0:
            raise DevtoolError(f"Restoring {dump.name} into database {self.database.name} failed; the database was "
                               f"left as it was.", detail=bytes(errors).decode(errors="replace").strip() or None,
                               exit_code=ExitCode.SNAPSHOT_FAILED)

    def read(self, dump: Path) -> DumpInfo:
        inside = self._put(dump)
        output, errors = bytearray(), bytearray()

        def collect(out: bytes | None, err: bytes | None) -> None:
            output.extend(out or b"")
            errors.extend(err or b"")

        code = self.sidecar.run(["sh", "-c", READ_SCRIPT, "read", inside], collect)
        if code != 0:
            raise DevtoolError(f"{dump} is not a dump pg_restore can read (pg_restore of {self.image}).",
                               detail=bytes(errors).decode(errors="replace").strip() or None,
                               exit_code=ExitCode.SNAPSHOT_FAILED,
                               hint="Export snapshots with `devtool snapshot export NAME FILE` (or `pg_dump -Fc`).")
        return parse_read_output(output.decode("utf-8", "replace"))


def parse_read_output(text: str) -> DumpInfo:
    """READ_SCRIPT's output -> DumpInfo (pure; tested without the engine)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    header = "\n".join(sections.get("header", []))
    version = re.search(r"Dumped from database version: (.+)", header)
    metadata = None
    comment = re.search(r"COMMENT ON DATABASE .+? IS '(.*)';\s*$", "\n".join(sections.get("comment", [])), re.M)
    if comment:
        text_value = comment.group(1).replace("''", "'")
        if text_value.startswith(SNAPSHOT_MARK):
            try:
                metadata = json.loads(text_value[len(SNAPSHOT_MARK):])
            except ValueError:
                metadata = None
    revision: list[str] | None = None
    lines = sections.get("revision", [])
    if lines != ["(none)"]:
        revision, inside = [], False
        for line in lines:
            if line.startswith("COPY ") and "alembic_version" in line:
                inside = True
            elif inside and line == "\\.":
                inside = False
            elif inside and line.strip():
                revision.append(line.strip())
        revision.sort()
    return DumpInfo(revision=revision, server_version=version.group(1).strip() if version else None,
                    metadata=metadata)




REPLAY_LABEL = "org.devtool.replay"  # = the compose project: a replay's throw-away server
REPLAY_LIFETIME = 3600  # seconds: a throw-away server left behind by a killed devtool stops and removes itself


@contextlib.contextmanager
def _throwaway_server(ctx: Context, connection: ConnectionResult, image: str) -> Iterator[DatabaseTarget]:
    """The server listens on 127.0.0.1 in the backend's network namespace (on a port of its own), trusts local
    connections (it holds nothing), keeps its data in memory, and proves itself by its cluster_name."""
    database = connection.database
    user, name = database.user or "postgres", database.name or database.user or "postgres"
    tag, port = uuid.uuid4().hex[:8], random.randint(20000, 60000)
    marker = f"devtool-replay-{tag}"
    container = run_beside(
        ctx.client, image, beside=ctx.target.backend().id, name=f"{ctx.project.name}-devtool-replay-{tag}",
        lifetime=REPLAY_LIFETIME,
        command=["postgres", "-c", f"port={port}", "-c", "listen_addresses=127.0.0.1", "-c", f"cluster_name={marker}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        environment={"POSTGRES_USER": user, "POSTGRES_DB": name, "POSTGRES_HOST_AUTH_METHOD": "trust"},
        labels={REPLAY_LABEL: ctx.project.name}, tmpfs={"/var/lib/postgresql/data": ""})
    try:
        _wait_accepting(ctx, container, user, name, port)
        yield DatabaseTarget(name=name, host="127.0.0.1", port=port, user=user,
                             check_sql="SELECT current_setting('cluster_name')", check_value=marker)
    finally:
        remove_container(ctx.client, container)


def _wait_accepting(ctx: Context, container, user: str, name: str, port: int) -> None:
    """Until the server accepts connections over TCP (not the init-time server on its socket only)."""
    from docker.errors import NotFound

    deadline = time.monotonic() + ctx.settings.wait_timeout
    command = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", name]
    with ctx.out.status(f"Starting a throw-away Postgres ({container.name})…"):
        while True:
            try:
                container.reload()
                logs = container.logs(tail=20).decode("utf-8", "replace").strip()
            except NotFound:
                container.status, logs = "removed", ""
            if container.status not in ("created", "running"):
                raise DevtoolError(f"The throw-away Postgres {container.name} stopped before it was ready.",
                                   detail=logs or None, exit_code=ExitCode.STACK_FAILED,
                                   hint="Its log above says why (it runs the project's database image).")
            if container.status == "running" and exec_stream(ctx.client, container.id, command,
                                                             on_output=lambda out, err: None) == 0:
                return
            if time.monotonic() > deadline:
                raise DevtoolError(f"The throw-away Postgres {container.name} was not ready after "
                                   f"{ctx.settings.wait_timeout:.0f} s.", exit_code=ExitCode.STACK_FAILED,
                                   hint="Raise the deadline with DEVTOOL_WAIT_TIMEOUT.")
            time.sleep(0.2)
