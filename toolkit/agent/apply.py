"""Applying revisions: under devtool's migration lock, in one Alembic run, a transaction per revision, and
never further than the user watches (devtool going away stops the run at the next revision boundary)."""

from __future__ import annotations

import os
import threading
import time
from typing import List

from .app import describe, error_text, fail, first_line, log
from .protocol import LOCK_KEY, ErrorCode, Revision

_client_gone = threading.Event()


def watch_client() -> None:
    """devtool keeps the exec's stdin open for as long as it runs: end of file means it went away (Ctrl-C,
    killed, connection lost). The request itself reads /dev/null instead."""
    watched = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def wait() -> None:
        try:
            while os.read(watched, 4096):
                pass
        except OSError:
            pass
        _client_gone.set()

    threading.Thread(target=wait, name="devtool-client-watch", daemon=True).start()


def client_gone() -> bool:
    return _client_gone.is_set()


def on_client_gone(callback) -> None:
    """Call `callback` (in another thread) when devtool goes away."""
    threading.Thread(target=lambda: _client_gone.wait() and callback(), name="devtool-on-gone", daemon=True).start()


def interrupted(session, applied: List[Revision], stopped_before: str) -> Exception:
    return fail(ErrorCode.INTERRUPTED, "devtool went away: stopped before %s; %d revision(s) applied." % (
        stopped_before, len(applied)), applied=applied, current=session.current())


class MigrationLock:
    """A Postgres advisory lock around generate + upgrade: two devtool runs never interleave. Waiting has a
    deadline, says what it waits for, and ends when devtool goes away."""

    POLL = 0.2

    def __init__(self, session, deadline_seconds: float) -> None:
        self.session, self.deadline_seconds = session, deadline_seconds
        self.connection, self.waited = None, 0.0

    def __enter__(self) -> "MigrationLock":
        if self.session.database().backend != "postgresql":
            return self
        from sqlalchemy import text

        # Autocommit: an open transaction here would make CREATE INDEX CONCURRENTLY wait for this session.
        self.connection = self.session.engine().connect().execution_options(isolation_level="AUTOCOMMIT")
        started = time.monotonic()
        while not self.connection.execute(text("SELECT pg_try_advisory_lock(%d)" % LOCK_KEY)).scalar():
            waited = time.monotonic() - started
            if not self.waited:
                log("another migration is running on this database (%s); waiting up to %.0f s for it to finish"
                    % (self._holder(), self.deadline_seconds))
            self.waited = round(waited, 2) or 0.01
            if client_gone():
                self.connection.close()
                raise fail(ErrorCode.INTERRUPTED, "devtool went away while waiting for the migration lock; "
                                                  "nothing was changed.")
            if waited > self.deadline_seconds:
                holder = self._holder()
                self.connection.close()
                raise fail(ErrorCode.LOCK_TIMEOUT, "Another migration of this database held devtool's migration "
                           "lock for more than %.0f s (%s); nothing was changed." % (self.deadline_seconds, holder))
            time.sleep(self.POLL)
        return self

    def _holder(self) -> str:
        from sqlalchemy import text

        row = self.connection.execute(text(
            "SELECT a.pid, a.application_name, a.client_addr, a.state FROM pg_locks l JOIN pg_stat_activity a "
            "USING (pid) WHERE l.locktype = 'advisory' AND l.objid = %d AND l.granted LIMIT 1" % LOCK_KEY)).first()
        if row is None:
            return "holder unknown"
        return "held by backend pid %s%s%s" % (row[0], ", application %s" % row[1] if row[1] else "",
                                               ", client %s" % row[2] if row[2] else "")

    def __exit__(self, *exc_info) -> None:
        if self.connection is not None:
            from sqlalchemy import text

            try:
                self.connection.execute(text("SELECT pg_advisory_unlock(%d)" % LOCK_KEY))
            finally:
                self.connection.close()


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
