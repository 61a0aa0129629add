"""Restore a snapshot: the backend service's database becomes exactly what it was, tables made since included.
Only the service's own snapshots: one taken from another database is refused. Works at any revision.

Example: devtool restore --latest
"""

from typing import Optional

import typer


def command(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Snapshot name."),
            latest: bool = typer.Option(False, "--latest", help="Restore the service's newest snapshot."),
            json_output: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    from toolkit import snapshots
    from toolkit.errors import DevtoolError, ExitCode

    out = ctx.obj.out
    out.json_mode = json_output
    if bool(name) == latest:
        raise DevtoolError("Name one snapshot, or pass --latest.", exit_code=ExitCode.USAGE,
                           hint="`devtool snapshot list` shows them.")
    restored = snapshots.restore(ctx.obj, name)
    out.emit(restored.as_json(), lambda: out.success(
        f"Restored {restored.name} ({restored.kind}): "
        f"{'databases' if len(restored.databases) > 1 else 'database'} {restored.database_names} back at revision "
        f"{', '.join(restored.revision) or 'base'}."))
