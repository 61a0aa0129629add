"""Pure logic behind answers that tell the truth (issues 9 §6-§10, 14 §1, §6, §7): message validation and
escaping, the review of index, constraint and enum operations, the enum label plan, --fix-imports keeping a file's
encoding, the model scan's child process, the driver's reasons, the CI verdict. No engine."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from conftest import copy_demo, run_devtool
from toolkit.agent.protocol import Database, ModelChange, Revision, StatusResult, UnloadedModel
from toolkit.errors import DevtoolError, ExitCode

MESSAGES = [
    'use """quotes""" here', "it's \"double\" and 'single'", "a literal \\n, not a line break", "ends with \\",
    'ends with "', '"""', "back\\\\slashes \\t \\x00 \\u00e9", "first line\nsecond line", "tab\there",
    "ajouté: café ünïcödé 数据 🚀", "line\u2028separator", "  leading and trailing  ", "$(touch x); `id`",
    "{message} ${message} %s %(x)s", "x" * 500,
]


def _docstring(source: str) -> str:
    return ast.get_docstring(ast.parse(source), clean=False)


@pytest.mark.parametrize("message", MESSAGES, ids=range(len(MESSAGES)))
def test_message_is_valid_and_kept_exactly_in_flask_migrates_docstring(message):
    from toolkit.agent.actions import docstring_text
    from toolkit.migrations import validate_message

    assert validate_message(message) == message
    template = '"""${message}\n\nRevision ID: abc\nRevises: \nCreate Date: now\n\n"""\nrevision = "abc"\n'
    written = template.replace("${message}", docstring_text(message))
    assert _docstring(written).startswith(message + "\n\nRevision ID: abc")


@pytest.mark.parametrize("message, said", [
    ("", "is empty"), ("   \t \n ", "is empty"), ("x" * 501, "501 characters long"),
    ("bell \x07", "control character (U+0007 at character 6)"), ("carriage\rreturn", "U+000D"),
    ("escape \x1b[31m red", "U+001B"), ("nul \x00", "U+0000"), ("c1 \x85 control", "U+0085"),
    ("delete \x7f", "U+007F"), ("bad byte \udcff", "not valid text (an undecodable byte at character 10)"),
])
def test_messages_that_cannot_be_kept_are_refused_before_anything_is_written(message, said):
    from toolkit.migrations import validate_message

    with pytest.raises(DevtoolError) as caught:
        validate_message(message)
    assert caught.value.exit_code == ExitCode.USAGE and said in caught.value.message


