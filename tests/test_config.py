"""devtool's configuration (issue 5.1): [tool.devtool] / devtool.toml < DEVTOOL_* < command line, and its errors.

devtool runs as a subprocess, as users run it; `devtool config --json` shows what it resolved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_devtool, run_devtool_each
from toolkit.errors import ExitCode

CONFIG_EXIT = 3
KEYS = ["project_dir", "backend_service", "compose_files", "project_name", "migrations_dir", "flask_app",
        "db_service", "snapshot_keep", "snapshot_image", "wait_timeout", "hook_deadline", "db_connect_timeout",
        "db_lost_after", "lock_timeout", "statement_timeout", "lock_retries"]
COMPOSE = """services:
  web:
    image: python:3.11-slim-bookworm
  db:
    image: postgres:15
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No DEVTOOL_* / COMPOSE_* from the machine running the tests leaks into what they check."""
    for name in list(os.environ):
        if name.startswith(("DEVTOOL_", "COMPOSE_")):
            monkeypatch.delenv(name)


def config(cwd: Path, *args: str, env: dict | None = None) -> dict:
    result = run_devtool(*args, "config", "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def fails(cwd: Path, *args: str, env: dict | None = None, code: int = CONFIG_EXIT) -> str:
    result = run_devtool(*args, cwd=cwd, env=env)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


def test_without_configuration_everything_is_default(tmp_path):
    report = config(tmp_path)
    assert list(report) == KEYS + ["dialect"]  # and the dialect the compose file's DATABASE_URL names
    assert report.pop("dialect") == {"value": None, "source": f"unknown: No compose file found in {tmp_path} or "
                                                              "its parents."}
    assert all(entry["source"] == "default" for entry in report.values())
    assert report["snapshot_keep"]["value"] == 10 and report["wait_timeout"]["value"] == 180.0
    assert report["backend_service"]["value"] is None and report["compose_files"]["value"] == []


@pytest.mark.parametrize("url, dialect", [("mysql+pymysql://app:pw@db/app", "mysql"),
                                          ("sqlite:////data/app.db", "sqlite"),
                                          ("postgres://app:pw@db/app", "postgresql")])
def test_config_names_the_dialect_of_the_backends_url(tmp_path, url, dialect):
    (tmp_path / "compose.yaml").write_text(f"services:\n  backend:\n    image: x\n    environment:\n"
                                           f"      DATABASE_URL: {url}\n")
    report = config(tmp_path)
    assert report["dialect"] == {"value": dialect, "source": "DATABASE_URL of service backend (compose)"}
    shown = run_devtool("config", cwd=tmp_path)
    assert shown.returncode == 0 and "pw" not in shown.stdout and dialect in shown.stdout


def test_devtool_toml_values_and_source(tmp_path):
    path = tmp_path / "devtool.toml"
    path.write_text('backend_service = "api"\ncompose_files = ["compose.yaml", "ops/extra.yaml"]\n'
                    'project_name = "shop"\nmigrations_dir = "db/migrations"\nflask_app = "shop:create_app"\n'
                    'db_service = "postgres"\nsnapshot_keep = 3\nsnapshot_image = "postgres:16"\nwait_timeout = 45\n'
                    'hook_deadline = 10\ndb_connect_timeout = 5\ndb_lost_after = 20\nlock_timeout = 0\n'
                    'statement_timeout = 30.5\nlock_retries = 0\n')
    report = config(tmp_path)
    source = f"devtool.toml ({path})"
    assert {k: v["source"] for k, v in report.items() if k not in ("project_dir", "dialect")} == \
        {k: source for k in KEYS[1:]}
    assert report["backend_service"]["value"] == "api"
    # relative to the file that names them
    assert report["compose_files"]["value"] == [str(tmp_path / "compose.yaml"), str(tmp_path / "ops/extra.yaml")]
    assert report["snapshot_keep"]["value"] == 3 and report["wait_timeout"]["value"] == 45.0
    assert report["db_connect_timeout"]["value"] == 5.0 and report["db_lost_after"]["value"] == 20.0
    assert report["migrations_dir"]["value"] == "db/migrations"
    assert (report["lock_timeout"]["value"], report["statement_timeout"]["value"], report["lock_retries"]["value"]) \
        == (0.0, 30.5, 0)  # 0: no limit, no retry


def test_pyproject_table_and_table_output(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "shop"\n\n[tool.devtool]\nbackend_service = "api"\nsnapshot_keep = 2\n')
    report = config(tmp_path)
    assert report["backend_service"] == {"value": "api",
                                         "source": f"pyproject.toml [tool.devtool] ({path})"}
    assert report["snapshot_keep"]["value"] == 2 and report["wait_timeout"]["source"] == "default"

    table = run_devtool("config", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "backend_service" in table.stdout and "pyproject.toml [tool.devtool]" in table.stdout
    assert f"configuration file: {path}" in table.stdout


def test_found_in_parent_directories_and_devtool_toml_wins_in_one_directory(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend_service = "from_toml"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.devtool]\nbackend_service = "from_pyproject"\n')
    sub = tmp_path / "backend" / "app"
    sub.mkdir(parents=True)
    # a pyproject.toml without [tool.devtool] (the backend's own) is not devtool's configuration
    (tmp_path / "backend" / "pyproject.toml").write_text('[project]\nname = "backend"\n')
    assert config(sub)["backend_service"]["value"] == "from_toml"
    assert config(tmp_path)["backend_service"]["source"] == f"devtool.toml ({tmp_path / 'devtool.toml'})"


def test_nearest_directory_with_a_configuration_stops_the_search(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend_service = "outer"\nsnapshot_keep = 7\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[tool.devtool]\nbackend_service = "inner"\n')
    report = config(inner)
    assert report["backend_service"]["value"] == "inner"
    assert report["snapshot_keep"] == {"value": 10, "source": "default"}  # files are not merged


def test_project_dir_option_selects_the_configuration(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "devtool.toml").write_text('backend_service = "api"\n')
    (tmp_path / "devtool.toml").write_text('backend_service = "elsewhere"\n')
    report = config(tmp_path, "-C", "project")
    assert report["backend_service"]["value"] == "api"
    assert report["project_dir"] == {"value": "project", "source": "command line"}
    report = config(tmp_path, env={"DEVTOOL_PROJECT_DIR": str(project)})
    assert report["backend_service"]["value"] == "api"
    assert report["project_dir"]["source"] == "env DEVTOOL_PROJECT_DIR"


def test_precedence_file_then_environment_then_command_line(tmp_path):
    (tmp_path / "devtool.toml").write_text(
        'backend_service = "file"\nproject_name = "file"\nsnapshot_keep = 3\nwait_timeout = 30\n'
        'flask_app = "file:app"\ncompose_files = ["file.yaml"]\n')
    env = {"DEVTOOL_BACKEND_SERVICE": "env", "DEVTOOL_PROJECT_NAME": "env", "DEVTOOL_SNAPSHOT_KEEP": "4",
           "DEVTOOL_COMPOSE_FILES": os.pathsep.join(["a.yaml", "sub/b.yaml"])}
    report = config(tmp_path, "--service", "cli", "-p", "cli", env=env)

    assert report["backend_service"] == {"value": "cli", "source": "command line"}
    assert report["project_name"] == {"value": "cli", "source": "command line"}
    assert report["snapshot_keep"] == {"value": 4, "source": "env DEVTOOL_SNAPSHOT_KEEP"}
    assert report["compose_files"] == {"value": [str(tmp_path / "a.yaml"), str(tmp_path / "sub/b.yaml")],
                                       "source": "env DEVTOOL_COMPOSE_FILES"}
    assert report["wait_timeout"]["value"] == 30.0 and report["wait_timeout"]["source"].startswith("devtool.toml")
    assert report["flask_app"]["value"] == "file:app"

    # -f beats DEVTOOL_COMPOSE_FILES; an empty variable is no override
    report = config(tmp_path, "-f", "cli.yaml", env={**env, "DEVTOOL_WAIT_TIMEOUT": "7.5", "DEVTOOL_FLASK_APP": ""})
    assert report["compose_files"] == {"value": ["cli.yaml"], "source": "command line"}
    assert report["wait_timeout"] == {"value": 7.5, "source": "env DEVTOOL_WAIT_TIMEOUT"}
    assert report["flask_app"]["source"].startswith("devtool.toml")


def test_service_option_variable_is_reported_as_environment(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend_service = "file"\n')
    report = config(tmp_path, env={"DEVTOOL_SERVICE": "svc"})
    assert report["backend_service"] == {"value": "svc", "source": "env DEVTOOL_SERVICE"}
    report = config(tmp_path, "--service", "cli", env={"DEVTOOL_SERVICE": "svc"})
    assert report["backend_service"] == {"value": "cli", "source": "command line"}


@pytest.mark.docker
def test_configuration_drives_the_commands(tmp_path, engine_ready):
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "devtool.toml").write_text('backend_service = "nope"\n')
    stderr = fails(tmp_path, "status", code=5)
    assert "Service 'nope' is not in the compose file" in stderr

    result = run_devtool("status", "--json", cwd=tmp_path, env={"DEVTOOL_BACKEND_SERVICE": "web"})
    assert result.returncode == ExitCode.STATUS_BROKEN, result.stderr  # nothing runs: status says so, and fails
    report = json.loads(result.stdout)
    assert report["backend"] == "web" and "service web is not created" in report["problems"]


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend = "api"\n')
    stderr = fails(tmp_path, "config")
    assert "devtool.toml: unknown key 'backend'" in stderr
    assert "did you mean 'backend_service'" in stderr
    assert "Valid keys: backend_service, compose_files, project_name" in stderr
    assert str(tmp_path / "devtool.toml") in stderr

    (tmp_path / "devtool.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.devtool]\nsnapshots = 3\n')
    assert "pyproject.toml [tool.devtool]: unknown key 'snapshots'" in fails(tmp_path, "config")


@pytest.mark.parametrize("line, message", [
    ('snapshot_keep = "ten"', "snapshot_keep must be an integer ≥ 1, got 'ten'"),
    ("snapshot_keep = 0", "snapshot_keep must be an integer ≥ 1, got 0"),
    ("snapshot_keep = 2.5", "snapshot_keep must be an integer ≥ 1, got 2.5"),
    ("snapshot_keep = true", "snapshot_keep must be an integer ≥ 1, got true"),
    ('wait_timeout = "soon"', "wait_timeout must be a number of seconds > 0, got 'soon'"),
    ("wait_timeout = -1", "wait_timeout must be a number of seconds > 0, got -1"),
    ("lock_timeout = -1", "lock_timeout must be a number of seconds ≥ 0 (0: no limit), got -1"),
    ('statement_timeout = "1h"', "statement_timeout must be a number of seconds ≥ 0 (0: no limit), got '1h'"),
    ("lock_retries = 1.5", "lock_retries must be an integer ≥ 0, got 1.5"),
    ('compose_files = "compose.yaml"', "compose_files must be a non-empty list of file names, got 'compose.yaml'"),
    ("compose_files = [1]", "compose_files must be a non-empty list of file names, got [1]"),
    ("backend_service = 3", "backend_service must be a non-empty string (a compose service name), got 3"),
    ('db_service = ""', "db_service must be a non-empty string (a compose service name), got ''"),
])
def test_wrong_types(tmp_path, line, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.devtool]\n{line}\n")
    stderr = fails(tmp_path, "config")
    assert f"pyproject.toml [tool.devtool]: {message}" in stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("✗")]) == 1


def test_invalid_toml_gives_the_line(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend_service = "api"\nsnapshot_keep = \n')
    stderr = fails(tmp_path, "config")
    assert "devtool.toml: invalid TOML at line 2, column" in stderr

    (tmp_path / "devtool.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.devtool\n')
    assert "pyproject.toml: invalid TOML at line 3, column" in fails(tmp_path, "config")


def test_tool_devtool_must_be_a_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool]\ndevtool = "yes"\n')
    assert "pyproject.toml: [tool.devtool] must be a table, got 'yes'" in fails(tmp_path, "config")


def test_wrong_environment_values(tmp_path):
    stderr = fails(tmp_path, "config", env={"DEVTOOL_SNAPSHOT_KEEP": "ten"})
    assert "env DEVTOOL_SNAPSHOT_KEEP: snapshot_keep must be an integer ≥ 1, got 'ten'" in stderr
    stderr = fails(tmp_path, "config", env={"DEVTOOL_WAIT_TIMEOUT": "0"})
    assert "env DEVTOOL_WAIT_TIMEOUT: wait_timeout must be a number of seconds > 0, got '0'" in stderr


def test_json_mode_reports_the_error_as_json(tmp_path):
    (tmp_path / "devtool.toml").write_text('backend = "api"\n')
    result = run_devtool("config", "--json", cwd=tmp_path)
    assert result.returncode == CONFIG_EXIT
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["exit_code"] == CONFIG_EXIT
    assert payload["error"].startswith("devtool.toml: unknown key 'backend'")


def test_broken_configuration_fails_commands_but_not_help_or_version(tmp_path):
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "devtool.toml").write_text("snapshot_keep = 0\n")
    arg_lists = [["--version"], ["--help"], ["up", "--help"], ["config", "--help"]]
    for args, result in zip(arg_lists, run_devtool_each(arg_lists, cwd=tmp_path)):
        assert result.returncode == 0, (args, result.stderr)
        assert "snapshot_keep" not in result.stderr
    assert "devtool.toml: snapshot_keep must be an integer ≥ 1, got 0" in fails(tmp_path, "status")
