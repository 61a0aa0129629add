"""Onboarding in one command: check the machine, start the stack, migrate to head, show the result; with
--from FILE, load a teammate's data (a `devtool snapshot export` file) before migrating.

Example: devtool setup --from ~/shop-data.dump
"""

from pathlib import Path
from typing import Optional

import typer

from toolkit.cli.review import FULL_OPTION_HELP


def command(ctx: typer.Context,
            yes: bool = typer.Option(False, "--yes", "-y", help="Apply destructive pending revisions without asking."),
            data: Optional[Path] = typer.Option(None, "--from", help="Load this snapshot file first (from `devtool "
                                                                     "snapshot export`)."),
            no_snapshot: bool = typer.Option(False, "--no-snapshot", help="Apply destructive pending revisions "
                                                                          "without a snapshot first."),
            full: bool = typer.Option(False, "--full", help=FULL_OPTION_HELP)):
    from toolkit.cli.doctor import render
    from toolkit.cli.review import show_review
    from toolkit.setup import setup

    out = ctx.obj.out
    out.full = full

    def confirm(result) -> bool:
        show_review(out, result)
        return out.confirm("Apply them?")

    def offer_restore(snapshot) -> bool:
        return out.confirm(f"A revision failed half-way. Restore snapshot {snapshot['name']} (taken just before it) "
                           f"now?")

    checks = setup(ctx.obj, yes=yes, confirm=confirm, snapshot=not no_snapshot, data=data,
                   offer_restore=offer_restore)
    render(out, checks)
    out.success(f"Ready: {ctx.obj.project.name} is up and migrated. Next: edit a model, then "
                f'`devtool migrate "describe it"`.')
