"""Answers that tell the truth, on the real engine with a real Postgres (issue 14 §1, §6, §7; issue 9 §6-§9):
a database that cannot be read never passes, failures are named as what they are, messages are kept exactly, models
anywhere in the app are found, revision files are read as Python reads them, enum labels are migrated.

The demo-stack tests share one started stack (module_stack); the `s` fixture puts it back after each test.
"""

from __future__ import annotations

import ast
import json
import shutil

import pytest

from conftest import LEGACY, POSTS_MODEL
from toolkit.errors import ExitCode

pytestmark = pytest.mark.docker

DATABASE, STATUS, FILE, APP = (ExitCode.DATABASE_UNAVAILABLE, ExitCode.STATUS_BROKEN, ExitCode.REVISION_FILE,
                               ExitCode.APP_NOT_LOADED)
USER = "app/models/user.py"
INIT = "app/models/__init__.py"


def _files(stack) -> dict:
    return {p: p.read_bytes() for p in stack.root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _reset_database(stack) -> None:
    """An empty database brought to the pristine head: whatever a test applied, added or broke is gone."""
    stack.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    upgraded = stack.devtool("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr


@pytest.fixture
def s(module_stack):
    """The module's demo stack, put back as the test found it: every file, every service running, the database
    at its one revision."""
    stack = module_stack
    files = _files(stack)
    yield stack
    for path in sorted(set(_files(stack)) - set(files), reverse=True):
        path.unlink()
    for path in sorted({p.parent for p in files}, key=lambda p: len(p.parts)):
        path.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    for folder in sorted((p for p in stack.backend_src.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()) or set(folder.iterdir()) <= {folder / "__pycache__"}:
            shutil.rmtree(folder)
    up = stack.devtool("up")  # the engine alone when every service runs as it should
    assert up.returncode == 0, up.stderr
    _reset_database(stack)


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("✗")]


def _one_clear_line(result) -> str:
    """The failure's single ✗ line (no traceback anywhere)."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    errors = _errors(result)
    assert len(errors) == 1, result.stderr
    return errors[0]


def _new_files(stack, before) -> set:
    return {p.name for p in stack.versions()} - before


# ---------------------------------------------------------------------------------------------- 14 §1


def test_a_stopped_database_fails_status_and_doctor_and_check_reads_it_after_starting_it(s):
    """status and doctor only look: a stopped database fails them. check and migrate act: like `devtool up`
    they start what is stopped, then answer from the database itself (never a pass without reading it; a
    database they cannot reach is exit 20: test_wrong_connection_settings...)."""
    s.add_model("post", POSTS_MODEL)
    versions = {p.name for p in s.versions()}
    s.compose("stop", "db")

    status = s.devtool("status")
    assert status.returncode == STATUS, status.stderr
    assert "Database is at head" not in status.stdout and "base (empty)" not in status.stderr
    assert "service db is exited" in _one_clear_line(status) and "database cannot be read" in status.stderr
    report = json.loads(s.devtool("status", "--json").stdout)
    assert report["ok"] is False and report["migrations"]["ok"] is False and report["migrations"]["current"] is None

    doctor = json.loads(s.devtool("doctor", "--json").stdout)
    failed = [c for c in doctor["checks"] if c["ok"] is False]
    assert [c["name"] for c in failed] == ["Containers running and healthy"] and "db: exited" in failed[0]["detail"]

    check = s.devtool("check")
    assert check.returncode == ExitCode.PENDING_MODEL_CHANGES, check.stderr  # read after starting db: the model
    assert "posts" in check.stdout + check.stderr and "models match" not in check.stdout + check.stderr
    assert "running" in s.compose("ps", "--format", "{{.State}}", "db").stdout
    assert {p.name for p in s.versions()} == versions  # check writes nothing


WRONG_SETTINGS = [  # (what, the app's database URL, the driver's words, the fix)
    ("wrong password", "postgresql://devtool:Wr0ng-Secret-pw@db:5432/devtool",
     'password authentication failed for user "devtool"',
     "applies POSTGRES_PASSWORD only when its data volume is first created"),
    ("unknown database", "postgresql://devtool:devtool@db:5432/nosuch", 'database "nosuch" does not exist',
     "The server has no database nosuch"),
    ("unknown host", "postgresql://devtool:devtool@nohost:5432/devtool", "nohost", "cannot resolve the host nohost"),
    ("wrong port", "postgresql://devtool:devtool@db:5499/devtool", "5499", "Nothing accepts connections on db:5499"),
]


def test_wrong_connection_settings_name_the_database_the_reason_and_the_fix(s):
    """The app's URL set in its code (reloaded by every command): no container has to be recreated."""
    app = s.backend_src / "app" / "__init__.py"
    pristine = app.read_text()
    for what, url, said, fix in WRONG_SETTINGS:
        app.write_text(pristine.replace("    if test_config:\n",
                                        f'    app.config["SQLALCHEMY_DATABASE_URI"] = {url!r}\n    if test_config:\n'))
        check = s.devtool("check")
        assert check.returncode == DATABASE, (what, check.stderr)
        line = _one_clear_line(check)
        assert said in line and fix in line and "Wr0ng-Secret-pw" not in check.stdout + check.stderr, (what, line)
        doctor = json.loads(s.devtool("doctor", "--json").stdout)
        reachable = next(c for c in doctor["checks"] if c["name"] == "Database reachable from the backend")
        assert reachable["ok"] is False and said in reachable["detail"] and fix in reachable["fix"], what
        assert "Wr0ng-Secret-pw" not in json.dumps(doctor)
        if what == "wrong password":  # migrate stops before generating anything
            before = {p.name for p in s.versions()}
            migrate = s.devtool("migrate", "never written")
            assert migrate.returncode == DATABASE, migrate.stderr
            assert "Cannot connect to the app's database" in _one_clear_line(migrate)
            assert {p.name for p in s.versions()} == before
    status = s.devtool("status")
    assert status.returncode == STATUS and "database cannot be read" in status.stderr
    sync = s.devtool("sync")  # never "up to date" about a database it could not read
    assert sync.returncode == DATABASE and "Nothing accepts connections on db:5499" in sync.stderr
    assert _one_clear_line(sync).endswith("nothing was changed.")


def test_status_fails_when_anything_it_shows_is_broken(s):
    assert s.devtool("status").returncode == 0

    user = s.backend_src / USER
    pristine = user.read_text()
    user.write_text(pristine + "\nclass Broken(:\n")
    line_number = len((pristine + "\n").splitlines()) + 1
    status = s.devtool("status")
    assert status.returncode == STATUS and "Flask could not load the app" in status.stderr
    check = s.devtool("check")
    assert check.returncode == APP and "Flask could not load the app" in _one_clear_line(check)
    assert f"{user}, line {line_number})" in _one_clear_line(check)  # the file as it lies on the host
    doctor = {c["name"]: c for c in json.loads(s.devtool("doctor", "--json").stdout)["checks"]}
    assert doctor["App loads in the backend"]["ok"] is False
    assert f"{user}, line {line_number})" in doctor["App loads in the backend"]["detail"]
    assert doctor["Database reachable from the backend"]["ok"] is None  # not checked, and not blamed
    migrate = s.devtool("migrate", "m")
    assert migrate.returncode == APP and "atabase" not in _one_clear_line(migrate)
    user.write_text(pristine)

    head = s.db_revision()
    s.write_revision("aaaa00000001", head, "    pass", "one")
    s.write_revision("bbbb00000002", head, "    pass", "two")
    status = s.devtool("status", "--json")
    assert status.returncode == STATUS and "the migrations have 2 heads" in json.loads(status.stdout)["problems"]
    for path in s.versions():
        if path.name.startswith(("aaaa", "bbbb")):
            path.unlink()

    s.psql("UPDATE alembic_version SET version_num = 'feedfeedfeed'")
    status = s.devtool("status")  # a revision the code does not have: sync's own code, `devtool sync` named
    assert status.returncode == ExitCode.ORPHANED and "feedfeedfeed" in status.stderr
    s.psql(f"UPDATE alembic_version SET version_num = '{head}'")

    s.compose("stop", "backend")
    status = s.devtool("status")
    assert status.returncode == STATUS and "service backend is exited" in _one_clear_line(status)


# ---------------------------------------------------------------------------------------------- 14 §7


REVISION = '''"""{message}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SELECT '{table}'")


def downgrade():
    pass
'''


def test_revision_files_as_editors_save_them(s):
    head = s.db_revision()
    versions = s.migrations / "versions"
    (versions / "b0b0b0b0b0b0_bom.py").write_bytes(
        b"\xef\xbb\xbf" + REVISION.format(message="bom", rev="b0b0b0b0b0b0", down=head, table="bom").encode())
    (versions / "c1c1c1c1c1c1_latin.py").write_bytes(("# -*- coding: latin-1 -*-\n" + REVISION.format(
        message="café latin", rev="c1c1c1c1c1c1", down="b0b0b0b0b0b0", table="latin")).encode("latin-1"))
    (versions / "d2d2d2d2d2d2_crlf.py").write_bytes(REVISION.format(
        message="crlf", rev="d2d2d2d2d2d2", down="c1c1c1c1c1c1", table="crlf").replace("\n", "\r\n").encode())

    status = s.devtool("status", "--json")
    assert status.returncode == 0, status.stderr
    pending = json.loads(status.stdout)["migrations"]["pending"]
    assert [(p["id"], p["message"]) for p in pending] == [
        ("b0b0b0b0b0b0", "bom"), ("c1c1c1c1c1c1", "café latin"), ("d2d2d2d2d2d2", "crlf")]
    assert s.devtool("check").returncode == 14
    migrate = s.devtool("migrate", "nothing else")
    assert migrate.returncode == 0, migrate.stderr
    assert s.db_revision() == "d2d2d2d2d2d2" and "No further model changes" in migrate.stdout
    assert s.devtool("check").returncode == 0

    unreadable = versions / "e3e3e3e3e3e3_unreadable.py"
    unreadable.write_bytes(REVISION.format(message="caf\u00e9 without a coding cookie", rev="e3e3e3e3e3e3",
                                           down="d2d2d2d2d2d2", table="nope").encode("latin-1"))
    for args, code in ((["check"], FILE), (["migrate", "m"], FILE), (["setup"], FILE), (["status"], STATUS)):
        result = s.devtool(*args)
        assert result.returncode == code, (args, result.stderr)
        line = _one_clear_line(result)
        assert str(unreadable) in line and "(line 5): (unicode error)" in line and "atabase" not in line, (args, line)
    doctor = {c["name"]: c for c in json.loads(s.devtool("doctor", "--json").stdout)["checks"]}
    assert doctor["Migrations folder"]["ok"] is False and str(unreadable) in doctor["Migrations folder"]["detail"]
    assert doctor["App loads in the backend"]["ok"] is True
    unreadable.unlink()

    orphan = s.write_revision("f4f4f4f4f4f4", "abcabcabcabc", "    pass", "orphan")
    check = s.devtool("check")
    assert check.returncode == FILE
    assert f"{orphan} revises abcabcabcabc, which no revision file defines" in _one_clear_line(check)


# ---------------------------------------------------------------------------------------------- 9 §8, §7


def _docstring(path) -> str:
    return ast.get_docstring(ast.parse(path.read_bytes()), clean=False)


def test_migration_messages_are_kept_exactly(s):
    s.add_model("post", POSTS_MODEL)
    for message in ['use """quotes""" here', "a literal \\n and a \\ backslash", "-x starts with a dash",
                    "first line\nsecond line\twith a tab", "ajouté: café 数据 🚀 \u2028 'single' \"double\"",
                    "y" * 500]:
        before = {p.name for p in s.versions()}
        result = s.devtool("migrate", "--no-upgrade", "--", message)
        assert result.returncode == 0, (message, result.stderr)
        (new,) = _new_files(s, before)
        path = s.migrations / "versions" / new
        assert _docstring(path).startswith(message + "\n\nRevision ID: "), message
        assert str(path) in result.stderr
        path.unlink()
    assert s.devtool("check").returncode == 13  # nothing was applied


def test_a_failed_generate_leaves_no_file_and_says_what_was_applied(s):
    head = s.db_revision()
    pending = s.write_revision("a1a1a1a1a1a1", head, "    op.create_table('first', sa.Column('id', sa.Integer(), "
                                                     "primary_key=True))", "first")
    s.add_model("post", POSTS_MODEL)
    template = s.migrations / "script.py.mako"
    pristine = template.read_text()
    template.write_text(pristine + "\n${ unclosed\n")
    before = {p.name for p in s.versions()}

    result = s.devtool("migrate", "add posts")
    assert result.returncode == 7, result.stderr
    line = _one_clear_line(result)
    assert "Autogenerate failed" in line and "no revision file was written" in line
    assert "Applied before that: a1a1a1a1a1a1; the database is now at a1a1a1a1a1a1." in line
    assert {p.name for p in s.versions()} == before and pending.exists()
    assert s.db_revision() == "a1a1a1a1a1a1" and "first" in s.tables() and "posts" not in s.tables()

    # A template that turns a two-line message into code: the file is never kept.
    template.write_text("# ${message}\n" + pristine)
    result = s.devtool("migrate", "two\nlines")
    assert result.returncode == 7, result.stderr
    assert "could not be loaded, so it was removed" in _one_clear_line(result)
    assert {p.name for p in s.versions()} == before


def test_setup_and_migrate_say_what_was_and_was_not_applied(s):
    head = s.db_revision()
    s.write_revision("d1d1d1d1d1d1", head, "    op.drop_column('users', 'name')", "drop name")
    setup = s.devtool("setup")
    assert setup.returncode == 8, setup.stderr
    assert "The database was not changed." in _one_clear_line(setup)
    assert s.db_revision() == head and "name" in s.psql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
    (s.migrations / "versions" / "d1d1d1d1d1d1_drop_name.py").unlink()

    s.write_revision("a2a2a2a2a2a2", head, "    op.create_table('kept', sa.Column('id', sa.Integer(), "
                                           "primary_key=True))", "kept")
    s.write_revision("b2b2b2b2b2b2", "a2a2a2a2a2a2", "    op.create_table('half', sa.Column('id', sa.Integer(), "
                                                     "primary_key=True))\n    op.execute('SELECT * FROM nowhere')",
                     "broken")
    result = s.devtool("migrate", "anything", "--yes")
    assert result.returncode == 7, result.stderr
    line = _one_clear_line(result)
    assert "Revision b2b2b2b2b2b2 (broken) failed" in line and 'relation "nowhere" does not exist' in line
    assert "Its transaction was rolled back. Applied before that: a2a2a2a2a2a2; the database is now at " \
           "a2a2a2a2a2a2." in line
    assert s.db_revision() == "a2a2a2a2a2a2" and "kept" in s.tables() and "half" not in s.tables()
    passthrough = s.devtool("db", "upgrade")  # flask's own failure: its traceback and exit code 1, nothing else
    assert passthrough.returncode == 1 and 'relation "nowhere" does not exist' in passthrough.stderr
    assert "devtool-result" not in passthrough.stdout + passthrough.stderr and s.db_revision() == "a2a2a2a2a2a2"


# ---------------------------------------------------------------------------------------------- 14 §6, 9 §9


INVOICE = '''from app.models import db


class Invoice(db.Model):
    __tablename__ = "invoices"
    id = db.Column(db.Integer, primary_key=True)
'''


def test_models_anywhere_in_the_app_are_found_and_fixed(s):
    billing = s.backend_src / "app" / "billing"
    billing.mkdir()
    (billing / "__init__.py").write_text("")
    (billing / "models.py").write_text(INVOICE)
    marker = s.backend_src / "imported-by-the-scan"
    (s.backend_src / "app" / "seed.py").write_text(  # no model: never imported, so its side effect never happens
        "open('/app/imported-by-the-scan', 'w').write('x')\n")
    (s.backend_src / "app" / "jobs.py").write_text(
        INVOICE.replace("Invoice", "Job").replace('"invoices"', '"jobs"') + "\nraise RuntimeError('needs REDIS_URL')\n")

    check = s.devtool("check")
    assert check.returncode == 10, check.stderr
    line = _errors(check)[0]
    assert "Invoice (app.billing.models, table invoices): add `from app.billing import models  # noqa: F401`" in line
    assert "app.jobs: RuntimeError: needs REDIS_URL" in check.stderr
    assert not marker.exists()
    doctor = {c["name"]: c for c in json.loads(s.devtool("doctor", "--json").stdout)["checks"]}
    models = doctor["Models loaded by the app"]
    assert models["ok"] is False and "Invoice (app.billing.models)" in models["detail"]
    assert "could not look at app.jobs: RuntimeError: needs REDIS_URL" in models["detail"]
    assert s.devtool("migrate", "m").returncode == 10

    fixed = s.devtool("migrate", "--fix-imports", "add invoices")
    assert fixed.returncode == 0, fixed.stderr
    assert "    from app.billing import models  # noqa: F401\n" in (s.backend_src / INIT).read_text()
    assert "invoices" in s.tables() and not marker.exists()
    again = s.devtool("migrate", "nothing else")  # what it could not look at is said, not passed over
    assert again.returncode == 0, again.stderr
    assert "! Not looked at for models (it could not be imported): app.jobs: RuntimeError: needs REDIS_URL." \
        in again.stderr and "No schema changes detected among the models that could be loaded" in again.stdout
    assert s.devtool("check").returncode == ExitCode.MODELS_NOT_IMPORTED
    (s.backend_src / "app" / "jobs.py").unlink()
    assert s.devtool("check").returncode == 0


LEGACY_INVOICE = '''from service.extensions import db


class Invoice(db.Model):
    __tablename__ = "invoices"
    id = db.Column(db.Integer, primary_key=True)
'''


def test_legacy_stack_fix_imports_without_init_app_and_enum_labels(make_stack):
    """Flask-SQLAlchemy 2.5, SQLAlchemy 1.4, Alembic 1.12, psycopg2, no init_app."""
    s = make_stack(layout=LEGACY)
    assert s.devtool("db", "upgrade").returncode == 0
    (s.backend_src / "service" / "billing.py").write_text(LEGACY_INVOICE)
    before = _files(s)
    result = s.devtool("migrate", "--fix-imports", "billing")
    assert result.returncode == 10, result.stderr
    line = _one_clear_line(result)
    looked = s.backend_src / "service" / "__init__.py"
    assert f"found no init_app function to add their imports to (looked in {looked})" in line
    assert "nothing was changed" in line
    assert "where the app sets up its models" in result.stderr and "run again with --fix-imports" not in result.stderr
    assert "Invoice (service.billing, table invoices): add  from . import billing  # noqa: F401" in result.stderr
    assert _files(s) == before and "invoices" not in s.tables()
    (s.backend_src / "service" / "billing.py").unlink()

    models = s.backend_src / "service" / "models.py"
    models.write_text(models.read_text().replace(
        '    name = db.Column(db.String(120), nullable=False)\n',
        '    name = db.Column(db.String(120), nullable=False)\n'
        '    tier = db.Column(db.Enum("free", "pro", name="tier"), server_default="free")\n'))
    assert s.devtool("migrate", "add tier").returncode == 0
    models.write_text(models.read_text().replace('"free", "pro"', '"free", "pro", "team"'))
    assert s.devtool("check").returncode == 13
    added = s.devtool("migrate", "add team tier")
    assert added.returncode == 0, added.stderr
    assert s.psql("SELECT enum_range(NULL::tier)") == "{free,pro,team}"
    s.psql("INSERT INTO customers (name, tier) VALUES ('Ada', 'team')")
    assert s.devtool("check").returncode == 0


# ---------------------------------------------------------------------------------------------- 9 §6


def _labels(stack, name: str) -> str:
    return stack.psql(f"SELECT enum_range(NULL::{name})")


def test_enum_types_and_labels_are_migrated(s):
    user = s.backend_src / USER
    user.write_text(user.read_text().replace(
        "    name = db.Column(db.String(255))\n",
        '    name = db.Column(db.String(255))\n'
        '    kind = db.Column(db.Enum("a", "b", name="kind"), server_default="a")\n'))
    check = s.devtool("check", "--json")
    assert check.returncode == 13 and {"kind": "add_enum_type", "name": "kind ('a', 'b')", "bind": None} in json.loads(
        check.stdout)["model_changes"]
    created = s.devtool("migrate", "add kind")  # a new type for a new column of an existing table
    assert created.returncode == 0, created.stderr
    assert _labels(s, "kind") == "{a,b}"
    s.psql("INSERT INTO users (email, kind) VALUES ('b@example.com', 'b')")

    user.write_text(user.read_text().replace('db.Enum("a", "b"', 'db.Enum("z", "a", "b", "c"'))
    check = s.devtool("check")
    assert check.returncode == 13 and "change_enum_labels kind (adds 'z', 'c')" in check.stderr
    added = s.devtool("migrate", "more kinds")  # safe: no --yes
    assert added.returncode == 0, added.stderr
    assert "add enum value kind" in added.stdout
    assert _labels(s, "kind") == "{z,a,b,c}"
    s.psql("INSERT INTO users (email, kind) VALUES ('c@example.com', 'c')")
    assert s.devtool("check").returncode == 0

    at = s.db_revision()
    user.write_text(user.read_text().replace('db.Enum("z", "a", "b", "c"', 'db.Enum("z", "a", "c"'))
    review = s.devtool("migrate", "drop b")
    assert review.returncode == 8 and "recreate enum type kind" in review.stdout + review.stderr
    assert s.db_revision() == at
    refused = s.devtool("migrate", "drop b", "--yes")  # a row still holds 'b': the revision fails whole
    assert refused.returncode == 7 and 'invalid input value for enum kind: "b"' in _one_clear_line(refused)
    assert _labels(s, "kind") == "{z,a,b,c}" and s.db_revision() == at
    s.psql("DELETE FROM users WHERE kind = 'b'")
    dropped = s.devtool("migrate", "drop b", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert _labels(s, "kind") == "{z,a,c}" and s.devtool("check").returncode == 0

    down = s.devtool("db", "downgrade", "-1")
    assert down.returncode == 0 and _labels(s, "kind") == "{z,a,b,c}"
    assert s.devtool("db", "upgrade").returncode == 0 and _labels(s, "kind") == "{z,a,c}"

    # A new table of a type the database has (create_table must not create it again), then dropped again: its
    # downgrade re-creates the table, not the type.
    zone = ('from . import db\n\n\nclass Zone(db.Model):\n    __tablename__ = "zones"\n'
            '    id = db.Column(db.Integer, primary_key=True)\n'
            '    kind = db.Column(db.Enum("z", "a", "c", name="kind"))\n')
    s.add_model("zone", zone)
    assert s.devtool("migrate", "zones").returncode == 0 and "zones" in s.tables()
    (s.backend_src / "app" / "models" / "zone.py").write_text("")
    assert s.devtool("migrate", "drop zones", "--yes").returncode == 0 and "zones" not in s.tables()
    assert s.devtool("db", "downgrade", "-1").returncode == 0 and "zones" in s.tables()
    assert s.devtool("db", "upgrade").returncode == 0 and _labels(s, "kind") == "{z,a,c}"

    s.add_model("ticket", 'from . import db\n\n\nclass Ticket(db.Model):\n    __tablename__ = "tickets"\n'
                          '    id = db.Column(db.Integer, primary_key=True)\n'
                          '    state = db.Column(db.Enum("open", "closed", name="state"), nullable=False)\n')
    assert s.devtool("migrate", "tickets").returncode == 0
    assert _labels(s, "state") == "{open,closed}"
    assert s.devtool("db", "downgrade", "-1").returncode == 0
    assert s.psql("SELECT count(*) FROM pg_type WHERE typname = 'state'") == "0"  # the downgrade drops it
    assert s.devtool("db", "upgrade").returncode == 0 and s.devtool("check").returncode == 0
    assert "tickets" in s.tables()
