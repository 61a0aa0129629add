"""Snapshots (issue 12, issue 14 §4) on the real engine and a real Postgres: copies inside the server and
restores by renaming give back every row and sequence, the backend keeps working, housekeeping, files that
travel between machines, restores at a revision the checkout lacks, `setup --from`, `down --volumes`.

One demo stack is shared by the module (each test leaves it as it found it: users emptied, its own snapshots
deleted); the tests run in file order, and the last one removes the volume."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import fingerprint

pytestmark = pytest.mark.docker

FIXTURE_SQL = """
CREATE TABLE items (id bigserial PRIMARY KEY, user_id int REFERENCES users(id), label text NOT NULL,
                    payload jsonb, price numeric(12, 2), blob bytea, created timestamptz DEFAULT now());
CREATE SEQUENCE tickets START 100 INCREMENT 7;
INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'Name ' || g FROM generate_series(1, 300) g;
INSERT INTO items (user_id, label, payload, price, blob)
  SELECT 1 + g % 300, 'item ' || g || ' – ünïcode ✓', jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g)),
         g * 1.25, decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;
SELECT nextval('tickets'), nextval('tickets');
"""
CLEAN_SQL = "DROP TABLE IF EXISTS items, scratch; DROP SEQUENCE IF EXISTS tickets; TRUNCATE users RESTART IDENTITY"


def mutate(stack) -> None:
    stack.psql("DELETE FROM items WHERE id % 3 = 0; UPDATE users SET name = 'changed' WHERE id < 50; "
               "INSERT INTO users (email) VALUES ('late@example.com'); SELECT nextval('tickets'); "
               "CREATE TABLE scratch (x int); INSERT INTO scratch VALUES (1)")


def names(stack) -> list[str]:
    return [s["name"] for s in json.loads(stack.devtool("snapshot", "list", "--json").stdout)]


def copies_on_server(stack) -> list[str]:
    return stack.psql("SELECT datname FROM pg_database WHERE datname LIKE 'devtool\\_%' ORDER BY 1").split()


@pytest.fixture
def data(module_stack):
    """The shared stack with rows in three tables and a sequence; emptied afterwards, its snapshots deleted."""
    s = module_stack
    s.psql(FIXTURE_SQL)
    yield s
    s.psql(CLEAN_SQL)
    assert s.devtool("snapshot", "prune", "--keep", "0").returncode == 0


def test_copy_snapshot_and_restore_give_back_every_row_and_sequence(data):
    before = fingerprint(data)
    taken = data.devtool("snapshot", "before", "--json")
    assert taken.returncode == 0, taken.stderr
    meta = json.loads(taken.stdout)
    assert meta["kind"] == "copy" and meta["service"] == "backend" and meta["database"] == "devtool"
    assert meta["revision"] == [data.layout.initial] and meta["size"] > 0
    (copy,) = [d["copy"] for d in meta["databases"]]
    assert copies_on_server(data) == [copy]

    mutate(data)
    assert fingerprint(data) != before
    restored = data.devtool("restore", "before")
    assert restored.returncode == 0, restored.stderr
    assert "Restored before (copy): database devtool back at revision" in restored.stdout
    assert fingerprint(data) == before
    assert "scratch" not in data.tables()

    # the snapshot stays for the next restore, and no half-made database is left on the server
    mutate(data)
    assert data.devtool("restore", "--latest").returncode == 0
    assert fingerprint(data) == before
    assert copies_on_server(data) == [copy]


POOL_CLIENT = """
import sys
from app import create_app
from app.models import db
app = create_app()
with app.app_context():
    for line in sys.stdin:
        try:
            print("ok", db.session.execute(db.text("SELECT count(*) FROM users")).scalar(), flush=True)
        except Exception as exc:
            print("error", str(exc).splitlines()[0], flush=True)
        db.session.remove()
