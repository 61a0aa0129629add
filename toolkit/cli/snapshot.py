"""Take a database snapshot (pg_dump in the db container, kept on the host), or list them.

Examples: devtool snapshot before-refactor;  devtool snapshot list --json
"""

from typing import Optional

import typer


def command(ctx: typer.Context,
            name: Optional[str] = typer.Argument(None, help="Snapshot name (default: a timestamp), or `list`."),
            json_output: bool = typer.Option(False, "--json", help="With `list`: print as JSON.")):
    from toolkit import snapshots

    context = ctx.obj
    context.out.json_mode = json_output
    if name != "list":
        meta = snapshots.take(context, name)
        if json_output:
            context.out.data(meta)
        return
    found = snapshots.list_snapshots(context)
    if json_output:
        context.out.data(found)
        return
    from rich.table import Table

    table = Table(title=f"Snapshots of {context.project.name}", title_justify="left")
    for column in ("Name", "Created", "Revision", "Size", "Reason"):
        table.add_column(column)
    for meta in found:
        table.add_row(meta["name"], meta["created"], ", ".join(meta["revision"]) or "-", str(meta["size"]),
                      meta["reason"])
    context.out.show(table)


def restore(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Snapshot name."),
            latest: bool = typer.Option(False, "--latest", help="Restore the newest snapshot.")):
    """Restore a snapshot: the database becomes exactly what it was, tables made since included.

    Example: devtool restore --latest
    """
    from toolkit import snapshots
    from toolkit.errors import DevtoolError, ExitCode

    if bool(name) == latest:
        raise DevtoolError("Name one snapshot, or pass --latest.", exit_code=ExitCode.USAGE,
                           hint="`devtool snapshot list` shows them.")
    meta = snapshots.restore(ctx.obj, name)
    ctx.obj.out.success(f"Restored {meta['name']}: database back at revision {', '.join(meta['revision']) or 'base'}.")
