#!/usr/bin/env python3
"""Issue 4: is devtool faster than typing the commands by hand?  A wall-clock benchmark on the real engine.

    python bench/run.py [--runs N] [--quick] [--json FILE] [--keep]

Each case times devtool (side A) against what a user would type in the project directory (side B), on a
throw-away copy of the demo stack (docker-compose.yml + templates/ copied to /tmp/bench-XXXX/<name>/), warm
(one unmeasured pair first), in one run, alternating the sides pair by pair (A B A B ...) so drift of the
machine hits both sides alike.  Each sample is time.perf_counter() around subprocess.run (stdin /dev/null,
output captured).  Resetting the database and the revision files between migrate runs is not measured, and
every measured migrate is checked afterwards (revision file written, database at that revision, table there).

devtool is run through the console-script path the pyenv shim resolves to (the shim itself is a bash script
that costs tens of ms); both paths are printed, and one informational row times the shim.

Plain Python: standard library only (plus `devtool` and `docker compose` on PATH).  Never touches the repo's
own stack: every stack is its own compose project under /tmp and is removed (down -v) at the end.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_USERS_REVISION = "310ddeb54bfc"  # the template's only revision (create users table)
MODEL_MODULE = "bench_item"
MODEL_SOURCE = '''from . import db


class BenchItem(db.Model):
    __tablename__ = "bench_items"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    done = db.Column(db.Boolean, nullable=True)
'''
MODEL_TABLE = "bench_items"
IMPORT_ANCHOR = "    from . import user  # noqa: F401\n"
MESSAGE = "m"  # the same one-word message on both sides: devtool migrate m / flask db migrate -m m

# Scale fixture (issue 4 section 3)
SCALE_MODELS = 150  # model classes, each with a table
SCALE_MODULES = 15  # spread over this many model modules (10 classes each)
SCALE_REVISIONS = 300  # generated revisions, chained after the template's own: create table + add column each

TARGETS = {  # case -> (kind, limit): "ratio" is devtool/manual, "ms" is devtool's median wall time
    "migrate": ("ratio", 0.55),
    "db current": ("ratio", 1.00),
    "up (running stack)": ("ratio", 0.50),
    "--version": ("ms", 150.0),
    "--help": ("ms", 150.0),
    "cold migrate (stack down)": ("ratio", 1.00),  # no target in the issue; assumed "not slower than by hand"
    "scale: migrate": ("ratio", 1.10),
    "scale: migrate, no change": ("ratio", 1.10),
    "scale: db history": ("ratio", 1.10),
    "scale: status": ("ratio", 1.10),
    "long: migrate, 100 pending on 2,900": ("ratio", 1.20),
    "long: setup, 100 pending on 2,900": ("ratio", 1.20),
    "long: migrate, 3,000 from empty": ("ratio", 1.20),
    "long: setup, 3,000 from empty": ("ratio", 1.20),
}
ASSUMED_TARGETS = {"cold migrate (stack down)"}

# ---------------------------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class BenchError(Exception):
    pass


def user_environment() -> tuple[dict[str, str], bool]:
    """The environment of the user's shell. Started through a pyenv shim (`python bench/run.py`), this process
    runs under `pyenv exec`, which put the version's bin/ (and pyenv's libexec and plugin bins) in front of PATH
    and exported PYENV_VERSION: undo that, or `devtool` on PATH would not be the shim the user runs."""
    env = dict(os.environ)
    root = env.get("PYENV_ROOT")
    entries = env.get("PATH", "").split(os.pathsep)
    if not root or not entries or not re.match(re.escape(root) + r"/versions/[^/]+/bin$", entries[0]):
        return env, False
    injected = re.compile(re.escape(root) + r"/(versions/[^/]+/bin|libexec|plugins/[^/]+/bin)$")
    while entries and injected.match(entries[0]):
        entries.pop(0)
    env["PATH"] = os.pathsep.join(entries)
    for name in list(env):
        if name in ("PYENV_VERSION", "PYENV_DIR", "PYENV_HOOK_PATH", "_PYENV_INSTALL_PREFIX") \
                or name.startswith("_PYENV_SHIM_PATHS_"):
            del env[name]
    return env, True


USER_ENV, UNDER_PYENV_EXEC = user_environment()


def clean_env() -> dict[str, str]:
    """The user's environment minus anything that would point devtool or compose elsewhere."""
    env = {k: v for k, v in USER_ENV.items()
           if not k.startswith(("DEVTOOL_", "COMPOSE_")) and k not in ("DOCKER_DEFAULT_PLATFORM",)}
    env.update(NO_COLOR="1", COLUMNS="200")  # no colour codes in captured output; same on both sides
    return env


ENV = clean_env()