"""


def test_backend_keeps_working_across_snapshot_and_restore(data):
    """A long-running process with the app's engine and a pooled connection: the snapshot closes that
    connection (the copy needs it closed) and the restore swaps the database under it; every query works."""
    client = subprocess.Popen(["docker", "compose", "-p", data.project, "exec", "-T", "-e", "PYTHONPATH=/app",
                               "backend", "python", "-c", POOL_CLIENT], cwd=data.root, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def query() -> str:
        client.stdin.write("count\n")
        client.stdin.flush()
        return client.stdout.readline().strip()

    try:
        assert query() == "ok 300"
        taken = data.devtool("snapshot", "pool")
        assert taken.returncode == 0, taken.stderr
        assert re.search(r"Closed [1-9]\d* connection\(s\) to devtool for the copy", taken.stderr)
        assert query() == "ok 300"
        data.psql("INSERT INTO users (email) VALUES ('new@example.com')")
        assert query() == "ok 301"
        assert data.devtool("restore", "pool").returncode == 0
        assert query() == "ok 300"
    finally:
        client.stdin.close()
        client.wait(timeout=30)


def test_list_delete_and_prune(data):
    for name in ("one", "two", "three"):
        assert data.devtool("snapshot", name).returncode == 0
    listed = json.loads(data.devtool("snapshot", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["three", "two", "one"]
    assert {s["kind"] for s in listed} == {"copy"} and all(s["size"] > 0 and s["age_seconds"] >= 0 for s in listed)
    table = data.devtool("snapshot", "list")
    assert table.returncode == 0
    assert "Kind" in table.stdout and "Age" in table.stdout and "s ago" in table.stdout and "MB" in table.stdout

    deleted = data.devtool("snapshot", "delete", "two")
    assert deleted.returncode == 0 and "Snapshot two deleted." in deleted.stdout
    assert names(data) == ["three", "one"] and len(copies_on_server(data)) == 2
    missing = data.devtool("snapshot", "delete", "two")
    assert missing.returncode == 12 and "No snapshot two" in missing.stderr

    pruned = data.devtool("snapshot", "prune", "--keep", "1", "--json")
    assert pruned.returncode == 0 and [s["name"] for s in json.loads(pruned.stdout)] == ["one"]
    assert names(data) == ["three"] and len(copies_on_server(data)) == 1

    # the automatic rule: a snapshot_keep of 2 keeps the newest two after each take
    for name in ("four", "five"):
        assert data.devtool("snapshot", name, env={"DEVTOOL_SNAPSHOT_KEEP": "2"}).returncode == 0
    assert names(data) == ["five", "four"] and len(copies_on_server(data)) == 2


def test_destructive_migration_takes_a_copy_snapshot(data):
    rows = data.psql("SELECT id, email, name FROM users ORDER BY id")
    user = data.backend_src / "app/models/user.py"
    original = user.read_text()
    try:
        user.write_text(original.replace("    name = db.Column(db.String(255))\n", ""))
        result = data.devtool("migrate", "drop name", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        snapshot = json.loads(result.stdout)["snapshot"]
        assert snapshot["kind"] == "copy" and snapshot["reason"] == "before migration"
        assert snapshot["revision"] == [data.layout.initial]
        restored = data.devtool("restore", "--latest")
        assert restored.returncode == 0, restored.stderr
        assert data.psql("SELECT id, email, name FROM users ORDER BY id") == rows
        assert data.db_revision() == data.layout.initial
    finally:
        user.write_text(original)
        for path in data.versions():
            if "drop_name" in path.name:
                path.unlink()


def test_restore_works_at_a_revision_the_checkout_lacks(data):
    """Issue 14 §4: the database at a revision no file here has (a branch switched away from it)."""
    before = fingerprint(data)
    assert data.devtool("snapshot", "good").returncode == 0
    data.psql("UPDATE alembic_version SET version_num = 'feedface0001'; DELETE FROM items")
    status = data.devtool("db", "current")
    assert status.returncode != 0  # Alembic itself cannot place the database

    orphan = data.devtool("snapshot", "at-orphan", "--json")
    assert orphan.returncode == 0, orphan.stderr
    assert json.loads(orphan.stdout)["revision"] == ["feedface0001"]
    restored = data.devtool("restore", "good")
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(data) == before and data.db_revision() == data.layout.initial
    assert data.devtool("restore", "at-orphan").returncode == 0  # and back again, at any revision
    assert data.db_revision() == "feedface0001"
    assert data.devtool("restore", "good").returncode == 0


def test_export_import_restore_round_trip(data, tmp_path):
    before = fingerprint(data)
    assert data.devtool("snapshot", "shared").returncode == 0
    exported = data.devtool("snapshot", "export", "shared", str(tmp_path / "shared.dump"), "--json")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "shared.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    again = data.devtool("snapshot", "export", "shared", str(tmp_path / "shared.dump"))
    assert again.returncode == 2 and "--force" in again.stderr

    imported = data.devtool("snapshot", "import", str(tmp_path / "shared.dump"), "teammate", "--json")
    assert imported.returncode == 0, imported.stderr
    meta = json.loads(imported.stdout)
    assert meta["kind"] == "dump" and meta["revision"] == [data.layout.initial]
    assert meta["origin"]["name"] == "shared" and meta["origin"]["devtool"]  # read from inside the file
    assert meta["origin"]["server_version"].startswith("15")

    mutate(data)
    restored = data.devtool("restore", "teammate")
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(data) == before and "scratch" not in data.tables()


def test_import_refuses_what_it_cannot_restore_and_keeps_nothing(data, tmp_path):
    # a dump at a revision this checkout lacks
    data.psql("UPDATE alembic_version SET version_num = 'feedface0002'")
    try:
        assert data.devtool("snapshot", "elsewhere").returncode == 0
        assert data.devtool("snapshot", "export", "elsewhere", str(tmp_path / "elsewhere.dump")).returncode == 0
    finally:
        data.psql(f"UPDATE alembic_version SET version_num = '{data.layout.initial}'")
    kept = names(data)
    refused = data.devtool("snapshot", "import", str(tmp_path / "elsewhere.dump"))
    assert refused.returncode == 12
    assert "at revision feedface0002, which this checkout's migrations do not have" in refused.stderr
    assert "Check out the branch" in refused.stderr
    assert names(data) == kept

    # a file from a newer devtool: its metadata (the copy's COMMENT) travels inside the export
    (copy,) = [d["copy"] for s in json.loads(data.devtool("snapshot", "list", "--json").stdout)
               if s["name"] == "elsewhere" for d in s["databases"]]
    data.psql(f"""COMMENT ON DATABASE {copy} IS 'devtool-snapshot {{"format": 99, "devtool": "9.0"}}'""")
    assert data.devtool("snapshot", "export", "elsewhere", str(tmp_path / "newer.dump")).returncode == 0
    newer = data.devtool("snapshot", "import", str(tmp_path / "newer.dump"))
    assert newer.returncode == 12 and "exported by a newer devtool (9.0" in newer.stderr

    # not a dump at all
    (tmp_path / "notes.dump").write_text("just text\n")
    garbage = data.devtool("snapshot", "import", str(tmp_path / "notes.dump"))
    assert garbage.returncode == 12 and "is not a dump pg_restore can read" in garbage.stderr
    assert "Traceback" not in garbage.stderr
    assert names(data) == kept


def test_setup_from_a_teammates_file(data, make_stack, tmp_path):
    """A newcomer's first day: a fresh clone, one command, the teammate's data, migrated to head."""
    before = fingerprint(data)
    assert data.devtool("snapshot", "for-newcomer").returncode == 0
    assert data.devtool("snapshot", "export", "for-newcomer", str(tmp_path / "team.dump")).returncode == 0

    newcomer = make_stack()
    result = newcomer.devtool("setup", "--from", str(tmp_path / "team.dump"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Loaded team.dump" in result.stdout
    assert fingerprint(newcomer) == before
    again = newcomer.devtool("setup", "--from", str(tmp_path / "team.dump"))  # idempotent: same file, same data
    assert again.returncode == 0, again.stderr
    assert "already imported" in again.stderr and fingerprint(newcomer) == before


def test_down_volumes_says_it_deletes_the_copies_and_forgets_them(module_stack):
    """Last in the module: the shared stack's volume goes."""
    s = module_stack
    assert s.devtool("snapshot", "kept-in-volume").returncode == 0
    result = s.devtool("down", "--volumes")
    assert result.returncode == 0, result.stderr
    assert "deletes the database volume, and with it 1 snapshot(s) kept inside the database server: kept-in-volume" \
        in result.stderr
    assert names(s) == []