def test_cli_refuses_bad_messages_and_a_leading_dash_without_touching_anything(tmp_path):
    """Refused on the command line, before the compose file is read or the engine asked."""
    root = copy_demo(tmp_path / "messages")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dash = run_devtool("migrate", "-x starts with a dash", cwd=root, timeout=60)
    assert dash.returncode == 2, dash.stderr
    assert "No such option: -x (in '-x starts with a dash')" in dash.stderr
    assert "devtool migrate [OPTIONS] -- '-x starts with a dash'" in dash.stderr
    typo = run_devtool("migrate", "--yess", cwd=root, timeout=60)
    assert typo.returncode == 2 and "Possible options: --yes" in typo.stderr and "after `--`" in typo.stderr
    from conftest import DEVTOOL, checkout_env
    import os

    raw = subprocess.run([*DEVTOOL, "migrate", b"caf\xe9 in latin-1"], cwd=root, capture_output=True, text=True,
                         env=checkout_env({**os.environ, "NO_COLOR": "1"}), stdin=subprocess.DEVNULL, timeout=60)
    assert raw.returncode == 2 and "not valid text (an undecodable byte at character 4)" in raw.stderr
    control = run_devtool("migrate", "ring \x07 the bell", cwd=root, timeout=60)
    assert control.returncode == 2 and "control character (U+0007" in control.stderr
    for result in (dash, typo, raw, control):
        assert "Traceback" not in result.stderr and "Usage:" not in result.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_dash_value_for_a_command_without_values_keeps_clicks_message(tmp_path):
    result = run_devtool("up", "--bogus", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "No such option: --bogus" in result.stderr and "--`" not in result.stderr


# ---------------------------------------------------------------------------------------------- the review


def _upgrade(body: str, downgrade: str = "    pass") -> str:
    return ("from alembic import op\nimport sqlalchemy as sa\n\n\ndef upgrade():\n" + body +
            "\n\n\ndef downgrade():\n" + downgrade + "\n")


def _rows(source: str):
    from toolkit.agent.review import classify_upgrade

    return [(c.op, c.name, c.table, c.column, c.risk) for c in classify_upgrade(source)]


def test_index_operations_name_their_index_table_and_columns():
    assert _rows(_upgrade(
        "    op.create_index(op.f('ix_users_email'), 'users', ['email'], unique=True)\n"
        "    op.create_index('ix_name_email', 'users', ['name', 'email'])\n"
        "    op.create_index(index_name='ix_kw', table_name='posts', columns=['title'])\n"
        "    with op.batch_alter_table('posts', schema=None) as batch_op:\n"
        "        batch_op.create_index(batch_op.f('ix_posts_title'), ['title'], unique=False)\n"
        "        batch_op.drop_index(batch_op.f('ix_posts_old'))\n"
        "    op.drop_index(op.f('ix_users_name'), table_name='users')",
        "    op.create_index(op.f('ix_users_name'), 'users', ['name'], unique=False)\n"
        "    with op.batch_alter_table('posts') as batch_op:\n"
        "        batch_op.create_index('ix_posts_old', ['old', 'other'])")) == [
        ("create_index", "ix_users_email", "users", "email", "safe"),
        ("create_index", "ix_name_email", "users", "name, email", "safe"),
        ("create_index", "ix_kw", "posts", "title", "safe"),
        ("create_index", "ix_posts_title", "posts", "title", "safe"),
        ("drop_index", "ix_posts_old", "posts", "old, other", "destructive"),  # columns from the downgrade
        ("drop_index", "ix_users_name", "users", "name", "destructive")]


def test_constraint_operations_name_their_table_not_the_constraint():
    assert _rows(_upgrade(
        "    op.create_unique_constraint(None, 'users', ['email'])\n"
        "    op.create_foreign_key('fk_posts_user', 'posts', 'users', ['user_id'], ['id'])\n"
        "    op.create_check_constraint('ck_age', 'users', 'age > 0')\n"
        "    op.create_primary_key('pk_tags', 'tags', ['id'])\n"
        "    op.drop_constraint('uq_users_name', 'users', type_='unique')\n"
        "    with op.batch_alter_table('posts') as batch_op:\n"
        "        batch_op.create_foreign_key(batch_op.f('fk_posts_tag'), 'tags', ['tag_id'], ['id'])\n"
        "        batch_op.drop_constraint('fk_posts_old', type_='foreignkey')\n"
        "    op.rename_table('old', 'new')")) == [
        ("create_unique_constraint", None, "users", "email", "safe"),
        ("create_foreign_key", "fk_posts_user", "posts", "user_id", "safe"),
        ("create_check_constraint", "ck_age", "users", None, "safe"),
        ("create_primary_key", "pk_tags", "tags", "id", "safe"),
        ("drop_constraint", "uq_users_name", "users", None, "destructive"),
        ("create_foreign_key", "fk_posts_tag", "posts", "tag_id", "safe"),
        ("drop_constraint", "fk_posts_old", "posts", None, "destructive"),
        ("rename_table", "new", "old", None, "safe")]


def test_enum_sql_is_recognised_and_recreating_a_type_is_destructive():
    rows = _rows(_upgrade(
        "    op.execute(\"CREATE TYPE kind AS ENUM ('a', 'b')\")\n"
        "    with op.get_context().autocommit_block():\n"
        "        op.execute(\"ALTER TYPE kind ADD VALUE IF NOT EXISTS 'it''s' AFTER 'b'\")\n"
        "    op.execute('ALTER TYPE \"Mood\" RENAME TO \"Mood_old\"')\n"
        "    op.execute('DROP TYPE \"Mood_old\"')\n"
        "    op.execute('UPDATE users SET x = 1')"))
    assert rows == [("add_enum_type", "kind", None, None, "safe"), ("add_enum_value", "kind", None, "it's", "safe"),
                    ("recreate_enum_type", "Mood", None, None, "destructive"),
                    ("drop_enum_type", "Mood_old", None, None, "destructive"), ("execute", None, None, None, "safe")]


def test_review_table_cells_say_what_each_operation_touches():
    from toolkit.agent.protocol import Change
    from toolkit.cli.review import what

    assert what(Change("create_index", "add index", "users", "email", name="ix_users_email")) == \
        "add index ix_users_email"
    assert what(Change("drop_column", "drop column", "users", "name")) == "drop column"


# ---------------------------------------------------------------------------------------------- enum labels


@pytest.mark.parametrize("before, after, recreate, additions, described", [
    (["a", "b"], ["a", "b", "c"], False, [("c", None, "b")], "adds 'c'"),
    (["a", "b"], ["z", "a", "b"], False, [("z", "a", None)], "adds 'z'"),
    (["a", "b"], ["a", "x", "b", "y"], False, [("x", None, "a"), ("y", None, "b")], "adds 'x', 'y'"),
    ([], ["a"], False, [("a", None, None)], "adds 'a'"),
    (["a", "b", "c"], ["a", "c"], True, [], "removes 'b'"),
    (["a", "b"], ["a", "c"], True, [], "removes 'b'; adds 'c'"),  # a probable rename: destructive all the same
    (["a", "b"], ["b", "a"], True, [], "reorders the labels"),
    (["a", "b"], ["a", "b"], False, [], ""),
])
def test_enum_label_plan(before, after, recreate, additions, described):
    from toolkit.agent.enums import plan_labels

    plan = plan_labels(before, after)
    assert (plan.recreate, plan.additions, plan.describe()) == (recreate, additions, described)
    assert plan.changed == (before != after)


def test_enum_sql_quotes_names_and_labels():
    from toolkit.agent.dialects import EnumColumn, PostgresEnums

    sql = PostgresEnums()
    quote = lambda name: f'"{name}"' if not name.islower() else name  # noqa: E731 - the dialect's, in short
    assert sql.add_value(quote, None, "kind", "it's", after="b") == \
        "ALTER TYPE kind ADD VALUE IF NOT EXISTS 'it''s' AFTER 'b'"
    assert sql.create(quote, "Shop", "Mood", ["ok", "o'k"]) == "CREATE TYPE \"Shop\".\"Mood\" AS ENUM ('ok', 'o''k')"
    assert sql.recreate(quote, None, "kind", ["a"], [EnumColumn(None, "users", "kind", False, "'a'::kind"),
                                                      EnumColumn(None, "tags", "kinds", True)]) == [
        "ALTER TYPE kind RENAME TO kind_old", "CREATE TYPE kind AS ENUM ('a')",
        "ALTER TABLE users ALTER COLUMN kind DROP DEFAULT",
        "ALTER TABLE users ALTER COLUMN kind TYPE kind USING kind::text::kind",
        "ALTER TABLE users ALTER COLUMN kind SET DEFAULT 'a'::kind",
        "ALTER TABLE tags ALTER COLUMN kinds TYPE kind[] USING kinds::text[]::kind[]", "DROP TYPE kind_old"]


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("encoding, prefix, newline", [("utf-8", b"", "\n"), ("utf-8-sig", b"", "\r\n"),
                                                       ("latin-1", b"# -*- coding: latin-1 -*-\n", "\n")])
def test_fix_imports_keeps_the_files_encoding_and_line_endings(tmp_path, encoding, prefix, newline):
    from toolkit.agent.models import add_imports

    source = ('"""Modèles."""\n\n\ndef init_app(app):\n    db.init_app(app)\n    from . import user  # noqa: F401\n'
              '\n    migrate.init_app(app, db)\n').replace("\n", newline)
    path = tmp_path / "__init__.py"
    path.write_bytes(prefix.replace(b"\n", newline.encode()) + source.encode(encoding))
    package = types.SimpleNamespace(__name__="app.models", __file__=str(path), init_app=lambda app: None)
    missing = [UnloadedModel("Post", "app.models.post", "posts", import_line="from . import post  # noqa: F401"),
               UnloadedModel("Invoice", "app.billing.models", "invoices",
                             import_line="from app.billing import models  # noqa: F401")]
    left, looked = add_imports([package], missing)
    assert left == [] and looked == [str(path)] and all(m.fixed_in == str(path) for m in missing)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    text = raw.decode(encoding)
    assert "Modèles" in text and ("\r\n" in text) == (newline == "\r\n") and "\r\r" not in text
    assert ("    from . import user  # noqa: F401" + newline + "    from . import post  # noqa: F401" + newline +
            "    from app.billing import models  # noqa: F401" + newline) in text
    compile(raw, str(path), "exec")


def test_fix_imports_without_init_app_changes_nothing_and_says_where_it_looked(tmp_path):
    from toolkit.agent.models import add_imports

    path = tmp_path / "__init__.py"
    path.write_text("def create_app():\n    pass\n")
    package = types.SimpleNamespace(__name__="service", __file__=str(path))
    missing = [UnloadedModel("Invoice", "service.billing", "invoices", import_line="from . import billing")]
    left, looked = add_imports([package], missing)
    assert left == missing and looked == [str(path)] and path.read_text() == "def create_app():\n    pass\n"


def test_import_lines_relative_inside_the_loading_package_absolute_elsewhere():
    from toolkit.agent.models import _import_line

    package = types.SimpleNamespace(__name__="app.models")
    assert _import_line("app.models.post", package) == "from . import post  # noqa: F401"
    assert _import_line("app.models.shop.order", package) == "from .shop import order  # noqa: F401"
    assert _import_line("app.billing.models", package) == "from app.billing import models  # noqa: F401"
    assert _import_line("billing", None) == "import billing  # noqa: F401"


def test_source_without_models_is_never_imported():
    from toolkit.agent.models import _defines_models

    def looks(source):
        return _defines_models(ast.parse(textwrap.dedent(source)))

    assert looks("class Post(db.Model):\n    __tablename__ = 'posts'\n")
    assert looks("class Post(Base):\n    id = mapped_column(Integer, primary_key=True)\n")
    assert looks("class Post(Base):\n    title: Mapped[str]\n")
    assert looks("tags = db.Table('tags', db.Column('id', db.Integer))\n")
    assert looks("class Admin(User):\n    level = db.Column(db.Integer)\n")
    assert not looks("import os\nprint('side effect')\nclass Helper:\n    name = 'x'\n")
    assert not looks("from .models import Post\n\n\ndef create():\n    return Post(title='x')\n")


@pytest.fixture
def candidates(tmp_path, monkeypatch):
    """A throw-away package of modules to import as the model scan's child does."""
    package = tmp_path / "scanpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [n for n in sys.modules if n == "scanpkg" or n.startswith("scanpkg.")]:
        del sys.modules[name]


def _fake_db():
    return types.SimpleNamespace(metadata=types.SimpleNamespace(tables={}), engine=None)


def test_model_scan_child_names_a_module_that_raises_exits_or_hangs(candidates, monkeypatch):
    from toolkit.agent import models

    (candidates / "raises.py").write_text("raise RuntimeError('needs REDIS_URL')\n")
    (candidates / "quits.py").write_text("import sys\nsys.exit(3)\n")
    (candidates / "fine.py").write_text("X = 1\n")
    found, failed = models._import_in_child(_fake_db(), ["scanpkg.raises", "scanpkg.quits", "scanpkg.fine"])
    assert found == []
    assert failed == ["scanpkg.raises: RuntimeError: needs REDIS_URL", "scanpkg.quits: SystemExit: 3"]
    assert "scanpkg.raises" not in sys.modules  # imported in the child only

    (candidates / "dies.py").write_text("import os\nos._exit(4)\n")
    found, failed = models._import_in_child(_fake_db(), ["scanpkg.dies", "scanpkg.fine"])
    assert failed == ["scanpkg.dies: ended the process while being imported (sys.exit or a crash); "
                      "modules not looked at: scanpkg.fine"]

    (candidates / "hangs.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setattr(models, "IMPORT_DEADLINE", 1.0)
    found, failed = models._import_in_child(_fake_db(), ["scanpkg.fine", "scanpkg.hangs"])
    assert failed == ["scanpkg.hangs: did not finish importing within 1 s; modules not looked at: none"]


# ---------------------------------------------------------------------------------------------- the database


@pytest.mark.parametrize("error, said", [
    ("failed to resolve host 'db': [Errno -2] Name or service not known", "cannot resolve the host db"),
    ('could not translate host name "db" to address: Name or service not known', "cannot resolve the host db"),
    ('connection to server at "10.0.0.2", port 5433 failed: Connection refused', "Nothing accepts connections on "
                                                                                  "db:5432"),
    ('FATAL:  password authentication failed for user "shop"', "applies POSTGRES_PASSWORD only when"),
    ('FATAL:  database "nosuch" does not exist', "The server has no database shop"),
    ('FATAL:  role "ghost" does not exist', "The server has no user shop"),
    ("FATAL:  the database system is starting up", "The server is starting or stopping"),
    ("connection timeout expired", "timed out"),
])
def test_postgres_connection_errors_say_what_to_do(error, said):
    from toolkit.dialects.postgres import Postgres

    hint = Postgres().connection_hint(Database("postgresql", "db", 5432, "shop", "shop"), error)
    assert said in hint


@pytest.mark.parametrize("backend, error, said", [
    ("mysql", "(2003, \"Can't connect to MySQL server on 'db' ([Errno 111] Connection refused)\")",
     "Nothing accepts connections on db:3306"),
    ("mariadb", "(2005, \"Unknown MySQL server host 'nohost' (-2)\")", "cannot resolve the host db"),
    ("mysql", "(1045, \"Access denied for user 'shop'@'172.18.0.3' (using password: YES)\")",
     "The server refused user shop"),
    ("mariadb", "(1049, \"Unknown database 'nosuch'\")", "The server has no database shop"),
    ("sqlite", "(sqlite3.OperationalError) unable to open database file", "cannot open the SQLite file shop"),
])
def test_mysql_and_sqlite_connection_errors_say_what_to_do(backend, error, said):
    from toolkit.dialects import for_database

    database = Database(backend, "db" if backend != "sqlite" else None, None, "shop", "shop")
    assert said in for_database(database).connection_hint(database, error)


def _status(**fields):
    base = dict(heads=[Revision("a", "", "")], database=Database("postgresql", "db", 5432, "app", "app"),
                directory="/app/migrations", current=["a"])
    return StatusResult(**{**base, **fields})


def test_check_verdict_never_passes_what_it_could_not_look_at():
    from toolkit.check import verdict

    code, problems = verdict(_status(current=None, database_error="Cannot connect to the app's database app on db",
                                     database_hint="The database service db is exited."))
    assert code == ExitCode.DATABASE_UNAVAILABLE
    assert problems == ["Cannot connect to the app's database app on db; the revision and the models were not "
                        "compared. The database service db is exited."]
    code, problems = verdict(_status(unloaded_models=[UnloadedModel(
        "Invoice", "app.billing.models", "invoices", import_line="from app.billing import models  # noqa: F401")]))
    assert code == ExitCode.MODELS_NOT_IMPORTED
    assert "Invoice (app.billing.models, table invoices): add `from app.billing import models  # noqa: F401`" \
        in problems[0]
    code, problems = verdict(_status(unscanned_modules=["app.jobs: RuntimeError: needs REDIS_URL"]))
    assert code == ExitCode.MODELS_NOT_IMPORTED and "app.jobs: RuntimeError: needs REDIS_URL" in problems[0]
    code, _ = verdict(_status(model_changes=[ModelChange("change_enum_labels", "kind (adds 'c')")]))
    assert code == ExitCode.PENDING_MODEL_CHANGES


def test_a_command_that_acts_on_the_revision_stops_when_the_database_cannot_be_read():
    from toolkit.migrations import require_database

    with pytest.raises(DevtoolError) as raised:
        require_database(_status(current=None, database_error="Cannot connect to the app's database app on db: "
                                                               "connection refused",
                                 database_hint="The database service db is exited."))
    assert raised.value.exit_code == ExitCode.DATABASE_UNAVAILABLE
    assert raised.value.message == "Cannot connect to the app's database app on db: connection refused; nothing " \
                                   "was changed."
    assert raised.value.hint == "The database service db is exited."
    readable = _status(current=[])  # an empty database is read: base, not unknown
    assert require_database(readable) is readable


def test_exit_codes_are_distinct_and_documented():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    codes = [int(c) for c in ExitCode]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert f"\n| {code} |" in readme, f"exit code {code} is not in README's table"