def run(cmd: list[str], cwd: Path | None = None, *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` (in {cwd}) exited {result.returncode}:\n"
                         f"{result.stdout[-1500:]}\n{result.stderr[-3000:]}")
    return result


def timed(cmd: list[str], cwd: Path | None = None, *, timeout: float = 600) -> float:
    """Wall time of one command, as the user would wait for it. A failing command aborts the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"measured command `{' '.join(cmd)}` (in {cwd}) exited {result.returncode}:\n"
                         f"{result.stdout.decode(errors='replace')[-1500:]}\n"
                         f"{result.stderr.decode(errors='replace')[-3000:]}")
    return elapsed


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.1):
    """Poll until condition() is truthy; fail after the deadline. (No fixed sleeps for synchronisation.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------- devtool


def resolve_devtool(explicit: str | None = None) -> dict:
    """The console script on PATH (often a pyenv shim) and the real script behind it (or --devtool PATH)."""
    on_path = shutil.which("devtool", path=ENV["PATH"])
    if on_path is None and explicit is None:
        raise BenchError("devtool is not on PATH: pip install -e '.[test]' in the repo first.")
    real = explicit or on_path
    how = "--devtool" if explicit else "PATH (not a shim)"
    head = Path(on_path).read_bytes()[:200] if on_path else b""
    if explicit is None and (b"pyenv" in head or "/shims/" in on_path):
        found = subprocess.run(["pyenv", "which", "devtool"], capture_output=True, text=True, env=ENV)
        if found.returncode == 0 and found.stdout.strip():
            real, how = found.stdout.strip(), "`pyenv which devtool` (the shim's target)"
        else:  # the shim's target is the script next to the interpreter running this benchmark
            candidate = Path(sys.executable).resolve().parent / "devtool"
            if candidate.is_file():
                real, how = str(candidate), "next to sys.executable"
    interpreter = None
    first = Path(real).read_text(errors="replace").splitlines()[0] if Path(real).is_file() else ""
    if first.startswith("#!"):
        parts = first[2:].strip().split()
        interpreter = parts[-1] if parts and parts[0].endswith("/env") else (parts[0] if parts else None)
        if interpreter and not os.path.isabs(interpreter):
            interpreter = shutil.which(interpreter, path=ENV["PATH"])
    return {"on_path": on_path or real, "real": real, "resolved_by": how,
            "interpreter": interpreter or sys.executable,
            "python_on_path": shutil.which("python", path=ENV["PATH"]) or "python",
            "pyenv_exec_undone": UNDER_PYENV_EXEC}


# ---------------------------------------------------------------------------------------------- stacks


class Stack:
    """A copy of the demo stack in its own directory, hence its own compose project (named after the dir)."""

    def __init__(self, parent: Path, name: str) -> None:
        self.root = parent / name
        self.name = name
        self.backend = self.root / "templates" / "backend"
        self.versions_dir = self.backend / "migrations" / "versions"
        self.models_dir = self.backend / "app" / "models"
        self.root.mkdir(parents=True)
        shutil.copy(REPO / "docker-compose.yml", self.root / "docker-compose.yml")
        shutil.copytree(REPO / "templates", self.root / "templates",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.pristine_init = (self.models_dir / "__init__.py").read_text()
        self.pristine_versions: set[str] = set()
        self.base_revision = BASE_USERS_REVISION

    # what a user types, from the project directory
    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(["docker", "compose", *args], cwd=self.root, check=check, timeout=timeout)

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "backend", "flask", *args, check=check)

    def psql(self, sql: str, check: bool = True) -> str:
        return self.compose("exec", "-T", "db", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "devtool",
                            "-d", "devtool", "-c", sql, check=check).stdout.strip()

    def db_revision(self) -> str:
        return self.psql("SELECT string_agg(version_num, ',') FROM alembic_version")

    def has_table(self, table: str) -> bool:
        return self.psql(f"SELECT count(*) FROM pg_tables WHERE schemaname='public' AND tablename='{table}'") == "1"

    def revision_files(self) -> set[str]:
        return {p.name for p in self.versions_dir.glob("*.py")}

    def new_revision_files(self) -> list[Path]:
        return sorted(self.versions_dir / n for n in self.revision_files() - self.pristine_versions)

    def running(self) -> bool:
        ps = self.compose("ps", "--format", "json", check=False)
        if ps.returncode != 0:
            return False
        rows = [json.loads(line) for line in ps.stdout.splitlines() if line.strip().startswith("{")]
        states = {r.get("Service"): (r.get("State"), r.get("Health")) for r in rows}
        return states.get("backend", (None,))[0] == "running" and states.get("db") == ("running", "healthy")

    def snapshot_pristine(self) -> None:
        """The history as it is now (after fixtures): everything else in versions/ is ours to delete."""
        self.pristine_init = (self.models_dir / "__init__.py").read_text()
        self.pristine_versions = self.revision_files()
        self.base_revision = self.db_revision()

    # ---- the model change both sides migrate
    def write_model(self) -> None:
        (self.models_dir / f"{MODEL_MODULE}.py").write_text(MODEL_SOURCE)
        init = self.models_dir / "__init__.py"
        text = init.read_text()
        if f"from . import {MODEL_MODULE} " not in text:
            init.write_text(text.replace(IMPORT_ANCHOR, IMPORT_ANCHOR + f"    from . import {MODEL_MODULE}  # noqa: F401\n"))

    def check_migrated(self, side: str) -> None:
        """After a measured migrate: exactly one new revision, applied, table created."""
        new = self.new_revision_files()
        if len(new) != 1:
            raise BenchError(f"{side}: expected one new revision file, found {[p.name for p in new]}")
        revision = re.search(r"^revision = ['\"]([^'\"]+)['\"]", new[0].read_text(), re.M).group(1)
        current = self.db_revision()
        if current != revision or not self.has_table(MODEL_TABLE):
            raise BenchError(f"{side}: database at {current!r}, expected {revision!r} with table {MODEL_TABLE}")

    def reset_migration(self) -> None:
        """Back to the base revision, our revision files deleted, model removed; then the model written again.
        Needs the stack up. Not measured."""
        current = self.db_revision()
        if current != self.base_revision:
            down = self.flask("db", "downgrade", self.base_revision, check=False)
            if down.returncode != 0 or self.db_revision() != self.base_revision:
                # belt and braces: put the database back by hand
                log(f"{self.name}: downgrade failed ({down.stderr.strip()[-200:]}); resetting by SQL")
                self.psql(f"DROP TABLE IF EXISTS {MODEL_TABLE}; UPDATE alembic_version SET version_num="
                          f"'{self.base_revision}'")
        for path in self.new_revision_files():
            path.unlink()
        (self.models_dir / f"{MODEL_MODULE}.py").unlink(missing_ok=True)
        (self.models_dir / "__init__.py").write_text(self.pristine_init)
        if self.has_table(MODEL_TABLE) or self.db_revision() != self.base_revision:
            raise BenchError(f"{self.name}: reset failed (revision {self.db_revision()})")
        self.write_model()

    def down(self, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", "-t", "1", *(["-v"] if volumes else []), check=False)

    def destroy(self) -> None:
        self.down(volumes=True)
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devtool"
        for path in state.glob(f"projects/{self.name}-*"):  # devtool's state for this project only
            shutil.rmtree(path, ignore_errors=True)


# ---- scale fixture: 150 models in 15 modules, 300 hand-written revisions in one chain


def scale_revision_id(index: int) -> str:
    return f"5ca1e{index:07d}"


def scale_table(k: int) -> str:
    return f"thing_{k:03d}"


def write_scale_fixture(stack: Stack) -> None:
    per_module = SCALE_MODELS // SCALE_MODULES
    imports = []
    for m in range(SCALE_MODULES):
        lines = ["from . import db\n"]
        for k in range(m * per_module, (m + 1) * per_module):
            lines.append(f'''

class Thing{k:03d}(db.Model):
    __tablename__ = "{scale_table(k)}"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(100), nullable=False)
    owner_id = db.Column(db.Integer, db.ForeignKey("users.id"), index=True)
    extra = db.Column(db.String(50))
''')
        (stack.models_dir / f"scale_{m:02d}.py").write_text("".join(lines))
        imports.append(f"    from . import scale_{m:02d}  # noqa: F401\n")
    init = stack.models_dir / "__init__.py"
    init.write_text(init.read_text().replace(IMPORT_ANCHOR, IMPORT_ANCHOR + "".join(imports)))

    previous = BASE_USERS_REVISION
    for index in range(1, SCALE_REVISIONS + 1):
        k, adds_column = divmod(index - 1, 2)
        table = scale_table(k)
        revision = scale_revision_id(index)
        if not adds_column:
            message = f"create {table}"
            upgrade = (f"    op.create_table('{table}',\n"
                       f"    sa.Column('id', sa.Integer(), nullable=False),\n"
                       f"    sa.Column('name', sa.String(length=100), nullable=False),\n"
                       f"    sa.Column('owner_id', sa.Integer(), nullable=True),\n"
                       f"    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),\n"
                       f"    sa.PrimaryKeyConstraint('id')\n"
                       f"    )\n"
                       f"    op.create_index(op.f('ix_{table}_owner_id'), '{table}', ['owner_id'], unique=False)\n")
            downgrade = (f"    op.drop_index(op.f('ix_{table}_owner_id'), table_name='{table}')\n"
                         f"    op.drop_table('{table}')\n")
        else:
            message = f"add {table}.extra"
            upgrade = f"    op.add_column('{table}', sa.Column('extra', sa.String(length=50), nullable=True))\n"
            downgrade = f"    op.drop_column('{table}', 'extra')\n"
        slug = re.sub(r"[^a-z0-9]+", "_", message).strip("_")
        (stack.versions_dir / f"{revision}_{slug}.py").write_text(
            f'"""{message}\n\nRevision ID: {revision}\nRevises: {previous}\nCreate Date: 2026-01-01 00:00:00\n\n"""\n'
            f"from alembic import op\nimport sqlalchemy as sa\n\n\n"
            f"# revision identifiers, used by Alembic.\n"
            f"revision = '{revision}'\ndown_revision = '{previous}'\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{upgrade}\n\ndef downgrade():\n{downgrade}")
        previous = revision


# ---- long history (issue 14 section 8): 3,000 revisions in one chain, 100 pending or all of them

LONG_REVISIONS = 3000  # the template's revision and 2,999 generated ones
LONG_PENDING = 100
LONG_MODEL = '''from . import db


class BenchLog(db.Model):
    __tablename__ = "bench_log"
    id = db.Column(db.Integer, primary_key=True)
    rev = db.Column(db.String(20))
'''


def long_revision_id(index: int) -> str:
    return f"1009{index:08d}"


def write_long_fixture(stack: Stack) -> None:
    """A model (bench_log) and 2,999 revisions after the template's: the first creates bench_log, every other
    one inserts a row, as data migrations do; each downgrade deletes its row."""
    (stack.models_dir / "bench_log.py").write_text(LONG_MODEL)
    init = stack.models_dir / "__init__.py"
    init.write_text(init.read_text().replace(IMPORT_ANCHOR, IMPORT_ANCHOR + "    from . import bench_log  # noqa: F401\n"))
    previous = BASE_USERS_REVISION
    for index in range(1, LONG_REVISIONS):
        revision = long_revision_id(index)
        if index == 1:
            upgrade = ("    op.create_table('bench_log', sa.Column('id', sa.Integer(), nullable=False),\n"
                       "                    sa.Column('rev', sa.String(length=20), nullable=True),\n"
                       "                    sa.PrimaryKeyConstraint('id'))\n")
            downgrade = "    op.drop_table('bench_log')\n"
        else:
            upgrade = f"    op.execute(\"INSERT INTO bench_log (id, rev) VALUES ({index}, '{revision}')\")\n"
            downgrade = f"    op.execute(\"DELETE FROM bench_log WHERE id = {index}\")\n"
        (stack.versions_dir / f"{revision}_step_{index}.py").write_text(
            f'"""step {index}\n\nRevision ID: {revision}\nRevises: {previous}\nCreate Date: 2026-01-01 00:00:00\n\n"""\n'
            f"from alembic import op\nimport sqlalchemy as sa\n\n\n"
            f"revision = '{revision}'\ndown_revision = '{previous}'\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{upgrade}\n\ndef downgrade():\n{downgrade}")
        previous = revision


# ---------------------------------------------------------------------------------------------- cases


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.devtool = resolve_devtool(args.devtool)
        self.dt = [self.devtool["real"]]
        self.results: list[dict] = []
        self.stacks: list[Stack] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
        self.tag = uuid.uuid4().hex[:6]

    def new_stack(self, label: str) -> Stack:
        stack = Stack(self.tmp, f"bench{label}{self.tag}")
        self.stacks.append(stack)
        return stack

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"--keep: leaving {self.tmp} and its stacks up")
            return
        for stack in self.stacks:
            log(f"removing stack {stack.name} (down -v)")
            try:
                stack.destroy()
            except Exception as exc:  # keep going: the other stacks must go too
                log(f"could not remove {stack.name}: {exc}")
        self.stacks = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the pair loop
    def pairs(self, case: str, side_a, side_b, *, runs: int, cmd_a: str, cmd_b: str,
              reset=None, after_a=None, after_b=None, warmup: bool = True) -> dict:
        """ABAB...: `runs` measured pairs, each side preceded by reset() and followed by its check (unmeasured)."""
        a, b, loads = [], [], []
        total = runs + (1 if warmup else 0)
        for i in range(total):
            if self.args.max_load:  # optional: wait (polling, with a deadline) for a quieter machine
                try:
                    wait_for(lambda: loadavg() <= self.args.max_load, timeout=self.args.max_load_wait,
                             what=f"load average <= {self.args.max_load}", interval=1.0)
                except BenchError:
                    log(f"  load average still {loadavg():.1f}; measuring anyway")
            for side, fn, out, after in (("A", side_a, a, after_a), ("B", side_b, b, after_b)):
                if reset:
                    reset()
                elapsed = fn()
                if after:
                    after(side)
                if not (warmup and i == 0):
                    out.append(elapsed)
            if not (warmup and i == 0):
                loads.append(loadavg())
                log(f"  {case}: pair {len(a)}/{runs}: devtool {a[-1] * 1000:7.0f} ms   manual {b[-1] * 1000:7.0f} ms"
                    f"   (load {loads[-1]:.1f})")
        result = {"case": case, "devtool_cmd": cmd_a, "manual_cmd": cmd_b, "devtool_s": a, "manual_s": b, "loadavg_1min": loads,
                  "devtool_median_s": median(a), "manual_median_s": median(b),
                  "ratio": median(a) / median(b),
                  "pair_ratio_median": median([x / y for x, y in zip(a, b)])}
        kind, limit = TARGETS.get(case, (None, None))
        if kind == "ratio":
            result.update(target=f"≤ {limit:.2f}", passed=result["ratio"] <= limit)
        elif kind == "ms":
            result.update(target=f"≤ {limit:.0f} ms", passed=result["devtool_median_s"] * 1000 <= limit)
        else:
            result.update(target="info", passed=None)
        result["target_assumed"] = case in ASSUMED_TARGETS
        self.results.append(result)
        return result

    # ---- cases
    def startup(self, runs: int) -> None:
        python = self.devtool["interpreter"]
        log(f"startup: {self.dt[0]} vs {python} -c pass")
        for case, flag in (("--version", "--version"), ("--help", "--help")):
            self.pairs(case, lambda: timed([*self.dt, flag]), lambda: timed([python, "-c", "pass"]), runs=runs,
                       cmd_a=f"devtool {flag}", cmd_b="python -c pass")
        shim_python = self.devtool["python_on_path"]
        self.pairs("--version via the pyenv shim", lambda: timed([self.devtool["on_path"], "--version"]),
                   lambda: timed([shim_python, "-c", "pass"]), runs=runs,
                   cmd_a=f"{self.devtool['on_path']} --version", cmd_b=f"{shim_python} -c pass")

    def small_stack(self, runs: int, cold_runs: int) -> None:
        s = self.new_stack("demo")
        log(f"stack {s.name} in {s.root}: devtool up, then db upgrade")
        run([*self.dt, "up"], cwd=s.root)  # also writes devtool's fast-path memo, as a user's first `up` does
        s.flask("db", "upgrade")
        wait_for(s.running, timeout=120, what=f"{s.name} running and healthy")
        s.snapshot_pristine()
        d = lambda *a: (lambda: timed([*self.dt, *a], cwd=s.root))
        c = lambda *a: (lambda: timed(["docker", "compose", *a], cwd=s.root))

        self.pairs("up (running stack)", d("up"), c("up", "-d"), runs=runs,
                   cmd_a="devtool up", cmd_b="docker compose up -d")
        self.pairs("db current", d("db", "current"), c("exec", "-T", "backend", "flask", "db", "current"),
                   runs=runs, cmd_a="devtool db current", cmd_b="docker compose exec -T backend flask db current")
        self.migrate_case("migrate", s, runs)
        self.cold_case(s, cold_runs)
        s.down(volumes=True)

    def migrate_case(self, case: str, s: Stack, runs: int) -> None:
        def manual():
            return (timed(["docker", "compose", "exec", "-T", "backend", "flask", "db", "migrate", "-m", MESSAGE],
                          cwd=s.root)
                    + timed(["docker", "compose", "exec", "-T", "backend", "flask", "db", "upgrade"], cwd=s.root))

        self.pairs(case, lambda: timed([*self.dt, "migrate", MESSAGE], cwd=s.root), manual, runs=runs,
                   reset=s.reset_migration, after_a=lambda side: s.check_migrated("devtool"),
                   after_b=lambda side: s.check_migrated("manual"),
                   cmd_a=f"devtool migrate {MESSAGE}",
                   cmd_b=f"docker compose exec -T backend flask db migrate -m {MESSAGE} && "
                         "docker compose exec -T backend flask db upgrade")
        s.reset_migration()

    def cold_case(self, s: Stack, runs: int) -> None:
        def reset():
            if not s.running():
                run(["docker", "compose", "up", "-d", "--wait"], cwd=s.root)
            s.reset_migration()
            s.compose("down", "-t", "1")  # containers gone, volume (the database) kept
            wait_for(lambda: not s.compose("ps", "-aq").stdout.strip(), timeout=60, what="containers removed")

        def manual():
            return (timed(["docker", "compose", "up", "-d", "--wait"], cwd=s.root)
                    + timed(["docker", "compose", "exec", "-T", "backend", "flask", "db", "migrate", "-m", MESSAGE],
                            cwd=s.root)
                    + timed(["docker", "compose", "exec", "-T", "backend", "flask", "db", "upgrade"], cwd=s.root))

        self.pairs("cold migrate (stack down)", lambda: timed([*self.dt, "migrate", MESSAGE], cwd=s.root), manual,
                   runs=runs, reset=reset, after_a=lambda side: s.check_migrated("devtool"),
                   after_b=lambda side: s.check_migrated("manual"),
                   cmd_a=f"devtool migrate {MESSAGE}   (after docker compose down)",
                   cmd_b=f"docker compose up -d --wait && docker compose exec -T backend flask db migrate -m "
                         f"{MESSAGE} && docker compose exec -T backend flask db upgrade")
        if not s.running():
            run(["docker", "compose", "up", "-d", "--wait"], cwd=s.root)
        s.reset_migration()

    def scale(self, runs: int) -> None:
        s = self.new_stack("scale")
        write_scale_fixture(s)
        log(f"stack {s.name}: {SCALE_MODELS} models, {SCALE_REVISIONS} generated revisions (+1 template); "
            "devtool up, db upgrade to head")
        run([*self.dt, "up"], cwd=s.root)
        started = time.perf_counter()
        s.flask("db", "upgrade")
        log(f"  upgraded {SCALE_REVISIONS + 1} revisions in {time.perf_counter() - started:.1f}s")
        check = s.flask("db", "check", check=False)
        if check.returncode != 0:
            raise BenchError(f"scale fixture: models and revisions disagree:\n{check.stdout}\n{check.stderr}")
        s.snapshot_pristine()
        if s.base_revision != scale_revision_id(SCALE_REVISIONS):
            raise BenchError(f"scale fixture: database at {s.base_revision}")
        tables = int(s.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'"))
        log(f"  database at head {s.base_revision}, {tables} tables, {len(s.pristine_versions)} revision files")
        d = lambda *a: (lambda: timed([*self.dt, *a], cwd=s.root))
        exec_flask = ["docker", "compose", "exec", "-T", "backend", "flask"]

        self.migrate_case("scale: migrate", s, runs)
        s.reset_migration()
        # no model change: restore the pristine models so both sides find nothing to do
        (s.models_dir / f"{MODEL_MODULE}.py").unlink(missing_ok=True)
        (s.models_dir / "__init__.py").write_text(s.pristine_init)

        def no_change(side):
            if s.new_revision_files() or s.db_revision() != s.base_revision:
                raise BenchError(f"scale no-change migrate ({side}) changed something")

        self.pairs("scale: migrate, no change", d("migrate", MESSAGE),
                   lambda: timed([*exec_flask, "db", "migrate", "-m", MESSAGE], cwd=s.root)
                   + timed([*exec_flask, "db", "upgrade"], cwd=s.root),
                   runs=runs, after_a=no_change, after_b=no_change, cmd_a=f"devtool migrate {MESSAGE}",
                   cmd_b=f"docker compose exec -T backend flask db migrate -m {MESSAGE} && "
                         "docker compose exec -T backend flask db upgrade")
        self.pairs("scale: db history", d("db", "history"), lambda: timed([*exec_flask, "db", "history"], cwd=s.root),
                   runs=runs, cmd_a="devtool db history", cmd_b="docker compose exec -T backend flask db history")
        self.pairs("scale: status", d("status"),
                   lambda: timed([*exec_flask, "db", "current"], cwd=s.root)
                   + timed([*exec_flask, "db", "heads"], cwd=s.root),
                   runs=runs, cmd_a="devtool status",
                   cmd_b="docker compose exec -T backend flask db current && "
                         "docker compose exec -T backend flask db heads")
        s.down(volumes=True)


    def long_history(self, runs: int) -> None:
        """Each devtool path that applies revisions against `flask db upgrade`, on a 3,000-revision history:
        100 pending on top of 2,900 applied, and all 3,000 on an empty database."""
        s = self.new_stack("long")
        write_long_fixture(s)
        log(f"stack {s.name}: {LONG_REVISIONS} revisions; devtool up, db upgrade to head")
        run([*self.dt, "up"], cwd=s.root)
        s.flask("db", "upgrade")
        head = long_revision_id(LONG_REVISIONS - 1)
        if s.db_revision() != head:
            raise BenchError(f"long fixture: database at {s.db_revision()}, not {head}")
        applied = long_revision_id(LONG_REVISIONS - 1 - LONG_PENDING)
        exec_flask = ["docker", "compose", "exec", "-T", "backend", "flask"]

        def behind() -> None:  # the state after 2,900 revisions: their rows, their version (not measured)
            s.psql(f"DELETE FROM bench_log WHERE id > {LONG_REVISIONS - 1 - LONG_PENDING}; "
                   f"UPDATE alembic_version SET version_num = '{applied}'")

        def empty() -> None:
            s.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")

        def at_head(side: str) -> None:
            rows = s.psql("SELECT count(*) FROM bench_log")
            if s.db_revision() != head or rows != str(LONG_REVISIONS - 2) or s.new_revision_files():
                raise BenchError(f"long ({side}): database at {s.db_revision()} with {rows} rows, "
                                 f"new files {s.new_revision_files()}")

        s.snapshot_pristine()
        for case, reset, args in (
                (f"long: migrate, {LONG_PENDING} pending on 2,900", behind, ["migrate", MESSAGE]),
                (f"long: setup, {LONG_PENDING} pending on 2,900", behind, ["setup"]),
                (f"long: migrate, 3,000 from empty", empty, ["migrate", MESSAGE]),
                (f"long: setup, 3,000 from empty", empty, ["setup"])):
            self.pairs(case, lambda args=args: timed([*self.dt, *args], cwd=s.root),
                       lambda: timed([*exec_flask, "db", "upgrade"], cwd=s.root), runs=runs, reset=reset,
                       after_a=at_head, after_b=at_head, cmd_a=f"devtool {' '.join(args)}",
                       cmd_b="docker compose exec -T backend flask db upgrade")
        s.down(volumes=True)


# ---------------------------------------------------------------------------------------------- report


def machine(devtool: dict) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = run(["nproc"], check=False).stdout.strip() or str(os.cpu_count())
    docker = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip()
    compose = run(["docker", "compose", "version", "--short"], check=False).stdout.strip()
    source = measured_toolkit(devtool)
    root = Path(source).parent if os.path.isdir(source) else REPO
    commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=False).stdout.strip() or "?"
    dirty = run(["git", "status", "--porcelain", "--", "toolkit"], cwd=root, check=False).stdout.strip()
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    return {"nproc": nproc, "cpu": cpu, "docker": docker, "compose": compose,
            "python": platform.python_version(), "kernel": platform.release(),
            "commit": commit + (" (toolkit/ modified in the work tree)" if dirty else ""), "loadavg_start": load,
            "toolkit_source": source, "toolkit_sha_start": toolkit_digest(source),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def measured_toolkit(devtool: dict) -> str:
    """Where the measured devtool imports `toolkit` from: an editable install can point anywhere (and be
    re-pointed by another checkout's `pip install -e` while we run)."""
    if devtool["resolved_by"] == "--devtool":
        return "(--devtool script; not inspected)"
    probe = subprocess.run([devtool["interpreter"], "-c", "import os, toolkit; print(os.path.dirname(toolkit.__file__))"],
                           cwd="/", env=ENV, capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else f"(cannot import toolkit: {probe.stderr.strip()[-200:]})"


def toolkit_digest(directory: str) -> str:
    """A hash of the devtool source being measured: others edit toolkit/ concurrently, so say if it moved."""
    import hashlib

    if not os.path.isdir(directory):
        return "-"
    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*.py")):
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(bench: Bench, info: dict, args, elapsed: float) -> str:
    dv = bench.devtool
    lines = [
        "# devtool vs typing the commands by hand (issue 4)",
        "",
        "Reproduce: `python bench/run.py`" + (f" (this run: `{' '.join(sys.argv)}`)" if sys.argv[1:] else ""),
        "",
        f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}; Docker engine {info['docker']}, "
        f"Compose {info['compose']}; Python {info['python']}; kernel {info['kernel']}; "
        f"load average at start {info['loadavg_start']}, at end {info.get('loadavg_end', '?')}.",
        f"devtool's code: `{info['toolkit_source']}` (commit {info['commit']}), sources sha256 "
        f"{info['toolkit_sha_start']}"
        + (f" at start, {info['toolkit_sha_end']} at end (**the measured code changed during the run**)"
           if info.get("toolkit_sha_end") != info["toolkit_sha_start"] else "")
        + (f" (the editable install was re-pointed to `{info['toolkit_source_end']}` during the run, same sources)"
           if info.get("toolkit_source_end") != info["toolkit_source"]
           and info.get("toolkit_sha_end") == info["toolkit_sha_start"] else "")
        + f", {info['date']}; {args.runs} measured pairs per case "
        f"(+1 warm-up pair), cold path {info['cold_runs']} pairs; total {elapsed / 60:.1f} min.",
        f"devtool measured as `{dv['real']}` (resolved by {dv['resolved_by']}; on PATH: `{dv['on_path']}`). "
        f"`python -c pass` uses devtool's own interpreter `{dv['interpreter']}`; the `via the pyenv shim` row "
        f"runs `{dv['on_path']}` against `{dv['python_on_path']}`."
        + (" (PATH and PYENV_* as in the user's shell: the `pyenv exec` prefix this run started under was "
           "removed.)" if dv["pyenv_exec_undone"] else ""),
        "",
        "Ratio = median(devtool) / median(manual); wall time, ABAB alternation, output captured, stdin /dev/null.",
        "",
        "| Case | devtool | manual | devtool median | manual median | ratio | target | result |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in bench.results:
        verdict = {True: "PASS", False: "**FAIL**", None: "info"}[r["passed"]]
        target = r["target"] + (" (assumed)" if r["target_assumed"] else "")
        lines.append(f"| {r['case']} | `{r['devtool_cmd']}` | `{r['manual_cmd']}` | {fmt_ms(r['devtool_median_s'])} "
                     f"| {fmt_ms(r['manual_median_s'])} | {r['ratio']:.2f} | {target} | {verdict} |")
    lines += ["", "Samples (ms, in run order; devtool / manual):", ""]
    for r in bench.results:
        lines.append(f"- {r['case']}: devtool [{', '.join(f'{x * 1000:.0f}' for x in r['devtool_s'])}]; "
                     f"manual [{', '.join(f'{x * 1000:.0f}' for x in r['manual_s'])}]; "
                     f"median of per-pair ratios {r['pair_ratio_median']:.2f}; 1-min load average "
                     f"{min(r['loadavg_1min']):.1f}–{max(r['loadavg_1min']):.1f}")
    lines += ["", "Notes:",
              "- migrate: identical model change on both sides (new module app/models/bench_item.py + its import "
              "line in init_app); between runs (not measured) the database is downgraded to the base revision, the "
              "new revision file deleted and the model re-written; after every measured run the new revision is "
              "checked to be applied.",
              "- cold: `docker compose down` (volume kept) before each side; devtool's time runs until the "
              "revision is applied, the manual side is `up -d --wait` + `flask db migrate` + `flask db upgrade`.",
              f"- scale: {SCALE_MODELS} model classes in {SCALE_MODULES} modules, {SCALE_REVISIONS} hand-written "
              "revisions chained after the template's (create table + FK + index, then add column, per table), "
              "database upgraded to head; `flask db check` confirms models and history agree.",
              "- cold migrate has no target in issue 4; the table uses ≤ 1.00 (not slower than by hand).",
              f"- long: {LONG_REVISIONS} revisions in one chain (bench_log created by the first, then one INSERT per "
              f"revision, as data migrations do); between runs (not measured) the database is put back at revision "
              f"{LONG_REVISIONS - LONG_PENDING} by SQL (its rows and version) or emptied (DROP SCHEMA); after every "
              f"run both sides must be at head with every row and no new revision file. migrate also autogenerates "
              f"(no change: nothing written); setup also runs its checks before and after."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="measured pairs per case (default 7; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, skip the scale and long-history fixtures")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to FILE")
    parser.add_argument("--devtool", help="measure this devtool script instead of the one on PATH")
    parser.add_argument("--max-load", type=float, default=None,
                        help="before each pair, wait until the 1-minute load average is at most this")
    parser.add_argument("--max-load-wait", type=float, default=120.0, help="longest wait for --max-load (s)")
    parser.add_argument("--keep", action="store_true", help="leave the stacks and temp dir (debugging)")
    parser.add_argument("--only", choices=["startup", "stack", "scale", "long"], action="append",
                        help="run only these groups (repeatable)")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 7)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    groups = set(args.only or ["startup", "stack", "scale", "long"])
    if args.quick:
        groups -= {"scale", "long"}
    cold_runs = args.runs if not args.quick else max(1, min(args.runs, 2))

    if run(["docker", "info"], check=False).returncode != 0:
        print("The Docker engine is not reachable: run scripts/provision first.", file=sys.stderr)
        return 2
    bench = Bench(args)
    atexit.register(bench.cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine(bench.devtool)
    info["cold_runs"] = cold_runs
    log(f"devtool: {bench.devtool}")
    log(f"machine: {info}")
    started = time.perf_counter()
    try:
        if "startup" in groups:
            bench.startup(args.runs)
        if "stack" in groups:
            bench.small_stack(args.runs, cold_runs)
        if "scale" in groups:
            bench.scale(args.runs)
        if "long" in groups:
            bench.long_history(args.runs)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        bench.cleanup()
    info["toolkit_source_end"] = measured_toolkit(bench.devtool)
    info["toolkit_sha_end"] = toolkit_digest(info["toolkit_source_end"])
    try:
        info["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    text = report(bench, info, args, time.perf_counter() - started)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "devtool": bench.devtool, "runs": args.runs,
                                         "results": bench.results}, indent=2))
    failed = [r["case"] for r in bench.results if r["passed"] is False]
    return 0 if not failed else 3


if __name__ == "__main__":
    sys.exit(main())
