"""devtool's migration lock, one kind per database engine: two devtool runs on one database never interleave.
Waiting has a deadline, says what it waits for and who holds the lock, and ends when devtool goes away."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import time
from contextlib import ExitStack
from typing import Optional

from .app import connect, fail, log
from .client import client_gone
from .files import database_file, watch_files
from .protocol import LOCK_KEY, ErrorCode


class PollingLock:
    """Try, and try again every POLL seconds until the deadline; subclasses say how to try, who holds it and
    how to let go."""

    POLL = 0.2

    def __init__(self, engine, deadline_seconds: float) -> None:
        self.engine, self.deadline_seconds = engine, deadline_seconds
        self.waited = 0.0

    def _open(self) -> None:
        """Whatever trying needs (a connection, a file)."""

    def _try(self) -> bool:
        raise NotImplementedError

    def _holder(self) -> str:
        return "holder unknown"

    def _release(self) -> None:
        """Let go of the lock (it is held)."""

    def _close(self) -> None:
        """Undo _open (the lock is not held, or was let go)."""

    def __enter__(self):
        self._open()
        started = time.monotonic()
        try:
            while not self._try():
                waited = time.monotonic() - started
                if not self.waited:
                    log("another migration is running on database %s (%s); waiting up to %.0f s for it to finish"
                        % (self.engine.url.database, self._holder(), self.deadline_seconds))
                self.waited = round(waited, 2) or 0.01
                if client_gone():
                    raise fail(ErrorCode.INTERRUPTED, "devtool went away while waiting for the migration lock; "
                                                      "nothing was changed.")
                if waited > self.deadline_seconds:
                    raise fail(ErrorCode.LOCK_TIMEOUT, "Another migration of database %s held devtool's "
                               "migration lock for more than %.0f s (%s); nothing was changed."
                               % (self.engine.url.database, self.deadline_seconds, self._holder()))
                time.sleep(self.POLL)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self._release()
        except Exception:
            if exc_info[0] is None:
                raise
            # The block already failed (the database went away, say): its error is the one to tell; a lock held by
            # a session ends with it.
        finally:
            try:
                self._close()
            except Exception:
                if exc_info[0] is None:
                    raise


class ConnectionLock(PollingLock):
    """A lock held by a database session of its own, in autocommit (an open transaction here would make
    statements that wait for older transactions, CREATE INDEX CONCURRENTLY, wait for this session)."""

    def _open(self) -> None:
        self.connection = connect(self.engine).execution_options(isolation_level="AUTOCOMMIT")

    def _scalar(self, sql: str, **params):
        from sqlalchemy import text

        return self.connection.execute(text(sql), params).scalar()

    def _close(self) -> None:
        self.connection.close()


class PostgresLock(ConnectionLock):
    """A Postgres advisory lock (LOCK_KEY): session-level, gone when the session ends."""

    def _try(self) -> bool:
        return bool(self._scalar("SELECT pg_try_advisory_lock(%d)" % LOCK_KEY))

    def _holder(self) -> str:
        from sqlalchemy import text

        row = self.connection.execute(text(
            "SELECT a.pid, a.application_name, a.client_addr, a.state FROM pg_locks l JOIN pg_stat_activity a "
            "USING (pid) WHERE l.locktype = 'advisory' AND l.objid = %d AND l.granted LIMIT 1" % LOCK_KEY)).first()
        if row is None:
            return "holder unknown"
        return "held by backend pid %s%s%s" % (row[0], ", application %s" % row[1] if row[1] else "",
                                               ", client %s" % row[2] if row[2] else "")

    def _release(self) -> None:
        self._scalar("SELECT pg_advisory_unlock(%d)" % LOCK_KEY)


class MySQLLock(ConnectionLock):
    """A MySQL/MariaDB named lock (GET_LOCK): held by this session, gone when it ends. Names are server-wide,
    so the database's name is part of it (hashed: names are at most 64 characters)."""

    def _open(self) -> None:
        super()._open()
        database = self.engine.url.database or ""
        self.name = "devtool-migration-" + hashlib.sha1(database.encode()).hexdigest()[:16]

    def _try(self) -> bool:
        return self._scalar("SELECT GET_LOCK(:name, 0)", name=self.name) == 1

    def _holder(self) -> str:
        from sqlalchemy import text

        holder = self._scalar("SELECT IS_USED_LOCK(:name)", name=self.name)
        if holder is None:
            return "holder unknown"
        row = self.connection.execute(text("SELECT user, host, command, time FROM information_schema.processlist "
                                           "WHERE id = :id"), {"id": holder}).first()
        if row is None:
            return "held by connection %s" % holder
        return "held by connection %s, user %s from %s, %s for %s s" % (holder, row[0], row[1], row[2], row[3])

    def _release(self) -> None:
        self._scalar("SELECT RELEASE_LOCK(:name)", name=self.name)


class FileLock(PollingLock):
    """SQLite: an exclusive flock on `<database>.devtool-lock` next to the database file, so every container
    that shares the file shares the lock. The lock file, like the database a first run creates, is handed to the
    folder's owner when the request ends (files.watch_files): in a bind mount, the host user, not root."""

    SUFFIX = ".devtool-lock"

    def __init__(self, engine, deadline_seconds: float) -> None:
        super().__init__(engine, deadline_seconds)
        database = database_file(engine.url)
        self.path = database + self.SUFFIX if database else None
        if self.path:
            watch_files([self.path])
        self.fd: Optional[int] = None

    def _open(self) -> None:
        if self.path is None:  # an in-memory database: nobody else can reach it
            return
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                              0o644)
        except OSError as exc:
            raise fail(ErrorCode.LOCK_UNAVAILABLE,
                       "Cannot open devtool's lock file %s: %s; nothing was changed." % (self.path, exc.strerror))
        info = os.fstat(self.fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(self.fd)
            self.fd = None
            raise fail(ErrorCode.LOCK_UNAVAILABLE, "devtool's lock file %s is not a plain file of its own (a link?); "
                       "nothing was changed. Remove it." % self.path)

    def _try(self) -> bool:
        import fcntl

        if self.fd is None:
            return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        os.ftruncate(self.fd, 0)
        os.write(self.fd, ("pid %d in %s since %s\n" % (os.getpid(), socket.gethostname(),
                                                         time.strftime("%H:%M:%S"))).encode())
        return True

    def _holder(self) -> str:
        try:
            with open(self.path, "r", errors="replace") as handle:
                text = handle.read(200).strip()
        except OSError:
            text = ""
        return "held by %s (lock file %s)" % (text or "another process", self.path)

    def _release(self) -> None:
        import fcntl

        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class NoLock:
    """Databases devtool has no lock for: nothing to wait for."""

    waited = 0.0

    def __init__(self, engine, deadline_seconds: float) -> None:
        pass

    def __enter__(self) -> "NoLock":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class Locks:
    """The locks of several databases, taken one after the other in a fixed order (so two devtool runs never
    each hold one and wait for the other) and let go in reverse."""

    def __init__(self, locks: list) -> None:
        self.locks = locks
        self.stack = ExitStack()

    @property
    def waited(self) -> float:
        return round(sum(lock.waited for lock in self.locks), 2)

    def __enter__(self) -> "Locks":
        with ExitStack() as taking:
            for lock in self.locks:
                taking.enter_context(lock)
            self.stack = taking.pop_all()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stack.__exit__(*exc_info)  # each lock learns whether the block failed
