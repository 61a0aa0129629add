"""What depends on the database engine, behind one interface: portable dumps (taken, restored and read by
tools of a matching version that reach the database as the backend does) and, as they come, enum handling,
which lint rules apply, how a failed revision is reported. Fast snapshots (copies inside the database server)
are the agent's (agent/dialects.py): it holds the app's own connection.

`for_database` picks the dialect from the agent's Database (the app's URL scheme); nothing else in devtool
asks which database it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.dialects.base import Dialect, DumpInfo, Dumps
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.agent.protocol import Database

__all__ = ["Dialect", "DumpInfo", "Dumps", "for_database"]


def for_database(database: Database) -> Dialect:
    from toolkit.dialects.postgres import Postgres

    dialects = {"postgresql": Postgres()}
    if database.backend not in dialects:
        raise DevtoolError(f"Snapshots are not supported for {database.backend} databases yet.",
                           exit_code=ExitCode.SNAPSHOT_FAILED)
    return dialects[database.backend]
