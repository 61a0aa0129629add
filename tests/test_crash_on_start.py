"""A backend that crashes (issue 9 §1), on tests/fixtures/crash: every command that starts the stack gives the
answer `devtool up` gives (exit 6, the service's last log lines) and leaves nothing half-done, whether the backend
exits at once, is restarted again and again by its restart policy, or dies while a command runs in it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import FIXTURES, variant, wait_for

pytestmark = pytest.mark.docker

CRASH = variant("crash")
STACK_FAILED = 6


@pytest.fixture(scope="module")
def crashing(module_stacks):
    return module_stacks(CRASH)


def _use(stack, variant_file: str) -> None:
    shutil.copy(FIXTURES / "crash" / variant_file, stack.root / "docker-compose.override.yml")


def _answers_like_up(stack, result, what: str, log_line: str) -> None:
    assert result.returncode == STACK_FAILED, (result.returncode, result.stderr)
    assert f"Service backend {what}" in result.stderr, result.stderr
    assert log_line in result.stderr  # the service's own last log lines
    assert "toolkit/" not in result.stderr and "Does the container have Python" not in result.stderr


COMMANDS = [["migrate", "add posts"], ["check"], ["db", "current"], ["snapshot"], ["setup"], ["up"]]


def test_backend_that_exits_on_start(crashing):
    _use(crashing, "exits.yml")
    crashing.add_test_model()
    files = crashing.versions()
    for args in COMMANDS:
        result = crashing.devtool(*args)
        _answers_like_up(crashing, result, "exited with code 3", "RuntimeError: SECRET_KEY is not set")
    assert crashing.versions() == files
    assert "posts" not in crashing.tables()
    status = json.loads(crashing.devtool("status", "--json").stdout)  # status starts nothing: it shows the state
    assert {s["service"]: s["state"] for s in status["services"]}["backend"] == "exited"
    doctor = crashing.devtool("doctor")
    assert doctor.returncode == 15 and "backend: exited" in doctor.stdout


def test_backend_restarted_by_its_restart_policy(crashing):
    _use(crashing, "restarts.yml")
    for args in (["migrate", "add posts"], ["db", "current"]):
        result = crashing.devtool(*args)
        _answers_like_up(crashing, result, "keeps exiting", "RuntimeError: SECRET_KEY is not set")
        assert "restart" in result.stderr and "exited with code 0" not in result.stderr


def test_backend_that_dies_while_a_command_runs_in_it(crashing):
    _use(crashing, "dies-on-exec.yml")
    assert crashing.devtool("up").returncode == 0  # up and running until the app is loaded
    files = crashing.versions()
    for args in (["db", "current"], ["migrate", "add posts"]):
        crashing.compose("up", "-d", "--force-recreate", "backend")  # a fresh container that runs, for each
        result = crashing.devtool(*args)
        _answers_like_up(crashing, result, "exited with code 3 while devtool was using it",
                         "fatal: backend worker lost")
        assert "exit code 137" not in result.stderr and "was killed" not in result.stderr
    assert crashing.versions() == files and "posts" not in crashing.tables()


def _backend_state(stack) -> dict:
    """The backend container's State and RestartCount, as the engine reports them now."""
    ids = stack.compose("ps", "-aq", "backend").stdout.split()
    attrs = json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True).stdout)[0]
    return dict(attrs["State"], RestartCount=attrs["RestartCount"])


def _keeps_exiting(result, log_line: str = "RuntimeError: worker pool lost") -> None:
    assert result.returncode == STACK_FAILED, (result.returncode, result.stdout, result.stderr)
    assert "Service backend keeps exiting: its restart policy restarted it" in result.stderr, result.stderr
    assert log_line in result.stderr  # the crash, from the runs before the current one
    assert "devtool up --force" in result.stderr
    assert "Python" not in result.stderr and "Stack" not in result.stdout


def test_crash_loop_gives_the_same_answer_every_time(crashing):
    """Issue 16 §3: a backend under `restart: always` that serves for two seconds, then exits. Whether the engine
    shows it running (between two crashes) or restarting, every command says so, and `up --force` never says the
    stack is up; once the cause is fixed, `up --force` restarts it and the migration goes through."""
    _use(crashing, "loops.yml")
    crash = crashing.backend_src / "crash"
    crash.touch()
    if not (crashing.backend_src / "app" / "models" / "post.py").exists():
        crashing.add_test_model()  # when this test runs alone
    files = crashing.versions()
    # A fresh container: `up` watches a backend with a restart policy long enough to see it exit.
    _keeps_exiting(crashing.devtool("up", "--force"))
    for state in ("restarting", "running", "restarting", "running"):
        wait_for(lambda: _backend_state(crashing)["Restarting"] == (state == "restarting")
                 and _backend_state(crashing)["RestartCount"] > 0, timeout=90, what=f"the backend {state}")
        doctor = crashing.devtool("doctor")
        assert doctor.returncode == 15, (doctor.stdout, doctor.stderr)
        assert "backend: exiting again and again" in doctor.stdout and "All checks pass" not in doctor.stdout
        for args in (["migrate", "add posts"], ["db", "current"], ["up"]):
            _keeps_exiting(crashing.devtool(*args))
        status = crashing.devtool("status", "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 21 and "service backend is exiting again and again" in report["problems"][0]
        assert {s["service"]: s["restarts"] for s in report["services"]}["backend"] > 0
        assert "keeps exiting" in report["migrations"]["error"]
    forced = crashing.devtool("up", "--force")  # restarted afresh: it exits again while up watches it
    assert "restarting it and watching it" in forced.stdout + forced.stderr
    _keeps_exiting(forced)
    assert crashing.versions() == files and "posts" not in crashing.tables()

    crash.unlink()  # the fix: the next run serves for good, but the service did restart since it was started
    _keeps_exiting(crashing.devtool("up"))
    fixed = crashing.devtool("up", "--force")
    assert fixed.returncode == 0, fixed.stderr
    assert "Stack" in fixed.stdout and _backend_state(crashing)["RestartCount"] == 0
    migrated = crashing.devtool("migrate", "add posts")
    assert migrated.returncode == 0, migrated.stderr
    assert "posts" in crashing.tables() and len(crashing.versions()) == len(files) + 1
    assert crashing.devtool("doctor").returncode == 0
