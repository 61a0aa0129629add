"""Compose profiles plus an override file (issue 9 §4), on tests/fixtures/profiles: services outside the active
profiles (COMPOSE_PROFILES, --profile) are ignored everywhere, exactly as compose does: setup, doctor, status,
up's readiness, the backend's detection; the override file's settings reach the backend."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import variant

pytestmark = pytest.mark.docker

PROFILES = variant("profiles")


@pytest.fixture(scope="module")
def profiled(module_stacks):
    return module_stacks(PROFILES)


def _services(stack, *args, env=None) -> list[str]:
    result = stack.devtool(*args, "status", "--json", env=env)
    return [s["service"] for s in json.loads(result.stdout)["services"]]


def test_inactive_services_are_ignored_everywhere(profiled):
    s = profiled
    setup = s.devtool("setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "tools" not in setup.stdout + setup.stderr and "mailer" not in setup.stdout + setup.stderr
    doctor = s.devtool("doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout
    assert _services(s) == ["backend", "db"]
    env = json.loads(subprocess.run(["docker", "inspect", f"{s.project}-backend-1"], capture_output=True,
                                    text=True).stdout)[0]["Config"]["Env"]
    assert "OVERRIDE_MARK=from-the-override-file" in env  # the override file is part of the project

    inactive = s.devtool("--service", "tools", "db", "current")
    assert inactive.returncode == 5
    assert "Service 'tools' is not active: it is in profile debug" in inactive.stderr
    assert "--profile debug" in inactive.stderr

    s.add_test_model()
    migrated = s.devtool("migrate", "add posts")
    assert migrated.returncode == 0, migrated.stderr
    assert "posts" in s.tables() and s.devtool("check").returncode == 0


def test_profiles_activated_by_option_or_variable(profiled):
    s = profiled
    up = s.devtool("--profile", "debug", "up")
    assert up.returncode == 0, up.stderr
    assert "tools running" in up.stdout
    assert _services(s, "--profile", "debug") == ["backend", "db", "tools"]
    assert _services(s, env={"COMPOSE_PROFILES": "debug"}) == ["backend", "db", "tools"]
    # tools keeps running, but without its profile it is not part of the project
    assert _services(s) == ["backend", "db"]
    assert s.devtool("doctor").returncode == 0 and s.devtool("up").returncode == 0

    failing = s.devtool("--profile", "mail", "up")  # its service exits: up fails, and says which and why
    assert failing.returncode == 6
    assert "Service mailer exited with code 1" in failing.stderr and "no SMTP relay configured" in failing.stderr
    assert s.devtool("up").returncode == 0  # without the profile, the exited mailer is none of devtool's business
    assert s.devtool("check").returncode == 0
