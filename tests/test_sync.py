"""Switching git branches never strands the database (issue 10), on the real engine: the demo stack in a
temporary git repository. (a) an orphan after `git checkout main` is named everywhere and `devtool sync` takes it
back (and brings it again on the feature branch); (b) no copy anywhere, or a failing downgrade: `sync --restore`;
(c) two heads after a git merge; (d) the post-checkout hook. Plus: the legacy stack (Alembic 1.12, SQLAlchemy
1.4), and devtool going away during a downgrade."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import uuid

import pytest

from conftest import DEVTOOL, LEGACY, POSTS_MODEL, checkout_env, new_stack, wait_for

pytestmark = pytest.mark.docker

TAG_MODEL = POSTS_MODEL.replace("Post", "Tag").replace('"posts"', '"tags"')
ALPHA_MODEL = POSTS_MODEL.replace("Post", "Alpha").replace('"posts"', '"alphas"')
BETA_MODEL = POSTS_MODEL.replace("Post", "Beta").replace('"posts"', '"betas"')
SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
SERVING = "import urllib.request; urllib.request.urlopen('http://localhost:5000/health', timeout=2)"


class Repo:
    """The demo stack as a git repository, with its own devtool state folder."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.root = stack.root
        stack.env["XDG_STATE_HOME"] = str(stack.root.parent / "state")
        self.env = checkout_env({**os.environ, **stack.env, "NO_COLOR": "1", "GIT_AUTHOR_NAME": "t",
                                 "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                                 "GIT_COMMITTER_EMAIL": "t@example.com"})

    def git(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["git", *args], cwd=self.root, env={**self.env, **(env or {})}, text=True,
                                capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        assert not check or result.returncode == 0, result.stderr
        return result

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def kept(self, revision: str) -> list:
        return list((self.root.parent / "state").glob(f"devtool/projects/*/revisions/{revision}/*.py"))

    def snapshots(self) -> list[dict]:
        listed = self.stack.devtool("snapshot", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)

    def reset(self, initial: str) -> None:
        """main checked out and clean, no other branch, the database at main's head, no snapshots."""
        self.git("checkout", "-q", "-f", "main")
        self.git("clean", "-q", "-f", "-d", "-x", "templates")
        for branch in self.git("branch", "--format=%(refname:short)").stdout.split():
            if branch != "main":
                self.git("branch", "-q", "-D", branch)
        self.stack.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        upgraded = self.stack.devtool("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert self.stack.db_revision() == initial
        pruned = self.stack.devtool("snapshot", "prune", "--keep", "0")
        assert pruned.returncode == 0, pruned.stderr


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory, engine_ready):
    stack = new_stack(tmp_path_factory.mktemp("sync"), f"sync{uuid.uuid4().hex[:8]}")
    repo = Repo(stack)
    repo.git("init", "-q", "-b", "main")
    repo.commit("the demo stack")
    assert stack.devtool("db", "upgrade").returncode == 0
    yield repo
    stack.down()


@pytest.fixture
def repo(shared_repo):
    shared_repo.reset(shared_repo.stack.layout.initial)
    return shared_repo


def _feature_with(repo, branch: str, module: str, model: str, message: str) -> str:
    """A branch whose model is migrated by devtool (the database now at its revision), committed."""
    s = repo.stack
    repo.git("checkout", "-q", "-b", branch)
    s.add_model(module, model)
    migrated = s.devtool("migrate", message)
    assert migrated.returncode == 0, migrated.stderr
    repo.commit(message)
    return s.db_revision()


def test_a_orphan_is_named_everywhere_and_sync_takes_it_back_and_brings_it_again(repo):
    s, initial = repo.stack, repo.stack.layout.initial
    feature = _feature_with(repo, "feature", "post", POSTS_MODEL, "add posts")
    assert repo.kept(feature), "devtool keeps a copy of what it applied"
    s.psql("INSERT INTO posts (title) VALUES ('first'), ('second')")
    repo.git("checkout", "-q", "main")
    assert not any(feature in p.name for p in s.versions())
    files_before = s.snapshot()

    status = s.devtool("status")
    assert status.returncode == 16, status.stderr
    said = status.stdout + status.stderr
    assert feature in said and "add posts" in said and "branch feature" in said and "devtool sync" in said
    report = json.loads(s.devtool("status", "--json").stdout)["migrations"]
    assert report["ok"] is False and [o["id"] for o in report["orphans"]] == [feature]
    assert "branch feature" in report["orphans"][0]["where"] and report["orphans"][0]["copy"] == "kept"

    check = s.devtool("check")
    assert check.returncode == 16 and feature in check.stderr and "add posts" in check.stderr
    assert json.loads(s.devtool("check", "--json").stdout)["exit_code"] == 16
    doctor = s.devtool("doctor")
    assert doctor.returncode == 15 and "devtool sync" in doctor.stdout

    for args in (["migrate", "anything"], ["setup"], ["db", "current"], ["db", "upgrade"]):
        stopped = s.devtool(*args)
        assert stopped.returncode == 16, (args, stopped.stderr)
        assert "devtool sync" in stopped.stderr and feature in stopped.stderr and "Traceback" not in stopped.stderr
    assert s.snapshot() == files_before  # nothing generated, nothing applied

    review = s.devtool("sync")  # the rows of posts would be lost: not without --yes
    assert review.returncode == 8, review.stderr
    assert "2 row(s) of posts lost" in review.stdout + review.stderr and "nothing was changed" in review.stderr
    assert s.db_revision() == feature and "posts" in s.tables()

    synced = s.devtool("sync", "--yes")
    assert synced.returncode == 0, synced.stderr
    assert s.db_revision() == initial and "posts" not in s.tables()
    (snapshot,) = repo.snapshots()
    assert snapshot["reason"] == "before sync" and snapshot["revision"] == [feature]

    again = s.devtool("sync", "--json")  # idempotent
    assert again.returncode == 0, again.stderr
    again = json.loads(again.stdout)
    assert again["status"] == "up_to_date" and again["downgraded"] == [] and again["applied"] == []
    assert s.devtool("check").returncode == 0 and len(repo.snapshots()) == 1

    repo.git("checkout", "-q", "feature")
    back = s.devtool("sync", "--json")
    assert back.returncode == 0, back.stderr
    assert [r["id"] for r in json.loads(back.stdout)["applied"]] == [feature]
    assert s.db_revision() == feature and s.psql("SELECT count(*) FROM posts") == "0"

    # migrate --sync: back on main with a new model, one command takes posts back (empty: no --yes needed)
    repo.git("checkout", "-q", "main")
    s.add_model("tag", TAG_MODEL)
    both = s.devtool("migrate", "--sync", "add tags")
    assert both.returncode == 0, both.stderr
    assert "posts" not in s.tables() and "tags" in s.tables()
    assert s.db_revision() not in (feature, initial) and any("add_tags" in p.name for p in s.versions())


def test_b_no_copy_anywhere_then_sync_restore_puts_back_the_snapshot(repo):
    s, initial = repo.stack, repo.stack.layout.initial
    s.psql("INSERT INTO users (email) VALUES ('kept@example.com')")
    assert s.devtool("snapshot", "before-tags").returncode == 0
    gone = _feature_with(repo, "gone", "tag", TAG_MODEL, "add tags")
    s.psql("INSERT INTO tags (title) VALUES ('lost')")
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "gone")  # the file is in no branch any more
    for copy in repo.kept(gone):  # and devtool's copy is gone too
        copy.unlink()

    stuck = s.devtool("sync", "--yes")
    assert stuck.returncode == 17, stuck.stderr
    assert gone in stuck.stderr and "no copy" in stuck.stderr and "was not changed" in stuck.stderr
    assert "devtool sync --restore" in stuck.stderr and "before-tags" in stuck.stderr
    assert s.db_revision() == gone and "tags" in s.tables()

    restored = s.devtool("sync", "--restore")
    assert restored.returncode == 0, restored.stderr
    assert s.db_revision() == initial and "tags" not in s.tables()
    assert s.psql("SELECT email FROM users") == "kept@example.com"
    saved = [m for m in repo.snapshots() if m["reason"] == "before sync --restore"]
    assert len(saved) == 1 and saved[0]["revision"] == [gone]  # the orphaned database, kept just in case
    assert s.devtool("status").returncode == 0


def test_b_failing_downgrade_is_rolled_back_and_offers_the_snapshot(repo):
    s, initial = repo.stack, repo.stack.layout.initial
    assert s.devtool("snapshot", "at-main").returncode == 0
    repo.git("checkout", "-q", "-b", "broken")
    path = s.write_revision("dddd00000001", initial, "    op.create_table('brk', sa.Column('id', sa.Integer(), "
                                                     "primary_key=True))", "broken downgrade")
    path.write_text(path.read_text().replace(
        "def downgrade():\n    pass", "def downgrade():\n    op.drop_table('brk')\n"
                                       "    op.execute('SELECT * FROM no_such_table')"))
    assert s.devtool("db", "upgrade").returncode == 0  # applied by `flask db upgrade`: kept as well
    assert repo.kept("dddd00000001")
    repo.commit("broken downgrade")
    repo.git("checkout", "-q", "main")

    failed = s.devtool("sync", "--yes")
    assert failed.returncode == 17, failed.stderr
    assert "dddd00000001" in failed.stderr and "no_such_table" in failed.stderr and "Traceback" not in failed.stderr
    assert "devtool sync --restore" in failed.stderr and "at-main" in failed.stderr
    assert s.db_revision() == "dddd00000001" and "brk" in s.tables()  # rolled back whole

    assert s.devtool("sync", "--restore").returncode == 0
    assert s.db_revision() == initial and "brk" not in s.tables()


def test_c_two_heads_after_a_git_merge_and_sync_merge(repo):
    s, initial = repo.stack, repo.stack.layout.initial
    alpha = _feature_with(repo, "one", "alpha", ALPHA_MODEL, "add alphas")
    repo.git("checkout", "-q", "main")
    assert s.devtool("sync").returncode == 0  # alphas is empty: taken back without asking
    repo.git("checkout", "-q", "-b", "two")
    (s.backend_src / "app/models/beta.py").write_text(BETA_MODEL)
    init = s.backend_src / "app/models/__init__.py"  # imported elsewhere than branch one's: the merge is clean
    init.write_text(init.read_text() + "\n\nfrom . import beta  # noqa: E402,F401\n")
    assert s.devtool("migrate", "add betas").returncode == 0
    beta = s.db_revision()
    repo.commit("add betas")
    repo.git("checkout", "-q", "one")
    repo.git("merge", "-q", "--no-edit", "two")

    for args in (["check"], ["migrate", "after merge"], ["sync"]):
        stopped = s.devtool(*args)
        assert stopped.returncode == 9, (args, stopped.stderr)
        assert alpha in stopped.stderr and beta in stopped.stderr and "devtool sync --merge" in stopped.stderr
    assert s.db_revision() == beta

    merged = s.devtool("sync", "--merge", "--json")
    assert merged.returncode == 0, merged.stderr
    result = json.loads(merged.stdout)
    head = result["merged"]["id"]
    assert os.path.isfile(result["merged"]["host_path"]) and s.db_revision() == head
    assert {"alphas", "betas"} <= s.tables()
    assert s.devtool("db", "heads").stdout.count("(head)") == 1
    assert s.devtool("check").returncode == 0


class HungEngine:
    """A unix socket that accepts connections and never answers: an engine that hangs."""

    def __init__(self, path: str) -> None:
        self.path, self.held = path, []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


def test_d_hook_prints_its_line_after_checkout_and_never_fails_it(repo, tmp_path):
    s = repo.stack
    installed = s.devtool("hooks", "install")
    assert installed.returncode == 0, installed.stderr
    hooks = repo.root / ".git" / "hooks"
    assert all(os.access(hooks / name, os.X_OK) for name in ("post-checkout", "post-merge"))
    feature = _feature_with(repo, "feature", "post", POSTS_MODEL, "add posts")

    # a deadline no loaded CI machine reaches: the line must come (the hung engine below keeps the default)
    checkout = repo.git("checkout", "main", env={"DEVTOOL_HOOK_DEADLINE": "120"})
    assert checkout.returncode == 0
    assert "devtool: the database has revisions applied that this checkout does not have" in checkout.stderr
    assert feature in checkout.stderr and "devtool sync" in checkout.stderr

    stopped_engine = repo.git("checkout", "feature", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert stopped_engine.returncode == 0 and "devtool:" not in stopped_engine.stderr

    hung = HungEngine(str(tmp_path / "hung.sock"))
    try:
        blocked = repo.git("checkout", "main", env={"DOCKER_HOST": f"unix://{hung.path}"})
    finally:
        hung.close()
    assert blocked.returncode == 0 and "devtool:" not in blocked.stderr

    s.compose("stop", "-t", "1")
    try:
        stack_down = repo.git("checkout", "feature")
        assert stack_down.returncode == 0 and "devtool:" not in stack_down.stderr
        assert s.compose("ps", "-q").stdout.strip() == ""  # the hook starts nothing
    finally:  # up again, and serving: a checkout while the app is still importing could break its start
        assert s.devtool("up").returncode == 0
        wait_for(lambda: s.compose("exec", "-T", "backend", "python", "-c", SERVING, check=False).returncode == 0,
                 timeout=60, what="the backend to serve")

    removed = s.devtool("hooks", "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not (hooks / "post-checkout").exists() and not (hooks / "post-merge").exists()


def test_devtool_going_away_stops_the_downgrade_at_the_next_revision_boundary(repo):
    """Three revisions the checkout lost, the newest one's downgrade slow: devtool is killed while it runs.
    That downgrade commits or rolls back whole; the older two never start."""
    s, initial = repo.stack, repo.stack.layout.initial
    chain = [("e0000000000%d" % i, "e0000000000%d" % (i - 1) if i > 1 else initial) for i in (1, 2, 3)]
    for revision, down in chain:
        path = s.write_revision(revision, down, f"    op.create_table('t{revision[-1]}', sa.Column('id', "
                                                f"sa.Integer(), primary_key=True))", f"table {revision[-1]}")
        slow = "    op.execute('SELECT pg_sleep(3)')\n" if revision.endswith("3") else ""
        path.write_text(path.read_text().replace("def downgrade():\n    pass",
                                                 f"def downgrade():\n{slow}    op.drop_table('t{revision[-1]}')"))
    assert s.devtool("db", "upgrade").returncode == 0
    for revision, _ in chain:  # the checkout loses them: devtool's kept copies are all there is
        next(p for p in s.versions() if p.name.startswith(revision)).unlink()
    run = subprocess.Popen([*DEVTOOL, "sync"], cwd=s.root, env=repo.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: s.psql(SLEEPING) == "1", timeout=120, what="the slow downgrade to be running")
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    wait_for(lambda: s.psql(SLEEPING) == "0", timeout=60, what="the slow downgrade to end")
    agents = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done "
              "| grep -c '[d]evtool_agent.main import main' || true")
    wait_for(lambda: s.compose("exec", "-T", "backend", "sh", "-c", agents).stdout.strip() == "0",
             timeout=30, what="the agent process to exit")
    assert s.db_revision() in ("e00000000003", "e00000000002")
    assert {"t1", "t2"} <= s.tables()
    leftovers = s.compose("exec", "-T", "backend", "sh", "-c", "ls -d /tmp/devtool-revisions-* "
                          "/tmp/devtool-0/revisions-* 2>/dev/null || true").stdout.split()
    assert leftovers == []  # the agent removed the copies devtool sent, and its own private ones

    finished = s.devtool("sync")  # and the next run finishes the job from where it stopped
    assert finished.returncode == 0, finished.stderr
    assert s.db_revision() == initial and not {"t1", "t2", "t3"} & s.tables()


def test_legacy_stack_downgrades_from_the_kept_copy(make_stack, tmp_path):
    """Flask-Migrate 3.1, Alembic 1.12, SQLAlchemy 1.4, psycopg2, nested migrations folder: no git at all."""
    s = make_stack(layout=LEGACY)
    assert s.devtool("db", "upgrade").returncode == 0
    models = s.backend_src / "service" / "models.py"
    original = models.read_text()
    s.add_test_model()
    assert s.devtool("migrate", LEGACY.test_model_message).returncode == 0
    revision = s.db_revision()
    next(p for p in s.versions() if p.name.startswith(revision)).unlink()  # as a checkout of another branch would
    models.write_text(original)

    status = s.devtool("status")
    assert status.returncode == 16 and revision in status.stderr and "kept copy" in status.stderr
    synced = s.devtool("sync")
    assert synced.returncode == 0, synced.stderr
    assert s.db_revision() == LEGACY.initial and LEGACY.test_model_table not in s.tables()
    assert s.devtool("check").returncode == 0
