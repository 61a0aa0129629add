"""A backend that runs as an ordinary user (`user: "1000:1000"`, tests/fixtures/nonroot) on a bind-mounted source
that root owns on the host (issue 9 §3): devtool names the folder, the container's uid, the owner on the host and
the fix, with an exit code of its own; nothing is written and the database is unchanged. Once the folder is the
user's, migrate works and the revision file belongs to that user."""

from __future__ import annotations

import json
import os

import pytest

from conftest import HOST_GID, HOST_UID, variant

pytestmark = pytest.mark.docker

NONROOT = variant("nonroot")
PERMISSION_DENIED = 18


@pytest.fixture(scope="module")
def nonroot(module_stacks):
    s = module_stacks(NONROOT)
    result = s.devtool("db", "upgrade")  # reading revisions and applying them needs no write access
    assert result.returncode == 0, result.stderr
    return s


def test_root_owned_migrations_folder_is_named_with_its_fix(nonroot):
    versions = nonroot.migrations / "versions"
    before = nonroot.snapshot()
    nonroot.add_test_model()
    for args in (["migrate", "add posts"], ["db", "revision", "-m", "by hand"], ["migrate", "add posts", "--json"]):
        result = nonroot.devtool(*args)
        assert result.returncode == PERMISSION_DENIED, (args, result.stderr)
        assert "Cannot write revision files into /app/migrations/versions: permission denied" in result.stderr
        assert "runs as uid 1000" in result.stderr and f"on the host it is {versions}, owned by root" in result.stderr
        assert f"sudo chown -R 1000:1000 {versions}" in result.stderr and "Nothing was written" in result.stderr
        assert "Database error" not in result.stderr and "Traceback" not in result.stderr
        assert nonroot.snapshot() == before and "posts" not in nonroot.tables()
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and answer["exit_code"] == PERMISSION_DENIED
    assert answer["data"]["user"] == [1000, 1000] and answer["data"]["owner"] == [0, 0]

    check = nonroot.devtool("check")  # reading still works: the model change is reported, not a permission error
    assert check.returncode == 13, check.stderr
    status = json.loads(nonroot.devtool("status", "--json").stdout)
    assert status["migrations"]["current"] == [NONROOT.initial]
    doctor = nonroot.devtool("doctor", "--json")  # says so before anyone runs migrate
    assert doctor.returncode == 15
    folder = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "Migrations folder")
    assert folder["ok"] is False and "runs as uid 1000 (gid 1000) and may not write" in folder["detail"]
    assert f"sudo chown -R 1000:1000 {versions}" in folder["fix"]


def test_migrate_works_once_the_folder_is_the_users(nonroot):
    if not (nonroot.backend_src / "app/models/post.py").exists():
        nonroot.add_test_model()
    for root, dirs, files in os.walk(nonroot.migrations):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            os.chown(name, HOST_UID, HOST_GID)
    result = nonroot.devtool("migrate", "add posts")
    assert result.returncode == 0, result.stderr
    [new] = [p for p in nonroot.versions() if "add_posts" in p.name]
    assert (new.stat().st_uid, new.stat().st_gid) == (HOST_UID, HOST_GID)
    assert "posts" in nonroot.tables()
    assert nonroot.devtool("doctor").returncode == 0
