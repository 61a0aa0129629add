"""Rehearse the pending revisions on a copy of the database (a template copy in the same server): each
statement's time, the strongest lock it took and on which table, whether it rewrote the table, its rows; then
the downgrade and the upgrade again. The copy is dropped; your database is never touched.

Example: devtool rehearse --json
"""

import typer


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print the report as JSON.")):
    from toolkit.rehearse import rehearse

    out = ctx.obj.out
    out.json_mode = json_output
    rehearsal = rehearse(ctx.obj)
    out.emit(rehearsal.as_json(), lambda: render(out, rehearsal))
    if rehearsal.exit_code:
        out.error(rehearsal.message(), hint="Fix the revision (the file is unchanged), then rehearse again.")
        raise typer.Exit(rehearsal.exit_code)


def render(out, rehearsal) -> None:
    from toolkit.output import Column, styled

    at = ", ".join(rehearsal.current) or "base"
    if rehearsal.result is None:
        out.success(f"Nothing to rehearse: no revision is pending ({rehearsal.database.name} at {at}).")
        return
    rows = []
    for statement in rehearsal.result.statements:
        lock = statement.lock or ("-" if not statement.outside_transaction else "(outside a transaction)")
        if statement.lock_held_before:
            lock += " (held already)"
        rewrite = f"yes ({', '.join(statement.rewrote)})" if statement.rewrote else "no"
        rows.append([statement.revision, statement.sql[:120], f"{statement.seconds * 1000:.0f} ms",
                     styled(lock, "bold red") if statement.lock == "AccessExclusiveLock" else lock,
                     statement.table or "-", styled(rewrite, "bold red") if statement.rewrote else rewrite,
                     "-" if statement.rows is None else str(statement.rows)])
    out.table(f"Rehearsal on a copy of {rehearsal.database.name} ({rehearsal.copy})",
              [Column("Revision", identifier=True), Column("Statement"), Column("Time"),
               Column("Lock", identifier=True), Column("Table", identifier=True), Column("Rewrite"), Column("Rows")],
              rows)
    for phase in rehearsal.result.phases:
        done = f"{len(phase.revisions)} revision(s) in {phase.seconds:.2f} s"
        if phase.ok:
            out.success(f"{phase.name}: {done}")
        else:
            out.error(f"{phase.name}: {phase.failed.id if phase.failed else '?'} failed after {done}: "
                      f"{(phase.error or '').splitlines()[0] if phase.error else ''}")
    if not rehearsal.exit_code:
        out.success(f"Rehearsed {len(rehearsal.pending)} revision(s) on a copy, which was dropped; "
                    f"{rehearsal.database.name} is unchanged (at {at}).")
