"""Show each service's state and health, the backend container, and the database revision against head; exits
21 when anything shown is broken (a service down, an app or database that cannot be read, several heads), 16 when
the database is at revisions this checkout lacks.

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
    from toolkit.dialects import describe
    from toolkit.output import Column
    from toolkit.status import ORPHANED

    out.table(f"Project {report.project} (backend: {report.backend})",
              [Column("Service", identifier=True), Column("State"), Column("Health"),
               Column("Container", identifier=True)],
              [[s.service, s.state, s.health or "-", s.container or "-"] for s in report.services])
    if report.unapplied_change:
        out.warn(f"{report.unapplied_change}: the containers still run the old configuration (what follows is "
                 "theirs); `devtool up` applies it.")
    info = report.migrations
    hint = None
    if info is None:
        out.warn(f"Migrations: {report.migrations_error.message}")
        hint = report.migrations_error.hint
    else:
        out.info(f"Database: {describe(info.database, info.server_version, info.dialect)}")
        for bound in info.binds:
            out.info(f"Bind {bound.bind}: database {bound.database.name} on {bound.database.host}:"
                     f"{bound.database.port}, revision {', '.join(bound.current or []) or 'base (empty)'}")
        heads = ", ".join(h.id for h in info.heads) or "none"
        if info.current is None:
            out.warn(f"Database revision unknown: {info.database_error}")
            out.info(f"Head: {heads}")
            hint = info.database_hint
        else:
            out.info(f"Database revision: {', '.join(info.current) or 'base (empty)'}; head: {heads}")
        if report.orphans:
            out.error(f"{ORPHANED[0].upper()}{ORPHANED[1:]}: {report.orphans.names()}.",
                      hint="Run `devtool sync` to bring the database to this checkout's head.",
                      detail=report.orphans.detail())
        for revision in info.pending:
            out.warn(f"Pending: {revision.id} {revision.message}")
        if len(info.heads) > 1:
            out.warn("Multiple heads: merge with `devtool migrate --merge \"msg\"`.")
        elif info.current is not None and not info.pending and not report.orphans:
            out.success("Database is at head.")
    others = [p for p in report.problems if not p.startswith(ORPHANED)]
    if others:  # the orphans have their own line above
        out.error(f"{len(others)} problem(s): " + "; ".join(p.rstrip(".") for p in others) + ".",
                  hint=hint or "`devtool up` starts the stack and shows a failing service's logs; `devtool doctor` "
                               "checks everything in order.")
