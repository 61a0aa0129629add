"""A backend that crashes (issue 9 §1), on tests/fixtures/crash: every command that starts the stack gives the
answer `devtool up` gives (exit 6, the service's last log lines) and leaves nothing half-done, whether the backend
exits at once, is restarted again and again by its restart policy, or dies while a command runs in it."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import FIXTURES, variant

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
        _answers_like_up(crashing, result, "exited", "RuntimeError: SECRET_KEY is not set")
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
