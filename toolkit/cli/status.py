"""Show each service's state and health, the backend container, and the database revision against head.

Example: devtool status --json
"""

import typer


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    from toolkit.status import report

    out = ctx.obj.out
    out.json_mode = json_output
    result = report(ctx.obj)
    out.emit(result.as_json(), lambda: render(out, result))
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def render(out, report) -> None:
    from toolkit.output import Column

    out.table(f"Project {report.project} (backend: {report.backend})",
              [Column("Service", identifier=True), Column("State"), Column("Health"),
               Column("Container", identifier=True)],
              [[s.service, s.state, s.health or "-", s.container or "-"] for s in report.services])
    info = report.migrations
    if info is None:
        out.warn(f"Migrations: {report.migrations_error.message}")
        return
    from toolkit.dialects import describe

    out.info(f"Database: {describe(info.database, info.server_version, info.dialect)}")
    for bound in info.binds:
        out.info(f"Bind {bound.bind}: database {bound.database.name} on {bound.database.host}:{bound.database.port}, "
                 f"revision {', '.join(bound.current or []) or 'base (empty)'}")
    heads = ", ".join(h.id for h in info.heads) or "none"
    current = ", ".join(info.current or []) or "base (empty)"
    out.info(f"Database revision: {current}; head: {heads}")
    if report.orphans:
        out.error(f"The database has revisions applied that this checkout does not have: {report.orphans.names()}.",
                  hint="Run `devtool sync` to bring the database to this checkout's head.",
                  detail=report.orphans.detail())
        return
    for revision in info.pending:
        out.warn(f"Pending: {revision.id} {revision.message}")
    if len(info.heads) > 1:
        out.warn("Multiple heads: merge with `devtool migrate --merge \"msg\"`.")
    elif not info.pending:
        out.success("Database is at head.")
