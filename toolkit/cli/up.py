"""Start the stack (building as needed) and wait until it is healthy.

Example: devtool up
"""

import typer

from toolkit.engine import SERVICE_LABEL, health


def command(ctx: typer.Context, force: bool = typer.Option(
        False, "--force",
        help="Always run docker compose up, and restart a service that keeps exiting (then watch it).")):
    from toolkit import stack

    containers = stack.up(ctx.obj, force=force)
    states = ", ".join(sorted(f"{c.labels.get(SERVICE_LABEL)} {health(c) or c.status}" for c in containers))
    ctx.obj.out.success(f"Stack {ctx.obj.project.name} is up: {states}.")
