"""Generate a revision from your models and apply it, in one step, with a review of risky changes.

Example: devtool migrate "add posts table"
"""

import typer

from toolkit.cli.review import FULL_OPTION_HELP, confirming, show_changes


def command(
    ctx: typer.Context,
    message: str = typer.Argument(..., help="What changed, e.g. \"add posts table\"."),
    no_upgrade: bool = typer.Option(False, "--no-upgrade", help="Only write the revision file; don't apply it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply destructive/risky revisions without asking."),
    fix_imports: bool = typer.Option(False, "--fix-imports", help="Add missing model imports to init_app."),
    merge: bool = typer.Option(False, "--merge", help="Merge multiple heads before generating."),
    no_snapshot: bool = typer.Option(False, "--no-snapshot", help="Apply destructive changes without a snapshot "
                                                                  "first (when none can be taken)."),
    sync_first: bool = typer.Option(False, "--sync", help="First bring the database to this checkout's head "
                                                          "(`devtool sync`: after a git checkout), then migrate."),
    full: bool = typer.Option(False, "--full", help=FULL_OPTION_HELP),
    rehearse: bool = typer.Option(False, "--rehearse", help="Rehearse the new revision on a copy of the database "
                                                            "first; apply it only if that holds."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    from dataclasses import asdict

    from toolkit import migrations

    out = ctx.obj.out
    out.json_mode = json_output
    out.full = full

    confirm = confirming(out, "Apply it?")

    def offer_restore(snapshot) -> bool:
        return out.confirm(f"The revision failed half-way. Restore snapshot {snapshot['name']} (taken just before "
                           f"it) now?")

    def rehearsed():
        from toolkit.cli.rehearse import render as render_rehearsal
        from toolkit.rehearse import rehearse as rehearse_pending

        rehearsal = rehearse_pending(ctx.obj)
        if not json_output and rehearsal.result is not None:  # nothing pending: nothing to show
            render_rehearsal(out, rehearsal)
        return rehearsal

    if sync_first:
        from toolkit import sync
        from toolkit.cli.sync import render as render_sync

        both = sync.sync_then_migrate(ctx.obj, message, upgrade=not no_upgrade, yes=yes, fix_imports=fix_imports,
                                      merge=merge, confirm=confirm, snapshot=not no_snapshot,
                                      offer_restore=offer_restore, rehearse=rehearsed if rehearse else None)
        out.emit({"ok": True, **asdict(both.migration), "sync": both.sync.as_json()},
                 lambda: (render_sync(out, both.sync), render(out, both.migration)))
        return

    result = migrations.migrate(ctx.obj, message, upgrade=not no_upgrade, yes=yes, fix_imports=fix_imports,
                                merge=merge, confirm=confirm, snapshot=not no_snapshot, offer_restore=offer_restore,
                                rehearse=rehearsed if rehearse else None)
    out.emit({"ok": True, **asdict(result)}, lambda: render(out, result))


def render(out, result) -> None:
    from toolkit.agent.protocol import Status

    if result.lock_waited:
        out.info(f"Waited {result.lock_waited:.1f} s for another migration of this database to finish.")
    for model in result.fixed_imports:
        out.success(f"Added `{model.import_line}` to {model.fixed_in}.")
    if result.merged:
        out.success(f"Merged heads into {result.merged.id}.")
    if result.snapshot:
        out.info(f"Snapshot {result.snapshot['name']} ({result.snapshot['kind']}) taken before applying; "
                 f"`devtool restore --latest` brings the data back.")
    for module in result.unscanned_modules:
        out.warn(f"Not looked at for models (it could not be imported): {module}.")
    if result.findings:
        from toolkit.cli.lint import show_findings

        show_findings(out, result.findings, "Lint (docs/lint.md)")
    if result.revision is None:
        applied = "; ".join(f"{r.id} ({r.message})" for r in result.upgraded_first)
        unseen = " among the models that could be loaded" if result.unscanned_modules else ""
        if applied:  # what was approved and applied is the news, not that the models had nothing new
            out.success(f"Migrated: applied {applied}; database now at {', '.join(result.current_after) or 'base'}. "
                        f"No further model changes{unseen}: no new revision written.")
        else:
            out.success(f"No schema changes detected{unseen}; no revision written. Database at "
                        f"{', '.join(result.current_after) or 'base'}.")
        return
    for revision in result.upgraded_first:
        out.info(f"The database was behind: applied {revision.id} ({revision.message}) first.")
    show_changes(out, "Detected changes", result.changes)
    revision = result.revision
    out.info(f"Revision {revision.id}: {revision.host_path or revision.path + ' (in the container only)'}")
    if result.status == Status.GENERATED:
        out.success(f"Revision {revision.id} written (not applied: --no-upgrade). Apply with `devtool db upgrade`.")
    else:
        out.success(f"Migrated: database now at {', '.join(result.current_after)}.")
