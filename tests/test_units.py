"""Pure logic: revision review, secret masking, argument handling, the CI verdict."""

from toolkit.agent.protocol import ModelChange, PendingRevision, Revision, StatusResult, Database
from toolkit.agent.review import classify_upgrade, needs_review
from toolkit.check import verdict
from toolkit.db import with_relative_revisions
from toolkit.masking import Masker


def _upgrade(body: str) -> str:
    return "from alembic import op\nimport sqlalchemy as sa\n\n\ndef upgrade():\n" + body + "\n\ndef downgrade():\n    pass\n"


def test_add_table_is_safe():
    changes = classify_upgrade(_upgrade("    op.create_table('posts', sa.Column('id', sa.Integer(), nullable=False))"))
    assert [(c.label, c.table, c.risk) for c in changes] == [("add table", "posts", "safe")]
    assert needs_review(changes) == []


def test_batch_drop_column_and_type_change_are_destructive():
    changes = classify_upgrade(_upgrade(
        "    with op.batch_alter_table('users', schema=None) as batch_op:\n"
        "        batch_op.drop_column('name')\n"
        "        batch_op.alter_column('email', existing_type=sa.VARCHAR(), type_=sa.Text())\n"
        "        batch_op.drop_index('ix_users_email')\n"
        "        batch_op.drop_constraint('uq_email', type_='unique')"))
    assert [(c.op, c.table, c.column, c.name, c.risk) for c in changes] == [
        ("drop_column", "users", "name", None, "destructive"), ("alter_column", "users", "email", None, "destructive"),
        ("drop_index", "users", None, "ix_users_email", "destructive"),
        ("drop_constraint", "users", None, "uq_email", "destructive")]


def test_not_null_without_default_is_risky_but_with_default_safe():
    risky = classify_upgrade(_upgrade(
        "    with op.batch_alter_table('users') as b:\n        b.add_column(sa.Column('age', sa.Integer(), nullable=False))"))
    safe = classify_upgrade(_upgrade(
        "    op.add_column('users', sa.Column('age', sa.Integer(), nullable=False, server_default='0'))"))
    assert risky[0].risk == "risky" and "NOT NULL" in risky[0].reason
    assert safe[0].risk == "safe" and safe[0].table == "users" and safe[0].column == "age"


def test_drop_and_add_are_probable_renames():
    tables = classify_upgrade(_upgrade("    op.create_table('articles', sa.Column('id', sa.Integer()))\n"
                                       "    op.drop_table('posts')"))
    columns = classify_upgrade(_upgrade("    with op.batch_alter_table('users') as b:\n"
                                        "        b.add_column(sa.Column('full_name', sa.String()))\n"
                                        "        b.drop_column('name')"))
    assert {c.risk for c in tables} == {"rename"} and "probable rename" in tables[0].reason
    assert {c.risk for c in columns} == {"rename"} and "users.name to full_name" in columns[1].reason


def test_masker_hides_url_passwords_assignments_and_learned_values():
    masker = Masker()
    masker.learn_environment(["DATABASE_URL=postgresql://app:S3cret-pw@db:5432/app", "API_TOKEN=tok-123456",
                              "POSTGRES_USER=postgres", "POSTGRES_PASSWORD=postgres"])
    text = masker("url postgresql://app:S3cret-pw@db/app; raw S3cret-pw; PASSWORD=abc; token tok-123456; postgres")
    assert "S3cret-pw" not in text and "tok-123456" not in text and "abc" not in text
    assert text.endswith("postgres")  # a "secret" equal to an ordinary value is not masked everywhere
    assert masker("run devtool migrate") == "run devtool migrate"


def test_relative_revisions_go_after_double_dash():
    assert with_relative_revisions(["downgrade", "-1"]) == ["downgrade", "--", "-1"]
    assert with_relative_revisions(["downgrade", "--sql", "-2"]) == ["downgrade", "--sql", "--", "-2"]
    assert with_relative_revisions(["history", "-r", "base:head"]) == ["history", "-r", "base:head"]


def _status(heads, pending=(), model_changes=()):
    return StatusResult(heads=heads, database=Database("postgresql"), directory="/app/migrations", current=["a"],
                        pending=[PendingRevision(id=p, message="", path="") for p in pending],
                        model_changes=[ModelChange(kind=k, name=n) for k, n in model_changes])


def test_check_verdict_order_and_codes():
    one_head = [Revision(id="a", message="", path="")]
    assert verdict(_status(one_head)) == (0, [])
    code, problems = verdict(_status(one_head * 2, ["b"], [("add_table", "posts")]))
    assert code == 9 and len(problems) == 2  # models are compared against one head only (after a git merge
    # the other branch's revision is not applied, its table is no "change without a migration")
    assert verdict(_status(one_head, ["b"]))[0] == 14
    assert verdict(_status(one_head, [], [("add_table", "t")]))[0] == 13


def test_every_command_has_help_with_an_example():
    import subprocess

    from conftest import run_devtool_each

    commands = ["up", "down", "migrate", "db", "shell", "status", "doctor", "setup", "check", "snapshot", "restore",
                "config", "new", "sync", "hooks", "hooks install", "hooks uninstall", "hooks check", "lint",
                "rehearse"]
    results = run_devtool_each([[*command.split(), "--help"] for command in commands], cwd=subprocess.os.getcwd())
    for command, result in zip(commands, results):
        assert result.returncode == 0, (command, result.stderr)
        assert "Example" in result.stdout + result.stderr, command
