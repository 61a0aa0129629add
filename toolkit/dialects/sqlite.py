"""SQLite: the database is a file of the backend's, so snapshots are copies of it made by devtool's agent with
SQLite's online backup API (consistent while the app runs), carried out of and back into the backend container;
the host reads a copy with Python's own sqlite3."""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from toolkit.agent.protocol import FileSnapshotRequest, RestoreFileRequest
from toolkit.dialects.base import DumpInfo
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.agent.protocol import ConnectionResult, Database
    from toolkit.context import Context

MAGIC = b"SQLite format 3\x00"


class SQLite:
    name = "sqlite"
    copies = False
    dump_tool = "SQLite's backup API"
    snapshots = "copies of the file (backup API)"
    lock = "a .devtool-lock file beside it"

    def label(self, server_version: str | None) -> str:
        return "SQLite"

    @contextlib.contextmanager
    def dumps(self, ctx: Context, connection: ConnectionResult) -> Iterator[SQLiteDumps]:
        yield SQLiteDumps(ctx, connection)

    def import_problem(self, dumped: str | None, server: str | None) -> str | None:
        return None  # SQLite reads files of any version 3 library

    def connection_hint(self, database: Database, error: str) -> str | None:
        if "unable to open database file" in error:
            return (f"The backend cannot open the SQLite file {database.name}: its folder does not exist in the "
                    f"container or the container's user cannot write there. Fix the path in DATABASE_URL, or the "
                    f"folder's owner (or the bind mount that should provide it).")
        return None


class SQLiteDumps:
    """Through the backend container: the agent copies the file into a private folder there, devtool fetches it
    and removes the folder; a restore goes the other way."""

    def __init__(self, ctx: Context, connection: ConnectionResult) -> None:
        self.ctx, self.connection = ctx, connection

    def dump(self, into: BinaryIO) -> None:
        copy = self.ctx.target.agent().call(FileSnapshotRequest(wait=self.ctx.settings.wait_timeout))
        folder = copy.path.rsplit("/", 1)[0]
        try:
            self.ctx.target.fetch(copy.path, into)
        finally:
            self.ctx.target.discard(folder)

    def restore(self, dump: Path) -> None:
        self.read(dump)
        inside = self.ctx.target.send(dump, "database.sqlite3")
        try:
            self.ctx.target.agent().call(RestoreFileRequest(path=inside, wait=self.ctx.settings.wait_timeout))
        finally:
            self.ctx.target.discard(inside.rsplit("/", 1)[0])

    def read(self, dump: Path) -> DumpInfo:
        return read_file(dump)


def read_file(path: Path) -> DumpInfo:
    """An SQLite file's alembic revision and the SQLite version that last wrote it (pure)."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(MAGIC):
        raise DevtoolError(f"{path} is not an SQLite database file.", exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint="Export snapshots with `devtool snapshot export NAME FILE`.")
    number = struct.unpack(">I", header[96:100])[0]  # SQLITE_VERSION_NUMBER of the last library to write it
    version = f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}" if number else None
    revision = None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            revision = sorted(row[0] for row in connection.execute("SELECT version_num FROM alembic_version"))
        finally:
            connection.close()
    except sqlite3.Error:
        revision = None
    return DumpInfo(revision=revision, server_version=version)
