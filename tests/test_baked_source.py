"""Source baked into the image, no bind mount (issue 9 §2), on tests/fixtures/baked: every revision file devtool
makes in the container reaches the host's migrations folder through the engine, and devtool says where; a
container recreated from an older image gets the host's revisions back; where devtool cannot tell the host
folder, it refuses before writing anything and names the setting."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import HOST_GID, HOST_UID, POSTS_MODEL, copy_demo_backend, variant, with_fixture

pytestmark = pytest.mark.docker

BAKED = variant("baked", copy=with_fixture("baked", copy_demo_backend), backend_src="backend",
                migrations="backend/migrations")


@pytest.fixture(scope="module")
def baked(module_stacks):
    s = module_stacks(BAKED)
    (s.migrations / "versions").chmod(0o755)
    import os

    os.chown(s.migrations / "versions", HOST_UID, HOST_GID)  # the host folder belongs to a user, not to root
    result = s.devtool("db", "upgrade")  # builds <project>-backend, starts the stack
    assert result.returncode == 0, result.stderr
    yield s
    s.down()
    subprocess.run(["docker", "rmi", "-f", f"{s.project}-backend"], capture_output=True)


def _container_versions(stack) -> list[str]:
    return sorted(stack.compose("exec", "-T", "backend", "ls", "/app/migrations/versions").stdout.split())


def _revision_id(path) -> str:
    return re.search(r'^revision = ["\']([0-9a-f]+)', path.read_text(), re.M).group(1)


def test_doctor_says_the_migrations_folder_is_not_shared(baked):
    result = baked.devtool("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    folder = checks["Migrations folder"]
    assert folder["ok"] is True
    assert "not shared with the host" in folder["detail"] and str(baked.migrations) in folder["detail"]


def test_revisions_reach_the_host_and_survive_a_recreated_container(baked):
    baked.add_test_model()
    baked.compose("build", "backend")  # the model is in the image only after a build
    result = baked.devtool("migrate", "add posts")
    assert result.returncode == 0, result.stderr
    [new] = [p for p in baked.versions() if "add_posts" in p.name]
    assert f"Revision {_revision_id(new)}: {new}" in result.stderr  # the host path, not /app/...
    assert "Copied from the container to the host" in result.stderr
    assert (new.stat().st_uid, new.stat().st_gid) == (HOST_UID, HOST_GID)
    assert baked.db_revision() == _revision_id(new) and "posts" in baked.tables()

    # A container recreated from the image built before the revision existed: the host's files are the truth.
    baked.compose("up", "-d", "--force-recreate", "backend")
    assert new.name not in _container_versions(baked)
    status = json.loads(baked.devtool("status", "--json").stdout)
    assert status["migrations"]["current"] == [_revision_id(new)] and not status["migrations"]["pending"]
    assert baked.devtool("check").returncode == 0
    current = baked.devtool("db", "current")
    assert current.returncode == 0 and f"{_revision_id(new)} (head)" in current.stdout

    # flask's own commands that write a revision: copied too, and named
    made = baked.devtool("db", "revision", "-m", "by hand")
    assert made.returncode == 0, made.stderr
    [by_hand] = [p for p in baked.versions() if "by_hand" in p.name]
    assert f"to the host (the migrations folder is not shared): {by_hand}" in made.stderr
    assert baked.devtool("db", "upgrade").returncode == 0
    assert baked.db_revision() == _revision_id(by_hand)

    # after a rebuild, as the user would do it
    baked.compose("up", "-d", "--build")
    assert baked.devtool("check").returncode == 0


def test_fix_imports_reaches_the_hosts_source(baked):
    baked.add_model("tag", POSTS_MODEL.replace("Post", "Tag").replace('"posts"', '"tags"'), import_it=False)
    baked.compose("build", "backend")
    result = baked.devtool("migrate", "add tags", "--fix-imports")
    assert result.returncode == 0, result.stderr
    init = baked.backend_src / "app/models/__init__.py"
    assert "    from . import tag  # noqa: F401" in init.read_text()
    assert f"to {init}" in result.stdout + result.stderr  # named where the host has it, not as /app/...
    assert "tags" in baked.tables()


def test_snapshot_and_restore(baked):
    baked.psql("INSERT INTO users (email) VALUES ('baked@example.com')")
    assert baked.devtool("snapshot", "baked").returncode == 0
    baked.psql("DELETE FROM users")
    restored = baked.devtool("restore", "baked")
    assert restored.returncode == 0, restored.stderr
    assert baked.psql("SELECT email FROM users") == "baked@example.com"


def test_cannot_tell_the_host_folder_refuses_before_writing(baked):
    dockerfile = baked.backend_src / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text("FROM devtool-backend:dev\nARG SOURCE=.\nCOPY $SOURCE /app\n")  # a copy devtool can't follow
    try:
        before = (baked.versions(), _container_versions(baked), baked.db_revision())
        for args in (["migrate", "anything"], ["db", "revision", "-m", "anything"]):
            refused = baked.devtool(*args)
            assert refused.returncode == 3, refused.stderr
            assert "Cannot tell where the migrations folder of service backend is on the host" in refused.stderr
            assert "migrations_dir" in refused.stderr and "Nothing was written" in refused.stderr
            assert (baked.versions(), _container_versions(baked), baked.db_revision()) == before
        doctor = json.loads(baked.devtool("doctor", "--json").stdout)
        folder = next(c for c in doctor["checks"] if c["name"] == "Migrations folder")
        assert folder["ok"] is False and "migrations_dir" in folder["fix"]

        # the setting names the folder: relative to the build context, as to the container's working directory
        configured = baked.devtool("db", "revision", "-m", "configured", env={"DEVTOOL_MIGRATIONS_DIR": "migrations"})
        assert configured.returncode == 0, configured.stderr
        [made] = [p for p in baked.versions() if "configured" in p.name]
        assert str(made) in configured.stderr
        assert baked.devtool("db", "upgrade", env={"DEVTOOL_MIGRATIONS_DIR": "migrations"}).returncode == 0
    finally:
        dockerfile.write_text(original)
