"""Restore a snapshot: the database becomes exactly what it was, tables made since included.

Example: devtool restore --latest
"""

from typing import Optional

import typer


def command(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Snapshot name."),
            latest: bool = typer.Option(False, "--latest", help="Restore the newest snapshot.")):
    from toolkit import snapshots
    from toolkit.errors import DevtoolError, ExitCode

    if bool(name) == latest:
        raise DevtoolError("Name one snapshot, or pass --latest.", exit_code=ExitCode.USAGE,
                           hint="`devtool snapshot list` shows them.")
    meta = snapshots.restore(ctx.obj, name)
    ctx.obj.out.success(f"Restored {meta['name']}: database back at revision {', '.join(meta['revision']) or 'base'}.")
