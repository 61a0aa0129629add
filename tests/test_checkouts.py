"""Issue 16 §4 on the real engine: two checkouts whose folders share a name (work/shopX and review/shopX) get one
compose project name. While the first is up, every command run in the second refuses (exit 31) before anything is
started, recreated or migrated, naming the first's folder and the fix; the first's containers and database are
untouched. Given its own name (-p), the second is its own stack, and each lists only its own snapshots.

One pair of stacks is shared by the module; the tests run in file order."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from conftest import fingerprint, new_stack, run_devtool_each

pytestmark = pytest.mark.docker

COMMANDS = [["migrate", "add posts"], ["up"], ["up", "--force"], ["setup", "--yes"], ["restore", "--latest"],
            ["snapshot", "list"], ["snapshot", "theirs"], ["sync", "--yes"], ["down"], ["down", "--volumes"],
            ["db", "upgrade"], ["shell", "db"], ["status"]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, engine_ready):
    base = tmp_path_factory.mktemp("checkouts")
    dirname = f"shop{uuid.uuid4().hex[:8]}"
    first, second = new_stack(base / "work", dirname), new_stack(base / "review", dirname)
    assert first.project == second.project
    state = {"XDG_STATE_HOME": str(base / "state")}  # one user's state home, as on a laptop
    first.env = second.env = state
    try:
        upgraded = first.devtool("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        first.psql("INSERT INTO users (email) VALUES ('first@example.com')")
        taken = first.devtool("snapshot", "first-snap")
        assert taken.returncode == 0, taken.stderr
        second.add_test_model()  # a migrate in the second would have something to apply
        yield first, second
    finally:
        second.devtool("-p", f"{second.project}-review", "down", "--volumes")
        first.down()


def containers(stack) -> dict[str, str]:
    """Each container of the project: its id and when it last started (a recreate or restart changes them)."""
    ids = stack.compose("ps", "-aq").stdout.split()
    inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
    return {c["Id"]: c["State"]["StartedAt"] for c in json.loads(inspected)}


def test_every_command_in_the_look_alike_checkout_refuses(pair):
    first, second = pair
    before, running, versions = fingerprint(first), containers(first), second.versions()

    results = run_devtool_each(COMMANDS, cwd=second.root, env=second.env)
    for args, result in zip(COMMANDS, results):
        assert result.returncode == 31, (args, result.stdout, result.stderr)
        error = [line for line in result.stderr.splitlines() if line.startswith("✗")]
        assert len(error) == 1 and str(first.root) in error[0] and str(second.root) in error[0], (args, error)
        assert "nothing was started, recreated or migrated" in error[0]
        assert f"-p review-{second.project}" in result.stderr and "COMPOSE_PROJECT_NAME" in result.stderr, args
        assert "Traceback" not in result.stderr
    assert fingerprint(first) == before
    assert containers(first) == running
    assert second.versions() == versions  # no revision generated in the second
    assert "posts" not in first.tables()

    as_json = second.devtool("status", "--json")
    assert as_json.returncode == 31
    data = json.loads(as_json.stdout)
    assert data["exit_code"] == 31 and data["data"]["other_directory"] == str(first.root)


def test_doctor_names_the_other_checkout(pair):
    first, second = pair
    doctor = second.devtool("doctor")
    assert doctor.returncode == 15, doctor.stdout + doctor.stderr
    assert str(first.root) in doctor.stdout + doctor.stderr


def test_the_first_checkout_still_works_through_a_symlink(pair):
    first, _ = pair
    link = first.root.parent.parent / "link-to-first"
    os.symlink(first.root, link)
    status = first.devtool("-C", str(link), "status")
    assert status.returncode == 0, status.stderr
    assert first.devtool("status").returncode == 0


def test_with_its_own_name_each_checkout_lists_only_its_own_snapshots(pair):
    first, second = pair
    own = ["-p", f"{second.project}-review"]
    upgraded = second.devtool(*own, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    taken = second.devtool(*own, "snapshot", "second-snap")
    assert taken.returncode == 0, taken.stderr

    def listed(stack, *options):
        result = stack.devtool(*options, "snapshot", "list", "--json")
        assert result.returncode == 0, result.stderr
        return [(s["name"], s["checkout"]) for s in json.loads(result.stdout)]

    assert listed(first) == [("first-snap", str(first.root))]
    assert listed(second, *own) == [("second-snap", str(second.root))]
    # restore --latest in the second brings back the second's own data, never the first's
    restored = second.devtool(*own, "restore", "--latest")
    assert restored.returncode == 0, restored.stderr
    assert "second-snap" in restored.stdout
    assert first.psql("SELECT email FROM users") == "first@example.com"


def test_a_stopped_look_alike_keeps_its_volumes(pair):
    """Volumes carry no folder: with the first checkout stopped, its database volume is still refused to the
    second (devtool saw the first run under the name), and the first comes back to its own data."""
    first, second = pair
    stopped = first.devtool("down")
    assert stopped.returncode == 0, stopped.stderr
    assert first.compose("ps", "-aq").stdout.strip() == ""
    for args in (["migrate", "add posts"], ["up"], ["down", "--volumes"], ["setup", "--yes"]):
        refused = second.devtool(*args)
        assert refused.returncode == 31, (args, refused.stdout, refused.stderr)
        error = [line for line in refused.stderr.splitlines() if line.startswith("✗")]
        assert len(error) == 1 and "volumes" in error[0] and str(first.root) in error[0], error
        assert f"devtool -C {first.root} down --volumes" in refused.stderr
    assert first.compose("ps", "-aq").stdout.strip() == ""  # nothing started

    back = first.devtool("up")
    assert back.returncode == 0, back.stderr
    assert first.psql("SELECT email FROM users") == "first@example.com" and "posts" not in first.tables()
