"""Running revisions: applying what is pending in few Alembic runs however long the history, and downgrading
the revisions sync takes back; each revision's statements under devtool's lock_timeout and statement_timeout,
a revision that waited too long for a lock tried again with backoff, and never further than the user watches
(devtool going away stops the run at the next revision boundary). Every revision applied is handed to devtool
(KEEP_MARK) to be kept.

Quick revisions share a transaction for a fraction of a second (a commit per revision costs more than most
revisions do); when one of them fails, that transaction is rolled back and the same revisions are applied
again one transaction each, so a failure still names its revision and rolls back only that one."""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from .app import describe, error_text, fail, file_failure, first_line, log, so_far
from .client import client_gone
from .dialects import Applying, connection_lost, dialect
from .protocol import KEEP_MARK, ErrorCode, Revision, RevisionFile

BATCH_SECONDS = 0.5  # quick revisions share a transaction at most this long: their locks are held no longer
QUICK_SECONDS = 0.2  # a revision slower than this commits on its own
PROGRESS_SECONDS = 1.0  # a progress line at most this often (plus the first)
BACKOFF_SECONDS = 0.5  # the first pause before a revision that hit lock_timeout is tried again; doubles each time
WATCH_SECONDS = 0.25  # how often the watcher asks who blocks the migration's connection


@dataclass
class Limits:
    """The apply's session settings (seconds; 0 means no limit) and how often a lock timeout is retried."""

    lock_timeout: float = 0.0
    statement_timeout: float = 0.0
    lock_retries: int = 0


@dataclass
class Run:
    """One Alembic run: the steps it completed, the one under way, whether it stopped for devtool."""

    batch: bool
    completed: List[Revision] = field(default_factory=list)
    running: Optional[object] = None
    stopped_before: Optional[str] = None
    more: bool = False  # stopped after a batch: revisions are left
    pid: Optional[int] = None
    steps: List[object] = field(default_factory=list)  # every step started, in order
    applying: Optional[Applying] = None  # the statements of the revision under way


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


def _name(revision) -> str:
    return "%s (%s)" % (revision.revision, (revision.doc or "").strip())


def apply_pending(session, script, limits: Optional[Limits] = None) -> List[Revision]:
    """Upgrade to head; the revisions applied, in order. A failure names its revision, rolls back only that
    one (the ones before it stay applied) and says what was applied; a lock timeout is retried first."""
    if len(session.databases()) > 1:
        return _run_several(session, script, lambda heads: script._upgrade_revs("heads", heads), "applying",
                            "applied", ErrorCode.UPGRADE_FAILED, "Revision %s (%s) failed%s: %s")
    limits = limits or Limits()
    database = dialect(session)
    applied: List[Revision] = []
    plan = _Remaining(script, session.current(), applied)
    one_by_one = bool(session.migrate_state.configure_args.get("transaction_per_migration"))
    retries = 0
    progress = Progress(len(plan.steps))
    while True:
        run = Run(batch=database.shared_transactions and not one_by_one)
        watcher = _Watcher(session, database, run) if limits.lock_timeout else None
        before = session.current()
        invalid = database.invalid_indexes(session.engine())
        try:
            run_plan(session, script, run, plan, limits, database, progress, keep=True)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            if connection_lost(None, exc):  # the transaction under way is rolled back by the server
                raise database_lost(error_text(exc), applied,
                                    describe(run.running) if run.running is not None else None)
            _drop_invalid_indexes(session, database, invalid, limits)
            applied += _committed(run, session.current(), before)
            failed = run.running
            if run.batch and (run.completed or failed is None):  # rolled back together: again, one by one
                log("a revision failed in a shared transaction; applying again one revision per transaction")
                one_by_one = True
                progress.count = len(applied)
                continue
            if failed is None:  # before the first revision (env.py, the connection): not a revision's failure
                raise
            blockers = watcher.stop() if watcher else []
            if database.is_lock_timeout(exc) and retries < limits.lock_retries and not client_gone():
                retries += 1
                pause = BACKOFF_SECONDS * 2 ** (retries - 1)
                log("revision %s waited more than %s s for a lock%s; trying again in %.1f s (%d of %d)" % (
                    failed.revision, _seconds(limits.lock_timeout),
                    " held by %s" % blockers[0] if blockers else "", pause, retries, limits.lock_retries))
                if _pause(pause):
                    continue
            raise _failure(session, database, describe(failed), exc, applied, limits, retries, blockers, run)
        finally:
            if watcher:
                watcher.stop()
        applied += run.completed
        if run.stopped_before:
            raise interrupted(session, applied, run.stopped_before)
        if not run.more:
            return applied


