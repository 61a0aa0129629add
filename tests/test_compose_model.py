"""The compose model comes from compose (issue 14 §5, issue 9 §4): `docker compose config` resolves include,
extends, env files, interpolation and profiles; devtool caches the model keyed by every file compose read and
every variable those files use, so a change in any of them is seen, and an unchanged project never pays for
compose. The engine tests take tests/fixtures/include (db from an included file, backend extends a service of
another file, DATABASE_URL from an env_file) through the commands, and switch its database by editing the env_file.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from conftest import variant

INCLUDE = variant("include")


# ---------------------------------------------------------------------------------------------- no engine

PROJECT = {
    "compose.yaml": "include:\n  - path: db/compose.yaml\nservices:\n  app:\n    extends:\n      file: base.yaml\n"
                    "      service: base\n    env_file: app.env\n    environment:\n      MARK: ${MARK:-none}\n"
                    "      PASSED:\n"
                    "  tools:\n    image: busybox\n    profiles: [debug]\n",
    "base.yaml": "services:\n  base:\n    image: busybox\n    environment:\n      BASE: one\n",
    "app.env": "DATABASE_URL=postgresql://u:p@db/one\n",
    "db/compose.yaml": "services:\n  db:\n    image: postgres:15\n    env_file: db.env\n",
    "db/db.env": "POSTGRES_DB=one\n",
}


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in list(os.environ):
        if name.startswith("COMPOSE_") or name in ("MARK", "PASSED"):
            monkeypatch.delenv(name)
    root = tmp_path / "shop"
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def compose_calls(monkeypatch):
    """How many times devtool asked compose for the model."""
    from toolkit import compose

    calls = []
    real = compose.run_args

    def counting(args, **kwargs):
        calls.append(args)
        return real(args, **kwargs)

    monkeypatch.setattr(compose, "run_args", counting)
    return calls


def _load(root, **kwargs):
    from toolkit.project import load_project

    return load_project(root, **kwargs)


def test_the_model_is_compose_s_own(project_dir, compose_calls):
    project = _load(project_dir)
    assert sorted(project.services) == ["app", "db"]  # db from the included file, tools outside its profile
    assert project.environment("app") == {"BASE": "one", "DATABASE_URL": "postgresql://u:p@db/one", "MARK": "none",
                                          "PASSED": ""}
    assert project.environment("db") == {"POSTGRES_DB": "one"}
    assert project.inactive == {"tools": ["debug"]}
    assert "not active" not in (project.not_active("app") or "")
    assert "--profile debug" in project.not_active("tools")
    assert {project_dir / n for n in PROJECT} <= set(project.inputs)
    assert len(compose_calls) == 1 and "config" in compose_calls[0]

    assert sorted(_load(project_dir, profiles=["debug"]).services) == ["app", "db", "tools"]


def test_unchanged_project_is_read_from_the_cache(project_dir, compose_calls):
    first = _load(project_dir)
    again = _load(project_dir)
    assert len(compose_calls) == 1
    assert again.services == first.services and again.digest == first.digest
    cache = next((project_dir.parent / "state" / "devtool" / "compose").glob("*.json"))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600  # the environment (secrets) is in it


def test_every_input_of_compose_invalidates_the_cache(project_dir, compose_calls, monkeypatch):
    def edit(name: str, old: str, new: str) -> None:
        path = project_dir / name
        path.write_text(path.read_text().replace(old, new))

    changes = {
        "env_file": lambda: edit("app.env", "db/one", "db/two"),
        "included file": lambda: edit("db/compose.yaml", "postgres:15", "postgres:16"),
        "included file's env_file": lambda: edit("db/db.env", "one", "two"),
        "extended file": lambda: edit("base.yaml", "BASE: one", "BASE: two"),
        ".env": lambda: (project_dir / ".env").write_text("MARK=from-dotenv\n"),
        "interpolated variable": lambda: monkeypatch.setenv("MARK", "from-shell"),
        "variable passed through": lambda: monkeypatch.setenv("PASSED", "from-shell"),
        "COMPOSE_PROFILES": lambda: monkeypatch.setenv("COMPOSE_PROFILES", "debug"),
        "a new override file": lambda: (project_dir / "compose.override.yaml").write_text(
            "services:\n  app:\n    environment:\n      X: y\n"),
    }
    digest = _load(project_dir).digest
    for what, change in changes.items():
        asked = len(compose_calls)
        change()
        project = _load(project_dir)
        assert len(compose_calls) == asked + 1, f"a changed {what} was not noticed"
        assert project.digest != digest, what
        digest = project.digest
    assert project.environment("app")["PASSED"] == "from-shell" and "tools" in project.services


def test_a_path_devtool_cannot_expand_is_never_cached(project_dir, compose_calls):
    """Nested defaults: compose expands them, devtool's reading of paths does not; so it never trusts a cache."""
    path = project_dir / "compose.yaml"
    path.write_text(path.read_text().replace("env_file: app.env", "env_file: ${APP_ENV:-${DEFAULT_ENV:-app.env}}"))
    assert _load(project_dir).environment("app")["DATABASE_URL"] == "postgresql://u:p@db/one"
    _load(project_dir)
    assert len(compose_calls) == 2


