"""The dialect interface: what every database engine gives devtool (see toolkit/dialects)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, ContextManager, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from toolkit.agent.protocol import ConnectionResult, Database, DatabaseTarget
    from toolkit.context import Context


@dataclass
class DumpInfo:
    """What a dump file says about itself."""

    revision: list[str] | None  # its alembic_version rows; None: it has no alembic_version table
    server_version: str | None  # the server it was dumped from ("15.4 (Debian ...)")
    metadata: dict | None = None  # devtool's own metadata, when devtool exported it


class Dumps(Protocol):
    """Dump tools next to the backend, for one database (the ConnectionResult's)."""

    def dump(self, into: BinaryIO) -> None:
        """Write a portable dump of the database to `into`; raise DevtoolError on failure."""

    def restore(self, dump: Path) -> None:
        """Put the database back exactly as in `dump`, in one step that either happens whole or not at all."""

    def read(self, dump: Path) -> DumpInfo:
        """What the dump holds: revision, server version, devtool's metadata; DevtoolError if it is no dump."""


class Dialect(Protocol):
    name: str
    copies: bool  # the server can hold snapshot copies itself (else every snapshot is a dump file)
    dump_tool: str  # what makes its dumps, for messages
    snapshots: str  # how devtool snapshots it, for doctor and status
    lock: str  # devtool's migration lock on it

    def label(self, server_version: str | None) -> str:
        """The engine's name for people (PostgreSQL, MariaDB, MySQL, SQLite)."""

    def import_problem(self, dumped: str | None, server: str | None) -> str | None:
        """Why a dump from a server of version `dumped` cannot be restored into one of version `server`."""

    def dumps(self, ctx: Context, connection: ConnectionResult) -> ContextManager[Dumps]:
        """Tools of a version that matches the server, reaching it as the backend does, for one command."""

    def connection_hint(self, database: Database, error: str) -> str | None:
        """What to do about the driver's `error` on connecting to `database`; None when it is not recognised."""


def matching_hint(hints, database: Database, error: str, default_port: int | None) -> str | None:
    """The first of `hints` ((pattern, text), in order) whose pattern the driver's `error` matches, its text filled
    in with the database's host, port, user and name."""
    for pattern, hint in hints:
        if re.search(pattern, error):
            return hint.format(host=database.host, port=database.port or default_port, user=database.user,
                               name=database.name)
    return None

class ThrowawayServers(Protocol):
    """A dialect that can start a server of its own for `check --replay` (Postgres so far)."""

    def throwaway_server(self, ctx: Context, connection: ConnectionResult) -> ContextManager[DatabaseTarget]:
        """An empty server like the app's, reachable from the backend, without a volume; removed when the
        block ends, whatever happens."""
