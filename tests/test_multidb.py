"""Issue 14 §2: a multi-database project (`flask db init --multidb`, SQLALCHEMY_BINDS) is first-class: migrate
works, the review judges each upgrade_<bind>() and names the bind, a destructive change in the bound database
needs --yes and a snapshot of both databases first, restore puts both back, check sees a changed bound model,
an unimported bound model is reported. tests/fixtures/multidb: the main database `main` and the bind
`analytics` in one Postgres."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from conftest import DEMO, FIXTURES, Stack
from toolkit.agent.protocol import LOCK_KEY

pytestmark = pytest.mark.docker

INITIAL = "a06529a38ac3"
DROP_PAYLOAD = '''"""drop events.payload

Revision ID: d0d0d0d0d0d0
Revises: a06529a38ac3
"""
from alembic import op
import sqlalchemy as sa

revision = 'd0d0d0d0d0d0'
down_revision = 'a06529a38ac3'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.add_column('users', sa.Column('nickname', sa.String(length=64), nullable=True))


def downgrade_():
    op.drop_column('users', 'nickname')


def upgrade_analytics():
    op.drop_column('events', 'payload')


def downgrade_analytics():
    op.add_column('events', sa.Column('payload', sa.Text(), nullable=True))
'''


class MultiDB(Stack):
    def sql(self, database: str, sql: str) -> str:
        result = self.compose("exec", "-T", "db", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "devtool",
                              "-d", database, "-c", sql)
        return result.stdout.strip()

    def columns(self, database: str, table: str) -> list[str]:
        return self.sql(database, f"SELECT column_name FROM information_schema.columns WHERE table_name = "
                                  f"'{table}' ORDER BY ordinal_position").split()

    def revision(self, database: str) -> str:
        return self.sql(database, "SELECT version_num FROM alembic_version")

    @property
    def models(self):
        return self.root / "backend" / "app" / "models"

    def versions_folder(self):
        return self.root / "backend" / "migrations" / "versions"


@pytest.fixture(scope="module")
def multidb(tmp_path_factory, engine_ready):
    root = tmp_path_factory.mktemp("multidb") / f"multidb{uuid.uuid4().hex[:8]}"
    shutil.copytree(FIXTURES / "multidb", root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stack = MultiDB(root, root.name, DEMO)
    stack.env = {"XDG_STATE_HOME": str(root.parent / "state")}
    try:
        upgraded = stack.devtool("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield stack
    finally:
        stack.down()


@pytest.fixture
def fresh(multidb):
    """The module's stack with both databases back at the fixture's revision, its files as in the fixture."""
    yield multidb
    for path in multidb.versions_folder().glob("*.py"):
        if not path.name.startswith(INITIAL):
            path.unlink()
    shutil.copytree(FIXTURES / "multidb" / "backend" / "app", multidb.root / "backend" / "app", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for extra in multidb.models.glob("*.py"):
        if not (FIXTURES / "multidb" / "backend" / "app" / "models" / extra.name).exists():
            extra.unlink()
    for database in ("main", "analytics"):
        multidb.sql(database, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    upgraded = multidb.devtool("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr


def test_migrate_a_bound_model_change_and_check_sees_it_first(fresh):
    event = fresh.models / "event.py"
    event.write_text(event.read_text().replace("    payload = db.Column(db.Text)\n",
                                               "    payload = db.Column(db.Text)\n"
                                               "    source = db.Column(db.String(32))\n"))
    checked = fresh.devtool("check")
    assert checked.returncode == 13, checked.stdout + checked.stderr
    assert "add_column events.source in bind analytics" in checked.stdout + checked.stderr

    migrated = fresh.devtool("migrate", "add source")
    assert migrated.returncode == 0, migrated.stderr
    assert "multiple-entry list" not in migrated.stdout + migrated.stderr
    assert "source" in fresh.columns("analytics", "events")
    assert "source" not in fresh.columns("main", "users")
    (written,) = [p for p in fresh.versions_folder().glob("*.py") if not p.name.startswith(INITIAL)]
    assert written.stem.split("_")[0] == fresh.revision("main") == fresh.revision("analytics")
    assert "bind analytics" in migrated.stdout  # the Detected changes table names the database

    assert fresh.devtool("check").returncode == 0


def test_a_destructive_change_in_the_bind_is_reviewed_snapshotted_and_restored(fresh):
    fresh.sql("main", "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com')")
    fresh.sql("analytics", "INSERT INTO events (kind, payload) VALUES ('signup', 'keep me'), ('login', 'me too')")
    (fresh.versions_folder() / "d0d0d0d0d0d0_drop_payload.py").write_text(DROP_PAYLOAD)

    refused = fresh.devtool("setup")
    assert refused.returncode == 8, refused.stdout + refused.stderr
    review = refused.stdout + refused.stderr
    assert "bind analytics" in review and "drop column" in review and "payload" in review
    assert "payload" in fresh.columns("analytics", "events")
    assert (fresh.revision("main"), fresh.revision("analytics")) == (INITIAL, INITIAL)
    status = fresh.devtool("status")
    assert "Bind analytics: database analytics on db:5432, revision a06529a38ac3" in status.stdout + status.stderr
    assert "Pending: d0d0d0d0d0d0" in status.stdout + status.stderr

    applied = fresh.devtool("setup", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "payload" not in fresh.columns("analytics", "events")
    assert "nickname" in fresh.columns("main", "users")
    (taken,) = json.loads(fresh.devtool("snapshot", "list", "--json").stdout)
    assert taken["reason"] == "before migration"
    assert [(d["bind"], d["database"]["name"], d["revision"]) for d in taken["databases"]] == [
        (None, "main", [INITIAL]), ("analytics", "analytics", [INITIAL])]

    fresh.sql("main", "DELETE FROM users WHERE email = 'b@example.com'")
    restored = fresh.devtool("restore", "--latest")
    assert restored.returncode == 0, restored.stderr
    assert "databases main, analytics back at revision" in restored.stdout
    assert fresh.sql("analytics", "SELECT payload FROM events ORDER BY id").split("\n") == ["keep me", "me too"]
    assert fresh.sql("main", "SELECT email FROM users ORDER BY email").split() == ["a@example.com", "b@example.com"]
    assert "nickname" not in fresh.columns("main", "users")
    assert (fresh.revision("main"), fresh.revision("analytics")) == (INITIAL, INITIAL)
    leftovers = fresh.sql("main", "SELECT datname FROM pg_database WHERE datname LIKE 'devtool_new%' "
                                  "OR datname LIKE 'devtool_old%'")
    assert leftovers == ""
    exported = fresh.devtool("snapshot", "export", taken["name"], str(fresh.root / "both.dump"))
    assert exported.returncode == 12 and "holds 2 databases (main, analytics)" in exported.stderr
    assert not (fresh.root / "both.dump").exists()
    assert fresh.devtool("snapshot", "delete", taken["name"]).returncode == 0
    assert fresh.sql("main", "SELECT count(*) FROM pg_database WHERE datname LIKE 'devtool_snap%'") == "0"


def test_an_unimported_bound_model_is_reported(fresh):
    (fresh.models / "metric.py").write_text(
        "from . import db\n\n\nclass Metric(db.Model):\n    __bind_key__ = \"analytics\"\n"
        "    __tablename__ = \"metrics\"\n\n    id = db.Column(db.Integer, primary_key=True)\n")
    refused = fresh.devtool("migrate", "add metrics")
    assert refused.returncode == 10, refused.stdout + refused.stderr
    assert "Metric" in refused.stdout + refused.stderr
    assert "metrics" not in fresh.sql("analytics", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    doctor = fresh.devtool("doctor")
    assert doctor.returncode != 0
    assert "Metric" in doctor.stdout + doctor.stderr


def test_the_legacy_stack_flask_sqlalchemy_2(tmp_path, legacy_image, no_devtool_settings):
    """Flask-SQLAlchemy 2.5 / Flask-Migrate 3.1 keep binds differently (get_engine(bind=...), one MetaData whose
    tables carry bind_key): the same review, snapshot, restore and check."""
    root = tmp_path / f"mdblegacy{uuid.uuid4().hex[:8]}"
    shutil.copytree(FIXTURES / "multidb", root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stack = MultiDB(root, root.name, DEMO)
    stack.env = {"XDG_STATE_HOME": str(tmp_path / "state"), "COMPOSE_FILE": "docker-compose.yml:legacy.yml"}
    try:
        assert stack.devtool("db", "upgrade").returncode == 0
        assert stack.sql("main", "SELECT 1") == "1"
        stack.sql("analytics", "INSERT INTO events (kind, payload) VALUES ('signup', 'keep me')")
        event = stack.models / "event.py"
        event.write_text(event.read_text().replace("    payload = db.Column(db.Text)\n", ""))
        checked = stack.devtool("check")
        assert checked.returncode == 13, checked.stdout + checked.stderr
        assert "remove_column events.payload in bind analytics" in checked.stdout + checked.stderr

        refused = stack.devtool("migrate", "drop payload")
        assert refused.returncode == 8, refused.stdout + refused.stderr
        assert "bind analytics" in refused.stdout and "payload" in refused.stdout
        assert "payload" in stack.columns("analytics", "events")

        applied = stack.devtool("migrate", "drop payload", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "payload" not in stack.columns("analytics", "events")
        (taken,) = json.loads(stack.devtool("snapshot", "list", "--json").stdout)
        assert [d["database"]["name"] for d in taken["databases"]] == ["main", "analytics"]

        assert stack.devtool("restore", "--latest").returncode == 0
        assert stack.sql("analytics", "SELECT payload FROM events") == "keep me"
        assert stack.revision("analytics") == stack.revision("main") == INITIAL
    finally:
        stack.down()


def test_a_bind_that_cannot_be_read_fails_doctor_status_and_check(fresh):
    fresh.sql("main", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'analytics'")
    fresh.sql("main", "ALTER DATABASE analytics RENAME TO analytics_away")
    try:
        doctor = fresh.devtool("doctor")
        assert doctor.returncode == 15, doctor.stdout + doctor.stderr
        assert "Database analytics (bind analytics) cannot be read" in doctor.stdout + doctor.stderr
        status = fresh.devtool("status")
        assert status.returncode == 21, status.stdout + status.stderr
        assert "Database analytics (bind analytics) cannot be read" in status.stdout + status.stderr
        assert "Database is at head" not in status.stdout + status.stderr
        checked = fresh.devtool("check")  # never "models match" without having looked at every database
        assert checked.returncode == 20, checked.stdout + checked.stderr
        assert "Database analytics (bind analytics) cannot be read" in checked.stdout + checked.stderr
    finally:
        fresh.sql("main", "ALTER DATABASE analytics_away RENAME TO analytics")


def test_the_lock_is_taken_on_every_database(fresh):
    """Another migration holds devtool's lock on the bound database only: migrate waits for it, names that
    database when it gives up, and keeps no lock of its own on the main one."""
    holder = subprocess.Popen(["docker", "compose", "-p", fresh.project, "exec", "-T", "db", "psql", "-X", "-At",
                               "-U", "devtool", "-d", "analytics"], cwd=fresh.root, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        holder.stdin.write(f"SELECT 1 FROM (SELECT pg_advisory_lock({LOCK_KEY})) AS taken; SELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline() + holder.stdout.readline() == "1\nheld\n"
        event = fresh.models / "event.py"
        event.write_text(event.read_text().replace("    payload = db.Column(db.Text)\n",
                                                   "    payload = db.Column(db.Text)\n"
                                                   "    source = db.Column(db.String(32))\n"))
        waited = fresh.devtool("migrate", "add source", env={"DEVTOOL_WAIT_TIMEOUT": "3"})
        assert waited.returncode == 25, waited.stdout + waited.stderr  # a lock not granted in time
        assert "another migration is running on database analytics" in waited.stderr
        assert "Another migration of database analytics held devtool's migration lock for more than 3 s" \
               in waited.stderr
        assert fresh.sql("main", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "1"  # the holder's
        assert "source" not in fresh.columns("analytics", "events")
    finally:
        holder.communicate(timeout=60)  # end of input: the session ends, and its lock with it
    migrated = fresh.devtool("migrate", "add source")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "source" in fresh.columns("analytics", "events")


def test_a_restore_with_a_copy_gone_changes_nothing(fresh):
    fresh.sql("main", "INSERT INTO users (email) VALUES ('a@example.com')")
    taken_now = fresh.devtool("snapshot", "both")
    assert taken_now.returncode == 0, taken_now.stderr
    assert "Snapshot both taken (copy, databases main, analytics," in taken_now.stdout
    (taken,) = json.loads(fresh.devtool("snapshot", "list", "--json").stdout)
    analytics_copy = next(d["copy"] for d in taken["databases"] if d["bind"] == "analytics")
    fresh.sql("main", f'DROP DATABASE "{analytics_copy}"')
    fresh.sql("main", "DELETE FROM users")

    refused = fresh.devtool("restore", "both")
    assert refused.returncode == 12, refused.stdout + refused.stderr
    assert f"The snapshot's copy {analytics_copy} is no longer on the database server" in refused.stderr
    assert "nothing was restored" in refused.stderr
    assert fresh.sql("main", "SELECT count(*) FROM users") == "0"  # the main database was not restored alone
    assert fresh.sql("main", "SELECT count(*) FROM pg_database WHERE datname LIKE 'devtool_new%'") == "0"
    assert fresh.devtool("snapshot", "delete", "both").returncode == 0


def test_a_snapshot_never_goes_into_another_bound_database(fresh):
    """The bind now points at another database: restoring the snapshot there is refused, naming the bind, and
    neither database is touched."""
    fresh.sql("analytics", "INSERT INTO events (kind) VALUES ('kept')")
    assert fresh.devtool("snapshot", "before-move").returncode == 0
    fresh.sql("main", "CREATE DATABASE analytics_other TEMPLATE analytics")
    fresh.sql("main", "INSERT INTO users (email) VALUES ('new@example.com')")
    compose = fresh.root / "docker-compose.yml"
    original = compose.read_text()
    compose.write_text(original.replace("@db:5432/analytics", "@db:5432/analytics_other"))
    try:
        assert fresh.devtool("up").returncode == 0  # the backend now uses analytics_other
        refused = fresh.devtool("restore", "before-move")
        assert refused.returncode == 12, refused.stdout + refused.stderr
        assert "taken from database analytics on db:5432 (bind analytics); the app now uses analytics_other" \
               in refused.stderr
        assert "nothing was restored" in refused.stderr
        assert fresh.sql("main", "SELECT email FROM users") == "new@example.com"
    finally:
        compose.write_text(original)
        assert fresh.devtool("up").returncode == 0
        fresh.sql("main", "DROP DATABASE analytics_other")
        assert fresh.devtool("snapshot", "delete", "before-move").returncode == 0


def test_a_bound_database_at_a_revision_the_checkout_lacks_stops_migrate(fresh):
    fresh.sql("analytics", "UPDATE alembic_version SET version_num = 'feedfeedfeed'")
    try:
        status = fresh.devtool("status")
        assert status.returncode == 16, status.stdout + status.stderr
        assert "feedfeedfeed" in status.stdout + status.stderr
        refused = fresh.devtool("migrate", "anything")
        assert refused.returncode == 16, refused.stdout + refused.stderr
        assert "feedfeedfeed" in refused.stderr and "nothing was generated or applied" in refused.stderr
        assert fresh.versions_folder().joinpath(f"{INITIAL}_create_users_and_events.py").exists()
        assert len(list(fresh.versions_folder().glob("*.py"))) == 1
    finally:
        fresh.sql("analytics", f"UPDATE alembic_version SET version_num = '{INITIAL}'")


def test_sync_takes_a_revision_back_from_every_database(fresh):
    """After a git checkout removed a revision both databases have applied, sync downgrades it in each."""
    event = fresh.models / "event.py"
    original = event.read_text()
    event.write_text(original.replace("    payload = db.Column(db.Text)\n",
                                      "    payload = db.Column(db.Text)\n    source = db.Column(db.String(32))\n"))
    assert fresh.devtool("migrate", "add source").returncode == 0
    (written,) = [p for p in fresh.versions_folder().glob("*.py") if not p.name.startswith(INITIAL)]
    written.unlink()  # what `git checkout` of a branch without it does
    event.write_text(original)
    assert fresh.devtool("status").returncode == 16
    synced = fresh.devtool("sync", "--yes")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "source" not in fresh.columns("analytics", "events")
    assert (fresh.revision("main"), fresh.revision("analytics")) == (INITIAL, INITIAL)
    assert fresh.devtool("check").returncode == 0