def test_compose_errors_are_configuration_errors(project_dir):
    from toolkit.errors import DevtoolError, ExitCode

    (project_dir / "compose.yaml").write_text("services:\n  app:\n    image: busybox\n    depends_on: [nothere]\n")
    with pytest.raises(DevtoolError) as caught:
        _load(project_dir)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "nothere" in caught.value.message and "docker compose config" in caught.value.hint


def test_cache_entries_of_removed_projects_are_dropped(project_dir):
    import shutil

    gone = project_dir.parent / "gone"
    shutil.copytree(project_dir, gone)
    _load(gone)
    cache = project_dir.parent / "state" / "devtool" / "compose"
    assert len(list(cache.glob("*.json"))) == 1
    shutil.rmtree(gone)
    _load(project_dir)
    [entry] = cache.glob("*.json")
    assert json.loads(entry.read_text())["directory"] == str(project_dir)


@pytest.mark.parametrize("text,expected", [
    ("a/${X}/b", "a/x/b"), ("${UNSET:-d}.env", "d.env"), ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""),
    ("${X:+alt}", "alt"), ("$X.env", "x.env"), ("$$X", "$X"), ("${UNSET:?must}", None)])
def test_path_interpolation(text, expected):
    from toolkit.project import _interpolate

    assert _interpolate(text, {"X": "x", "EMPTY": ""}) == expected


# ---------------------------------------------------------------------------------------------- real engine

@pytest.fixture(scope="module")
def included(module_stacks):
    s = module_stacks(INCLUDE)
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return s


def _env(stack, service: str) -> list[str]:
    ids = stack.compose("ps", "-q", service).stdout.split()
    return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True).stdout)[0][
        "Config"]["Env"]


@pytest.mark.docker
def test_include_extends_and_env_file_through_the_commands(included):
    s = included
    doctor = s.devtool("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    status = json.loads(s.devtool("status", "--json").stdout)
    assert [x["service"] for x in status["services"]] == ["backend", "db"]
    assert status["migrations"]["current"] == [INCLUDE.initial]
    assert "EXTENDED_MARK=one" in _env(s, "backend")

    # snapshots find the db service, which only the included file declares
    s.psql("INSERT INTO users (email) VALUES ('kept@example.com')")
    taken = s.devtool("snapshot", "before")
    assert taken.returncode == 0, taken.stderr
    s.psql("DELETE FROM users")
    restored = s.devtool("restore", "before")
    assert restored.returncode == 0, restored.stderr
    assert s.psql("SELECT email FROM users") == "kept@example.com"
    assert s.devtool("check").returncode == 0


@pytest.mark.docker
def test_fast_path_sees_extended_included_and_interpolated_changes(included):
    s = included
    assert "compose not needed" in s.devtool("-v", "up").stderr

    common = s.root / "common.yaml"
    common.write_text(common.read_text().replace("EXTENDED_MARK: one", "EXTENDED_MARK: two"))
    changed = s.devtool("-v", "up")
    assert changed.returncode == 0, changed.stderr
    assert "compose not needed" not in changed.stderr and "compose configuration of backend changed" in changed.stderr
    assert "EXTENDED_MARK=two" in _env(s, "backend")

    included_file = s.root / "db" / "compose.yaml"
    included_file.write_text(included_file.read_text().replace("    env_file: db.env\n",
                                                               "    env_file: db.env\n    environment:\n"
                                                               "      INCLUDED_MARK: two\n"))
    assert s.devtool("up").returncode == 0
    assert "INCLUDED_MARK=two" in _env(s, "db")

    marked = s.devtool("-v", "up", env={"BACKEND_MARK": "x"})
    assert marked.returncode == 0 and "compose not needed" not in marked.stderr
    assert "BACKEND_MARK=x" in _env(s, "backend")
    assert "compose not needed" in s.devtool("-v", "up", env={"BACKEND_MARK": "x"}).stderr


@pytest.mark.docker
def test_a_changed_env_file_moves_the_next_migration_to_the_new_database(included):
    """The backend's DATABASE_URL comes from backend.env: after it changes, `devtool migrate` (no `up` in
    between) must recreate the container and migrate the new database, never the old one."""
    s = included
    s.psql("CREATE DATABASE devtool_next")
    (s.root / "backend.env").write_text("DATABASE_URL=postgresql://devtool:devtool@db:5432/devtool_next\n")
    status = s.devtool("status", "--json")  # does not start anything: says that what it shows is the old setup
    assert "changed since the stack was started" in json.loads(status.stdout)["unapplied_change"]
    doctor = s.devtool("doctor")
    assert doctor.returncode == 15 and "the containers run the old configuration" in doctor.stdout
    s.add_test_model()
    result = s.devtool("migrate", "add posts")
    assert result.returncode == 0, result.stderr
    assert "compose configuration of backend changed" in result.stderr
    assert "DATABASE_URL=postgresql://devtool:devtool@db:5432/devtool_next" in _env(s, "backend")
    new = s.compose("exec", "-T", "db", "psql", "-X", "-At", "-U", "devtool", "-d", "devtool_next", "-c",
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'").stdout.split()
    assert {"users", "posts", "alembic_version"} <= set(new)
    assert "posts" not in s.tables()  # the old database is untouched
    assert s.devtool("check").returncode == 0
