"""What depends on the database engine, behind one interface: how a snapshot is taken and restored (and, as
they come, the migration lock, enum handling, which lint rules apply, how a failed revision is reported).

`for_database` picks the dialect from the agent's Database (the app's URL scheme); nothing else in devtool
asks which database it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Protocol

from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    from toolkit.agent.protocol import Database
    from toolkit.context import Context


class Dialect(Protocol):
    name: str

    def dump(self, ctx: Context, database: Database, into: BinaryIO) -> None:
        """Write a dump of the app's database to `into`; raise DevtoolError on failure."""

    def restore(self, ctx: Context, database: Database, dump: Path) -> None:
        """Put the database back exactly as in `dump`, in one step that either happens whole or not at all."""


def for_database(database: Database) -> Dialect:
    from toolkit.dialects.postgres import Postgres

    dialects = {"postgresql": Postgres()}
    if database.backend not in dialects:
        raise DevtoolError(f"Snapshots are not supported for {database.backend} databases yet.",
                           exit_code=ExitCode.SNAPSHOT_FAILED)
    return dialects[database.backend]
