"""Issue 14 §3: two backends in one compose file (tests/fixtures/two_backends: `api` and `admin`, each its own
database in one Postgres). Snapshots belong to a service and its database: `--latest` and `restore NAME` never
cross them, and a snapshot is never restored into a database it was not taken from."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from conftest import DEMO, FIXTURES, REPO, Stack

pytestmark = pytest.mark.docker


class TwoBackends(Stack):
    def sql(self, database: str, sql: str) -> str:
        result = self.compose("exec", "-T", "db", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "devtool",
                              "-d", database, "-c", sql)
        return result.stdout.strip()

    def emails(self, database: str) -> list[str]:
        return self.sql(database, "SELECT email FROM users ORDER BY email").split()

    def meta_file(self, name: str):
        (found,) = (self.root.parent / "state").rglob(f"snapshots/{name}.json")
        return found


@pytest.fixture(scope="module")
def two(tmp_path_factory, engine_ready):
    root = tmp_path_factory.mktemp("two") / f"two{uuid.uuid4().hex[:8]}"
    shutil.copytree(FIXTURES / "two_backends", root)
    for service in ("api", "admin"):
        shutil.copytree(REPO / "templates" / "backend", root / service,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stack = TwoBackends(root, root.name, DEMO)
    stack.env = {"XDG_STATE_HOME": str(root.parent / "state")}
    try:
        for service in ("api", "admin"):
            upgraded = stack.devtool("--service", service, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            stack.sql(service, f"INSERT INTO users (email) VALUES ('{service}-1@example.com'), "
                               f"('{service}-2@example.com')")
        yield stack
    finally:
        stack.down()


def test_latest_and_names_never_cross_services(two):
    assert two.devtool("--service", "api", "snapshot", "api-snap").returncode == 0
    assert two.devtool("--service", "admin", "snapshot", "admin-snap").returncode == 0  # the newest of all
    two.sql("api", "DELETE FROM users")
    two.sql("admin", "DELETE FROM users WHERE email LIKE '%-2@%'")

    restored = two.devtool("--service", "api", "restore", "--latest")
    assert restored.returncode == 0, restored.stderr
    assert "Restored api-snap" in restored.stdout
    assert two.emails("api") == ["api-1@example.com", "api-2@example.com"]
    assert two.emails("admin") == ["admin-1@example.com"]  # untouched

    crossed = two.devtool("--service", "api", "restore", "admin-snap")
    assert crossed.returncode == 12
    assert "Snapshot admin-snap belongs to service admin (database admin); this command works on service api: " \
           "restoring it here is refused." in crossed.stderr
    assert "devtool --service admin" in crossed.stderr
    assert two.emails("api") == ["api-1@example.com", "api-2@example.com"]

    assert two.devtool("--service", "admin", "restore", "--latest").returncode == 0
    assert two.emails("admin") == ["admin-1@example.com", "admin-2@example.com"]

    listed = json.loads(two.devtool("--service", "api", "snapshot", "list", "--json").stdout)
    assert {(s["name"], s["service"], s["database"]) for s in listed} == {("api-snap", "api", "api"),
                                                                          ("admin-snap", "admin", "admin")}
    # pruning one service's snapshots leaves the other's
    assert two.devtool("--service", "api", "snapshot", "prune", "--keep", "0").returncode == 0
    listed = json.loads(two.devtool("--service", "api", "snapshot", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["admin-snap"]
    nothing = two.devtool("--service", "api", "restore", "--latest")
    assert nothing.returncode == 12
    assert "No snapshot of service api" in nothing.stderr and "never restore into api" in nothing.stderr


@pytest.mark.parametrize("kind", ["copy", "dump"])
def test_a_snapshot_is_never_restored_into_another_database(two, kind, tmp_path):
    """The service's database changed since the snapshot (its DATABASE_URL now names another one)."""
    name = f"moved-{kind}"
    assert two.devtool("--service", "api", "snapshot", name).returncode == 0
    if kind == "dump":  # the same snapshot as a file brought back in
        assert two.devtool("--service", "api", "snapshot", "export", name, str(tmp_path / "f.dump")).returncode == 0
        assert two.devtool("--service", "api", "snapshot", "delete", name).returncode == 0
        assert two.devtool("--service", "api", "snapshot", "import", str(tmp_path / "f.dump"), name).returncode == 0
    meta_file = two.meta_file(name)
    meta = json.loads(meta_file.read_text())
    assert meta["kind"] == kind
    meta["databases"][0]["database"]["name"] = "api_before_the_move"
    meta_file.write_text(json.dumps(meta))
    two.sql("api", "DELETE FROM users WHERE email LIKE 'api-2%'")

    refused = two.devtool("--service", "api", "restore", name)
    assert refused.returncode == 12, refused.stderr
    assert "taken from database api_before_the_move on db:5432" in refused.stderr
    assert "uses api on db:5432: restoring it there is refused" in refused.stderr
    assert two.emails("api") == ["api-1@example.com"]  # nothing changed
