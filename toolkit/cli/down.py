"""Stop and remove the stack's containers (and with --volumes its data).

Example: devtool down --volumes
"""

import typer


def command(ctx: typer.Context,
            volumes: bool = typer.Option(False, "--volumes", help="Also delete named volumes (the database!).")):
    from toolkit import stack

    stack.down(ctx.obj, volumes=volumes)
    ctx.obj.out.success(f"Stack {ctx.obj.project.name} is down{' and its volumes removed' if volumes else ''}.")
