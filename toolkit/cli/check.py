"""For CI: fail (each cause its own exit code) when models changed without a migration, when there are
several heads, or when the database is behind head.

Example: devtool check --json
"""

import typer

from toolkit.errors import ExitCode


def verdict(status: dict) -> tuple[int, list[str]]:
    """(exit code of the first problem, every problem found), in the order they must be fixed."""
    problems = []
    codes = []
    if len(status["heads"]) > 1:
        problems.append(f"{len(status['heads'])} heads: merge with `devtool migrate --merge \"merge heads\"`")
        codes.append(ExitCode.MULTIPLE_HEADS)
    if status.get("pending"):
        problems.append(f"database behind head by {len(status['pending'])} revision(s): `devtool db upgrade`")
        codes.append(ExitCode.DATABASE_BEHIND)
    changes = status.get("model_changes") or []
    if changes:
        listed = ", ".join(f"{c['kind']} {c['name']}" for c in changes[:5])
        problems.append(f"models changed without a migration ({listed}): `devtool migrate \"msg\"`")
        codes.append(ExitCode.PENDING_MODEL_CHANGES)
    return (int(codes[0]) if codes else 0), problems


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print the verdict as JSON.")):
    from toolkit import migrations

    context = ctx.obj
    context.out.json_mode = json_output
    status = migrations.status(context, model_changes=True, start=True)
    code, problems = verdict(status)
    if json_output:
        context.out.data({"ok": code == 0, "exit_code": code, "problems": problems, "heads": status["heads"],
                          "current": status.get("current"), "pending": [p["id"] for p in status.get("pending", [])],
                          "model_changes": status.get("model_changes", [])})
    for problem in problems:
        context.out.error(problem)
    if code:
        raise typer.Exit(code)
    context.out.success("Migrations are consistent: one head, database at head, models match.")