class _Remaining:
    """The upgrade steps from where the database was to head, found once (Alembic's path search costs about as
    much as the history is long): each run takes the steps not applied yet. Should the database be elsewhere
    than expected, the path is searched again from there."""

    def __init__(self, script, current: List[str], applied: List[Revision]) -> None:
        self.script, self.applied = script, applied
        self.steps = list(script._upgrade_revs("heads", tuple(current)))

    def __call__(self, heads):
        remaining = self.steps[len(self.applied):]
        if remaining and set(remaining[0].from_revisions) != set(heads):
            return self.script._upgrade_revs("heads", heads)
        return remaining


def downgrade(session, script, revisions: list, limits: Optional[Limits] = None) -> List[Revision]:
    """Run the downgrade() of `revisions` (Alembic Script objects, newest first) in one Alembic run, a
    transaction per revision; alembic_version follows each step (a merge revision gives its heads back)."""
    from alembic.runtime.migration import MigrationStep

    steps = [MigrationStep.downgrade_from_script(script.revision_map, r) for r in revisions]
    if len(session.databases()) > 1:
        return _run_several(session, script, lambda heads: steps, "downgrading", "downgraded",
                            ErrorCode.DOWNGRADE_FAILED, "Downgrading %s (%s) failed%s: %s")
    run = Run(batch=False)
    try:
        run_plan(session, script, run, lambda heads: steps, limits or Limits(), dialect(session),
                 Progress(len(steps)))
    except Exception as exc:
        import traceback

        traceback.print_exc()
        if connection_lost(None, exc):
            raise database_lost(error_text(exc), run.completed,
                                describe(run.running) if run.running is not None else None)
        if run.running is None:
            raise
        failed = describe(run.running)
        raise _failed(session, failed, exc, run.completed, ErrorCode.DOWNGRADE_FAILED,
                      "Downgrading %s (%s) failed: %s" % (failed.id, failed.message, first_line(exc).rstrip(".")),
                      run.applying, "downgraded")
    if run.stopped_before:
        raise interrupted(session, run.completed, run.stopped_before, "downgraded")
    return run.completed


def run_plan(session, script, run: Run, plan, limits: Limits, database, progress: Optional["Progress"] = None,
             guard=None, keep: bool = False) -> None:
    """One Alembic run of the steps `plan(heads)` gives (upgrades or downgrades, alembic RevisionSteps): `run`
    says which completed and which was under way when it failed; `guard(connection)` runs first (rehearse and
    replay prove there that env.py connects to their database); `keep` hands each revision applied upwards to
    devtool (the app's own database, not a copy)."""
    from alembic.runtime.environment import EnvironmentContext

    run.applying = applying = Applying(session)

    def steps(heads, context):
        if guard is not None:
            guard(context.connection)
        database.set_timeouts(context.connection, limits.lock_timeout, limits.statement_timeout)
        run.pid = database.backend_pid(context.connection)
        batch_started = last = time.monotonic()
        for step in plan(heads):
            now = time.monotonic()
            if run.running is not None:
                run.completed.append(describe(run.running))
                if progress:
                    progress.done()
                if run.batch and (now - batch_started > BATCH_SECONDS or now - last > QUICK_SECONDS):
                    run.running, run.more = None, True
                    return  # the run commits this batch; the next run goes on
            if client_gone():
                run.running, run.stopped_before = None, _name(step.revision)
                return
            run.running, last = step.revision, now
            run.steps.append(step)
            applying.next_revision()
            if progress:
                progress.starting(step)
            yield step
        if run.running is not None:
            run.completed.append(describe(run.running))
            if progress:
                progress.done()
            run.running = None

    args = session.migrate_state.configure_args
    saved = dict(args)
    args["transaction_per_migration"] = not run.batch
    if keep:
        args["on_version_apply"] = with_callback(args.get("on_version_apply"), keep_applied)
    undo = database.no_lock_timeout_outside_transactions(session.engine(), limits.lock_timeout)
    try:
        with applying, EnvironmentContext(session.config(), script, fn=steps, as_sql=False, starting_rev=None,
                                          destination_rev="heads", tag=None):
            script.run_env()
    finally:
        undo()
        args.clear()
        args.update(saved)


