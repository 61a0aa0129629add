"""Shared fixtures: throw-away copies of the demo stack on the real Docker engine, and a devtool runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEVTOOL = [sys.executable, "-m", "toolkit"]  # run it with checkout_env(): this checkout's toolkit, not an install

# The tests test the checkout they live in, even when another checkout of devtool is pip-installed (editable).
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))


def checkout_env(env: dict) -> dict:
    """env with this checkout first on PYTHONPATH, so `python -m toolkit` imports REPO/toolkit from any cwd."""
    paths = [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def pytest_configure(config):
    import toolkit

    imported = Path(toolkit.__file__).resolve().parent
    if imported != REPO / "toolkit":
        raise pytest.UsageError(f"the tests import toolkit from {imported}, not from their checkout {REPO}")


def run_devtool(*args: str, cwd: Path, env: dict | None = None, input: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """devtool as a user runs it: a separate process, no TTY, its real exit code and output."""
    full_env = checkout_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run([*DEVTOOL, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)


def wait_for(condition, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    """Poll until condition() is truthy; fail after the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Stack:
    """A copy of the repo's demo stack in its own directory, so its own compose project."""

    def __init__(self, root: Path, project: str) -> None:
        self.root = root
        self.project = project
        self.backend_src = root / "templates" / "backend"

    def devtool(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_devtool(*args, cwd=kwargs.pop("cwd", self.root), **kwargs)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=self.root, text=True,
                              capture_output=True, check=check, stdin=subprocess.DEVNULL)

    def psql(self, sql: str, service: str = "db") -> str:
        result = self.compose("exec", "-T", service, "psql", "-X", "-At", "-U", "devtool", "-d", "devtool",
                              "-c", sql)
        return result.stdout.strip()

    def tables(self) -> set[str]:
        return set(self.psql("SELECT tablename FROM pg_tables WHERE schemaname='public'").split())

    def db_revision(self) -> str:
        return self.psql("SELECT version_num FROM alembic_version")

    def versions(self) -> list[Path]:
        return sorted((self.backend_src / "migrations" / "versions").glob("*.py"))

    def add_model(self, module: str, source: str, *, import_it: bool = True) -> None:
        (self.backend_src / "app" / "models" / f"{module}.py").write_text(source)
        if import_it:
            init = self.backend_src / "app" / "models" / "__init__.py"
            text = init.read_text()
            anchor = "    from . import user  # noqa: F401\n"
            init.write_text(text.replace(anchor, anchor + f"    from . import {module}  # noqa: F401\n"))

    def write_revision(self, rev: str, down: str | None, upgrade: str, message: str = "hand written") -> Path:
        path = self.backend_src / "migrations" / "versions" / f"{rev}_{message.replace(' ', '_')}.py"
        path.write_text(REVISION_TEMPLATE.format(rev=rev, down=repr(down), upgrade=upgrade, message=message))
        return path

    def snapshot(self) -> tuple:
        """What a failed command must not have changed: revision files and the database revision."""
        return ({p.name: p.read_bytes() for p in self.versions()}, self.db_revision())

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)


def copy_demo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "docker-compose.yml", root / "docker-compose.yml")
    shutil.copytree(REPO / "templates", root / "templates",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


@pytest.fixture(scope="session")
def engine_ready():
    """The suite needs the real engine and images: scripts/provision makes them; fail loudly without."""
    probe = subprocess.run(["docker", "image", "inspect", "devtool-backend:dev", "postgres:15"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("Docker engine or demo images missing: run scripts/provision first.\n" + probe.stderr[-500:])


@pytest.fixture
def make_stack(tmp_path_factory, engine_ready):
    """Factory: make_stack(dirname=None) -> Stack (not started). Every stack is removed afterwards."""
    stacks: list[Stack] = []

    def factory(dirname: str | None = None, parent: Path | None = None) -> Stack:
        dirname = dirname or f"demo{uuid.uuid4().hex[:8]}"
        base = parent or tmp_path_factory.mktemp("stack")
        root = copy_demo(base / dirname)
        from toolkit.project import normalize_project_name

        stack = Stack(root, normalize_project_name(dirname))
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.down()


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory, engine_ready):
    """One started stack shared by a module's tests (each test must leave it as it found it)."""
    from toolkit.project import normalize_project_name

    dirname = f"mod{uuid.uuid4().hex[:8]}"
    s = Stack(copy_demo(tmp_path_factory.mktemp("module") / dirname), normalize_project_name(dirname))
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    yield s
    s.down()


@pytest.fixture
def stack(make_stack):
    """A started demo stack with the database at head."""
    s = make_stack()
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return s


POSTS_MODEL = '''from . import db


class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
'''

REVISION_TEMPLATE = '''"""{message}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
    pass
'''
