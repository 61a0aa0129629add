"""Bring the database to this checkout's head after a git checkout or merge: downgrade the revisions this
checkout does not have (from devtool's kept copies, or git), merge several heads (--merge), apply what is
pending. Data a downgrade would lose needs --yes or a confirmation, and a snapshot is taken first.

Example: devtool sync --yes
"""

import typer

from toolkit.cli.review import FULL_OPTION_HELP


def command(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Go ahead when a downgrade or revision would lose data."),
    merge: bool = typer.Option(False, "--merge", help="Write a merge revision when the checkout has several heads."),
    restore: bool = typer.Option(False, "--restore", help="Instead of downgrading, put back the newest snapshot "
                                                          "taken at a revision of this checkout."),
    no_snapshot: bool = typer.Option(False, "--no-snapshot", help="Lose data without a snapshot first (when none "
                                                                  "can be taken)."),
    full: bool = typer.Option(False, "--full", help=FULL_OPTION_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    from toolkit import sync

    out = ctx.obj.out
    out.json_mode = json_output
    out.full = full
    from toolkit.cli.review import confirming

    report = sync.sync(ctx.obj, yes=yes, merge=merge, restore=restore, confirm=confirming(out, "Go ahead?"),
                       snapshot=not no_snapshot)
    out.emit(report.as_json(), lambda: render(out, report))


def render(out, report) -> None:
    from toolkit.sync import age

    result = report.result
    if report.restored:
        restored, saved = report.restored, report.saved
        kept = (f"the database as it was is in snapshot {saved['name']} (`devtool restore {saved['name']}`)" if saved
                else "the database as it was is gone (--no-snapshot)")
        out.success(f"Restored snapshot {restored['name']} (taken {age(restored['created'])}, at revision "
                    f"{', '.join(restored.get('revision') or []) or 'base'}); {kept}.")
    for revision in report.downgraded():
        out.info(f"Downgraded {revision['id']} ({revision['message']}) using {revision['from']}.")
    if result.merged:
        out.success(f"Merged heads into {result.merged.id}: {result.merged.host_path or result.merged.path}.")
    for revision in result.applied:
        out.info(f"Applied {revision.id} ({revision.message}).")
    if result.snapshot:
        out.info(f"Snapshot {result.snapshot['name']} taken first; `devtool restore {result.snapshot['name']}` "
                 "brings that data back.")
    head = ", ".join(result.current_after) or "base"
    if result.downgraded or result.applied or result.merged or report.restored:
        out.success(f"Synced: the database is at this checkout's head ({head}).")
    else:
        out.success(f"Nothing to do: the database is at this checkout's head ({head}).")
