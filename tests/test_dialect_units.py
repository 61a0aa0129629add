"""Dialect logic that needs no engine: what MariaDB/MySQL dumps and SQLite files say about themselves, which
statements of a half-applied MySQL revision stay, the SQLite lock file (waiting, naming its holder, refusing a
link), the files an SQLite URL names, and the dialect a URL names."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolkit.agent.app import AgentError
from toolkit.agent.files import database_file, database_files
from toolkit.agent.locks import FileLock
from toolkit.agent.mysql import statements_that_stay
from toolkit.agent.protocol import Database, ErrorCode
from toolkit.dialects import describe, for_database, name_of_url
from toolkit.dialects.mysql import read_dump
from toolkit.dialects.sqlite import read_file
from toolkit.errors import DevtoolError

DUMP = """/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: db    Database: appdb
-- ------------------------------------------------------
-- Server version\t10.11.19-MariaDB-0+deb12u1

DROP TABLE IF EXISTS `alembic_version`;
CREATE TABLE `alembic_version` (
  `version_num` varchar(32) NOT NULL,
  PRIMARY KEY (`version_num`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
LOCK TABLES `alembic_version` WRITE;
{rows}
UNLOCK TABLES;
-- Dump completed on 2026-11-25 19:40:01
"""


@pytest.mark.parametrize("rows, revision", [
    ("INSERT INTO `alembic_version` VALUES\n('310ddeb54bfc');", ["310ddeb54bfc"]),  # MariaDB 10.11
    ("INSERT INTO `alembic_version` VALUES ('bbb'),('aaa');", ["aaa", "bbb"]),  # mysqldump, two heads
    ("", []),  # the table, no row: at base
])
def test_a_mariadb_dump_says_its_revision_and_server(tmp_path, rows, revision):
    dump = tmp_path / "a.dump"
    dump.write_text(DUMP.format(rows=rows))
    info = read_dump(dump)
    assert info.revision == revision and info.server_version == "10.11.19-MariaDB-0+deb12u1"


def test_a_dump_without_alembic_version_or_cut_short(tmp_path):
    dump = tmp_path / "a.dump"
    dump.write_text("-- MySQL dump 10.13  Distrib 8.0.36\n-- Server version\t8.0.36\n-- Dump completed\n")
    assert read_dump(dump).revision is None and read_dump(dump).server_version == "8.0.36"
    dump.write_text(DUMP.format(rows="")[:-60])  # no "Dump completed": it was cut short
    with pytest.raises(DevtoolError, match="not a complete mariadb-dump"):
        read_dump(dump)
    dump.write_bytes(b"PGDMP\x01\x0e")
    with pytest.raises(DevtoolError, match="not a complete mariadb-dump"):
        read_dump(dump)


def test_an_sqlite_file_says_its_revision_and_version(tmp_path):
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.executescript("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
                             "INSERT INTO alembic_version VALUES ('310ddeb54bfc');")
    connection.close()
    info = read_file(path)
    assert info.revision == ["310ddeb54bfc"] and info.server_version == sqlite3.sqlite_version
    (tmp_path / "other.db").write_bytes(b"SQLite format 3\x00" + bytes(84))
    assert read_file(tmp_path / "other.db").revision is None
    (tmp_path / "no.db").write_text("-- MariaDB dump\n")
    with pytest.raises(DevtoolError, match="not an SQLite database file"):
        read_file(tmp_path / "no.db")


def test_what_stays_of_a_half_applied_mysql_revision():
    ran = ["INSERT INTO users (email) VALUES ('a')", "ALTER TABLE users ADD COLUMN nickname VARCHAR(50)",
           "UPDATE users SET nickname = 'x'"]
    # the ALTER committed itself and the INSERT before it; the UPDATE after it rolled back with the failure
    assert statements_that_stay(ran) == ran[:2]
    assert statements_that_stay(["UPDATE users SET name = 'x'"]) == []
    assert statements_that_stay([]) == []
    assert statements_that_stay(["create table t (id int)", "UPDATE alembic_version SET version_num='b'"]) == \
        ["create table t (id int)"]


@dataclass
class FakeURL:
    """What the agent reads of an SQLAlchemy URL (SQLAlchemy is the app's, not the host's)."""

    database: str | None
    backend: str = "sqlite"
    query: dict = field(default_factory=dict)

    def get_backend_name(self) -> str:
        return self.backend


def test_the_files_an_sqlite_url_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert database_file(FakeURL("/data/app.db")) == "/data/app.db"
    assert database_file(FakeURL("app.db")) == str(tmp_path / "app.db")
    assert database_file(FakeURL("file:/data/app.db?mode=rwc")) == "/data/app.db"
    assert database_file(FakeURL(":memory:")) is None and database_file(FakeURL(None)) is None
    assert database_file(FakeURL("appdb", backend="mysql")) is None
    assert database_files(FakeURL("/d/a.db")) == ["/d/a.db", "/d/a.db-journal", "/d/a.db-wal", "/d/a.db-shm"]


class FakeEngine:
    def __init__(self, path: Path) -> None:
        self.url = FakeURL(str(path))


def test_the_sqlite_lock_file_waits_names_its_holder_and_times_out(tmp_path):
    database = tmp_path / "app.db"
    with FileLock(FakeEngine(database), 5) as held:
        assert held.waited == 0.0
        assert f"pid {os.getpid()}" in (tmp_path / "app.db.devtool-lock").read_text()
        with pytest.raises(AgentError) as failed:
            with FileLock(FakeEngine(database), 0.3):
                pass
        assert failed.value.failure.code == ErrorCode.LOCK_TIMEOUT
        assert f"held by pid {os.getpid()}" in failed.value.failure.message
        assert "nothing was changed" in failed.value.failure.message
    with FileLock(FakeEngine(database), 0.3):  # released: the next one takes it at once
        pass


def test_the_sqlite_lock_refuses_a_link_in_its_place(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(target, tmp_path / "app.db.devtool-lock")
    with pytest.raises(AgentError) as failed:
        with FileLock(FakeEngine(tmp_path / "app.db"), 1):
            pass
    assert failed.value.failure.code == ErrorCode.LOCK_UNAVAILABLE
    assert target.read_text() == "precious"
    os.unlink(tmp_path / "app.db.devtool-lock")
    os.link(target, tmp_path / "app.db.devtool-lock")  # a hard link: writing to it would write there
    with pytest.raises(AgentError, match="not a plain file of its own"):
        with FileLock(FakeEngine(tmp_path / "app.db"), 1):
            pass
    assert target.read_text() == "precious"


@pytest.mark.parametrize("url, name", [("mysql+pymysql://u:p@db/app", "mysql"), ("mariadb://u@db/app", "mariadb"),
                                       ("sqlite:////data/app.db", "sqlite"), ("postgres://u@db/app", "postgresql"),
                                       ("postgresql+psycopg://u@db/app", "postgresql"), ("not a url", None),
                                       ("", None)])
def test_the_dialect_a_url_names(url, name):
    assert name_of_url(url) == name


def test_every_dialect_describes_itself():
    sqlite = Database(backend="sqlite", name="/data/app.db")
    assert describe(sqlite, "3.40.1").startswith("SQLite 3.40.1, file /data/app.db (snapshots: copies of the file")
    mariadb = Database(backend="mysql", host="db", port=3306, name="appdb")
    assert describe(mariadb, "10.11.6", "mariadb").startswith("MariaDB 10.11.6, appdb on db:3306 (snapshots: "
                                                              "mariadb-dump files")
    assert "lock: GET_LOCK" in describe(mariadb, "8.0.36")
    assert describe(Database(backend="postgresql", host="db", port=5432, name="devtool"), "15.4").startswith(
        "PostgreSQL 15.4, devtool on db:5432")
    assert describe(Database(backend="oracle", host="db", name="x")).startswith("oracle, x on db")
    with pytest.raises(DevtoolError, match="not supported for oracle"):
        for_database(Database(backend="oracle"))


class ToolsStandIn:
    """What MySQLDumps drives (engine.Sidecar's run and put) without a container: the dump script answers with
    `before`, each load script with the next of `loads` (an exit code, or an exception such as a Ctrl-C)."""

    def __init__(self, before: bytes | BaseException, *loads: int | BaseException) -> None:
        self.before, self.loads, self.loaded = before, list(loads), []

    def put(self, path: Path, name: str) -> str:
        self.loaded.append(Path(path).read_bytes())
        return f"/tmp/devtool-x/{name}"

    def run(self, command: list[str], on_output) -> int:
        script = command[2]
        answer = self.loads.pop(0) if "exec 3<" in script else self.before
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, bytes):
            on_output(answer, None)
            return 0
        return answer


def _mysql_dumps(tools: ToolsStandIn, lasting: bool):
    from toolkit.agent.protocol import ConnectionResult
    from toolkit.dialects.mysql import MySQLDumps

    database = Database(backend="mysql", host="db", port=3306, name="appdb", user="app")
    return MySQLDumps(None, tools, ConnectionResult(database=database, environment={}), "service db",
                      lasting=lasting)


@pytest.mark.parametrize("lasting, says", [(True, "the load goes on in that container until it is complete"),
                                           (False, "the load stopped part-way, so the database is between the two")])
def test_a_mysql_restore_interrupted_during_the_load_says_what_happens_and_keeps_what_was_there(tmp_path, lasting,
                                                                                                 says):
    from toolkit.errors import ExitCode

    snapshot = tmp_path / "snap.dump"
    snapshot.write_text(DUMP.format(rows="INSERT INTO `alembic_version` VALUES ('aaa');"))
    before = DUMP.format(rows="INSERT INTO `alembic_version` VALUES ('bbb');").encode()
    with pytest.raises(DevtoolError) as raised:
        _mysql_dumps(ToolsStandIn(before, KeyboardInterrupt()), lasting).restore(snapshot)
    assert raised.value.exit_code == ExitCode.INTERRUPTED and says in raised.value.message
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("devtool-before-restore-")]
    assert len(kept) == 1 and kept[0].read_bytes() == before and str(kept[0]) in raised.value.message
    assert read_dump(kept[0]).revision == ["bbb"]  # `snapshot import` takes it back


def test_a_mysql_restore_interrupted_before_the_load_leaves_no_file(tmp_path):
    snapshot = tmp_path / "snap.dump"
    snapshot.write_text(DUMP.format(rows=""))
    tools = ToolsStandIn(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _mysql_dumps(tools, lasting=True).restore(snapshot)
    assert [p.name for p in tmp_path.iterdir()] == ["snap.dump"] and tools.loaded == []


def test_a_failed_mysql_load_puts_back_what_was_there(tmp_path):
    snapshot = tmp_path / "snap.dump"
    snapshot.write_text(DUMP.format(rows=""))
    before = DUMP.format(rows="INSERT INTO `alembic_version` VALUES ('bbb');").encode()
    tools = ToolsStandIn(before, 1, 0)  # the snapshot's load fails, putting back what was there works
    with pytest.raises(DevtoolError, match="the database was put back as it was before"):
        _mysql_dumps(tools, lasting=True).restore(snapshot)
    assert tools.loaded == [snapshot.read_bytes(), before]
    assert [p.name for p in tmp_path.iterdir()] == ["snap.dump"]


def _driver_error(module: str, *args) -> Exception:
    """Like SQLAlchemy's DBAPIError around an OperationalError of the driver in `module`."""
    error = type("OperationalError", (Exception,), {"__module__": module})
    wrapper = Exception(str(args))
    wrapper.orig, wrapper.connection_invalidated = error(*args), False
    return wrapper


def test_a_refused_statement_on_mysql_or_sqlite_is_no_lost_connection():
    """Their drivers raise OperationalError for statements the database refused too: only a lost server counts."""
    from toolkit.agent.dialects import connection_lost

    try:
        sqlite3.connect(":memory:").execute("UPDATE no_such_table SET x = 1")
    except sqlite3.OperationalError as exc:
        wrapper = Exception(str(exc))
        wrapper.orig = exc
        assert not connection_lost(None, wrapper) and not connection_lost("sqlite", wrapper)
    duplicate = _driver_error("pymysql.err", 1060, "Duplicate column name 'nickname'")
    assert not connection_lost(None, duplicate) and not connection_lost("mariadb", duplicate)
    for number in (2006, 2013):  # server gone away, lost connection during query
        assert connection_lost(None, _driver_error("pymysql.err", number, "Lost connection to server"))
        assert connection_lost("mysql", _driver_error("MySQLdb._exceptions", number, "Lost connection"))

