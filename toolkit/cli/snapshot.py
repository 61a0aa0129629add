"""Take a database snapshot (pg_dump in the db container, kept on the host), or list them.

Examples: devtool snapshot before-refactor;  devtool snapshot list --json
"""

from typing import Optional

import typer


def command(ctx: typer.Context,
            name: Optional[str] = typer.Argument(None, help="Snapshot name (default: a timestamp), or `list`."),
            json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    from toolkit import snapshots

    out = ctx.obj.out
    out.json_mode = json_output
    if name == "list":
        found = snapshots.list_snapshots(ctx.obj)
        out.emit(found, lambda: render_list(out, ctx.obj.project.name, found))
        return
    meta = snapshots.take_manual(ctx.obj, name)
    out.emit(meta, lambda: None)


def render_list(out, project: str, found: list) -> None:
    from rich.table import Table

    table = Table(title=f"Snapshots of {project}", title_justify="left")
    for column in ("Name", "Created", "Revision", "Size", "Reason"):
        table.add_column(column)
    for meta in found:
        table.add_row(meta["name"], meta["created"], ", ".join(meta["revision"]) or "-", str(meta["size"]),
                      meta["reason"])
    out.show(table)
