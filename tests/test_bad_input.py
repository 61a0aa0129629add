"""Bad input, tried (issue 3 §9): each case asserts the one-line message, the exit code, no traceback, and
that nothing was lost (revision files and database revision unchanged)."""

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import POSTS_MODEL, run_devtool
from toolkit.errors import ExitCode


@dataclass
class Case:
    id: str
    args: list
    code: int
    message: str
    prepare: Optional[Callable] = None  # prepare(stack) -> None, undone by the stack copy being fresh per case
    env: Optional[dict] = None
    cwd: Optional[Callable] = None
    engine: bool = False  # needs a reachable engine (status asks it before reading the compose file)


def _invalid_yaml(s):
    (s.root / "docker-compose.yml").write_text("services:\n  backend: [unclosed\n")


def _no_services(s):
    (s.root / "docker-compose.yml").write_text("version: '3'\n")


def _syntax_error(s):
    s.write_revision("5e5e5e5e5e5e", s.versions()[0].name.split("_")[0], "    op.create_table(", "broken syntax")


def _two_heads(s):
    base = s.versions()[0].name.split("_")[0]
    s.write_revision("aaaa00000001", base, "    pass", "one")
    s.write_revision("bbbb00000002", base, "    pass", "two")


def _unimported(s):
    s.add_model("post", POSTS_MODEL, import_it=False)


def _drop_users(s):
    (s.backend_src / "app/models/user.py").write_text("from . import db\n")


def _no_migrations(s):
    import shutil

    shutil.move(s.backend_src / "migrations", s.root / "migrations-moved")


# cases that need no running stack
STATIC_CASES = [
    Case("empty message", ["migrate", ""], 2, "The migration message is empty."),
    Case("whitespace message", ["migrate", "   \t "], 2, "The migration message is empty."),
    Case("10000-character message", ["migrate", "x" * 10000], 2, "10000 characters long (at most 500)"),
    Case("compose file missing", ["-f", "nope.yml", "status"], 3, "nope.yml does not exist", engine=True),
    Case("compose file not YAML", ["status"], 3, "is not valid YAML (line 3, column 1)", prepare=_invalid_yaml,
         engine=True),
    Case("compose file without services", ["status"], 3, "defines no services", prepare=_no_services, engine=True),
    Case("project dir missing", ["-C", "/nonexistent/x", "status"], 3, "does not exist", engine=True),
    Case("no compose file anywhere", ["status"], 3, "No compose file found", cwd=lambda s: Path("/"), engine=True),
    Case("unknown --service", ["--service", "nosuch", "migrate", "m"], 5, "Service 'nosuch' is not in the compose file"),
    Case("unknown shell service", ["shell", "nosuch"], 5, "Service 'nosuch' is not in the compose file"),
    Case("unknown db subcommand", ["db", "frobnicate"], 2, "Unknown db subcommand 'frobnicate'"),
    Case("db without subcommand", ["db"], 2, "Usage: devtool db SUBCOMMAND"),
    Case("restore without a name", ["restore"], 2, "Name one snapshot, or pass --latest."),
    Case("invalid snapshot name", ["snapshot", "../etc/passwd"], 2, "Invalid snapshot name"),
    Case("unknown snapshot, stack down", ["restore", "nosuch"], 12, "No snapshot nosuch", engine=True),
    Case("no snapshot yet, stack down", ["restore", "--latest"], 12, "No snapshot of service backend", engine=True),
    Case("engine unreachable", ["status"], 4, "Cannot reach the Docker engine at unix:///nonexistent.sock",
         env={"DOCKER_HOST": "unix:///nonexistent.sock"}),
    Case("engine unreachable (tcp)", ["migrate", "m"], 4, "Cannot reach the Docker engine",
         env={"DOCKER_HOST": "tcp://127.0.0.1:1"}),
]

# cases run against a started stack
STACK_CASES = [
    Case("no migrations folder", ["migrate", "m"], 11, "Create it with `devtool db init`", prepare=_no_migrations),
    Case("revision with a syntax error", ["migrate", "m"], ExitCode.REVISION_FILE,
         "5e5e5e5e5e5e_broken_syntax.py (line 16)", prepare=_syntax_error),
    Case("two heads", ["migrate", "m"], 9, "The migrations have 2 heads (aaaa00000001 one, bbbb00000002 two); "
                                          "nothing was changed.", prepare=_two_heads),
    Case("model not imported", ["migrate", "m"], 10, "never loaded by the app", prepare=_unimported),
    Case("destructive without --yes, no TTY", ["migrate", "drop users"], 8, "needs review", prepare=_drop_users),
    Case("unknown snapshot", ["restore", "nosuch"], 12, "No snapshot nosuch"),
]


