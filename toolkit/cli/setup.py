"""Onboarding in one command: check the machine, start the stack, migrate to head, show the result.

Example: devtool setup
"""

import typer


def command(ctx: typer.Context,
            yes: bool = typer.Option(False, "--yes", "-y", help="Apply destructive pending revisions without asking.")):
    from toolkit.cli.doctor import render
    from toolkit.cli.migrate import show_review
    from toolkit.setup import setup

    out = ctx.obj.out

    def confirm(result) -> bool:
        show_review(out, result)
        return out.confirm("Apply them?")

    checks = setup(ctx.obj, yes=yes, confirm=confirm)
    render(out, checks)
    out.success(f"Ready: {ctx.obj.project.name} is up and migrated. Next: edit a model, then "
                f'`devtool migrate "describe it"`.')
