"""devtool migrate and devtool db against a real engine and a real Postgres (issue 2, points 4, 6, 7a-d).

The first two tests run on both stacks (conftest.LAYOUTS): the demo stack and the legacy fixture.
"""

import os
import subprocess

import pytest

from conftest import DEVTOOL, HOST_GID, HOST_UID, POSTS_MODEL, checkout_env

pytestmark = pytest.mark.docker


def test_add_model_then_migrate_creates_table_and_host_owned_revision(make_stack, layout):
    """Demo: Post in app/models/post.py, imported in init_app. Legacy: Invoice appended to service/models.py,
    loaded through a blueprint, migrations nested in db/migrations. Each stack starts stopped."""
    s = make_stack(layout=layout)
    subprocess.run(["chown", "-R", f"{HOST_UID}:{HOST_GID}", str(s.root)], check=True)
    s.add_test_model()
    message, table = layout.test_model_message, layout.test_model_table

    result = s.devtool("migrate", message)

    assert result.returncode == 0, result.stderr
    assert table in s.tables()
    new = [p for p in s.versions() if message.replace(" ", "_") in p.name]
    assert len(new) == 1
    assert f'"""{message}' in new[0].read_text()
    assert f"down_revision = '{layout.initial}'" in new[0].read_text()
    assert (new[0].stat().st_uid, new[0].stat().st_gid) == (HOST_UID, HOST_GID)
    revision_id = new[0].name.split("_")[0]
    assert s.db_revision() == revision_id  # current == head
    assert revision_id in result.stdout and "add table" in result.stdout and str(new[0]) in result.stderr + result.stdout
    # the layout's migrations folder is the only one: none made where Flask-Migrate puts it by default
    assert list(s.root.rglob("migrations")) == [s.migrations]
    assert not (s.backend_src / "migrations").exists() or s.backend_src / "migrations" == s.migrations

    again = s.devtool("migrate", "nothing changed")
    assert again.returncode == 0, again.stderr
    assert "No schema changes" in again.stdout


def test_second_run_without_changes_writes_nothing(stack):
    before = stack.versions()
    result = stack.devtool("migrate", "nothing changed")
    assert result.returncode == 0, result.stderr
    assert "No schema changes" in result.stdout
    assert stack.versions() == before


def test_messages_are_stored_literally_and_never_executed(stack):
    marker = stack.root / "pwned"
    messages = [
        "it's a \"quoted\" message",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"one; touch {marker}",
        "first line\nsecond line",
        "ajouté: café ünïcödé 数据",
    ]
    for message in messages:
        before = set(stack.versions())
        result = stack.devtool("db", "revision", "-m", message)
        assert result.returncode == 0, (message, result.stderr)
        (new,) = set(stack.versions()) - before
        assert message in new.read_text(encoding="utf-8"), message
    # the agent path (devtool migrate) too
    stack.add_model("post", POSTS_MODEL)
    result = stack.devtool("migrate", f"posts $(touch {marker}); `id` ünï")
    assert result.returncode == 0, result.stderr
    assert any(f"posts $(touch {marker}); `id` ünï" in p.read_text(encoding="utf-8") for p in stack.versions())
    assert not marker.exists()
    assert stack.compose("exec", "-T", "backend", "test", "-e", str(marker), check=False).returncode == 1


def test_db_history_current_downgrade_upgrade_round_trip(stack_at_head):
    s, layout = stack_at_head, stack_at_head.layout
    table = layout.test_model_table
    s.add_test_model()
    assert s.devtool("migrate", layout.test_model_message).returncode == 0
    head = s.db_revision()
    assert head != layout.initial

    history = s.devtool("db", "history")
    assert history.returncode == 0, history.stderr
    assert layout.test_model_message in history.stdout and layout.initial_message in history.stdout
    current = s.devtool("db", "current")
    assert current.returncode == 0 and head in current.stdout

    down = s.devtool("db", "downgrade", "-1")
    assert down.returncode == 0, down.stderr
    assert table not in s.tables() and s.db_revision() != head and s.db_revision() == layout.initial
    assert layout.initial in s.devtool("db", "current").stdout

    up = s.devtool("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert table in s.tables() and s.db_revision() == head


def test_db_passes_exit_code_through(stack):
    result = stack.devtool("db", "downgrade", "doesnotexist")
    assert result.returncode not in (0, 2)  # flask's own failure, not a devtool usage error
    assert "Traceback" not in result.stderr


def test_no_upgrade_writes_revision_only(stack):
    stack.add_model("post", POSTS_MODEL)
    before = stack.db_revision()
    result = stack.devtool("migrate", "add posts", "--no-upgrade", "--json")
    assert result.returncode == 0, result.stderr
    assert "posts" not in stack.tables() and stack.db_revision() == before
    assert any("add_posts" in p.name for p in stack.versions())
    import json
    from pathlib import Path

    report = json.loads(result.stdout)  # stdout is the JSON document alone
    assert report["ok"] is True and report["status"] == "generated"
    assert [(c["label"], c["table"], c["risk"]) for c in report["changes"]] == [("add table", "posts", "safe")]
    assert Path(report["revision"]["host_path"]).is_file() and report["current_after"] == [before]

    failed = stack.devtool("--service", "nosuch", "migrate", "add posts", "--json")
    assert failed.returncode == 5 and json.loads(failed.stdout)["ok"] is False


def test_up_status_down(make_stack):
    s = make_stack()
    up = s.devtool("up")
    assert up.returncode == 0, up.stderr
    assert "db healthy" in up.stdout
    status = s.devtool("status", "--json")
    assert status.returncode == 0, status.stderr
    import json

    report = json.loads(status.stdout)
    plain = s.devtool("status")  # NO_COLOR and no TTY: no escape sequences
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout + plain.stderr
    # typer finds the shell from devtool's parent process: run it from bash, as a user does (not exec'd by it)
    completion = subprocess.run(["bash", "-c", '"$@"; exit $?', "bash", *DEVTOOL, "--show-completion"], cwd=s.root,
                                env=checkout_env({**os.environ, **s.env}), capture_output=True, text=True, timeout=60)
    assert completion.returncode == 0 and "complete" in completion.stdout, completion.stderr
    assert report["backend"] == "backend"
    assert {x["service"]: x["state"] for x in report["services"]} == {"backend": "running", "db": "running"}
    down = s.devtool("down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert s.compose("ps", "-q").stdout.strip() == ""


def test_shell_runs_without_tty(stack):
    result = stack.devtool("shell", input="echo inside-$((6*7)); test -f /app/app/__init__.py && echo app-here\n")
    assert result.returncode == 0, result.stderr
    assert "inside-42" in result.stdout and "app-here" in result.stdout
    db = stack.devtool("shell", "db", input="pg_isready -q && echo db-ready\n")
    assert "db-ready" in db.stdout
