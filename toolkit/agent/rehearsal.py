"""What each statement of a revision does to the database, measured on a copy while it runs: its time, the
strongest lock it took and on which table (pg_locks), whether it rewrote a table (the file node changed), and
the table's rows. Hooked on the copy's engine (SQLAlchemy's cursor events), so every statement a revision runs
is seen, however it was written."""

from __future__ import annotations

import threading
import time
from typing import List

from .lint import operations_from_sql
from .protocol import StatementReport

# Alembic's and SQLAlchemy's own statements, and reads: not what a revision does to the tables.
SKIPPED = ("SELECT", "SHOW", "SET ", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "WITH ")


class Recorder:
    """Measures each statement the migration connection runs while `run` has a revision under way."""

    def __init__(self, engine, catalog, run) -> None:
        from sqlalchemy import event

        self.engine, self.catalog, self.run = engine, catalog, run  # run.running: the revision under way
        self.reports: List[StatementReport] = []
        self._before = None
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)

    def stop(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self.before)
        event.remove(self.engine, "after_cursor_execute", self.after)

    def before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._before = None
        text = statement.lstrip()
        if self.run.running is None or text.upper().startswith(SKIPPED) or "alembic_version" in text.lower():
            return
        connection = cursor.connection
        outside = bool(getattr(connection, "autocommit", False))
        relations = self.catalog.relations(connection)
        locks = set() if outside else self.catalog.locks(connection)
        sampler = _Sampler(self.engine, self.catalog, self.catalog.pid(connection)) if outside else None
        self._before = (relations, locks, sampler, outside, time.monotonic())

    def after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self._before is None:
            return
        relations, locks, sampler, outside, started = self._before
        self._before = None
        seconds = time.monotonic() - started
        connection = cursor.connection
        held = set() if sampler else self.catalog.locks(connection)
        taken = sampler.stop() if sampler else held - locks
        now = self.catalog.relations(connection)
        names = {oid: name for oid, (name, _) in list(relations.items()) + list(now.items())}
        rewrote = sorted(name for oid, (name, node) in relations.items() if oid in now and now[oid][1] != node)
        lock, table = self.catalog.strongest(taken, names)
        already = False
        if lock is None and held:  # its table was locked by an earlier statement of the same transaction
            touched = {op.table.lower() for op in operations_from_sql(statement, 0) if op.table}
            lock, table = self.catalog.strongest({(oid, mode) for oid, mode in held
                                                  if names.get(oid, "").split(".")[-1].strip('"').lower() in touched},
                                                 names)
            already = lock is not None
        rows = None
        target = table or (rewrote[0] if rewrote else None)
        if target and any(name == target for name, _ in now.values()):
            rows = self.catalog.count(connection, target)
        self.reports.append(StatementReport(
            revision=getattr(self.run.running, "revision", ""), sql=" ".join(statement.split())[:300],
            seconds=round(seconds, 4), lock=lock, table=table, rewrote=rewrote, rows=rows, outside_transaction=outside,
            lock_held_before=already))


class _Sampler:
    """Locks of a statement that runs outside a transaction are gone when it ends: watch them while it runs,
    from a connection opened before it starts (autocommit: no snapshot for CONCURRENTLY to wait for)."""

    def __init__(self, engine, catalog, pid: int) -> None:
        self.catalog, self.pid = catalog, pid
        self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        fairy = self.connection.connection
        self.raw = getattr(fairy, "dbapi_connection", None) or fairy.connection
        self.seen: set = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, name="devtool-rehearse-locks", daemon=True)
        self.thread.start()

    def watch(self) -> None:
        try:
            while True:
                self.seen |= self.catalog.locks(self.raw, self.pid)
                if self.stopping.wait(0.002):
                    break
        except Exception:  # the lock column stays empty for this statement
            pass

    def stop(self) -> set:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.connection.close()
        return self.seen
