"""Onboarding in one command: check the machine, start the stack, migrate to head, show the result.

Example: devtool setup
"""

import sys

import typer


def command(ctx: typer.Context,
            yes: bool = typer.Option(False, "--yes", "-y", help="Apply destructive pending revisions without asking.")):
    from toolkit.cli.doctor import render
    from toolkit.cli.migrate import show_review
    from toolkit.setup import setup

    context = ctx.obj

    def confirm(result: dict) -> bool:
        show_review(context, result)
        return sys.stdin.isatty() and typer.confirm("Apply them?", default=False, err=True)

    checks = setup(context, yes=yes, confirm=confirm)
    render(context, checks)
    context.out.success(f"Ready: {context.project.name} is up and migrated. Next: edit a model, then "
                        f'`devtool migrate "describe it"`.')
