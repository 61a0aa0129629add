"""Database snapshots: named, kept on the host with their metadata, pruned to `snapshot_keep`; the dump and the
restore themselves are the database dialect's (toolkit/dialects)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.agent.protocol import Database, DatabaseRequest, StatusRequest
from toolkit.dialects import for_database
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def snapshot_dir(ctx: Context) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devtool" / "snapshots"
    return base / ctx.project.name


def database(ctx: Context) -> Database:
    """The app's database as the backend sees it (no migration state needed: restore works at any revision)."""
    return ctx.target.agent().call(DatabaseRequest())


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
    dialect = for_database(database)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = name or f"auto-{stamp}"
    folder = snapshot_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / f"{name}.dump"
    if dump.exists():
        raise DevtoolError(f"Snapshot {name} already exists.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Pick another name or restore it.")
    started = time.monotonic()
    partial = dump.with_suffix(".partial")
    try:
        with ctx.out.status(f"Taking snapshot {name}…"), open(partial, "wb") as handle:
            dialect.dump(ctx, database, handle)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(dump)
    meta = {"name": name, "created": datetime.now(timezone.utc).isoformat(), "reason": reason,
            "database": database.name, "revision": revision or [], "size": dump.stat().st_size,
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
    with ctx.out.status(f"Restoring snapshot {meta['name']}…"):
        for_database(app_database).restore(ctx, app_database, Path(meta["path"]))
    return meta
