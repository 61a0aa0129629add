"""For CI: fail (each cause its own exit code) when models changed without a migration, when there are
several heads, or when the database is behind head.

Example: devtool check --json
"""

import typer


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print the verdict as JSON.")):
    from toolkit.check import check

    out = ctx.obj.out
    out.json_mode = json_output
    verdict = check(ctx.obj)
    out.emit(verdict.as_json(), lambda: None)
    for problem in verdict.problems:
        out.error(problem)
    if not verdict.ok:
        raise typer.Exit(verdict.exit_code)
    status = verdict.status
    heads = ", ".join(h.id for h in status.heads) or "none"
    out.success(f"Migrations are consistent: {len(status.heads)} head ({heads}), database at "
                f"{', '.join(status.current) or 'base'}, every model loaded and matching the database.")
