"""For CI: fail (each cause its own exit code) when models changed without a migration, when there are
several heads, when a pending revision breaks a lint rule, or when the database is behind head. With --replay,
check the history itself instead, on an empty throw-away Postgres (your database is not used): one head,
upgrade one revision at a time, models match at head, each downgrade then upgrade, base leaves nothing behind.

Example: devtool check --json;  devtool check --replay
"""

import typer


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
            replay: bool = typer.Option(False, "--replay", help="Replay the whole history on a throw-away "
                                                                "Postgres instead of checking your database.")):
    out = ctx.obj.out
    out.json_mode = json_output
    if replay:
        return replay_command(ctx, out)
    from toolkit.check import check

    verdict = check(ctx.obj)
    out.emit(verdict.as_json(), lambda: None)
    for problem in verdict.problems:
        out.error(problem)
    if not verdict.ok:
        raise typer.Exit(verdict.exit_code)
    status = verdict.status
    heads = ", ".join(h.id for h in status.heads) or "none"
    out.success(f"Migrations are consistent: {len(status.heads)} head ({heads}), database at "
                f"{', '.join(status.current) or 'base'}, every model loaded and matching the database, no lint "
                f"error pending.")


def replay_command(ctx: typer.Context, out) -> None:
    from toolkit.replay import replay

    result = replay(ctx.obj)
    out.emit(result.as_json(), lambda: render_replay(out, result))
    if result.exit_code:
        out.error(result.message(), hint=result.hint())
        raise typer.Exit(result.exit_code)
    out.success(f"History replays cleanly: {result.result.revisions} revision(s) in {result.seconds:.1f} s.")


def render_replay(out, result) -> None:
    from toolkit.output import Column, styled

    rows = []
    for step in result.result.steps:
        mark = {True: styled("✓", "green"), False: styled("✗", "bold red"), None: styled("-", "dim")}[step.ok]
        detail = step.detail if step.ok is not None else "not run: an earlier step failed"
        if step.revision is not None:
            detail = f"revision {step.revision.id} ({step.revision.message}): " + (step.detail or "failed") + \
                (f": {step.error.splitlines()[0]}" if step.error else "")
        rows.append([mark, step.name, detail or ""])
    out.table("Replay on a throw-away Postgres", [Column("", identifier=True), Column("Step"), Column("Result")],
              rows)
