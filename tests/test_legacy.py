"""A project devtool's template did not make (issue 5 §3): tests/fixtures/legacy on the real engine.

Everything there differs from the demo stack: the backend service is `api` (next to a non-Python `cache`),
it has a `container_name:`, FLASK_APP and DATABASE_URL (psycopg2 driver) come from an `env_file:`, the app
is a factory (service.factory:make_app) whose models load only through a blueprint, migrations live in
db/migrations, the database service is `database`, and the image pins Flask 2.3, Flask-SQLAlchemy 2.5,
Flask-Migrate 3.1 (no `flask db check`), SQLAlchemy 1.4 and psycopg2. devtool gets no configuration at all.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, HOST_GID, HOST_UID, INVOICE_MODEL, LEGACY

FIXTURE = FIXTURES / "legacy"
INITIAL = LEGACY.initial  # create customers table, generated in the container with Flask-Migrate 3.1.0

# The migrate and round-trip tests run on this stack too: test_migrate.py, parametrized over both stacks.
pytestmark = pytest.mark.usefixtures("no_devtool_settings")


@pytest.fixture
def legacy(make_stack):
    """A copy of the legacy fixture (its own compose project, container name and XDG_STATE_HOME), not started."""
    return make_stack(layout=LEGACY)


@pytest.fixture
def legacy_at_head(legacy):
    result = legacy.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert legacy.db_revision() == INITIAL
    return legacy


# ---------------------------------------------------------------- without the engine: detection rules

def _project(tmp_path: Path, compose: str, files: dict[str, str]):
    from toolkit.project import load_project

    for name, text in {"docker-compose.yml": compose, **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return load_project(tmp_path)


class _Ctx:
    def __init__(self, project):
        from toolkit.context import Settings
        from toolkit.output import Output

        self.project, self.settings, self.out = project, Settings(), Output()


@pytest.mark.parametrize("env_file", ["env_file: api.env", "env_file: [api.env]",
                                      "env_file:\n      - path: api.env\n        required: false"])
def test_flask_app_in_env_file_counts_for_detection(tmp_path, env_file):
    from toolkit.services import resolve_backend

    project = _project(tmp_path, f"services:\n  api:\n    build: ./code\n    {env_file}\n  cache:\n    image: redis\n",
                       {"api.env": "FLASK_APP=service.factory:make_app\n",
                        "code/db/migrations/env.py": "", "code/Dockerfile": "FROM python\n"})
    assert resolve_backend(project, None, _Ctx(project).out) == "api"


def test_manifest_in_build_context_and_migrations_in_bind_mount_count_together(tmp_path):
    from toolkit.services import resolve_backend

    project = _project(tmp_path, "services:\n  api:\n    build: .\n    volumes: ['./src:/srv/api']\n"
                                 "  worker:\n    image: busybox\n",
                       {"requirements/base.txt": "Flask==2.3.3\n", "src/db/migrations/env.py": ""})
    assert resolve_backend(project, None, _Ctx(project).out) == "api"


def test_fixture_is_not_shaped_like_the_template():
    """The points of issue 5 §3, checked on the fixture itself so they cannot silently drift."""
    import yaml

    services = yaml.safe_load((FIXTURE / "docker-compose.yml").read_text())["services"]
    assert set(services) == {"api", "cache", "database"}
    api = services["api"]
    assert "container_name" in api and "environment" not in api and api["env_file"] == "api.env"
    env = (FIXTURE / "api.env").read_text()
    assert "FLASK_APP=service.factory:make_app" in env and "postgresql+psycopg2://" in env
    assert not (FIXTURE / "src" / "migrations").exists()
    assert (FIXTURE / "src" / "db" / "migrations" / "env.py").is_file()
    pins = (FIXTURE / "requirements" / "base.txt").read_text()
    for pin in ("Flask==2.3.", "Flask-SQLAlchemy==2.5.1", "Flask-Migrate==3.1.0", "SQLAlchemy==1.4.",
                "psycopg2-binary=="):
        assert pin in pins
    assert services["database"]["healthcheck"]["test"][:3] == ["CMD", "pg_isready", "-h"]


# ---------------------------------------------------------------- on the real engine

@pytest.mark.docker
def test_up_and_status_detect_api_and_honour_container_name(legacy):
    up = legacy.devtool("up")
    assert up.returncode == 0, up.stderr
    assert "api running" in up.stdout and "cache running" in up.stdout and "database healthy" in up.stdout

    status = legacy.devtool("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["backend"] == "api"
    services = {s["service"]: s for s in report["services"]}
    assert {name: s["state"] for name, s in services.items()} == {
        "api": "running", "cache": "running", "database": "running"}
    assert services["api"]["container"] == legacy.container_name  # container_name: from .env, honoured
    # FLASK_APP from the env_file loaded the factory; Migrate(directory="db/migrations") is where devtool looks
    migrations = report["migrations"]
    assert migrations["directory"] == "/srv/api/db/migrations"
    assert [h["id"] for h in migrations["heads"]] == [INITIAL]
    assert migrations["database"]["host"] == "database"
    inspect = subprocess.run(["docker", "inspect", "-f", "{{.Name}}", legacy.container_name],
                             capture_output=True, text=True)
    assert inspect.stdout.strip() == "/" + legacy.container_name

    human = legacy.devtool("status")
    assert human.returncode == 0, human.stderr
    assert "backend: api" in human.stdout and "Pending: " + INITIAL in human.stderr


@pytest.mark.docker
def test_db_passthrough_writes_into_nested_folder_owned_by_host_user(legacy_at_head):
    s = legacy_at_head
    subprocess.run(["chown", "-R", f"{HOST_UID}:{HOST_GID}", str(s.root)], check=True)
    before = set(s.versions())

    result = s.devtool("db", "revision", "-m", "hand written step")

    assert result.returncode == 0, result.stderr
    (new,) = set(s.versions()) - before
    assert "hand_written_step" in new.name
    assert (new.stat().st_uid, new.stat().st_gid) == (HOST_UID, HOST_GID)
    assert not (s.backend_src / "migrations").exists()


@pytest.mark.docker
def test_db_check_says_flask_migrate_3_has_no_check(legacy_at_head):
    result = legacy_at_head.devtool("db", "check")

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Flask-Migrate 3.1.0" in result.stderr and "4.0.2" in result.stderr
    assert "devtool check" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "No such command" not in result.stderr


@pytest.mark.docker
def test_destructive_migration_snapshots_the_database_service(legacy_at_head):
    """The snapshot goes to `database` (the app's DB host), not `cache`, which runs the same postgres image."""
    s = legacy_at_head
    s.add_test_model()
    assert s.devtool("migrate", "add invoices").returncode == 0
    models = s.backend_src / "service" / "models.py"
    models.write_text(models.read_text().replace(INVOICE_MODEL, ""))

    refused = s.devtool("migrate", "drop invoices")
    assert refused.returncode == 8, refused.stderr  # needs confirmation: drops a table
    assert "invoices" in s.tables()

    result = s.devtool("migrate", "drop invoices", "--yes")
    assert result.returncode == 0, result.stderr
    assert "Snapshot" in result.stdout + result.stderr
    assert "invoices" not in s.tables()


@pytest.mark.docker
def test_db_check_still_passes_through_on_flask_migrate_4(stack):
    """The demo stack's Flask-Migrate 4.1 has `check`: flask answers it (no new model → exit 0)."""
    result = stack.devtool("db", "check")
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.docker
def test_up_reports_api_that_exits_on_start(legacy):
    """The detected backend (`api`, not `backend`) gets the backend's checks on `devtool up`: it must stay up;
    exiting, even with code 0 (what a one-shot service may do), is a failure with its logs shown."""
    (legacy.root / "docker-compose.override.yml").write_text(
        "services:\n  api:\n    command: [\"sh\", \"-c\", \"echo nothing to serve: no_such_module >&2; exit 0\"]\n")

    result = legacy.devtool("up")

    assert result.returncode == 6, (result.stdout, result.stderr)
    assert "Service api exited with code 0" in result.stderr and "no_such_module" in result.stderr


@pytest.mark.docker
def test_lint_rehearse_and_replay_on_the_older_stack(legacy_at_head):
    """Flask-SQLAlchemy 2.5 (the engine follows the configured URI), SQLAlchemy 1.4, Alembic 1.12, psycopg2:
    replay runs the history on a throw-away server, lint reads a revision, rehearse runs it on a copy only."""
    s = legacy_at_head
    replay = s.devtool("check", "--replay", "--json")
    assert replay.returncode == 0, replay.stderr
    assert [step["ok"] for step in json.loads(replay.stdout)["steps"]] == [True] * 5

    s.psql("INSERT INTO customers (name) VALUES ('Ada'), ('Bob')")
    s.write_revision("f10000000001", INITIAL, "    op.alter_column('customers', 'id', existing_type=sa.Integer(), "
                     "type_=sa.BigInteger())", "widen ids")
    lint = s.devtool("lint", "--json")
    assert lint.returncode == 24, lint.stderr
    assert [f["rule"] for f in json.loads(lint.stdout)["findings"]] == ["changing-column-type"]

    rehearsal = s.devtool("rehearse", "--json")
    assert rehearsal.returncode == 0, rehearsal.stderr
    (statement,) = json.loads(rehearsal.stdout)["statements"]
    assert statement["rewrote"] == ["customers"] and statement["lock"] == "AccessExclusiveLock"
    assert statement["rows"] == 2
    assert s.db_revision() == INITIAL
    assert s.psql("SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' "
                  "AND column_name = 'id'") == "integer"
