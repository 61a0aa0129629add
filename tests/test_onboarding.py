"""devtool setup (issue 3 §2) and Ctrl-C during an upgrade (issue 3 §7), on the real engine."""

import os
import signal
import subprocess

import pytest

from conftest import DEVTOOL, checkout_env, wait_for

pytestmark = pytest.mark.docker


def test_setup_from_fresh_copy_is_idempotent(make_stack):
    s = make_stack()
    first = s.devtool("setup")
    assert first.returncode == 0, first.stderr
    assert "Ready:" in first.stdout and "users" in s.tables()
    head = s.db_revision()
    again = s.devtool("setup")
    assert again.returncode == 0, again.stderr
    assert "0 revision(s) applied" in again.stdout and s.db_revision() == head


def test_setup_stops_at_first_problem_with_its_real_cause(make_stack):
    """The failure as `devtool up` reports it (which service, its exit code, its logs), not a doctor line that
    would stand in for it."""
    s = make_stack()
    compose = s.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        "    image: devtool-backend:dev\n", "    image: devtool-backend:dev\n"
                                         "    command: [\"sh\", \"-c\", \"echo 'cannot start: no config' >&2; exit 3\"]\n"))
    result = s.devtool("setup")
    assert result.returncode == 6
    assert [line for line in result.stderr.splitlines() if line.startswith("✗")] == [
        "✗ Service backend exited with code 3."]
    assert "cannot start: no config" in result.stderr  # its last log lines, as `devtool up` shows them
    assert "devtool up" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_during_upgrade_leaves_database_consistent(stack):
    before = stack.db_revision()
    stack.write_revision("5104000000a1", before,
                         "    op.create_table('slow', sa.Column('id', sa.Integer(), primary_key=True))\n"
                         "    op.execute('SELECT pg_sleep(3)')", "slow one")
    run = subprocess.Popen([*DEVTOOL, "db", "upgrade"], cwd=stack.root, env=checkout_env({**os.environ, "NO_COLOR": "1"}),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
    wait_for(lambda: stack.psql(sleeping) == "1", timeout=60, what="the upgrade to be running")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and "Interrupted" in err and "Traceback" not in err
    wait_for(lambda: stack.psql(sleeping) == "0", timeout=60, what="the upgrade in the container to end")
    revision, tables = stack.db_revision(), stack.tables()
    assert (revision, "slow" in tables) in ((before, False), ("5104000000a1", True))
