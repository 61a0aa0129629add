"""What depends on the database engine, behind one interface: portable dumps (taken, restored and read by
tools of a matching version that reach the database as the backend does: pg_dump beside the backend, the
server's own mariadb-dump, SQLite's backup API through the backend container), what the engine is called and
what its snapshots and lock are (doctor, status). Fast snapshots (copies inside the database server), the
migration lock and what stays of a failed revision are the agent's (agent/dialects.py): it holds the app's own
connection.

`for_database` picks the dialect from the agent's Database (the app's URL scheme); nothing else in devtool
asks which database it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.dialects.base import Dialect, DumpInfo, Dumps
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.agent.protocol import Database
    from toolkit.context import Context

__all__ = ["Dialect", "DumpInfo", "Dumps", "describe", "for_database", "name_of_url", "unreachable_hint"]


def unreachable_hint(ctx: Context, database: Database, error: str) -> str:
    """What to do when the backend cannot connect to its database: the database service's own state first (a
    stopped service is the usual cause), then the dialect's reading of the driver's error."""
    from toolkit.engine import health, service_containers

    service = ctx.settings.db_service or (database.host if database.host in ctx.project.services else None)
    if service is not None:
        mine = service_containers(ctx.containers(), service)
        state = "not created" if not mine else mine[0].status
        if mine and state == "running" and health(mine[0]) not in (None, "healthy"):
            state = health(mine[0])
        if state not in ("running", "healthy"):
            return (f"The database service {service} is {state}: `devtool up` starts it (`devtool status` shows "
                    f"the stack, `docker compose logs {service}` its output).")
    try:
        hint = for_database(database).connection_hint(database, error)
    except DevtoolError:  # a database devtool has no dialect for
        hint = None
    return hint or ("Check that the database runs (`devtool status`) and the backend's DATABASE_URL (host, port, "
                    "user, password, database name).")


def for_database(database: Database, *, purpose: str = "Snapshots are",
                 exit_code: int = ExitCode.SNAPSHOT_FAILED) -> Dialect:
    """The dialect of the app's database; `purpose` ("Replays are") and `exit_code` say what cannot be done
    without one."""
    from toolkit.dialects.mysql import MySQL
    from toolkit.dialects.postgres import Postgres
    from toolkit.dialects.sqlite import SQLite

    dialects = {"postgresql": Postgres(), "mysql": MySQL(), "mariadb": MySQL(), "sqlite": SQLite()}
    if database.backend not in dialects:
        raise DevtoolError(f"{purpose} not supported for {database.backend} databases yet.", exit_code=exit_code)
    return dialects[database.backend]


def name_of_url(url: str | None) -> str | None:
    """The dialect a database URL names ("mysql+pymysql://..." -> "mysql"), without connecting; None if it is
    no URL."""
    import re

    found = re.match(r"^([A-Za-z][A-Za-z0-9]*)(\+[A-Za-z0-9_]+)?:", url or "")
    if not found:
        return None
    name = found.group(1).lower()
    return {"postgres": "postgresql"}.get(name, name)


def describe(database: Database, server_version: str | None = None, name: str | None = None) -> str:
    """The engine, its version and where the database is, for people: "MariaDB 10.11.6, appdb on db:3306",
    "SQLite 3.40.1, file /data/app.db"; with what devtool's snapshots and lock are for it."""
    try:
        dialect = for_database(database)
    except DevtoolError:
        return f"{database.backend} {server_version or ''}".strip() + f", {database.name} on {database.host}"
    where = (f"file {database.name}" if database.host is None and database.port is None
             else f"{database.name} on {database.host}:{database.port}")
    label = "MariaDB" if name == "mariadb" else dialect.label(server_version)  # name: the server's own (status)
    engine = " ".join(filter(None, [label, server_version]))
    return f"{engine}, {where} (snapshots: {dialect.snapshots}; lock: {dialect.lock})"
