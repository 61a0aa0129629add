"""`devtool check` on the real engine (issue 5 §6), snapshot retention (issue 3 §5), and parity of devtool's
fast path with the manual commands: same revision content, same database state (issue 4 §4)."""

import json
import re

import pytest

from conftest import POSTS_MODEL

pytestmark = pytest.mark.docker


def test_check_exit_codes_and_json(stack):
    ok = stack.devtool("check", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    stack.add_model("post", POSTS_MODEL)
    changed = stack.devtool("check", "--json")
    assert changed.returncode == 13
    assert json.loads(changed.stdout)["model_changes"] == [{"kind": "add_table", "name": "posts", "bind": None}]

    assert stack.devtool("migrate", "add posts").returncode == 0
    assert stack.devtool("db", "downgrade", "-1").returncode == 0
    behind = stack.devtool("check")
    assert behind.returncode == 14 and "database behind head by 1 revision" in behind.stderr

    assert stack.devtool("db", "upgrade").returncode == 0
    head = stack.db_revision()
    stack.write_revision("aaaa00000001", head, "    pass", "one")
    stack.write_revision("bbbb00000002", head, "    pass", "two")
    heads = stack.devtool("check")
    assert heads.returncode == 9 and "2 heads" in heads.stderr


def test_snapshot_retention(stack):
    for name in ("one", "two", "three"):
        assert stack.devtool("snapshot", name, env={"DEVTOOL_SNAPSHOT_KEEP": "2"}).returncode == 0
    listed = json.loads(stack.devtool("snapshot", "list", "--json").stdout)
    assert [m["name"] for m in listed] == ["three", "two"]


def _normalised_revision(path):
    text = path.read_text()
    revision = re.search(r"^revision = ['\"](\w+)", text, re.M).group(1)
    text = text.replace(revision, "REV")
    return re.sub(r"Create Date: .*", "Create Date: DATE", text)


def _schema(stack):
    dump = stack.compose("exec", "-T", "db", "pg_dump", "--schema-only", "-U", "devtool", "-d", "devtool").stdout
    return [line for line in dump.splitlines() if line.strip() and not line.startswith("--")
            and "restrict" not in line.lower()]


def test_fast_path_matches_the_manual_commands(make_stack):
    fast, manual = make_stack(), make_stack()
    for s in (fast, manual):
        assert s.devtool("db", "upgrade").returncode == 0
        s.add_model("post", POSTS_MODEL)
    assert fast.devtool("migrate", "add posts").returncode == 0
    manual.compose("exec", "-T", "backend", "flask", "db", "migrate", "-m", "add posts")
    manual.compose("exec", "-T", "backend", "flask", "db", "upgrade")

    (fast_file,) = [p for p in fast.versions() if "add_posts" in p.name]
    (manual_file,) = [p for p in manual.versions() if "add_posts" in p.name]
    assert _normalised_revision(fast_file) == _normalised_revision(manual_file)
    assert _schema(fast) == _schema(manual)
    assert fast.tables() == manual.tables() == {"alembic_version", "users", "posts"}
