"""Applying revisions in one Alembic run, a transaction per revision, and never further than the user watches
(devtool going away stops the run at the next revision boundary)."""

from __future__ import annotations

from typing import List

from .app import describe, error_text, fail, first_line, log
from .client import client_gone
from .protocol import ErrorCode, Revision

def interrupted(session, applied: List[Revision], stopped_before: str) -> Exception:
    return fail(ErrorCode.INTERRUPTED, "devtool went away: stopped before %s; %d revision(s) applied." % (
        stopped_before, len(applied)), applied=applied, current=session.current())


def apply_pending(session, script) -> List[Revision]:
    """Upgrade to head in one Alembic run with a transaction per revision: the cost grows with the pending
    revisions, not with pending x history; a failure names its revision and rolls back only that one; when
    devtool goes away, no further revision starts."""
    from alembic.runtime.environment import EnvironmentContext

    applied: List[Revision] = []
    running: List[object] = []
    stopped: List[str] = []

    def steps(heads, context):
        for step in script._upgrade_revs("heads", heads):
            name = "%s (%s)" % (step.revision.revision, (step.revision.doc or "").strip())
            if client_gone():
                stopped.append(name)
                return
            running[:] = [step.revision]
            log("applying %s" % name)
            yield step

    def record(ctx, step, heads, run_args) -> None:
        applied.append(describe(step.up_revision))

    args = session.migrate_state.configure_args
    saved = dict(args)
    callbacks = args.get("on_version_apply")
    args["transaction_per_migration"] = True
    args["on_version_apply"] = ([callbacks] if callable(callbacks) else list(callbacks or [])) + [record]
    try:
        with EnvironmentContext(session.config(), script, fn=steps, as_sql=False, starting_rev=None,
                                destination_rev="heads", tag=None):
            script.run_env()
    except Exception as exc:
        import traceback

        traceback.print_exc()
        failed = describe(running[0]) if running else None
        if failed is None or any(r.id == failed.id for r in applied):
            raise
        raise fail(ErrorCode.UPGRADE_FAILED, "Revision %s (%s) failed: %s" % (failed.id, failed.message,
                                                                              first_line(exc)),
                   revision=failed, error=error_text(exc), applied=applied, current=session.current())
    finally:
        args.clear()
        args.update(saved)
    if stopped:
        raise interrupted(session, applied, stopped[0])
    return applied
