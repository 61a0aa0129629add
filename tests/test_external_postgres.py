"""Issue 9 §5: the backend's DATABASE_URL points at a Postgres that is no service of its compose project
(tests/fixtures/external). Snapshots and the snapshot before a destructive change work for any Postgres the
backend reaches: a copy inside that server, else pg_dump of the server's version in a throw-away container on
the backend's network; where neither can, devtool says so once, applies nothing, and --no-snapshot goes on."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from conftest import FIXTURES, REPO, Stack, fingerprint

pytestmark = pytest.mark.docker

SECRET = "Ext3rnal-S3cret-pw"


class ExternalStack(Stack):
    """The backend's project; its database is on the server project's Postgres (psql runs there, as admin)."""

    server_project = ""

    def psql(self, sql: str, service: str | None = None, user: str = "app") -> str:
        result = subprocess.run(["docker", "compose", "-p", self.server_project, "-f", "server.yml", "exec", "-T",
                                 "-e", f"PGPASSWORD={SECRET}", "postgres", "psql", "-X", "-At", "-v",
                                 "ON_ERROR_STOP=1", "-h", "localhost", "-U", user, "-d", "appdb", "-c", sql],
                                cwd=self.root, text=True, capture_output=True, check=True, stdin=subprocess.DEVNULL)
        return result.stdout.strip()

    def admin(self, sql: str) -> None:
        subprocess.run(["docker", "compose", "-p", self.server_project, "-f", "server.yml", "exec", "-T", "postgres",
                        "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "admin", "-d", "postgres", "-c", sql],
                       cwd=self.root, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def sidecars(self) -> str:
        return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.devtool.sidecar={self.project}"],
                              capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def external(tmp_path_factory, engine_ready):
    from conftest import DEMO

    root = tmp_path_factory.mktemp("external") / f"ext{uuid.uuid4().hex[:8]}"
    shutil.copytree(FIXTURES / "external", root)
    shutil.copytree(REPO / "templates" / "backend", root / "backend",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stack = ExternalStack(root, root.name, DEMO)
    stack.server_project = f"{root.name}srv"
    (root / ".env").write_text(f"SERVER_NETWORK={stack.server_project}_default\n")
    subprocess.run(["docker", "compose", "-p", stack.server_project, "-f", "server.yml", "up", "-d", "--wait"],
                   cwd=root, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    try:
        upgraded = stack.devtool("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        stack.psql("INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'Name ' || g "
                   "FROM generate_series(1, 200) g")
        yield stack
    finally:
        stack.down()
        subprocess.run(["docker", "compose", "-p", stack.server_project, "-f", "server.yml", "down", "-v", "-t", "1"],
                       cwd=root, capture_output=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def without_createdb(external):
    external.admin("ALTER ROLE app NOCREATEDB")
    yield external
    external.admin("ALTER ROLE app CREATEDB")


def _drop_name(stack) -> None:
    user = stack.root / "backend/app/models/user.py"
    user.write_text(user.read_text().replace("    name = db.Column(db.String(255))\n", ""))


def _columns(stack) -> list[str]:
    return stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' "
                      "ORDER BY 1").split()


def test_copy_snapshot_restore_and_migrate_on_an_outside_server(external):
    before = fingerprint(external)
    taken = external.devtool("snapshot", "outside", "--json")
    assert taken.returncode == 0, taken.stderr
    meta = json.loads(taken.stdout)
    assert meta["kind"] == "copy" and meta["db_service"] is None
    assert meta["databases"][0]["database"]["host"] == "extpg"
    external.psql("DELETE FROM users WHERE id > 100")
    assert external.devtool("restore", "outside").returncode == 0
    assert fingerprint(external) == before
    assert external.devtool("snapshot", "delete", "outside").returncode == 0


def test_without_createdb_the_snapshot_is_a_pg_dump_beside_the_backend(without_createdb):
    s = without_createdb
    before = fingerprint(s)
    taken = s.devtool("-v", "snapshot", "dumped", "--json")
    assert taken.returncode == 0, taken.stderr
    assert "permission denied to create database; taking a pg_dump instead" in taken.stderr
    assert json.loads(taken.stdout)["kind"] == "dump"
    s.psql("DELETE FROM users WHERE id % 2 = 0; CREATE TABLE scratch (x int)")
    restored = s.devtool("-v", "restore", "dumped")
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(s) == before
    for result in (taken, restored):
        assert SECRET not in result.stdout + result.stderr
    assert s.sidecars() == ""  # the throw-away container is gone
    assert s.devtool("snapshot", "delete", "dumped").returncode == 0


def test_when_no_snapshot_can_be_taken_nothing_destructive_is_applied(without_createdb):
    s = without_createdb
    no_tools = {"DEVTOOL_SNAPSHOT_IMAGE": "devtool-no-such-image:1"}
    _drop_name(s)  # the module's last test: the stack goes afterwards
    refused = s.devtool("migrate", "drop name", "--yes", env=no_tools)
    assert refused.returncode == 12, refused.stdout + refused.stderr
    message = refused.stderr
    assert "No snapshot before the destructive change, so it was not applied" in message
    assert "permission denied to create database" in message and "devtool-no-such-image:1" in message
    assert "--no-snapshot" in message and "db_service" not in message
    (kept,) = [p for p in (s.root / "backend/migrations/versions").glob("*drop_name*.py")]
    assert str(kept) in message
    assert "name" in _columns(s)

    applied = s.devtool("migrate", "drop name", "--yes", "--no-snapshot", env=no_tools)
    assert applied.returncode == 0, applied.stderr
    assert "No snapshot before the destructive change (--no-snapshot)" in applied.stderr
    assert "name" not in _columns(s)
    assert [p for p in (s.root / "backend/migrations/versions").glob("*drop_name*.py")] == [kept]
