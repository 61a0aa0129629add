"""Issue 15: MySQL/MariaDB and SQLite as first-class databases, on the real engine: migrate, status, check and
doctor; snapshots and exact restores (mariadb-dump in the db container; SQLite's backup API through the backend);
a destructive change refused, then applied with --yes after a snapshot; two concurrent migrates; a revision that
fails half-way reported as what it is (MariaDB keeps its first schema change, SQLite rolls it back); files in the
bind mount belong to the folder's owner.

One stack per dialect (tests/fixtures/mariadb, tests/fixtures/sqlite, each with a copy of templates/backend),
shared by the module's tests, which run in file order and leave it at head with the models matching."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from conftest import (DEVTOOL, FIXTURES, HOST_GID, HOST_UID, POSTS_MODEL, REPO, Layout, Stack, _image_created,
                      checkout_env, run_on_terminal, wait_for)

pytestmark = pytest.mark.docker

MYSQL_BACKEND_IMAGE = "devtool-backend-mysql:dev"
MARIADB_IMAGE = "mariadb:10.11"
SECRET = "Mar1a-S3cret-pw"
TAGS_MODEL = ("from . import db\n\n\nclass Tag(db.Model):\n    __tablename__ = 'tags'\n"
              "    id = db.Column(db.Integer, primary_key=True)\n    label = db.Column(db.String(50))\n")


def _copy(fixture: str):
    def copy(root: Path) -> Path:
        shutil.copytree(FIXTURES / fixture, root, ignore=shutil.ignore_patterns("image"))
        shutil.copytree(REPO / "templates" / "backend", root / "backend",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return root
    return copy


def _layout(name: str, db_service: str | None) -> Layout:
    return Layout(name=name, copy=_copy(name), backend="backend", db_service=db_service or "", db_user="app",
                  db_name="appdb", backend_src="backend", migrations="backend/migrations", initial="310ddeb54bfc",
                  initial_message="create users table", add_test_model=lambda s: s.add_model("post", POSTS_MODEL),
                  test_model_table="posts", test_model_message="add posts", models_package="app/models",
                  own_state_home=True)


class MariaStack(Stack):
    dialect = "mariadb"
    db_container: str | None = None  # the db service's container, found once (docker exec is twice as quick)

    def sql(self, statement: str) -> str:
        for attempt in range(2):
            if self.db_container is None or attempt:
                self.db_container = self.compose("ps", "-q", "db").stdout.strip()
            result = subprocess.run(["docker", "exec", "-e", f"MYSQL_PWD={SECRET}", self.db_container, "mariadb",
                                     "-uapp", "-N", "-B", "appdb", "-e", statement], capture_output=True, text=True)
            if result.returncode == 0 or "No such container" not in result.stderr:
                break
        assert result.returncode == 0, f"{statement}: {result.stderr}"
        return result.stdout.strip()

    def tables(self) -> set[str]:
        return set(self.sql("SHOW TABLES").split())

    def columns(self, table: str) -> list[str]:
        return self.sql(f"SELECT column_name FROM information_schema.columns WHERE table_schema = 'appdb' AND "
                        f"table_name = '{table}' ORDER BY ordinal_position").split()

    def db_revision(self) -> str:
        return self.sql("SELECT version_num FROM alembic_version")

    def fingerprint(self) -> dict:
        """Each table's definition (AUTO_INCREMENT included), row count and checksum of its rows (one session)."""
        tables = sorted(self.tables())
        lines = self.sql(" ".join(f"SHOW CREATE TABLE `{t}`; SELECT count(*) FROM `{t}`; CHECKSUM TABLE `{t}` "
                                  f"EXTENDED;" for t in tables)).split("\n") if tables else []
        assert len(lines) == 3 * len(tables), lines
        found = {}
        for i, table in enumerate(tables):
            found[f"schema {table}"] = lines[3 * i].split("\t", 1)[1]
            found[f"rows {table}"] = "\n".join(lines[3 * i + 1:3 * i + 3])
        return found


