"""Ctrl-C means stop (issue 16 §1), on the real engine: SIGINT, SIGTERM, a closed terminal (SIGHUP) and a killed
devtool at controlled moments (while the app imports, during a slow revision, at the confirmation prompt); nothing
new is generated or applied after that moment, a revision under way commits whole, the message says which, and
the database is checked afterwards."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import DEVTOOL, FIXTURES, checkout_env, new_stack, wait_for

pytestmark = pytest.mark.docker

SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory, engine_ready):
    """The demo stack whose app can take a few seconds to import (tests/fixtures/faults/slow_import.py, slow
    while `slow_import` lies next to it)."""
    import uuid

    stack = new_stack(tmp_path_factory.mktemp("interrupts"), f"intr{uuid.uuid4().hex[:8]}")
    shutil.copy(FIXTURES / "faults" / "slow_import.py", stack.backend_src / "app" / "models" / "slow_import.py")
    stack.add_model("slow_import", (FIXTURES / "faults" / "slow_import.py").read_text())
    result = stack.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    yield stack
    stack.down()


def _as_from_a_shell() -> None:
    """SIGINT as a shell leaves it to the commands it starts (a pytest-xdist worker ignores it: so would they)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(stack, *args: str, **popen) -> subprocess.Popen:
    options = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True,
               "preexec_fn": _as_from_a_shell, **popen}
    return subprocess.Popen([*DEVTOOL, *args], cwd=stack.root, **options,
                            env=checkout_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_stop_while_the_app_imports_means_nothing_is_generated_or_applied(slow_stack, sig):
    """The app takes 4 s to import; the signal comes while it does. Nothing is generated or applied afterwards,
    and devtool says so (exit 130); killed, it says nothing but the database and the folder show the same."""
    stack = slow_stack
    models = stack.backend_src / "app" / "models"
    stack.add_test_model()  # a change autogenerate would write a revision for
    before = stack.snapshot()
    (models / "importing").unlink(missing_ok=True)
    (models / "slow_import").write_text("4")
    try:
        run = _start(stack, "migrate", "add posts")
        wait_for((models / "importing").exists, timeout=120, what="the app import to start")
        run.send_signal(getattr(signal, sig))
        out, err = run.communicate(timeout=120)
        if sig != "SIGKILL":
            assert run.returncode == 130, err
            assert ("Stopped because devtool was interrupted, before anything started (the app was loading): "
                    "nothing was generated or applied.") in err, err
            assert f"Stopping ({sig})" in err and "Traceback" not in err
        # killed: the agent sees its stdin end and stops just the same (it has 4 s of import left)
        agents = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done "
                  "| grep -c '[d]evtool_agent' || true")
        wait_for(lambda: stack.compose("exec", "-T", "backend", "sh", "-c", agents).stdout.strip() in ("0", "1"),
                 timeout=60, what="the request's agent process to exit")  # 1: the warm server itself
        assert stack.snapshot() == before and "posts" not in stack.tables()
    finally:
        (models / "slow_import").unlink(missing_ok=True)
        (models / "post.py").unlink(missing_ok=True)
        init = models / "__init__.py"
        init.write_text(init.read_text().replace("    from . import post  # noqa: F401\n", ""))


def test_sigterm_during_a_slow_revision_lets_it_commit_and_starts_nothing_after_it(slow_stack):
    stack = slow_stack
    base = stack.db_revision()
    first = stack.write_revision("b10000000001", base, "    op.create_table('slow', sa.Column('id', sa.Integer(), "
                                 "primary_key=True))\n    op.execute('SELECT pg_sleep(3)')", "slow")
    second = stack.write_revision("b10000000002", "b10000000001", "    op.create_table('second', sa.Column('id', "
                                  "sa.Integer(), primary_key=True))", "second")
    versions = [p for p in stack.versions() if p not in (first, second)]
    try:
        run = _start(stack, "migrate", "nothing new")
        wait_for(lambda: stack.psql(SLEEPING) == "1", timeout=120, what="the slow revision to be running")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 130, err
        assert ("Stopped because devtool was interrupted: b10000000001 applied, nothing after it; b10000000002 "
                "(second) was not started.") in err, err
        assert stack.db_revision() == "b10000000001"
        assert "slow" in stack.tables() and "second" not in stack.tables()
        assert [p for p in stack.versions() if p not in (first, second)] == versions  # nothing generated
    finally:
        first.unlink()
        second.unlink()
        stack.psql(f"DROP TABLE IF EXISTS slow, second; UPDATE alembic_version SET version_num = '{base}'")


def _read_until(fd: int, text: str, timeout: float) -> str:
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {text!r}; the terminal showed:\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")


READ_SYSCALL = {"x86_64": "0", "aarch64": "63"}  # read(2)


def _reading_stdin(pid: int) -> bool:
    """The process is in a read(2) of its stdin (Linux: /proc/PID/syscall starts with the call and its fd)."""
    import platform

    try:
        with open(f"/proc/{pid}/syscall") as handle:
            call = handle.read().split()
    except OSError:
        return False
    return call[:2] == [READ_SYSCALL.get(platform.machine(), "0"), "0x0"]


def test_ctrl_c_at_the_confirmation_prompt_exits_130_and_applies_nothing(slow_stack):
    """A pending revision drops a table: devtool asks on the terminal; Ctrl-C there exits 130, says nothing was
    applied, and the table is still there."""
    stack = slow_stack
    base = stack.db_revision()
    stack.psql("CREATE TABLE scratch (id integer)")
    drop = stack.write_revision("c10000000001", base, "    op.drop_table('scratch')", "drop scratch")
    main, terminal = pty.openpty()
    try:
        run = _start(stack, "migrate", "nothing new", stdin=terminal, stdout=terminal, stderr=terminal)
        os.close(terminal)
        shown = _read_until(main, "Apply it? [y/N]: ", timeout=180)
        # Blocked reading the answer: a signal that came between the prompt and the read would wait for the read.
        wait_for(lambda: _reading_stdin(run.pid), timeout=30, what="devtool to wait for the answer")
        run.send_signal(signal.SIGINT)  # what Ctrl-C on the terminal sends
        shown += _read_until(main, "Run again", timeout=60)
        assert run.wait(timeout=60) == 130, shown
        assert "Interrupted at the question: the migration was not applied. The database was not changed." in shown
        assert "Aborted!" not in shown and "Traceback" not in shown
        assert stack.db_revision() == base and "scratch" in stack.tables()
    finally:
        os.close(main)
        drop.unlink()
        stack.psql("DROP TABLE IF EXISTS scratch")
