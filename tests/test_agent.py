"""devtool's agent in a real container (issue 8, issue 14 §8): sent once per version and only when missing,
never run from a copy somebody else could have written, and never applying further than devtool watches."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import DEVTOOL, checkout_env, wait_for

pytestmark = pytest.mark.docker

SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"


def _agent_copies(stack) -> list[str]:
    listed = stack.compose("exec", "-T", "backend", "sh", "-c", "ls -d /tmp/devtool-agent-* 2>/dev/null || true")
    return listed.stdout.split()


def test_agent_is_sent_once_and_an_untrusted_copy_is_never_run(stack):
    (first,) = _agent_copies(stack)  # the stack fixture ran `devtool db upgrade`
    assert stack.devtool("db", "current").returncode == 0
    assert _agent_copies(stack) == [first]  # already there: not sent again

    # Somebody else's copy of the same version, sorted first and writable by all: it must be skipped.
    agent_id = first.split("-")[2]
    fake = f"/tmp/devtool-agent-{agent_id}-0000aaaa"
    script = (f"mkdir -p {fake}/devtool_agent && cp -r {first}/devtool_agent/. {fake}/devtool_agent/ && "
              f"echo 'def main(r):\n    open(\"/tmp/pwned\", \"w\").write(\"x\")' > {fake}/devtool_agent/main.py && "
              f"touch {fake}/complete && chmod 777 {fake}")
    stack.compose("exec", "-T", "backend", "sh", "-c", script)
    result = stack.devtool("db", "current")
    assert result.returncode == 0, result.stderr
    assert stack.compose("exec", "-T", "backend", "test", "-e", "/tmp/pwned", check=False).returncode == 1

    # Its own copy removed (a new container, a cleaned /tmp): sent again, then used.
    stack.compose("exec", "-T", "backend", "rm", "-rf", first)
    result = stack.devtool("status", "--json")
    assert result.returncode == 0, result.stderr
    assert len([c for c in _agent_copies(stack) if c != fake]) == 1


@pytest.mark.parametrize("how", ["killed", "ctrl-c"])
def test_devtool_going_away_stops_the_agent_at_the_next_revision_boundary(stack, how):
    """Three pending revisions, the first one slow: devtool is killed (or interrupted) while it runs. The
    first commits or rolls back whole; the second and third never start."""
    base = stack.db_revision()
    stack.write_revision("a10000000001", base, "    op.create_table('slow', sa.Column('id', sa.Integer(), "
                                               "primary_key=True))\n    op.execute('SELECT pg_sleep(3)')", "slow")
    stack.write_revision("a10000000002", "a10000000001",
                         "    op.create_table('second', sa.Column('id', sa.Integer(), primary_key=True))", "second")
    stack.write_revision("a10000000003", "a10000000002",
                         "    op.create_table('third', sa.Column('id', sa.Integer(), primary_key=True))", "third")
    run = subprocess.Popen([*DEVTOOL, "setup"], cwd=stack.root, env=checkout_env({**os.environ, "NO_COLOR": "1"}),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a shell
    wait_for(lambda: stack.psql(SLEEPING) == "1", timeout=120, what="the slow revision to be running")
    run.send_signal(signal.SIGKILL if how == "killed" else signal.SIGINT)
    _, err = run.communicate(timeout=60)
    if how == "ctrl-c":
        assert run.returncode == 130 and "Traceback" not in err, err
        assert ("Stopped because devtool was interrupted: a10000000001 applied, nothing after it; a10000000002 "
                "(second) was not started.") in err
    wait_for(lambda: stack.psql(SLEEPING) == "0", timeout=60, what="the slow revision to end")
    agents = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done "
              "| grep -c '[d]evtool_agent.main import main' || true")
    wait_for(lambda: stack.compose("exec", "-T", "backend", "sh", "-c", agents).stdout.strip() == "0",
             timeout=30, what="the agent process to exit")
    assert stack.db_revision() in (base, "a10000000001")
    assert not {"second", "third"} & stack.tables()