def _drop_invalid_indexes(session, database, before: List[str], limits: Limits) -> None:
    """A CREATE INDEX CONCURRENTLY that failed (a duplicate value, a cancel) leaves an invalid index behind,
    outside any transaction: drop the ones this run left, so nothing is half-applied and a retry can build it."""
    left = [name for name in database.invalid_indexes(session.engine()) if name not in before]
    for name in left:
        log("dropping the invalid index %s that the failed CREATE INDEX CONCURRENTLY left" % name)
    for name in database.drop_indexes(session.engine(), left, limits.lock_timeout) if left else []:
        log("could not drop the invalid index %s: drop it with DROP INDEX CONCURRENTLY %s" % (name, name))


def _committed(run: Run, current: List[str], before: List[str]) -> List[Revision]:
    """The completed revisions of a failed run that the database kept (a batch rolls back whole, unless an
    autocommit block committed part of it)."""
    if current == before:
        return []
    ids = [r.id for r in run.completed]
    for head in current:
        if head in ids:
            return run.completed[:ids.index(head) + 1]
    return []


def _pause(seconds: float) -> bool:
    """Wait `seconds` (the backoff before a retry); False when devtool went away meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client_gone():
            return False
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    return not client_gone()


def _seconds(value: float) -> str:
    return ("%.1f" % value).rstrip("0").rstrip(".")


def _failure(session, database, failed: Revision, exc: Exception, applied: List[Revision], limits: Limits,
             retries: int, blockers: List[str], run: Run) -> Exception:
    current = session.current()
    if database.is_lock_timeout(exc):
        holder = ("held by %s" % "; ".join(blockers)) if blockers else \
            "its holder let go before devtool could see it"
        tries = "%d tries" % (retries + 1) if retries else "1 try"
        return fail(ErrorCode.LOCK_BLOCKED, "Revision %s (%s) could not get a lock within lock_timeout (%s s, %s): "
                    "%s. Nothing of it was applied%s; the database is at %s." % (
                        failed.id, failed.message, _seconds(limits.lock_timeout), tries, holder,
                        " (the %d revision(s) before it were)" % len(applied) if applied else "",
                        ", ".join(current) or "base"),
                    revision=failed, error=error_text(exc), applied=applied, current=current,
                    blockers=blockers)
    if database.is_statement_timeout(exc):
        return fail(ErrorCode.STATEMENT_TIMEOUT, "Revision %s (%s) ran a statement longer than statement_timeout "
                    "(%s s); it was cancelled and the revision rolled back%s." % (
                        failed.id, failed.message, _seconds(limits.statement_timeout),
                        "; %d revision(s) before it stay applied" % len(applied) if applied else ""),
                    revision=failed, error=error_text(exc), applied=applied, current=current)
    return _failed(session, failed, exc, applied, ErrorCode.UPGRADE_FAILED,
                   "Revision %s (%s) failed: %s" % (failed.id, failed.message, first_line(exc).rstrip(".")),
                   run.applying, "applied")


def _run_several(session, script, plan: Callable, doing: str, done_verb: str, failure_code: str,
                 failure: str) -> List[Revision]:
    """Several databases (flask db init --multidb): env.py runs each revision once per database and commits them
    together; one Alembic run, a transaction per revision, without devtool's timeouts and shared transactions."""
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


class Progress:
    """Progress lines: every revision when there are few, else one a second, so a long history does not
    spend its time printing."""

    def __init__(self, total: int) -> None:
        self.total, self.count, self.last = total, 0, 0.0

    def starting(self, step) -> None:
        now = time.monotonic()
        if self.total <= 20 or now - self.last >= PROGRESS_SECONDS:
            self.last = now
            suffix = "" if self.total <= 20 else " (%d of %d)" % (self.count + 1, self.total)
            log("%s %s%s" % ("applying" if step.is_upgrade else "downgrading", _name(step.revision), suffix))

    def done(self) -> None:
        self.count += 1


class _Watcher:
    """Asks the database, while a run waits, which sessions block its connection: the one to name when a lock
    timeout ends the retries."""

    def __init__(self, session, database, run: Run) -> None:
        self.engine, self.database, self.run = session.engine(), database, run  # no app context in the thread
        self.seen: List[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, name="devtool-lock-watch", daemon=True)
        self.thread.start()

    def watch(self) -> None:
        connection = None
        try:
            while not self.stopping.wait(WATCH_SECONDS):
                if self.run.pid is None:
                    continue
                if connection is None:
                    connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                blockers = self.database.blockers(connection, self.run.pid)
                if blockers:
                    self.seen = blockers
        except Exception:  # only the name of the blocker is lost
            pass
        finally:
            if connection is not None:
                connection.close()

    def stop(self) -> List[str]:
        self.stopping.set()
        self.thread.join(timeout=5)
        return self.seen
