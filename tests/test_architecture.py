"""The shape of the code (issue 8): no import circles, an agent that needs nothing but the container's Python,
one protocol whose values survive the trip, and a bootstrap that only runs a copy devtool made. No engine."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
import tarfile
import io
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLKIT = REPO / "toolkit"
AGENT = TOOLKIT / "agent"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every toolkit module `path` imports, at any depth of the file, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_no_import_circles_among_toolkit_modules():
    modules = {_module_name(p): p for p in TOOLKIT.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                cycle = trail[trail.index(other):] + [other]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, trail + [other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_agent_needs_only_python_38_and_the_apps_packages():
    """Module level: the standard library and the package itself; the app's libraries only inside functions."""
    allowed_later = {"flask", "flask_migrate", "alembic", "sqlalchemy"}
    for path in AGENT.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, feature_version=(3, 8))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for name in names:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names, f"{path.name} imports {name} at module level"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for name in names:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names or top in allowed_later, f"{path.name}: {name}"
            assert not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("toolkit")), \
                f"{path.name} imports from toolkit: inside the container it is devtool_agent"


def test_protocol_values_survive_the_trip():
    from toolkit.agent import protocol as p

    result = p.MigrationResult(
        status=p.Status.NEEDS_REVIEW, database=p.Database("postgresql", "db", 5432, "app", "app"),
        current_before=["a"], pending=[p.PendingRevision(id="b", message="m", path="/x.py",
                                                         changes=[p.Change("drop_table", "drop table", "t")])],
        review=[p.Change("drop_table", "drop table", "t", risk=p.Risk.DESTRUCTIVE, revision="b")],
        fixed_imports=[p.UnloadedModel("Post", "app.models.post", "posts", import_line="from . import post")])
    line = p.result_line(result)
    body = __import__("json").loads(line.split(p.RESULT_MARK, 1)[1])
    assert body["ok"] is True and p.decode(p.MigrationResult, body["result"]) == result
    request = p.MigrateRequest(message="add posts", approved=["b"], flask_app="app:create_app")
    assert p.decode_request(p.encode_request(request)) == request
    failure = p.Failure(code=p.ErrorCode.UPGRADE_FAILED, message="m", revision=p.Revision("b", "m", "/x.py"))
    body = __import__("json").loads(p.result_line(failure).split(p.RESULT_MARK, 1)[1])
    assert body["ok"] is False and p.decode(p.Failure, body["failure"]) == failure


def test_every_agent_error_code_has_an_exit_code_and_a_hint():
    from toolkit.agent.protocol import ErrorCode
    from toolkit.protocol import ERRORS

    codes = {v for k, v in vars(ErrorCode).items() if k.isupper()}
    assert codes == set(ERRORS)
    assert all(hint for _, hint in ERRORS.values())


def test_agent_archive_is_root_owned_read_only_and_complete_last():
    from toolkit.protocol import agent_archive, agent_files

    agent_id, files = agent_files()
    members = tarfile.open(fileobj=io.BytesIO(agent_archive(agent_id, files))).getmembers()
    home = members[0].name
    assert home.startswith(f"devtool-agent-{agent_id}-") and members[0].isdir()
    assert {m.name for m in members} >= {f"{home}/devtool_agent/{n}" for n in files}
    assert members[-1].name == f"{home}/complete"
    assert all(m.uid == 0 and m.gid == 0 and not m.mode & 0o022 for m in members)
    assert set(files) == {p.name for p in AGENT.glob("*.py")}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the trusted copy is root-owned")
def test_bootstrap_runs_only_a_trusted_complete_copy(tmp_path):
    """A copy somebody else can write, or one whose upload did not finish, is never run: devtool sends its own."""
    from toolkit.protocol import BOOTSTRAP, MISSING_EXIT, MISSING_MARK

    agent_id = "test" + uuid.uuid4().hex[:8]
    made = []

    def copy(suffix: str, mode: int, complete: bool) -> Path:
        home = Path(f"/tmp/devtool-agent-{agent_id}-{suffix}")
        (home / "devtool_agent").mkdir(parents=True)
        (home / "devtool_agent" / "__init__.py").write_text("")
        (home / "devtool_agent" / "main.py").write_text(f"def main(request):\n    print('ran {suffix}', request)\n")
        if complete:
            (home / "complete").write_text("")
        home.chmod(mode)
        made.append(home)
        return home

    def bootstrap() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BOOTSTRAP, agent_id, "{}"], capture_output=True, text=True,
                              cwd=tmp_path)

    try:
        copy("a-writable", 0o777, complete=True)
        copy("b-unfinished", 0o755, complete=False)
        refused = bootstrap()
        assert refused.returncode == MISSING_EXIT and MISSING_MARK in refused.stderr and "ran" not in refused.stdout
        copy("c-good", 0o755, complete=True)
        ran = bootstrap()
        assert ran.returncode == 0 and ran.stdout.strip() == "ran c-good {}"
    finally:
        import shutil

        for home in made:
            shutil.rmtree(home, ignore_errors=True)


def test_results_are_dataclasses_the_cli_renders():
    """Core functions return typed results; every --json document comes from one of them."""
    from toolkit.check import Verdict
    from toolkit.status import StatusReport

    assert dataclasses.is_dataclass(Verdict) and dataclasses.is_dataclass(StatusReport)
