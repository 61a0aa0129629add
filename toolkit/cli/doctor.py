"""Check everything a working, migrated stack needs; each failure comes with its one-line fix.

Example: devtool doctor --json
"""

import typer

from toolkit.errors import ExitCode

SYMBOLS = {True: ("✓", "green"), False: ("✗", "bold red"), None: ("–", "dim")}


def render(out, checks) -> None:
    from rich.text import Text

    from toolkit.masking import masker
    from toolkit.output import Column

    rows = []
    for check in checks:
        detail = Text(masker(check.detail), style="dim" if check.ok is None else "")
        if check.fix:
            detail.append(f"\n  fix: {masker(check.fix)}", style="yellow")
        rows.append([Text.assemble(SYMBOLS[check.ok], f" {check.name}"), detail])
    out.table(None, [Column(""), Column("")], rows, bare=True)


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
