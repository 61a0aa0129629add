"""Check everything a working, migrated stack needs; each failure comes with its one-line fix.

Example: devtool doctor --json
"""

import typer

from toolkit.errors import ExitCode

SYMBOLS = {True: "[green]✓[/]", False: "[bold red]✗[/]", None: "[dim]–[/]"}


def render(out, checks) -> None:
    from rich.table import Table
    from rich.text import Text

    from toolkit.masking import masker

    table = Table(show_header=False, box=None, pad_edge=False)
    for check in checks:
        line = Text(masker(check.detail), style="dim" if check.ok is None else "")
        if check.fix:
            line.append(f"\n  fix: {masker(check.fix)}", style="yellow")
        table.add_row(SYMBOLS[check.ok], check.name, line)
    out.show(table)


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print the checks as JSON.")):
    from toolkit.doctor import run_checks

    out = ctx.obj.out
    out.json_mode = json_output
    checks = run_checks(ctx.obj)
    healthy = all(c.ok for c in checks)
    out.emit({"ok": healthy, "checks": checks}, lambda: render(out, checks))
    if not healthy:
        raise typer.Exit(ExitCode.CHECKS_FAILED)
    out.success("All checks pass.")
