"""Shared fixtures: throw-away copies of compose stacks on the real Docker engine, and a devtool runner.

Two stacks, one helper: the repo's demo stack (docker-compose.yml + templates/) and the legacy fixture
(tests/fixtures/legacy), each described by a Layout and driven by the same Stack class.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pytest

pytest_plugins = ["pytester"]  # test_harness.py runs pytest on this conftest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
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
    # devtool's state (kept revisions, snapshot metadata) of the suite's throw-away projects stays out of the
    # user's own ~/.local/state/devtool: one folder for the run (xdist workers inherit it), removed at its end
    if "DEVTOOL_TEST_STATE" not in os.environ:
        os.environ["DEVTOOL_TEST_STATE"] = os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="devtool-state-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ["DEVTOOL_TEST_STATE"], ignore_errors=True))


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything: every collected test is checked
def pytest_collection_modifyitems(session, config, items):
    """A test that needs the engine (the engine_ready fixture, directly or through its fixtures) must carry the
    docker marker, so that `pytest -m "not docker"` never selects it: each one that does not is a collection
    error (the run stops before any test, with or without xdist)."""
    unmarked = [item for item in items
                if "engine_ready" in getattr(item, "fixturenames", ()) and item.get_closest_marker("docker") is None]
    for item in unmarked:
        config.hook.pytest_collectreport(report=pytest.CollectReport(
            item.nodeid, "failed", f"{item.nodeid} uses the engine_ready fixture but has no `docker` marker: "
            "add `pytestmark = pytest.mark.docker` to its module or @pytest.mark.docker to it.", []))
    if unmarked:
        items[:] = []  # an xdist worker would run them regardless of the errors: run nothing


def run_devtool(*args: str, cwd: Path, env: dict | None = None, input: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """devtool as a user runs it: a separate process, no TTY, its real exit code and output."""
    full_env = checkout_env({**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run([*DEVTOOL, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)


def run_devtool_each(arg_lists: list[list[str]], *, cwd: Path, **kwargs) -> list[subprocess.CompletedProcess]:
    """run_devtool once per argument list, side by side (independent runs: each one's start-up is the cost)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda args: run_devtool(*args, cwd=cwd, **kwargs), arg_lists))


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


def run_on_terminal(args: list[str], cwd: Path, *, env: dict | None = None, columns: int | None = None,
                    answer: tuple[bytes, bytes] | None = None, timeout: float = 300) -> tuple[int, str]:
    """devtool on a pseudo-terminal, as a person runs it: (exit code, what the screen showed). `columns`: the
    terminal's real size (COLUMNS and LINES dropped); `answer` = (question, reply): the reply typed once the
    question shows (a question that never comes fails the test)."""
    import pty
    import select

    main, terminal = pty.openpty()
    environment = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    if columns:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        environment = {k: v for k, v in environment.items() if k not in ("COLUMNS", "LINES")}
    run = subprocess.Popen([*DEVTOOL, *args], cwd=cwd, stdin=terminal, stdout=terminal, stderr=terminal,
                           env=checkout_env({**environment, **(env or {})}), close_fds=True)
    os.close(terminal)
    seen, pending, deadline = b"", answer, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([main], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if pending and pending[0] in seen:
            os.write(main, pending[1] + b"\n")
            pending = None
    os.close(main)
    if pending:
        run.kill()
    assert not pending, f"devtool never asked {pending[0]!r}:\n{seen.decode(errors='replace')}"
    return run.wait(timeout=60), seen.decode(errors="replace")


@dataclass(frozen=True)
class Layout:
    """What differs between the stacks the tests run: files, names, folders, and the model a test adds."""

    name: str                       # the test id, and the prefix of each copy's directory
    copy: Callable[[Path], Path]    # fills a new directory with the stack's files; returns it
    backend: str                    # the backend service
    db_service: str
    db_user: str
    db_name: str
    backend_src: str                # the backend's source on the host (bind-mounted), relative to the copy
    migrations: str                 # the migrations folder, relative to the copy
    initial: str                    # the one revision a fresh copy has
    initial_message: str
    add_test_model: Callable[["Stack"], None]  # a new model the app loads: `devtool migrate` adds its table
    test_model_table: str
    test_model_message: str         # the message tests migrate it with
    image_fixture: str | None = None        # a fixture that makes the backend image available
    models_package: str | None = None       # where add_model() puts model modules, relative to backend_src
    container_name_var: str | None = None   # the .env variable the compose file takes container_name: from
    own_state_home: bool = False            # XDG_STATE_HOME next to the copy: its snapshots stay there


def copy_demo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "docker-compose.yml", root / "docker-compose.yml")
    shutil.copytree(REPO / "templates", root / "templates",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def copy_legacy(root: Path) -> Path:
    shutil.copytree(FIXTURES / "legacy", root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".env"))
    return root


def _add_post(stack: "Stack") -> None:
    stack.add_model("post", POSTS_MODEL)


def _add_invoice(stack: "Stack") -> None:
    models = stack.backend_src / "service" / "models.py"
    models.write_text(models.read_text() + INVOICE_MODEL)


DEMO = Layout(
    name="demo", copy=copy_demo, backend="backend", db_service="db", db_user="devtool", db_name="devtool",
    backend_src="templates/backend", migrations="templates/backend/migrations",
    initial="310ddeb54bfc", initial_message="create users table",
    add_test_model=_add_post, test_model_table="posts", test_model_message="add posts",
    models_package="app/models")

# Generated in the container with Flask-Migrate 3.1.0; models load only through a blueprint (service.views).
LEGACY = Layout(
    name="legacy", copy=copy_legacy, backend="api", db_service="database", db_user="legacy", db_name="legacydb",
    backend_src="src", migrations="src/db/migrations",
    initial="70578dabf015", initial_message="create customers table",
    add_test_model=_add_invoice, test_model_table="invoices", test_model_message="add invoices",
    image_fixture="legacy_image", container_name_var="API_CONTAINER_NAME", own_state_home=True)

LAYOUTS = [DEMO, LEGACY]


def with_fixture(name: str, base: Callable[[Path], Path] = copy_demo) -> Callable[[Path], Path]:
    """A copy of `base` (the demo stack) with the files of tests/fixtures/<name> laid over it."""
    def copy(root: Path) -> Path:
        base(root)
        shutil.copytree(FIXTURES / name, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        return root

    return copy


def copy_demo_backend(root: Path) -> Path:
    """The demo backend's source alone, at root/backend (for stacks that bake it into their image)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "templates" / "backend", root / "backend",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def variant(name: str, **changes) -> Layout:
    """A variant of the demo stack made from tests/fixtures/<name>, with its own state folder."""
    return replace(DEMO, name=name, copy=changes.pop("copy", with_fixture(name)), own_state_home=True, **changes)


class Stack:
    """A copy of a stack (see Layout) in its own directory, so its own compose project."""

    def __init__(self, root: Path, project: str, layout: Layout = DEMO) -> None:
        self.root = root
        self.project = project
        self.layout = layout
        self.backend_src = root / layout.backend_src
        self.migrations = root / layout.migrations
        self.env = {"XDG_STATE_HOME": str(root.parent / "state")} if layout.own_state_home else {}
        self.container_name = None
        if layout.container_name_var:  # several copies side by side: each its own container name
            self.container_name = f"{root.name}-{layout.backend}-named"
            (root / ".env").write_text(f"{layout.container_name_var}={self.container_name}\n")

    def devtool(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        env = {**self.env, **(kwargs.pop("env", None) or {})}
        return run_devtool(*args, cwd=kwargs.pop("cwd", self.root), env=env, **kwargs)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=self.root, text=True,
                              capture_output=True, check=check, stdin=subprocess.DEVNULL)

    def psql(self, sql: str, service: str | None = None) -> str:
        result = self.compose("exec", "-T", service or self.layout.db_service, "psql", "-X", "-At",
                              "-U", self.layout.db_user, "-d", self.layout.db_name, "-c", sql)
        return result.stdout.strip()

    def tables(self) -> set[str]:
        return set(self.psql("SELECT tablename FROM pg_tables WHERE schemaname='public'").split())

    def db_revision(self) -> str:
        return self.psql("SELECT version_num FROM alembic_version")

    def versions(self) -> list[Path]:
        return sorted((self.migrations / "versions").glob("*.py"))

    def add_test_model(self) -> None:
        """The layout's test model (demo: Post in app/models/post.py; legacy: Invoice in service/models.py)."""
        self.layout.add_test_model(self)

    def add_model(self, module: str, source: str, *, import_it: bool = True) -> None:
        assert self.layout.models_package, f"the {self.layout.name} stack has no package of model modules"
        package = self.backend_src / self.layout.models_package
        (package / f"{module}.py").write_text(source)
        if import_it:
            init = package / "__init__.py"
            text = init.read_text()
            anchor = "    from . import user  # noqa: F401\n"
            init.write_text(text.replace(anchor, anchor + f"    from . import {module}  # noqa: F401\n"))

    def write_revision(self, rev: str, down: str | None, upgrade: str, message: str = "hand written") -> Path:
        path = self.migrations / "versions" / f"{rev}_{message.replace(' ', '_')}.py"
        path.write_text(REVISION_TEMPLATE.format(rev=rev, down=repr(down), upgrade=upgrade, message=message))
        return path

    def snapshot(self) -> tuple:
        """What a failed command must not have changed: revision files and the database revision."""
        return ({p.name: p.read_bytes() for p in self.versions()}, self.db_revision())

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)


def new_stack(base: Path, dirname: str, layout: Layout = DEMO) -> Stack:
    """A fresh copy of the layout's stack at base/dirname (not started)."""
    from toolkit.project import normalize_project_name

    return Stack(layout.copy(base / dirname), normalize_project_name(dirname), layout)


@pytest.fixture(scope="session")
def engine_ready():
    """The suite needs the real engine and images: scripts/provision makes them; fail loudly without."""
    probe = subprocess.run(["docker", "image", "inspect", "devtool-backend:dev", "postgres:15"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("Docker engine or demo images missing: run scripts/provision first.\n" + probe.stderr[-500:])


LEGACY_IMAGE = "devtool-legacy-api:dev"
LEGACY_IMAGE_INPUTS = ["docker/api.Dockerfile", "requirements/base.txt", ".dockerignore"]
LEGACY_BUILD_TIMEOUT = 600


def _image_created(image: str) -> float | None:
    probe = subprocess.run(["docker", "image", "inspect", "-f", "{{.Created}}", image], capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    from datetime import datetime

    stamp = probe.stdout.strip()  # 2026-11-24T04:58:01.123456789Z: keep microseconds for fromisoformat
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


@pytest.fixture(scope="session")
def legacy_image(engine_ready):
    """devtool-legacy-api:dev, built with `docker compose build` when missing or older than its inputs."""
    missing = subprocess.run(["docker", "image", "inspect", "postgres:15", "python:3.11-slim-bookworm"],
                             capture_output=True, text=True)
    if missing.returncode != 0:
        pytest.fail("Docker engine or base images missing: run scripts/provision first.\n" + missing.stderr[-500:])
    fixture = FIXTURES / "legacy"
    created = _image_created(LEGACY_IMAGE)
    newest_input = max((fixture / p).stat().st_mtime for p in LEGACY_IMAGE_INPUTS)
    if created is not None and created >= newest_input:
        return LEGACY_IMAGE
    started = time.monotonic()
    build = subprocess.run(["docker", "compose", "-p", f"legacybuild{uuid.uuid4().hex[:6]}", "build", "api"],
                           cwd=fixture, capture_output=True, text=True, timeout=LEGACY_BUILD_TIMEOUT,
                           stdin=subprocess.DEVNULL)
    assert build.returncode == 0, f"building {LEGACY_IMAGE} failed:\n{build.stdout[-2000:]}\n{build.stderr[-3000:]}"
    print(f"\nbuilt {LEGACY_IMAGE} in {time.monotonic() - started:.1f} s")
    return LEGACY_IMAGE


@pytest.fixture
def no_devtool_settings(monkeypatch):
    """Prove auto-detection: no --service, no DEVTOOL_* settings from the caller's environment."""
    for name in list(os.environ):
        if name.startswith("DEVTOOL_") or name in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "API_CONTAINER_NAME"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_stack(request, tmp_path_factory, engine_ready, no_devtool_settings):
    """Factory: make_stack(dirname=None, parent=None, layout=DEMO) -> Stack (not started).
    Every stack is removed afterwards."""
    stacks: list[Stack] = []

    def factory(dirname: str | None = None, parent: Path | None = None, layout: Layout = DEMO) -> Stack:
        if layout.image_fixture:
            request.getfixturevalue(layout.image_fixture)
        dirname = dirname or f"{layout.name}{uuid.uuid4().hex[:8]}"
        stack = new_stack(parent or tmp_path_factory.mktemp(layout.name), dirname, layout)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        stack.down()


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory, engine_ready):
    """One started demo stack shared by a module's tests (each test must leave it as it found it)."""
    s = new_stack(tmp_path_factory.mktemp("module"), f"mod{uuid.uuid4().hex[:8]}")
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    yield s
    s.down()


@pytest.fixture(scope="module")
def module_stacks(tmp_path_factory, engine_ready):
    """Factory for stacks a module's tests share: module_stacks(layout) -> Stack (not started), each removed
    (with its volumes) after the module."""
    stacks: list[Stack] = []

    def factory(layout: Layout = DEMO) -> Stack:
        s = new_stack(tmp_path_factory.mktemp(layout.name), f"{layout.name}{uuid.uuid4().hex[:8]}", layout)
        stacks.append(s)
        return s

    yield factory
    for s in stacks:
        s.down()


@pytest.fixture
def stack(make_stack):
    """A started demo stack with the database at head."""
    s = make_stack()
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return s


@pytest.fixture(params=LAYOUTS, ids=lambda layout: layout.name)
def layout(request) -> Layout:
    """Each stack in turn: a test that takes it runs once on the demo stack and once on the legacy fixture."""
    return request.param


@pytest.fixture
def stack_at_head(make_stack, layout):
    """A started copy of each stack in turn, the database at its one revision."""
    s = make_stack(layout=layout)
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert s.db_revision() == layout.initial
    return s


def fingerprint(stack) -> dict:
    """Every table's row count and a checksum of its rows, every sequence's position: what a restore must give."""
    tables = stack.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    sequences = stack.psql("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1").split()
    parts = [f"SELECT 'table {t}', count(*) || ' ' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
             f"FROM public.\"{t}\" x" for t in tables]
    parts += [f"SELECT 'sequence {s}', last_value || ' ' || is_called FROM public.\"{s}\"" for s in sequences]
    rows = stack.psql(" UNION ALL ".join(parts)).splitlines()
    return dict(row.split("|", 1) for row in rows)


HOST_UID, HOST_GID = 1000, 1000  # an ordinary user, not the root the containers run as

POSTS_MODEL = '''from . import db


class Post(db.Model):
    __tablename__ = "posts"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
'''

INVOICE_MODEL = '''

class Invoice(db.Model):
    __tablename__ = "invoices"

    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customers.id"), nullable=False)
    total_cents = db.Column(db.Integer, nullable=False, default=0)
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
