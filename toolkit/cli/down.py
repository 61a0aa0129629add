"""Stop and remove the stack's containers (and with --volumes its data, snapshots kept in the database included).

Example: devtool down --volumes
"""

import typer


def command(ctx: typer.Context,
            volumes: bool = typer.Option(False, "--volumes", help="Also delete named volumes (the database, and the "
                                                                  "snapshots kept inside it!).")):
    from toolkit.down import down

    out = ctx.obj.out
    lost = down(ctx.obj, volumes=volumes,
                confirm=lambda: not out.interactive or out.confirm("Delete them with the volumes?"))
    ctx.obj.out.success(f"Stack {ctx.obj.project.name} is down{' and its volumes removed' if volumes else ''}"
                        f"{f' ({len(lost)} snapshot(s) with them)' if lost else ''}.")
