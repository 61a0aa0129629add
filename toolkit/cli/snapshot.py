"""Snapshots of the backend service's database: take one (a copy inside the database server: about a second),
list, delete and prune them, export one to a file (pg_dump custom format) and import one from a teammate.

Examples: devtool snapshot before-refactor;  devtool snapshot list;  devtool snapshot export before-refactor shop.dump
"""

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup


class SnapshotGroup(TyperGroup):
    """`devtool snapshot NAME` takes a snapshot: a first word that is no subcommand is the snapshot's name."""

    def resolve_command(self, ctx, args: List[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "take", self.commands["take"], args
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=SnapshotGroup, invoke_without_command=True, rich_markup_mode=None, help=__doc__,
                  subcommand_metavar="[NAME | COMMAND [ARGS]...]")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")


@app.callback()
def snapshot(ctx: typer.Context, json_output: bool = JSON):
    _out(ctx, json_output)  # `devtool snapshot --json NAME` too
    if ctx.invoked_subcommand is None:
        take(ctx, None, json_output)


@app.command("take")
def take(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="Snapshot name (default: a timestamp)."),
         json_output: bool = JSON):
    """Take a snapshot of the backend service's database (what `devtool snapshot [NAME]` does).

    Example: devtool snapshot take before-refactor
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    taken = snapshots.take(ctx.obj, name)
    several = f"databases {taken.database_names}, " if len(taken.databases) > 1 else ""
    out.emit(taken.as_json(), lambda: out.success(
        f"Snapshot {taken.name} taken ({taken.kind}, {several}{_size(taken.size)}, revision "
        f"{', '.join(taken.revision) or 'none'}, {taken.seconds:.1f} s). `devtool restore {taken.name}` brings "
        f"this data back."))


@app.command("list")
def list_(ctx: typer.Context, all_projects: bool = typer.Option(False, "--all", help="Every project devtool keeps "
                                                                 "state for, those whose directory is gone included."),
          json_output: bool = JSON):
    """The project's snapshots, newest first: kind (copy: inside the database server; dump: a file here), age,
    size, revision, service.

    Example: devtool snapshot list --all
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    if all_projects:
        projects = snapshots.list_all()
        out.emit([{**_plain(p), "snapshots": [s.as_json() for s in p.snapshots]} for p in projects],
                 lambda: _render_projects(out, projects))
        return
    found = snapshots.list_checkout(ctx.obj)
    out.emit([s.as_json() for s in found], lambda: _render(out, f"Snapshots of {ctx.obj.project.name}", found))


@app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="The snapshot to delete."),
           json_output: bool = JSON):
    """Delete a snapshot (its copy in the database server, or its file).

    Example: devtool snapshot delete before-refactor
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    gone = snapshots.delete(ctx.obj, name)
    out.emit(gone.as_json(), lambda: out.success(f"Snapshot {gone.name} deleted."))


@app.command("prune")
def prune(ctx: typer.Context,
          keep: Optional[int] = typer.Option(None, "--keep", min=0, help="How many to keep (default: snapshot_keep)."),
          orphans: bool = typer.Option(False, "--orphans", help="Instead: remove devtool's state and snapshots of "
                                                                "projects whose directory no longer exists."),
          json_output: bool = JSON):
    """Delete the backend service's older snapshots, keeping the newest N; or, with --orphans, the state of
    projects that no longer exist.

    Example: devtool snapshot prune --keep 3
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    if orphans:
        gone = snapshots.prune_orphans()
        out.emit([{**_plain(p), "snapshots": [s.as_json() for s in p.snapshots]} for p in gone],
                 lambda: _render_orphans(out, gone))
        return
    pruned = snapshots.prune(ctx.obj, keep)
    out.emit([s.as_json() for s in pruned], lambda: out.success(
        f"Deleted {len(pruned)} snapshot(s){': ' + ', '.join(s.name for s in pruned) if pruned else ''}."))


@app.command("export")
def export(ctx: typer.Context, name: str = typer.Argument(..., help="The snapshot to export."),
           file: Path = typer.Argument(..., help="The file to write (pg_dump custom format)."),
           force: bool = typer.Option(False, "--force", help="Replace FILE if it exists."),
           json_output: bool = JSON):
    """Write a snapshot to a file a teammate can import (pg_dump custom format, with devtool's version and the
    revision inside; `pg_restore` reads it too).

    Example: devtool snapshot export before-refactor ~/shop-data.dump
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    result = snapshots.export(ctx.obj, name, file, force=force)
    out.emit({"snapshot": result.snapshot.as_json(), "file": result.file, "size": result.size}, lambda: out.success(
        f"Snapshot {name} exported to {result.file} ({_size(result.size)}, revision "
        f"{', '.join(result.snapshot.revision) or 'none'}). Import it with `devtool snapshot import FILE`."))


@app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., help="A file `snapshot export` (or pg_dump -Fc) wrote."),
            name: Optional[str] = typer.Argument(None, help="Name for it (default: the name it was exported as)."),
            json_output: bool = JSON):
    """Bring in a snapshot file from another machine: checked (devtool and Postgres versions, a revision this
    checkout has) and kept; `devtool restore NAME` then loads it.

    Example: devtool snapshot import ~/shop-data.dump
    """
    from toolkit import snapshots

    out = _out(ctx, json_output)
    imported = snapshots.import_file(ctx.obj, file, name)
    out.emit(imported.as_json(), lambda: out.success(
        f"Imported {file} as snapshot {imported.name} (revision {', '.join(imported.revision) or 'none'}). "
        f"`devtool restore {imported.name}` loads it into the database."))


def _out(ctx: typer.Context, json_output: bool):
    out = ctx.obj.out
    out.json_mode = out.json_mode or json_output
    return out


def _plain(project) -> dict:
    return {"project": project.name, "directory": project.directory, "exists": project.exists,
            "state": project.state}


def _size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _age(seconds: float) -> str:
    for limit, step, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (float("inf"), 86400, "d")):
        if seconds < limit:
            return f"{int(seconds // step)} {unit} ago"
    return ""


def _render(out, title: str, found: list) -> None:
    from toolkit.output import Column

    columns = [Column("Name", identifier=True), Column("Kind"), Column("Age"), Column("Size"),
               Column("Revision", identifier=True), Column("Service", identifier=True),
               Column("Database", identifier=True), Column("Reason")]
    out.table(title, columns, [[s.name, s.kind, _age(s.age_seconds), _size(s.size), ", ".join(s.revision) or "-",
                                s.service or "-", s.database_names, s.reason] for s in found])
    if not found:
        out.info("No snapshots yet: `devtool snapshot NAME` takes one.")


def _render_projects(out, projects: list) -> None:
    for project in projects:
        where = project.directory or "directory unknown"
        gone = "" if project.exists else " — directory gone: `devtool snapshot prune --orphans` removes this"
        _render(out, f"{project.name} ({where}){gone}", project.snapshots)


def _render_orphans(out, gone: list) -> None:
    copies = [s for p in gone for s in p.snapshots if s.kind == "copy"]
    out.success(f"Removed devtool's state of {len(gone)} project(s) whose directory is gone"
                f"{': ' + ', '.join(f'{p.name} ({p.directory})' for p in gone) if gone else ''}.")
    if copies:
        out.info(f"{len(copies)} of their snapshots were copies inside a database server ("
                 f"{', '.join(d.copy for s in copies for d in s.databases)}); they go with that server's volume.")