class SQLiteStack(Stack):
    dialect = "sqlite"

    @property
    def file(self) -> Path:
        return self.root / "data" / "app.db"

    def sql(self, statement: str) -> list[tuple]:
        connection = sqlite3.connect(self.file, timeout=30)
        try:
            rows = connection.executescript(statement) if ";" in statement.strip().rstrip(";") else \
                connection.execute(statement)
            result = list(rows) if rows is not None else []
            connection.commit()
            return result
        finally:
            connection.close()

    def tables(self) -> set[str]:
        return {r[0] for r in self.sql("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.sql(f"PRAGMA table_info('{table}')")]

    def db_revision(self) -> str:
        return self.sql("SELECT version_num FROM alembic_version")[0][0]

    def fingerprint(self) -> dict:
        """Every object's definition and every table's rows, in order."""
        found = {f"schema {name}": sql for name, sql in
                 self.sql("SELECT name, sql FROM sqlite_master ORDER BY name")}
        for table in sorted(self.tables()):
            found[f"rows {table}"] = self.sql(f"SELECT * FROM \"{table}\" ORDER BY rowid")
        return found


MARIADB, SQLITE = _layout("mariadb", "db"), _layout("sqlite", None)


@pytest.fixture(scope="session")
def mysql_backend_image(engine_ready):
    """devtool-backend-mysql:dev (the demo backend's libraries with PyMySQL), built when missing or older than
    its inputs; and the MariaDB image scripts/provision makes."""
    if subprocess.run(["docker", "image", "inspect", MARIADB_IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"{MARIADB_IMAGE} is missing: run scripts/provision first.")
    folder = FIXTURES / "mariadb" / "image"
    created = _image_created(MYSQL_BACKEND_IMAGE)
    if created is None or created < max(p.stat().st_mtime for p in folder.iterdir()):
        build = subprocess.run(["docker", "compose", "-p", f"mariadbbuild{uuid.uuid4().hex[:6]}", "build", "backend"],
                               cwd=FIXTURES / "mariadb", capture_output=True, text=True, timeout=900,
                               stdin=subprocess.DEVNULL)
        assert build.returncode == 0, f"building {MYSQL_BACKEND_IMAGE} failed:\n{build.stderr[-3000:]}"
    return MYSQL_BACKEND_IMAGE


@pytest.fixture(scope="module", params=[MARIADB, SQLITE], ids=lambda layout: layout.name)
def db(request, tmp_path_factory, engine_ready):
    """A started stack of each dialect in turn, at its first revision (shared by the module's tests)."""
    layout = request.param
    if layout is MARIADB:
        request.getfixturevalue("mysql_backend_image")
    name = f"{layout.name}{uuid.uuid4().hex[:8]}"
    root = layout.copy(tmp_path_factory.mktemp(layout.name) / name)
    stack = (MariaStack if layout is MARIADB else SQLiteStack)(root, name, layout)
    if layout is SQLITE:
        (root / "data").mkdir()
        os.chown(root / "data", HOST_UID, HOST_GID)  # the host user's folder, as on a laptop
    try:
        upgraded = stack.devtool("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield stack
    finally:
        stack.down()


def _migrations_import(stack, module: str, present: bool) -> None:
    init = stack.backend_src / "app/models/__init__.py"
    line = f"    from . import {module}  # noqa: F401\n"
    text = init.read_text().replace(line, "")
    if present:
        text = text.replace("    from . import user  # noqa: F401\n", "    from . import user  # noqa: F401\n" + line)
    init.write_text(text)


def test_migrate_status_check_and_doctor(db):
    db.add_model("post", POSTS_MODEL)
    migrated = db.devtool("migrate", "add posts")
    assert migrated.returncode == 0, migrated.stderr
    assert "posts" in db.tables()
    head = db.db_revision()
    assert head != db.layout.initial

    status = json.loads(db.devtool("status", "--json").stdout)
    assert status["dialect"]["name"] == db.dialect and status["dialect"]["server_version"]
    assert status["migrations"]["current"] == [head] and status["migrations"]["pending"] == []
    assert db.devtool("check").returncode == 0
    doctor = json.loads(db.devtool("doctor", "--json").stdout)
    reached = next(c for c in doctor["checks"] if c["name"] == "Database reachable from the backend")
    assert reached["ok"] and reached["detail"].startswith({"mariadb": "MariaDB", "sqlite": "SQLite"}[db.dialect])
    assert db.devtool("config", "--json").returncode == 0

    # a model changed without a migration: check fails (13) and says what
    post = db.backend_src / "app/models/post.py"
    post.write_text(post.read_text() + "    body = db.Column(db.Text)\n")
    try:
        unmigrated = db.devtool("check")
        assert unmigrated.returncode == 13, unmigrated.stderr
        assert "posts.body" in unmigrated.stdout + unmigrated.stderr
    finally:
        post.write_text(POSTS_MODEL)
    if db.dialect == "sqlite":  # created by devtool's agent (root) in the host user's folder: the user's
        owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in (db.root / "data").iterdir()}
        assert owners["app.db"] == (HOST_UID, HOST_GID) and owners["app.db.devtool-lock"] == (HOST_UID, HOST_GID)
        assert "Mar1a" not in json.dumps(status)
    else:
        assert SECRET not in json.dumps(status) + json.dumps(doctor)


def _fill(db) -> None:
    values = ", ".join(f"('user{i}@example.com', 'Name {i} – ünïcode ✓')" for i in range(1, 201))
    titles = ", ".join(f"('post {i}')" for i in range(1, 51))
    if db.dialect == "sqlite":
        db.sql(f"INSERT INTO users (email, name) VALUES {values}; INSERT INTO posts (title) VALUES {titles};")
    else:
        db.sql(f"INSERT INTO users (email, name) VALUES {values}; INSERT INTO posts (title) VALUES {titles}")


def test_snapshot_and_restore_give_back_rows_and_schema(db):
    _fill(db)
    before = db.fingerprint()
    taken = db.devtool("snapshot", "exact", "--json")
    assert taken.returncode == 0, taken.stderr
    meta = json.loads(taken.stdout)
    assert meta["kind"] == "dump" and meta["revision"] == [db.db_revision()] and meta["size"] > 0

    db.sql("DELETE FROM users WHERE id % 3 = 0; UPDATE users SET name = 'changed' WHERE id < 20; "
           "CREATE TABLE scratch (x INTEGER); ALTER TABLE posts ADD COLUMN extra INTEGER;")
    assert db.fingerprint() != before
    restored = db.devtool("restore", "exact")
    assert restored.returncode == 0, restored.stderr
    assert "Restored exact" in restored.stdout
    assert db.fingerprint() == before
    assert "scratch" not in db.tables() and "extra" not in db.columns("posts")
    if db.dialect == "mariadb":  # nothing left in the db container's /tmp
        assert db.compose("exec", "-T", "db", "ls", "-A", "/tmp").stdout.strip() == ""

    # the same data as a file for a teammate, and back
    exported = db.devtool("snapshot", "export", "exact", str(db.root.parent / "shared.dump"))
    assert exported.returncode == 0, exported.stderr
    imported = db.devtool("snapshot", "import", str(db.root.parent / "shared.dump"), "shared", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["revision"] == [db.db_revision()]
    db.sql("DELETE FROM posts;")
    assert db.devtool("restore", "shared").returncode == 0
    assert db.fingerprint() == before


def test_snapshot_of_a_server_outside_the_project_uses_a_throwaway_container(db, tmp_path):
    """A second project whose backend uses this MariaDB over its network: no db service there, so the dump
    tools run in a throw-away container of the server's image beside that backend, and go afterwards."""
    if db.dialect != "mariadb":
        pytest.skip("SQLite has no server: its file is copied through the backend")
    other = tmp_path / f"elsewhere{uuid.uuid4().hex[:6]}"
    other.mkdir()
    shutil.copy(FIXTURES / "mariadb" / "elsewhere.yml", other / "docker-compose.yml")
    shutil.copytree(db.backend_src, other / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    (other / ".env").write_text(f"SERVER_NETWORK={db.project}_default\n")
    elsewhere = Stack(other, other.name, db.layout)
    elsewhere.env = db.env
    try:
        before = db.fingerprint()
        taken = elsewhere.devtool("snapshot", "outside", "--json")
        assert taken.returncode == 0, taken.stderr
        assert json.loads(taken.stdout)["db_service"] is None
        db.sql("DELETE FROM users WHERE id < 100; CREATE TABLE scratch (x INT)")
        restored = elsewhere.devtool("restore", "outside")
        assert restored.returncode == 0, restored.stderr
        assert db.fingerprint() == before
        assert SECRET not in taken.stdout + taken.stderr + restored.stdout + restored.stderr
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.devtool.sidecar={other.name}"],
                              capture_output=True, text=True).stdout.strip()
        assert left == ""
    finally:
        elsewhere.down()


def test_destructive_change_is_refused_then_applied_with_yes_after_a_snapshot(db):
    before, revision = db.fingerprint(), db.db_revision()
    model = db.backend_src / "app/models/post.py"
    model.unlink()  # the Post model is gone
    _migrations_import(db, "post", present=False)
    files = set(db.versions())
    try:
        refused = db.devtool("migrate", "drop posts")
        assert refused.returncode == 8, refused.stderr
        assert "needs review" in refused.stderr and "drop table" in refused.stdout + refused.stderr
        assert db.fingerprint() == before and db.db_revision() == revision

        pending = db.devtool("setup")  # the kept revision is pending now: setup names the review, not "behind"
        assert pending.returncode == 8, pending.stderr
        assert "needs review" in pending.stderr and "posts" in db.tables()

        applied = db.devtool("setup", "--yes")
        assert applied.returncode == 0, applied.stderr
        assert "taken before applying" in applied.stdout + applied.stderr
        assert "posts" not in db.tables()
        newest = json.loads(db.devtool("snapshot", "list", "--json").stdout)[0]
        assert newest["reason"] == "before migration" and newest["revision"] == [revision]

        back = db.devtool("restore", "--latest")
        assert back.returncode == 0, back.stderr
        assert db.fingerprint() == before and db.db_revision() == revision
    finally:
        for path in set(db.versions()) - files:
            path.unlink()
        model.write_text(POSTS_MODEL)
        _migrations_import(db, "post", present=True)
    assert db.devtool("check").returncode == 0


def test_two_concurrent_migrates_write_one_revision(db):
    db.add_model("tag", TAGS_MODEL)
    env = checkout_env({**os.environ, **db.env, "NO_COLOR": "1"})
    runs = [subprocess.Popen([*DEVTOOL, "migrate", "add tags"], cwd=db.root, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for _ in range(2)]
    outputs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert len([p for p in db.versions() if "add_tags" in p.name]) == 1
    assert sum("Migrated" in out for out, _ in outputs) == 1
    assert sum("No schema changes" in out for out, _ in outputs) == 1
    assert "tags" in db.tables()


TWO_STEPS = ("    op.add_column('users', sa.Column('nickname', sa.String(50), nullable=True))\n"
             "    op.execute('UPDATE no_such_table SET x = 1')")


def test_a_failing_two_statement_revision_is_reported_truthfully(db):
    before, columns = db.db_revision(), db.columns("users")
    path = db.write_revision("bad00000a001", before, TWO_STEPS, "two steps")
    try:
        failed = db.devtool("migrate", "anything")
        assert "Traceback" not in failed.stderr and "no_such_table" in failed.stderr
        assert db.db_revision() == before
        if db.dialect == "mariadb":  # each schema change commits at once: the first statement stays, and it says so
            assert failed.returncode == 28, failed.stderr
            assert "MariaDB commits each schema change at once: its first statement stays applied" in failed.stderr
            assert "stays applied: ALTER TABLE users ADD COLUMN nickname VARCHAR(50)" in failed.stderr
            assert "No snapshot was taken before it" in failed.stderr
            assert db.columns("users") == columns + ["nickname"]
        else:  # SQLite runs the revision in one transaction: nothing of it stays
            assert failed.returncode == 7, failed.stderr
            assert "Nothing of the failing revision was applied" in failed.stderr
            assert db.columns("users") == columns
    finally:
        path.unlink()
        if "nickname" in db.columns("users"):
            db.sql("ALTER TABLE users DROP COLUMN nickname")


def test_a_revision_failing_half_way_offers_the_snapshot_taken_before_it(db):
    before, revision = db.fingerprint(), db.db_revision()
    path = db.write_revision("bad00000a002", revision, "    op.drop_column('users', 'name')\n" + TWO_STEPS,
                             "drop and fail")
    try:
        failed = db.devtool("migrate", "anything", "--yes", "--json")
        answer = json.loads(failed.stdout)
        assert db.db_revision() == revision
        if db.dialect == "mariadb":
            assert failed.returncode == 28, failed.stderr
            snapshot = answer["data"]["snapshot"]["name"]
            assert f"`devtool restore {snapshot}` puts the database back as it was before this migration" \
                   in answer["hint"]
            assert answer["data"]["statements"] == ["ALTER TABLE users DROP COLUMN name",
                                                    "ALTER TABLE users ADD COLUMN nickname VARCHAR(50)"]
            assert "name" not in db.columns("users")
            restored = db.devtool("restore", snapshot)
            assert restored.returncode == 0, restored.stderr
            assert db.fingerprint() == before

            # on a terminal devtool asks, and a yes puts the database back at once
            code, screen = run_on_terminal(["migrate", "anything", "--yes"], db.root, env=db.env,
                                           answer=(b"now?", b"y"))
            assert code == 28, screen
            assert "Restored snapshot" in screen and "as before this migration" in screen
        else:
            assert failed.returncode == 7, failed.stderr
        assert db.fingerprint() == before
    finally:
        path.unlink()


def test_the_lock_waits_for_a_running_migration(db):
    """devtool's lock held by another session: migrate waits and says so; once it is released, it goes on."""
    if db.dialect == "mariadb":
        import hashlib

        name = "devtool-migration-" + hashlib.sha1(b"appdb").hexdigest()[:16]
        holder = subprocess.Popen(["docker", "compose", "-p", db.project, "exec", "-T", "-e", f"MYSQL_PWD={SECRET}",
                                   "db", "mariadb", "-uapp", "-N", "-n", "appdb"], cwd=db.root, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        holder.stdin.write(f"SELECT GET_LOCK('{name}', 0); SELECT 'held';\n")
    else:
        holder = subprocess.Popen(["python3", "-c", "import fcntl, sys; f = open(sys.argv[1], 'a'); "
                                   "fcntl.flock(f, fcntl.LOCK_EX); print(1); print('held', flush=True); "
                                   "sys.stdin.readline()", str(db.file) + ".devtool-lock"],
                                  text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    holder.stdin.flush()
    assert holder.stdout.readline() + holder.stdout.readline() == "1\nheld\n"
    env = checkout_env({**os.environ, **db.env, "NO_COLOR": "1"})
    migrate = subprocess.Popen([*DEVTOOL, "migrate", "nothing new"], cwd=db.root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(migrate.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("another migration is running on database " in line for line in lines),
                 timeout=300, what="migrate to wait for the lock")
        assert migrate.poll() is None  # still waiting
    finally:
        holder.communicate(timeout=60)  # end of input: the session ends, and its lock with it
    migrate.wait(timeout=300)
    reader.join(timeout=30)
    out = migrate.stdout.read()  # a few lines: nothing blocked on it
    assert migrate.returncode == 0, "".join(lines)
    assert "No schema changes" in out and "Waited" in "".join(lines) + out
