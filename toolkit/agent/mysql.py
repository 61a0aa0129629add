"""MySQL and MariaDB inside the agent: how the server's own tools (mariadb-dump, mysqldump, the client) reach
the database as the app does, and what stays of a revision that failed half-way (each schema change commits at
once there: a failed revision cannot be rolled back)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from .app import reported_version

DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.I)
OWN = re.compile(r"\balembic_version\b", re.I)  # Alembic's bookkeeping, not the revision's statements


def mysql_connection(url) -> Tuple[Dict[str, str], Optional[str]]:
    """The environment a fixed tools script reads (MYSQL_PWD is the clients' own password variable, never an
    argument), and the server's version (checked by connecting)."""
    version = reported_version(url, "SELECT VERSION()")
    environment = {"DEVTOOL_DB_HOST": url.host or "localhost", "DEVTOOL_DB_PORT": str(url.port or 3306),
                   "DEVTOOL_DB_USER": url.username or "", "DEVTOOL_DB_NAME": url.database or ""}
    if url.password:
        environment["MYSQL_PWD"] = str(url.password)
    return environment, version


def engine_label(engine) -> str:
    return "MariaDB" if getattr(engine.dialect, "is_mariadb", False) else "MySQL"


def statements_that_stay(ran: List[str]) -> List[str]:
    """Of the statements a failed revision ran (in order), those that stay: every schema change committed
    itself, and with it whatever ran before it in the revision's transaction; what ran after the last one
    is rolled back with the failure."""
    mine = [s for s in ran if not OWN.search(s)]
    last = max((i for i, s in enumerate(mine) if DDL.match(s)), default=-1)
    return mine[:last + 1]


# The client's "server gone / lost / unreachable" errors, and the server's own "shutting down" and "killed".
LOST_ERRORS = {2002, 2003, 2006, 2013, 2055, 1053, 1927}


def mysql_connection_lost(exc: BaseException) -> bool:
    """The server went away, as opposed to a statement it refused (the driver reports most refusals, a duplicate
    column say, as OperationalError too: only the error number tells)."""
    if getattr(exc, "connection_invalidated", False):
        return True
    original = getattr(exc, "orig", None) or exc
    number = original.args[0] if original.args and isinstance(original.args[0], int) else None
    return number in LOST_ERRORS

