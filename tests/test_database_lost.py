"""A database that goes away never hangs devtool (issue 16 §2), on the real engine: the db restarted and its
network cut in the middle of an upgrade, with short deadlines configured. devtool gives up in seconds, exits 29
with one line naming the revision and what was applied, and the migration lock does not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import pytest

from conftest import DEVTOOL, checkout_env, new_stack, wait_for

pytestmark = pytest.mark.docker

SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
SHORT = {"DEVTOOL_DB_CONNECT_TIMEOUT": "3", "DEVTOOL_DB_LOST_AFTER": "6"}


@pytest.fixture(scope="module")
def lost_stack(tmp_path_factory, engine_ready):
    stack = new_stack(tmp_path_factory.mktemp("lost"), f"lost{uuid.uuid4().hex[:8]}")
    result = stack.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    yield stack
    stack.down()


@pytest.fixture
def slow_revisions(lost_stack):
    """Two pending revisions, the first one sleeps 8 s; removed afterwards, the database put back."""
    stack = lost_stack
    base = stack.db_revision()
    first = stack.write_revision("d10000000001", base, "    op.create_table('slow', sa.Column('id', sa.Integer(), "
                                 "primary_key=True))\n    op.execute('SELECT pg_sleep(8)')", "slow")
    second = stack.write_revision("d10000000002", "d10000000001", "    op.create_table('second', sa.Column('id', "
                                  "sa.Integer(), primary_key=True))", "second")
    yield base
    first.unlink()
    second.unlink()
    wait_for(lambda: _answers(stack), timeout=120, what="the database to answer")
    stack.psql(f"DROP TABLE IF EXISTS slow, second; UPDATE alembic_version SET version_num = '{base}'")


def _answers(stack) -> bool:
    return stack.compose("exec", "-T", "db", "pg_isready", "-h", "localhost", check=False).returncode == 0


def _start(stack, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*DEVTOOL, *args], cwd=stack.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=checkout_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **SHORT}))


def test_db_restarted_mid_upgrade_names_the_revision_and_what_was_applied(lost_stack, slow_revisions):
    """`devtool migrate` applies the pending revisions; the db restarts during the first: exit 29, one line."""
    stack, base = lost_stack, slow_revisions
    run = _start(stack, "migrate", "nothing new")
    wait_for(lambda: stack.psql(SLEEPING) == "1", timeout=120, what="the slow revision to be running")
    stack.compose("restart", "-t", "1", "db")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 29, err
    assert "Lost the connection to the database (" in err
    assert ("while revision d10000000001 (slow) was being applied: the server rolls it back (unless its commit "
            "had reached it") in err and "nothing was applied" in err, err
    assert "Traceback" not in err
    wait_for(lambda: _answers(stack), timeout=120, what="the database to answer")
    assert stack.db_revision() == base and not {"slow", "second"} & stack.tables()


def test_db_upgrade_through_flask_prints_one_line_when_the_db_restarts(lost_stack, slow_revisions):
    stack, base = lost_stack, slow_revisions
    run = _start(stack, "db", "upgrade")
    wait_for(lambda: stack.psql(SLEEPING) == "1", timeout=120, what="the slow revision to be running")
    stack.compose("restart", "-t", "1", "db")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 29, err
    assert "Lost the connection to the database during `flask db upgrade` (" in err
    assert "nothing was applied; a revision under way is rolled back by the server" in err
    assert "Traceback" not in err and len(err.splitlines()) < 10, err
    wait_for(lambda: _answers(stack), timeout=120, what="the database to answer")
    assert stack.db_revision() == base and not {"slow", "second"} & stack.tables()


def test_a_cut_network_gives_up_within_the_deadline_and_the_lock_goes(lost_stack, slow_revisions):
    """The db's network is disconnected while the first revision sleeps: devtool gives up after about
    db_lost_after (6 s) instead of waiting for the network, says so; once the network is back, the server has
    ended the session: no lock, nothing of the revision."""
    stack, base = lost_stack, slow_revisions
    network = f"{stack.project}_default"
    db = stack.compose("ps", "-q", "db").stdout.strip()
    run = _start(stack, "migrate", "nothing new")
    wait_for(lambda: stack.psql(SLEEPING) == "1", timeout=120, what="the slow revision to be running")
    subprocess.run(["docker", "network", "disconnect", network, db], check=True, capture_output=True)
    try:
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
        subprocess.run(["docker", "network", "connect", "--alias", "db", network, db], check=True,
                       capture_output=True)
    assert run.returncode == 29, err
    assert "Lost the connection to the database (" in err and "d10000000001 (slow)" in err
    assert "Traceback" not in err
    wait_for(lambda: stack.psql(LOCKS) == "0", timeout=60, what="the server to end the session and its lock")
    assert stack.db_revision() == base and not {"slow", "second"} & stack.tables()
