"""Take, list and restore database snapshots (pg_dump in the db container, kept on the host).

Example: devtool snapshot before-refactor
"""

from typing import Optional

import typer

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@app.callback()
def take(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Name (default: a timestamp).")):
    """Take a snapshot of the app's database now."""
    from toolkit import snapshots

    if ctx.invoked_subcommand is None:
        snapshots.take(ctx.obj, name)


@app.command("list")
def list_command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """List snapshots, newest first."""
    from rich.table import Table

    from toolkit import snapshots

    context = ctx.obj
    found = snapshots.list_snapshots(context)
    if json_output:
        context.out.data(found)
        return
    table = Table(title=f"Snapshots of {context.project.name}", title_justify="left")
    for column in ("Name", "Created", "Revision", "Size", "Reason"):
        table.add_column(column)
    for meta in found:
        table.add_row(meta["name"], meta["created"], ", ".join(meta["revision"]) or "-", str(meta["size"]),
                      meta["reason"])
    context.out.show(table)


def restore(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Snapshot name."),
            latest: bool = typer.Option(False, "--latest", help="Restore the newest snapshot.")):
    """Restore a snapshot: the database becomes exactly what it was (devtool restore NAME | --latest)."""
    from toolkit import snapshots
    from toolkit.errors import DevtoolError, ExitCode

    if bool(name) == latest:
        raise DevtoolError("Name one snapshot, or pass --latest.", exit_code=ExitCode.USAGE,
                           hint="`devtool snapshot list` shows them.")
    meta = snapshots.restore(ctx.obj, name)
    ctx.obj.out.success(f"Restored {meta['name']}: database back at revision {', '.join(meta['revision']) or 'base'}.")
