"""Running revisions in one Alembic run, a transaction per revision, and never further than the user watches
(devtool going away stops the run at the next revision boundary): applying what is pending, and downgrading
the revisions sync takes back. Every revision applied is handed to devtool (KEEP_MARK) to be kept."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from typing import Callable, List, Optional

from .app import describe, error_text, fail, file_failure, first_line, log, so_far
from .client import client_gone
from .dialects import Applying, connection_lost
from .protocol import KEEP_MARK, ErrorCode, Revision, RevisionFile


def interrupted(session, done: List[Revision], stopped_before: str, verb: str = "applied") -> Exception:
    finished = ("%s %s, nothing after %s" % (", ".join(r.id for r in done), verb, "it" if len(done) == 1 else "them")
                if done else "nothing was %s" % verb)
    return fail(ErrorCode.INTERRUPTED, "Stopped because devtool was interrupted: %s; %s was not started." % (
        finished, stopped_before), applied=done, current=session.current())


def stop_if_client_gone(applied: List[Revision], before: str) -> None:
    """Start nothing new once devtool has gone away (Ctrl-C, SIGTERM, a closed terminal, killed): called
    before each step that changes something (`before` names it)."""
    if client_gone():
        done = (" after %s, which had been applied before" % ", ".join(r.id for r in applied)) if applied else ""
        raise fail(ErrorCode.INTERRUPTED, "Stopped because devtool was interrupted, before %s: nothing was "
                   "generated or applied%s." % (before, done), applied=applied)


def database_lost(error: str, applied: List[Revision], under_way: Optional[Revision] = None,
                  kept: Optional[str] = None) -> Exception:
    """DATABASE_LOST, saying what was applied, what was under way and which new file is kept unapplied
    (`error`: the driver's error text)."""
    message = "Lost the connection to the database (%s)" % error.splitlines()[0]
    if under_way is not None:
        message += (" while revision %s (%s) was being applied: the server rolls it back (unless its commit had "
                    "reached it: `devtool status` tells once the database answers)" % (under_way.id, under_way.message))
    message += ("; applied before: %s" % ", ".join(r.id for r in applied)) if applied else "; nothing was applied"
    if kept:
        message += "; the new revision file is kept, not applied: %s" % kept
    return fail(ErrorCode.DATABASE_LOST, message + ".", applied=applied, revision=under_way, path=kept, error=error)


def down_revisions(revision) -> List[str]:
    """A revision's down_revision as a list (none for a first revision, two or more for a merge)."""
    down = revision.down_revision
    return [] if down is None else [down] if isinstance(down, str) else list(down)


def keep_applied(ctx, step, heads, run_args) -> None:
    """Alembic's on_version_apply callback: hand each revision file applied upwards to devtool, which keeps
    a copy (a later git checkout may remove the file while the database stays at that revision)."""
    revision = step.up_revision if step.is_upgrade else None
    path = getattr(revision, "path", None) or ""
    if not path.endswith(".py"):
        return
    try:
        with open(path, "rb") as handle:
            content = base64.b64encode(handle.read()).decode("ascii")
    except OSError:
        return
    kept = RevisionFile(id=revision.revision, message=(revision.doc or "").strip(), down=down_revisions(revision),
                        path=path, content=content)
    sys.stderr.write(KEEP_MARK + json.dumps(dataclasses.asdict(kept)) + "\n")
    sys.stderr.flush()


def with_callback(callbacks, callback) -> list:
    """Alembic's on_version_apply setting (one callable, a list, or nothing) with `callback` added."""
    return ([callbacks] if callable(callbacks) else list(callbacks or [])) + [callback]


def apply_pending(session, script) -> List[Revision]:
    """Upgrade to head in one Alembic run with a transaction per revision: the cost grows with the pending
    revisions, not with pending x history; a failure names its revision and rolls back only that one; when
    devtool goes away, no further revision starts."""
    return _run(session, script, lambda heads: script._upgrade_revs("heads", heads), "applying", "applied",
                ErrorCode.UPGRADE_FAILED, "Revision %s (%s) failed%s: %s")


def downgrade(session, script, revisions: list) -> List[Revision]:
    """Run the downgrade() of `revisions` (Alembic Script objects, newest first) in one Alembic run, a
    transaction per revision; alembic_version follows each step (a merge revision gives its heads back)."""
    from alembic.runtime.migration import MigrationStep

    steps = [MigrationStep.downgrade_from_script(script.revision_map, r) for r in revisions]
    return _run(session, script, lambda heads: steps, "downgrading", "downgraded", ErrorCode.DOWNGRADE_FAILED,
                "Downgrading %s (%s) failed%s: %s")


def _run(session, script, plan: Callable, doing: str, done_verb: str, failure_code: str,
         failure: str) -> List[Revision]:
    from alembic.runtime.environment import EnvironmentContext

    done: List[Revision] = []
    running: List[object] = []  # the revision being run, and the name of the database it runs in
    finished = set()  # (database, revision id): a multi-database env.py runs each revision once per database
    stopped: List[str] = []
    applying = Applying(session)
    several = len(session.databases()) > 1

    def steps(heads, context):
        database = context.connection.engine.url.database if several and context.connection is not None else None
        for step in plan(heads):
            name = "%s (%s)" % (step.revision.revision, (step.revision.doc or "").strip())
            if client_gone():
                stopped.append(name)
                return
            running[:] = [step.revision, database]
            applying.next_revision()
            log("%s %s%s" % (doing, name, " in database %s" % database if database else ""))
            yield step

    def record(ctx, step, heads, run_args) -> None:
        revision = describe(step.up_revision)
        finished.add((running[1] if running else None, revision.id))
        if not any(r.id == revision.id for r in done):
            done.append(revision)

    args = session.migrate_state.configure_args
    saved = dict(args)
    args["transaction_per_migration"] = True
    args["on_version_apply"] = with_callback(with_callback(args.get("on_version_apply"), record), keep_applied)
    try:
        with applying, EnvironmentContext(session.config(), script, fn=steps, as_sql=False, starting_rev=None,
                                          destination_rev="heads", tag=None):
            script.run_env()
    except Exception as exc:
        import traceback

        traceback.print_exc()
        failed = describe(running[0]) if running else None
        if connection_lost(None, exc):
            raise database_lost(error_text(exc), done, None if failed is None or (running[1], failed.id) in finished
                                else failed)
        if failed is None or (running[1], failed.id) in finished:  # env.py, not a revision, failed
            unreadable = file_failure(exc, [session.directory])
            if unreadable is None:
                raise
            raise unreadable from None
        if several:  # a multi-database env.py commits all databases together, or rolls all of them back
            done[:] = _still_done(session, script, done, upwards=done_verb == "applied")
        where = " in database %s" % running[1] if running[1] else ""
        raise _failed(session, failed, exc, done, failure_code, failure % (failed.id, failed.message, where,
                                                                            first_line(exc).rstrip(".")),
                      applying, done_verb)
    finally:
        args.clear()
        args.update(saved)
    if stopped:
        raise interrupted(session, done, stopped[0], done_verb)
    return done


def _still_done(session, script, done: List[Revision], upwards: bool) -> List[Revision]:
    """Of the revisions a failed run went through, those the main database still shows as applied (upwards)
    or as taken back: what was rolled back is not reported as done."""
    current = session.current()
    below = {r.revision for r in script.iterate_revisions(tuple(current), "base")} if current else set()
    return [r for r in done if (r.id in below) == upwards]


def _failed(session, failed: Revision, exc: Exception, done: List[Revision], failure_code: str, message: str,
            applying: Applying, done_verb: str) -> Exception:
    """What a failed revision did: rolled back whole, or (where schema changes commit at once) which of its
    statements stay; and what the request had done before it."""
    current = session.current()
    stayed = applying.stayed()
    if not stayed:
        return fail(failure_code, "%s. Its transaction was rolled back. %s" % (message, so_far(done, current,
                                                                                                done_verb)),
                    revision=failed, error=error_text(exc), applied=done, current=current)
    before = " %s before it: %s." % (done_verb.capitalize(), ", ".join(r.id for r in done)) if done else ""
    return fail(ErrorCode.PARTLY_APPLIED, "%s. %s commits each schema change at once: %s applied (listed below), "
                "and the database's revision is still %s.%s" % (
                    message, applying.engine_label(),
                    "its first statement stays" if len(stayed) == 1 else "%d of its statements stay" % len(stayed),
                    ", ".join(current) or "base", before),
                revision=failed, error=error_text(exc), applied=done, current=current, statements=stayed)
