"""SQLite inside the agent: snapshots of the database file with SQLite's online backup API (a consistent copy
while the app keeps running, and a restore that readers see happen at once), taken and put back through the
backend container; and revisions applied in one transaction each (the pysqlite driver would otherwise commit
every schema change by itself)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from typing import Dict, List, Optional, Tuple

from .app import fail
from .files import database_file
from .protocol import ErrorCode

SNAPSHOT_PREFIX = "devtool-snapshot-"  # the private folder in the container's /tmp a backup is written to
FILE_NAME = "database.sqlite3"


def sqlite_connection(url) -> Tuple[Dict[str, str], Optional[str]]:
    """Nothing to reach over a network: the file is the backend's; the library's version."""
    return {}, sqlite3.sqlite_version


def revision_of(path: str) -> Optional[List[str]]:
    """alembic_version of an SQLite file; None when it has none (or is no database)."""
    try:
        connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return sorted(row[0] for row in connection.execute("SELECT version_num FROM alembic_version"))
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def transactional_ddl(engine) -> None:
    """SQLAlchemy's recipe for pysqlite: the driver opens transactions only before INSERT/UPDATE/DELETE, so
    CREATE/ALTER/DROP would each commit by themselves; with this, a failed revision rolls back whole."""
    from sqlalchemy import event

    if engine.dialect.driver != "pysqlite":
        return
    engine.dispose()  # connections made from now on get the settings

    def connect(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None

    def begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)


class SQLiteFiles:
    """The app's database file, copied with the online backup API. A copy is consistent even while the app
    writes; a restore replaces the pages in one write transaction of the database, so nobody sees it half
    done, and the file (its owner and mode) stays the app's."""

    def __init__(self, url, wait: float) -> None:
        self.path = database_file(url)
        self.wait = wait
        self.version = sqlite3.sqlite_version
        if self.path is None:
            raise fail(ErrorCode.SNAPSHOT_FAILED, "The app's SQLite database is in memory: there is no file to "
                       "snapshot.")

    def backup(self) -> Tuple[str, int, Optional[List[str]]]:
        """A copy in a new private folder of this container's /tmp: its path, size and alembic revision."""
        if not os.path.isfile(self.path):
            raise fail(ErrorCode.SNAPSHOT_FAILED, "The app's SQLite database %s does not exist yet (nothing to "
                       "snapshot); `devtool db upgrade` creates it." % self.path)
        folder = tempfile.mkdtemp(prefix=SNAPSHOT_PREFIX)
        target = os.path.join(folder, FILE_NAME)
        try:
            source = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=self.wait)
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
        except sqlite3.Error as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise fail(ErrorCode.SNAPSHOT_FAILED, "Copying the SQLite database %s failed: %s; nothing was "
                       "changed." % (self.path, exc), error=str(exc))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return target, os.path.getsize(target), revision_of(target)

    def restore(self, snapshot: str) -> None:
        """Put the database back from `snapshot`, a file devtool sent into a folder of its own."""
        _trusted(snapshot)
        try:
            source = sqlite3.connect("file:%s?mode=ro" % snapshot, uri=True)
            database = sqlite3.connect(self.path, timeout=self.wait)
            try:
                source.backup(database)
            finally:
                database.close()
                source.close()
        except sqlite3.Error as exc:
            raise fail(ErrorCode.SNAPSHOT_FAILED, "Restoring the SQLite database %s failed: %s; the database was "
                       "left as it was." % (self.path, exc), error=str(exc))
        finally:
            shutil.rmtree(os.path.dirname(snapshot), ignore_errors=True)


def _trusted(path: str) -> None:
    """A file devtool sent: a plain file in a folder under /tmp that root (or this user) owns and nobody else
    may write."""
    folder = os.path.dirname(path)
    try:
        info, file_info = os.lstat(folder), os.lstat(path)
    except OSError as exc:
        raise fail(ErrorCode.SNAPSHOT_FAILED, "Not restoring from %s: %s; nothing was changed." % (path, exc.strerror))
    if (os.path.dirname(folder) != "/tmp" or not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, os.geteuid())
            or info.st_mode & 0o022 or not stat.S_ISREG(file_info.st_mode)
            or file_info.st_uid not in (0, os.geteuid()) or file_info.st_mode & 0o022):
        raise fail(ErrorCode.SNAPSHOT_FAILED, "Not restoring from %s: not a file devtool sent (owner or mode); "
                   "nothing was changed." % path)
