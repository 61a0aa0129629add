"""Multi-database projects without the engine: the review of a `flask db init --multidb` revision judges each
upgrade_<engine>() (and downgrade_<engine>()) and names its database; the migration lock takes every database's
lock in one order whoever asks, and lets go of those it took when one cannot be had."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.agent import dialects
from toolkit.agent.app import AgentError
from toolkit.agent.locks import FileLock, Locks
from toolkit.agent.review import classify_upgrade
from toolkit.cli.review import database_label

MULTIDB = '''
def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.add_column('users', sa.Column('nickname', sa.String(), nullable=True))


def downgrade_():
    op.drop_column('users', 'nickname')


def upgrade_analytics():
    op.drop_column('events', 'payload')
    op.add_column('events', sa.Column('source', sa.String(), nullable=False))


def downgrade_analytics():
    pass


def upgrade_audit():
    op.drop_table('old_log')
'''


def test_each_engine_function_is_judged_and_named():
    changes = classify_upgrade(MULTIDB)
    assert [(c.bind, c.op, c.table, c.risk) for c in changes] == [
        ("", "add_column", "users", "safe"),
        # drop + add in one table of one database: a probable rename
        ("analytics", "drop_column", "events", "rename"), ("analytics", "add_column", "events", "rename"),
        ("audit", "drop_table", "old_log", "destructive")]
    assert [database_label(c.bind) for c in changes[:2]] == ["main", "bind analytics"]


def test_downgrades_are_judged_per_engine_too():
    changes = classify_upgrade(MULTIDB, "downgrade")
    assert [(c.bind, c.op, c.table, c.risk) for c in changes] == [("", "drop_column", "users", "destructive")]


def test_a_drop_in_one_database_and_an_add_in_another_is_no_rename():
    source = MULTIDB.replace("    op.add_column('events', sa.Column('source', sa.String(), nullable=False))\n", "")
    source = source.replace("op.drop_table('old_log')", "op.add_column('events', sa.Column('x', sa.Text()))")
    risks = {(c.bind, c.op): c.risk for c in classify_upgrade(source)}
    assert risks[("analytics", "drop_column")] == "destructive"
    assert risks[("audit", "add_column")] == "safe"


def test_a_single_database_revision_has_no_bind_and_helpers_are_not_engines():
    source = ("def upgrade():\n    op.drop_column('users', 'name')\n\n\n"
              "def upgrade_data():\n    op.drop_table('users')\n")
    assert [(c.bind, c.op) for c in classify_upgrade(source)] == [(None, "drop_column")]


@dataclass
class FakeURL:
    database: str
    host: str = ""
    port: int = 0
    backend: str = "sqlite"
    query: dict = None

    def get_backend_name(self) -> str:
        return self.backend


class FakeEngine:
    def __init__(self, url: FakeURL) -> None:
        self.url = url


class FakeSession:
    """What migration_lock reads of the agent's Session: its databases, each bind's engine."""

    def __init__(self, folder: Path, binds: dict) -> None:
        self.engines = {bind: FakeEngine(FakeURL(str(folder / name))) for bind, name in binds.items()}

    def databases(self):
        return [(bind, engine.url) for bind, engine in self.engines.items()]

    def engine(self, bind=None):
        return self.engines[bind]


def test_every_database_is_locked_in_one_order_whatever_the_bind_names(tmp_path):
    one = FakeSession(tmp_path, {None: "b.db", "x": "c.db", "y": "a.db"})
    other = FakeSession(tmp_path, {None: "c.db", "z": "a.db", "w": "b.db"})  # another app, the same databases
    for session in (one, other):
        lock = dialects.migration_lock(session, 1)
        assert isinstance(lock, Locks)
        assert [Path(held.path).name for held in lock.locks] == ["a.db.devtool-lock", "b.db.devtool-lock",
                                                                  "c.db.devtool-lock"]


def test_a_lock_that_cannot_be_had_lets_go_of_the_ones_taken(tmp_path):
    session = FakeSession(tmp_path, {None: "a.db", "x": "b.db"})
    with FileLock(FakeEngine(FakeURL(str(tmp_path / "b.db"))), 5):  # another run holds b
        with pytest.raises(AgentError) as failed:
            with dialects.migration_lock(session, 0.3):
                pass
        assert "b.db" in failed.value.failure.message
    with FileLock(FakeEngine(FakeURL(str(tmp_path / "a.db"))), 0.3):  # a was let go
        pass
