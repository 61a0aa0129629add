"""PostgreSQL: pg_dump / pg_restore in the database service's container."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from toolkit.engine import exec_stream
from toolkit.errors import DevtoolError, ExitCode
from toolkit.stack import service_container

if TYPE_CHECKING:
    from toolkit.agent.protocol import Database
    from toolkit.context import Context

# Drop everything in the schema first so tables created after the snapshot go too; all in one transaction.
RESTORE_SCRIPT = (
    'set -e; { echo "BEGIN;"; echo "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"; '
    'pg_restore --no-owner --no-privileges -f - "$1"; echo "COMMIT;"; } '
    '| psql -X -q -v ON_ERROR_STOP=1 -U "$2" -d "$3" >/dev/null'
)


class Postgres:
    name = "postgresql"

    def dump(self, ctx: Context, database: Database, into: BinaryIO) -> None:
        container = service_container(ctx, ctx.services.db(database))
        user, dbname, env = _credentials(container, database)
        errors = bytearray()

        def write(out: bytes | None, err: bytes | None) -> None:
            if out:
                into.write(out)
            if err:
                errors.extend(err)

        code = exec_stream(ctx.client, container.id, ["pg_dump", "-Fc", "-U", user, "-d", dbname],
                           on_output=write, environment=env)
        if code != 0:
            raise DevtoolError(f"pg_dump failed (exit code {code}).", detail=errors.decode(errors="replace") or None,
                               exit_code=ExitCode.SNAPSHOT_FAILED)

    def restore(self, ctx: Context, database: Database, dump: Path) -> None:
        container = service_container(ctx, ctx.services.db(database))
        user, dbname, env = _credentials(container, database)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(str(dump), arcname="devtool-restore.dump")
        container.put_archive("/tmp", archive.getvalue())
        errors = bytearray()
        code = exec_stream(ctx.client, container.id,
                           ["sh", "-c", RESTORE_SCRIPT, "restore", "/tmp/devtool-restore.dump", user, dbname],
                           on_output=lambda out, err: errors.extend(err or b""), environment=env)
        exec_stream(ctx.client, container.id, ["rm", "-f", "/tmp/devtool-restore.dump"], on_output=lambda o, e: None)
        if code != 0:
            raise DevtoolError(f"Restoring {dump.stem} failed; the database was left as it was.",
                               detail=errors.decode(errors="replace").strip() or None,
                               exit_code=ExitCode.SNAPSHOT_FAILED)


def _credentials(container: Any, database: Database) -> tuple[str, str, dict[str, str]]:
    env = dict(e.split("=", 1) for e in container.attrs.get("Config", {}).get("Env") or [] if "=" in e)
    user = database.user or env.get("POSTGRES_USER", "postgres")
    name = database.name or env.get("POSTGRES_DB", user)
    extra = {"PGPASSWORD": env["POSTGRES_PASSWORD"]} if env.get("POSTGRES_PASSWORD") else {}
    return user, name, extra
