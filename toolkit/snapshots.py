"""Database snapshots: pg_dump in the db container to a file on the host, restored exactly with pg_restore."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.agent.protocol import Database, DatabaseRequest, StatusRequest
from toolkit.engine import exec_stream
from toolkit.errors import DevtoolError, ExitCode
from toolkit.stack import service_container

if TYPE_CHECKING:
    from toolkit.context import Context

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Drop everything in the schema first so tables created after the snapshot go too; all in one transaction.
RESTORE_SCRIPT = (
    'set -e; { echo "BEGIN;"; echo "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"; '
    'pg_restore --no-owner --no-privileges -f - "$1"; echo "COMMIT;"; } '
    '| psql -X -q -v ON_ERROR_STOP=1 -U "$2" -d "$3" >/dev/null'
)


def snapshot_dir(ctx: Context) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devtool" / "snapshots"
    return base / ctx.project.name


def database(ctx: Context) -> Database:
    """The app's database as the backend sees it (no migration state needed: restore works at any revision)."""
    return ctx.target.agent().call(DatabaseRequest())


def _credentials(container: Any, database: Database) -> tuple[str, str, dict[str, str]]:
    env = dict(e.split("=", 1) for e in container.attrs.get("Config", {}).get("Env") or [] if "=" in e)
    user = database.user or env.get("POSTGRES_USER", "postgres")
    name = database.name or env.get("POSTGRES_DB", user)
    extra = {"PGPASSWORD": env["POSTGRES_PASSWORD"]} if env.get("POSTGRES_PASSWORD") else {}
    return user, name, extra


def take_manual(ctx: Context, name: str | None) -> dict:
    """`devtool snapshot [NAME]`: the app's database at its current revision."""
    validate_name(name)
    info = ctx.target.agent().call(StatusRequest())
    return take(ctx, name, database=info.database, revision=info.current)


def validate_name(name: str | None) -> None:
    if name is not None and not NAME_PATTERN.match(name):
        raise DevtoolError(f"Invalid snapshot name {name!r}.", exit_code=ExitCode.USAGE,
                           hint="Use letters, digits, '.', '_' or '-' (at most 64).")


def take(ctx: Context, name: str | None = None, *, database: Database, revision: list[str] | None,
         reason: str = "manual") -> dict:
    """Dump the app's database to the host; keeps the newest `snapshot_keep` snapshots."""
    validate_name(name)
    if database.backend != "postgresql":
        raise DevtoolError("Snapshots need a PostgreSQL database.", exit_code=ExitCode.SNAPSHOT_FAILED)
    container = service_container(ctx, ctx.services.db(database))
    user, dbname, env = _credentials(container, database)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = name or f"auto-{stamp}"
    folder = snapshot_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / f"{name}.dump"
    if dump.exists():
        raise DevtoolError(f"Snapshot {name} already exists.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Pick another name or restore it.")
    errors = bytearray()
    started = time.monotonic()
    with ctx.out.status(f"Taking snapshot {name}…"), open(dump.with_suffix(".partial"), "wb") as handle:
        def write(out: bytes | None, err: bytes | None) -> None:
            if out:
                handle.write(out)
            if err:
                errors.extend(err)

        code = exec_stream(ctx.client, container.id, ["pg_dump", "-Fc", "-U", user, "-d", dbname],
                           on_output=write, environment=env)
    if code != 0:
        dump.with_suffix(".partial").unlink(missing_ok=True)
        raise DevtoolError(f"pg_dump failed (exit code {code}).", detail=errors.decode(errors="replace") or None,
                           exit_code=ExitCode.SNAPSHOT_FAILED)
    dump.with_suffix(".partial").rename(dump)
    meta = {"name": name, "created": datetime.now(timezone.utc).isoformat(), "reason": reason,
            "database": dbname, "revision": revision or [], "size": dump.stat().st_size,
            "seconds": round(time.monotonic() - started, 3), "path": str(dump)}
    dump.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    _prune(ctx)
    ctx.out.success(f"Snapshot {name} taken ({meta['size']} bytes, revision {', '.join(meta['revision']) or 'none'}).")
    return meta


def list_snapshots(ctx: Context) -> list[dict]:
    """Newest first."""
    folder = snapshot_dir(ctx)
    found = []
    for meta_file in folder.glob("*.json") if folder.is_dir() else []:
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            continue
        if Path(meta.get("path", "")).is_file():
            found.append(meta)
    return sorted(found, key=lambda m: m["created"], reverse=True)


def _prune(ctx: Context) -> None:
    for meta in list_snapshots(ctx)[max(ctx.settings.snapshot_keep, 1):]:
        Path(meta["path"]).unlink(missing_ok=True)
        Path(meta["path"]).with_suffix(".json").unlink(missing_ok=True)


def restore(ctx: Context, name: str | None) -> dict:
    """Put the database back exactly as in the snapshot (tables made since are dropped)."""
    snapshots = list_snapshots(ctx)
    meta = snapshots[0] if name is None and snapshots else next((m for m in snapshots if m["name"] == name), None)
    if meta is None:
        known = ", ".join(m["name"] for m in snapshots[:5]) or "none yet"
        raise DevtoolError(f"No snapshot {name or '(latest)'} for project {ctx.project.name} (have: {known}).",
                           exit_code=ExitCode.SNAPSHOT_FAILED, hint="`devtool snapshot list` shows them.")
    app_database = database(ctx)
    container = service_container(ctx, ctx.services.db(app_database))
    user, dbname, env = _credentials(container, app_database)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(meta["path"], arcname="devtool-restore.dump")
    container.put_archive("/tmp", archive.getvalue())
    errors = bytearray()
    with ctx.out.status(f"Restoring snapshot {meta['name']}…"):
        code = exec_stream(ctx.client, container.id,
                           ["sh", "-c", RESTORE_SCRIPT, "restore", "/tmp/devtool-restore.dump", user, dbname],
                           on_output=lambda out, err: errors.extend(err or b""), environment=env)
        exec_stream(ctx.client, container.id, ["rm", "-f", "/tmp/devtool-restore.dump"], on_output=lambda o, e: None)
    if code != 0:
        raise DevtoolError(f"Restoring {meta['name']} failed; the database was left as it was.",
                           detail=errors.decode(errors="replace").strip() or None, exit_code=ExitCode.SNAPSHOT_FAILED)
    return meta
