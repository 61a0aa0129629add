"""Migrations that never lose data (issue 3): unloaded models, review, snapshots, heads, drift, concurrency,
failures and secrets, on the real engine with a real Postgres."""

import subprocess

import pytest

from conftest import POSTS_MODEL, run_on_terminal

pytestmark = pytest.mark.docker

INIT = "app/models/__init__.py"


def test_models_not_imported_are_named_and_fixable(stack):
    before = stack.snapshot()
    stack.add_model("post", POSTS_MODEL, import_it=False)
    result = stack.devtool("migrate", "add posts")
    assert result.returncode == 10, result.stderr
    assert "Post (app.models.post, table posts)" in result.stderr
    assert "from . import post  # noqa: F401" in result.stderr
    assert stack.snapshot() == before and "posts" not in stack.tables()

    # a module with two models: both named
    stack.add_model("shop", POSTS_MODEL.replace("Post", "Order").replace('"posts"', '"orders"') +
                    POSTS_MODEL.replace("Post", "Invoice").replace('"posts"', '"invoices"').split("\n\n\n")[1]
                    .join(["\n\n", ""]), import_it=False)
    result = stack.devtool("migrate", "add shop")
    assert result.returncode == 10
    assert "Order (app.models.shop" in result.stderr and "Invoice (app.models.shop" in result.stderr

    fixed = stack.devtool("migrate", "add posts and shop", "--fix-imports")
    assert fixed.returncode == 0, fixed.stderr
    init = (stack.backend_src / INIT).read_text()
    assert "    from . import post  # noqa: F401" in init and "    from . import shop  # noqa: F401" in init
    assert {"posts", "orders", "invoices"} <= stack.tables()


def test_indirect_imports_mixins_and_abstract_models_are_not_reported(stack):
    # tag.py is imported by post.py only; base.py holds a mixin and an abstract base and is imported by post.py
    (stack.backend_src / "app/models/base.py").write_text(
        "from . import db\n\n\nclass TimestampMixin:\n    created = db.Column(db.DateTime)\n\n\n"
        "class Base(db.Model):\n    __abstract__ = True\n    id = db.Column(db.Integer, primary_key=True)\n")
    (stack.backend_src / "app/models/tag.py").write_text(
        "from . import db\n\n\nclass Tag(db.Model):\n    __tablename__ = 'tags'\n"
        "    id = db.Column(db.Integer, primary_key=True)\n")
    stack.add_model("post", "from .base import Base, TimestampMixin\nfrom .tag import Tag  # noqa: F401\n\n\n"
                    "class Post(TimestampMixin, Base):\n    __tablename__ = 'posts'\n")
    result = stack.devtool("migrate", "posts and tags")
    assert result.returncode == 0, result.stderr
    assert {"posts", "tags"} <= stack.tables()
    assert "never loaded" not in result.stderr


def test_risky_revision_needs_yes_without_tty_and_keeps_the_file(stack):
    before_revision = stack.db_revision()
    user = (stack.backend_src / "app/models/user.py")
    user.write_text(user.read_text().replace("    name = db.Column(db.String(255))",
                                             "    name = db.Column(db.String(255))\n"
                                             "    age = db.Column(db.Integer, nullable=False)"))
    result = stack.devtool("migrate", "add age")
    assert result.returncode == 8, result.stderr
    assert "needs review" in result.stderr and "NOT NULL without a server default" in result.stdout + result.stderr
    kept = [p for p in stack.versions() if "add_age" in p.name]
    assert len(kept) == 1 and str(kept[0]) in result.stderr
    assert stack.db_revision() == before_revision
    assert "age" not in stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name='users'")

    applied = stack.devtool("migrate", "add age", "--yes")  # the kept revision is pending: applied, nothing new
    assert applied.returncode == 0, applied.stderr
    assert "age" in stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name='users'")
    assert len([p for p in stack.versions() if "add_age" in p.name]) == 1


def test_destructive_drop_takes_snapshot_and_restore_brings_every_row_back(stack):
    stack.psql("INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada'), ('b@example.com', 'Bob'), "
               "('c@example.com', NULL)")
    rows_before = stack.psql("SELECT id, email, name FROM users ORDER BY id")
    revision_before = stack.db_revision()
    user = stack.backend_src / "app/models/user.py"
    user.write_text(user.read_text().replace("    name = db.Column(db.String(255))\n", ""))

    result = stack.devtool("migrate", "drop name", "--yes")
    assert result.returncode == 0, result.stderr
    assert "destructive" in result.stdout and "Snapshot" in result.stdout + result.stderr
    assert "name" not in stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name='users'")

    listed = stack.devtool("snapshot", "list", "--json")
    assert listed.returncode == 0 and '"before migration"' in listed.stdout

    restored = stack.devtool("restore", "--latest")
    assert restored.returncode == 0, restored.stderr
    assert stack.psql("SELECT id, email, name FROM users ORDER BY id") == rows_before
    assert stack.db_revision() == revision_before


def test_manual_snapshot_and_restore_by_name(stack):
    stack.psql("INSERT INTO users (email) VALUES ('keep@example.com')")
    assert stack.devtool("snapshot", "before-wipe").returncode == 0
    stack.psql("DELETE FROM users; CREATE TABLE scratch (x int)")
    assert stack.devtool("restore", "before-wipe").returncode == 0
    assert stack.psql("SELECT email FROM users") == "keep@example.com"
    assert "scratch" not in stack.tables()