def _assert_clean_failure(result, case):
    output = result.stdout + result.stderr
    assert result.returncode == case.code, (case.id, result.returncode, output)
    assert case.message in output, (case.id, output)
    assert "Traceback" not in output, (case.id, output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("✗")]
    assert len(errors) == 1 or case.code == 2 and not errors, (case.id, result.stderr)  # one clear line


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.docker] if c.engine else [])
                                  for c in STATIC_CASES])
def test_static_bad_input(case, tmp_path, request):
    if case.engine:
        request.getfixturevalue("engine_ready")
    from conftest import copy_demo

    import uuid

    name = f"bad{uuid.uuid4().hex[:8]}"
    root = copy_demo(tmp_path / name)
    if case.prepare:
        case.prepare(type("S", (), {"root": root})())
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    cwd = case.cwd(root) if case.cwd else root
    result = run_devtool(*case.args, cwd=cwd, env=case.env, timeout=60)
    _assert_clean_failure(result, case)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
                          capture_output=True, text=True).stdout.strip() == ""  # nothing was started


@pytest.mark.parametrize("case", STACK_CASES, ids=lambda c: c.id)
@pytest.mark.docker
def test_stack_bad_input(case, module_stack):
    s = module_stack
    versions = s.backend_src / "migrations"
    pristine = {p: p.read_bytes() for p in s.backend_src.rglob("*") if p.is_file() and "__pycache__" not in str(p)}
    revision = s.db_revision()
    try:
        if case.prepare:
            case.prepare(s)
        before = s.snapshot() if versions.exists() else None
        result = s.devtool(*case.args)
        _assert_clean_failure(result, case)
        assert s.db_revision() == revision
        if before is not None and case.id != "destructive without --yes, no TTY":
            assert s.snapshot() == before
    finally:  # leave the shared stack as it was
        import shutil

        if (s.root / "migrations-moved").exists():
            shutil.move(s.root / "migrations-moved", versions)
        for path in [p for p in s.backend_src.rglob("*") if p.is_file() and "__pycache__" not in str(p)]:
            if path not in pristine:
                path.unlink()
        for path, content in pristine.items():
            path.write_bytes(content)


@pytest.mark.docker
def test_backend_exits_on_start_shows_its_logs(make_stack):
    s = make_stack()
    compose = s.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        "    image: devtool-backend:dev\n",
        "    image: devtool-backend:dev\n    command: [\"sh\", \"-c\", \"echo backend boom >&2; exit 3\"]\n"))
    result = s.devtool("up")
    assert result.returncode == 6, result.stderr
    assert "Service backend exited with code 3." in result.stderr and "backend boom" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.docker
def test_db_stopped_is_reported_by_doctor(stack):
    stack.compose("stop", "db")
    result = stack.devtool("doctor")
    assert result.returncode == 15
    assert "db: exited" in result.stdout and "devtool up" in result.stdout


def test_socket_permission_denied_message():
    """Root ignores socket permissions, so this one maps docker-py's error directly."""
    from toolkit.engine import _engine_error
    from toolkit.errors import ExitCode

    error = _engine_error(Exception("('Connection aborted.', PermissionError(13, 'Permission denied'))"),
                          "unix:///var/run/docker.sock")
    assert error.exit_code == ExitCode.DOCKER_UNAVAILABLE
    assert error.message == "Permission denied on the Docker socket (unix:///var/run/docker.sock)."
    assert "docker group" in error.hint


@pytest.mark.docker
def test_doctor_reports_compose_schema_errors(tmp_path, engine_ready):
    import json

    from conftest import copy_demo

    root = copy_demo(tmp_path / "schema")
    compose = root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("    image: postgres:15\n", "    image: postgres:15\n    restartt: always\n"))
    result = run_devtool("doctor", "--json", cwd=root)
    assert result.returncode == 15
    failed = [c for c in json.loads(result.stdout)["checks"] if c["ok"] is False]
    assert [c["name"] for c in failed] == ["Compose file"]
    assert "additional properties 'restartt' not allowed" in failed[0]["detail"]
