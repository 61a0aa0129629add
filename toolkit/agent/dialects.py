"""What depends on the database engine inside the agent: the migration lock (so far)."""

from __future__ import annotations

import time

from .app import fail, log
from .client import client_gone
from .protocol import LOCK_KEY, ErrorCode


class PostgresLock:
    """A Postgres advisory lock around generate + upgrade: two devtool runs never interleave. Waiting has a
    deadline, says what it waits for, and ends when devtool goes away."""

    POLL = 0.2

    def __init__(self, session, deadline_seconds: float) -> None:
        self.session, self.deadline_seconds = session, deadline_seconds
        self.connection, self.waited = None, 0.0

    def __enter__(self) -> "PostgresLock":
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


class NoLock:
    """Databases devtool has no lock for yet: nothing to wait for."""

    waited = 0.0

    def __init__(self, session, deadline_seconds: float) -> None:
        pass

    def __enter__(self) -> "NoLock":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


LOCKS = {"postgresql": PostgresLock}


def migration_lock(session, deadline_seconds: float):
    """devtool's migration lock for the app's database: two devtool runs never interleave."""
    return LOCKS.get(session.database().backend, NoLock)(session, deadline_seconds)