def test_probable_rename_is_flagged(stack):
    stack.add_model("post", POSTS_MODEL)
    assert stack.devtool("migrate", "add posts").returncode == 0
    post = stack.backend_src / "app/models/post.py"
    post.write_text(post.read_text().replace('"posts"', '"articles"'))
    result = stack.devtool("migrate", "rename posts")
    assert result.returncode == 8
    assert "probable rename" in result.stdout + result.stderr
    assert "posts" in stack.tables() and "articles" not in stack.tables()


def test_two_heads_stop_and_merge(stack):
    base = stack.db_revision()
    stack.write_revision("aaaa00000001", base, "    pass", "branch one")
    stack.write_revision("bbbb00000002", base, "    pass", "branch two")
    result = stack.devtool("migrate", "anything")
    assert result.returncode == 9
    assert "aaaa00000001  branch one" in result.stderr and "bbbb00000002  branch two" in result.stderr
    assert "--merge" in result.stderr
    merged = stack.devtool("migrate", "after merge", "--merge")
    assert merged.returncode == 0, merged.stderr
    heads = stack.devtool("db", "heads")
    assert heads.stdout.count("(head)") == 1


def test_database_behind_is_upgraded_before_generating(stack):
    stack.add_model("post", POSTS_MODEL)
    assert stack.devtool("migrate", "add posts").returncode == 0
    assert stack.devtool("db", "downgrade", "-1").returncode == 0
    stack.add_model("tag", "from . import db\n\n\nclass Tag(db.Model):\n    __tablename__ = 'tags'\n"
                    "    id = db.Column(db.Integer, primary_key=True)\n")
    result = stack.devtool("migrate", "add tags")
    assert result.returncode == 0, result.stderr
    assert "behind" in result.stderr
    assert {"posts", "tags"} <= stack.tables()
    assert not any("add_tags" in p.name and "posts" in p.read_text() for p in stack.versions())


def test_concurrent_migrates_apply_once(stack):
    stack.add_model("post", POSTS_MODEL)
    from conftest import DEVTOOL, checkout_env
    import os

    env = checkout_env({**os.environ, "NO_COLOR": "1"})
    runs = [subprocess.Popen([*DEVTOOL, "migrate", "add posts"], cwd=stack.root, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for _ in range(2)]
    outputs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert len([p for p in stack.versions() if "add_posts" in p.name]) == 1
    assert sum("Migrated" in out for out, _ in outputs) == 1
    assert sum("No schema changes" in out for out, _ in outputs) == 1
    assert "posts" in stack.tables()


def test_failing_revision_rolls_back_and_is_named(stack):
    before = stack.db_revision()
    stack.write_revision("badbad000001", before,
                         "    op.create_table('half', sa.Column('id', sa.Integer(), primary_key=True))\n"
                         "    op.execute('SELECT * FROM no_such_table')", "broken")
    result = stack.devtool("migrate", "anything", "--yes")
    assert result.returncode == 7, result.stderr
    assert "badbad000001" in result.stderr and "no_such_table" in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.db_revision() == before and "half" not in stack.tables()


def test_secrets_are_masked_in_output(make_stack):
    s = make_stack()
    compose = s.root / "docker-compose.yml"
    compose.write_text(compose.read_text()
                       .replace("postgresql://devtool:devtool@db", "postgresql://devtool:Sup3r-S3cret-pw@db")
                       .replace("POSTGRES_PASSWORD: devtool", "POSTGRES_PASSWORD: Sup3r-S3cret-pw"))
    # a noisy app that prints its settings on start-up, as real apps do
    app_init = s.backend_src / "app/__init__.py"
    app_init.write_text("import os, sys\nprint('DATABASE_URL=' + os.environ['DATABASE_URL'])\n"
                        "print('connecting with', os.environ['DATABASE_URL'].split(':')[2], file=sys.stderr)\n"
                        + app_init.read_text())
    outputs = [s.devtool("db", "upgrade"), s.devtool("-v", "migrate", "nothing"), s.devtool("status", "--json"),
               s.devtool("doctor", "--json")]
    for result in outputs:
        assert "Sup3r-S3cret-pw" not in result.stdout + result.stderr
    assert "***" in outputs[0].stdout + outputs[0].stderr
    assert outputs[1].returncode == 0, outputs[1].stderr


def test_confirmation_on_a_terminal(stack):
    user = stack.backend_src / "app/models/user.py"
    user.write_text(user.read_text().replace("    name = db.Column(db.String(255))",
                                             "    name = db.Column(db.String(255))\n"
                                             "    age = db.Column(db.Integer, nullable=False)"))
    before = stack.db_revision()
    code, screen = run_on_terminal(["migrate", "add age"], stack.root, answer=(b"Apply it?", b"n"),
                                   timeout=120)
    assert code == 8 and "Needs review" in screen and stack.db_revision() == before
    code, screen = run_on_terminal(["migrate", "add age"], stack.root, answer=(b"Apply it?", b"y"),
                                   timeout=120)
    assert code == 0, screen
    assert "age" in stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name='users'")
