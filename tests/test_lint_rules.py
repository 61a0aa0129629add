"""The lint rules as pure logic (no engine): every rule's unsafe and safe example from docs/lint.md, the readers
(AST of op.* calls, SQL of op.execute), suppressions, free casts, and the report formats."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from toolkit.agent.lint import INVALID_ALLOW, lint_tree, operations_from_sql, operations_from_tree, split_statements
from toolkit.agent.lint_postgres import RULES, free_cast
from toolkit.agent.protocol import Finding

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lint.md"
RULE_IDS = {r.id for r in RULES}
HEADER = "from alembic import op\nimport sqlalchemy as sa\n\n\ndef upgrade():\n"


def revision(body: str) -> str:
    """A revision file whose upgrade() is `body` (unindented lines; comments kept where they are)."""
    return HEADER + "".join("    " + line + "\n" for line in body.strip("\n").splitlines()) + \
        "\n\ndef downgrade():\n    pass\n"


def lint(body: str, server_version: int | None = 150004) -> list[Finding]:
    source = revision(body)
    return lint_tree(ast.parse(source), source, RULES, server_version=server_version)


def triggered(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings if f.allowed is None}


def doc_sections() -> dict[str, dict[str, list[str]]]:
    """{rule id: {"unsafe": [code, ...], "safe": [code, ...]}} from docs/lint.md."""
    sections: dict[str, dict[str, list[str]]] = {}
    current, kind = None, None
    lines = iter(DOCS.read_text().splitlines())
    for line in lines:
        heading = re.match(r"^## ([a-z0-9-]+)\s*$", line)
        if heading:
            current, kind = heading.group(1), None
            sections[current] = {"unsafe": [], "safe": []}
        elif current and line.startswith("Unsafe"):
            kind = "unsafe"
        elif current and line.startswith("Safe"):
            kind = "safe"
        elif current and kind and line.strip() == "```python":
            code = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                code.append(inner)
            sections[current][kind].append("\n".join(code))
    return sections


def test_every_rule_is_documented_with_an_unsafe_and_a_safe_example():
    sections = doc_sections()
    assert set(sections) == RULE_IDS | {INVALID_ALLOW}
    for rule, examples in sections.items():
        assert examples["unsafe"] and examples["safe"], rule


@pytest.mark.parametrize("rule", sorted(RULE_IDS | {INVALID_ALLOW}))
def test_the_unsafe_example_triggers_its_rule_and_the_safe_one_does_not(rule):
    version = 110000 if rule == "adding-enum-value-in-transaction" else 150004
    examples = doc_sections()[rule]
    for code in examples["unsafe"][:1]:
        assert rule in triggered(lint(code, version)), code
    for code in examples["safe"]:
        assert rule not in triggered(lint(code, version)), code


def test_an_allow_comment_silences_exactly_one_rule_for_the_revision_and_keeps_the_reason():
    body = ("# devtool: allow adding-required-field the table is empty in every environment\n"
            'op.add_column("users", sa.Column("age", sa.Integer(), nullable=False))\n'
            'op.add_column("users", sa.Column("rank", sa.Integer(), nullable=False))\n'
            'op.create_index("ix_users_age", "users", ["age"])')
    findings = lint(body)
    required = [f for f in findings if f.rule == "adding-required-field"]
    assert len(required) == 2 and all(f.allowed == "the table is empty in every environment" for f in required)
    assert triggered(findings) == {"require-concurrent-index-creation"}
    assert not any(f.blocking for f in findings)


@pytest.mark.parametrize("comment, problem", [
    ("# devtool: allow adding-required-field", "gives no reason"),
    ("# devtool: allow adding-required-fields typo in the name", "names no rule"),
    ("# devtool: allow", "names no rule"),
])
def test_a_malformed_allow_silences_nothing_and_says_why(comment, problem):
    findings = lint(comment + '\nop.add_column("users", sa.Column("age", sa.Integer(), nullable=False))')
    assert "adding-required-field" in triggered(findings)
    invalid = [f for f in findings if f.rule == INVALID_ALLOW]
    assert len(invalid) == 1 and problem in invalid[0].message and invalid[0].line == 6


def test_an_allow_inside_a_string_is_not_a_comment():
    findings = lint('op.execute("-- # devtool: allow adding-required-field no")\n'
                    'op.add_column("users", sa.Column("age", sa.Integer(), nullable=False))')
    assert "adding-required-field" in triggered(findings)


def test_operations_on_a_table_created_in_the_same_revision_are_not_flagged():
    findings = lint('op.create_table("posts", sa.Column("id", sa.Integer(), primary_key=True))\n'
                    'op.add_column("posts", sa.Column("title", sa.String(), nullable=False))\n'
                    'with op.batch_alter_table("posts") as batch_op:\n'
                    '    batch_op.create_index("ix_posts_title", ["title"])\n'
                    'op.create_foreign_key(None, "posts", "users", ["user_id"], ["id"])')
    assert triggered(findings) == set()


def test_batch_calls_multidb_functions_and_nested_blocks_are_read():
    source = HEADER.replace("def upgrade():\n", "") + (
        "def upgrade(engine_name=''):\n    globals()['upgrade_%s' % engine_name]()\n\n\n"
        "def upgrade_():\n    with op.batch_alter_table('users', schema=None) as b:\n"
        "        b.alter_column('name', existing_type=sa.VARCHAR(length=255), nullable=False)\n\n\n"
        "def upgrade_billing():\n    for table in ('invoices', 'payments'):\n        if table:\n"
        "            op.drop_column(table, 'note')\n"
        "    with op.get_context().autocommit_block():\n"
        "        op.create_index('ix_inv', 'invoices', ['total'], postgresql_concurrently=True)\n")
    operations = operations_from_tree(ast.parse(source), source)
    assert [(o.kind, o.table, o.column, o.in_autocommit) for o in operations] == [
        ("set_not_null", "users", "name", False), ("drop_column", None, "note", False),
        ("create_index", "invoices", None, True)]
    findings = lint_tree(ast.parse(source), source, RULES, server_version=150004)
    assert triggered(findings) == {"setting-not-null", "dropping-column"}  # concurrently, in autocommit: fine


def test_sql_reader_splits_statements_and_reads_alter_table_actions():
    sql = """-- a comment; not a statement
        ALTER TABLE "Users" ADD COLUMN age int NOT NULL, ALTER COLUMN name TYPE text, DROP COLUMN legacy;
        CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix_a ON public.users (lower(email));
        UPDATE users SET name = 'a;b';  /* ; */
        CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
        ALTER TABLE ONLY users ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID;
        ALTER TABLE users VALIDATE CONSTRAINT fk; ALTER TYPE mood ADD VALUE 'meh'"""
    assert len(split_statements(sql)) == 7
    operations = operations_from_sql(sql, 12)
    assert [(o.kind, o.table, o.column or o.name) for o in operations] == [
        ("add_column", "Users", "age"), ("alter_type", "Users", "name"), ("drop_column", "Users", "legacy"),
        ("create_index", "users", "ix_a"), ("add_foreign_key", "users", "fk"),
        ("validate_constraint", "users", "fk"), ("add_enum_value", None, "mood")]
    assert operations[0].not_null and operations[3].concurrently and operations[4].not_valid
    assert {o.line for o in operations} == {12}


@pytest.mark.parametrize("old, new, free", [
    ("sa.String(length=50)", "sa.String(length=100)", True),
    ("sa.VARCHAR(length=50)", "sa.Text()", True),
    ("sa.String(length=50)", "sa.String()", True),
    ("sa.Text()", "sa.String()", True),
    ("sa.Numeric(precision=10, scale=2)", "sa.Numeric(precision=12, scale=2)", True),
    ("sa.Numeric(10, 2)", "sa.Numeric()", True),
    ("postgresql.CIDR()", "postgresql.INET()", True),
    ("sa.String(length=100)", "sa.String(length=50)", False),
    ("sa.Text()", "sa.String(length=50)", False),
    ("sa.Numeric(precision=10, scale=2)", "sa.Numeric(precision=12, scale=3)", False),
    ("sa.Integer()", "sa.BigInteger()", False),
    (None, "sa.Text()", False),
])
def test_free_casts_are_the_ones_postgres_does_without_a_rewrite(old, new, free):
    assert free_cast(old, new) is free


@pytest.mark.parametrize("default, flagged", [
    ("sa.text('now()')", False), ("sa.func.now()", False), ("'active'", False), ("sa.text('0')", False),
    ("sa.text(\"'{}'::jsonb\")", False), ("sa.text('clock_timestamp()')", True),
    ("sa.func.gen_random_uuid()", True), ("sa.text('my_function()')", True),
])
def test_volatile_defaults(default, flagged):
    findings = lint(f'op.add_column("users", sa.Column("x", sa.String(), server_default={default}))')
    assert ("adding-field-with-volatile-default" in triggered(findings)) is flagged


def test_enum_value_in_a_transaction_depends_on_the_server_version():
    body = "op.execute(\"ALTER TYPE status ADD VALUE 'archived'\")"
    assert "adding-enum-value-in-transaction" in triggered(lint(body, 110000))
    assert "adding-enum-value-in-transaction" in triggered(lint(body, None))  # unknown: say so
    assert "server version is unknown" in lint(body, None)[0].message
    assert "adding-enum-value-in-transaction" not in triggered(lint(body, 150004))


def test_check_verdict_puts_lint_errors_after_heads_and_before_the_rest():
    from toolkit.agent.protocol import Database, PendingRevision, Revision, StatusResult
    from toolkit.check import verdict

    error = Finding(rule="dropping-column", severity="error", message="drops column users.name", line=20)
    allowed = Finding(rule="dropping-table", severity="error", message="drops table t", line=21, allowed="why")
    pending = [PendingRevision(id="b", message="", path="", findings=[error, allowed])]
    status = StatusResult(heads=[Revision(id="b", message="", path="")], database=Database("postgresql"),
                          directory="/app/migrations", current=["a"], pending=pending)
    code, problems = verdict(status)
    assert code == 24 and "1 lint error(s)" in problems[0] and "dropping-column (b line 20)" in problems[0]
    assert len(problems) == 2  # and behind head
    pending[0].findings = [allowed]
    assert verdict(status)[0] == 14


def test_sarif_report_has_rules_results_suppressions_and_relative_paths(tmp_path):
    from toolkit.agent.protocol import LintedRevision, LintResult, LintRule
    from toolkit.lint import LintReport

    findings = [Finding(rule="dropping-column", severity="error", message="drops column users.name", line=20),
                Finding(rule="require-concurrent-index-creation", severity="warning", message="creates index",
                        line=21, allowed="tiny table")]
    path = tmp_path / "migrations" / "versions" / "b_drop.py"
    result = LintResult(dialect="postgresql", selection="pending", rules=[
        LintRule(r.id, r.severity, r.title, r.why, r.safe) for r in RULES],
        revisions=[LintedRevision(id="b", message="drop", path="/app/migrations/versions/b_drop.py",
                                  host_path=str(path), findings=findings)])
    report = LintReport(result, tmp_path)
    assert report.exit_code == 24 and len(report.errors) == 1 and len(report.allowed) == 1
    sarif = report.sarif()
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and {r["id"] for r in run["tool"]["driver"]["rules"]} == RULE_IDS
    first, second = run["results"]
    assert first["ruleId"] == "dropping-column" and first["level"] == "error"
    assert first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "migrations/versions/b_drop.py"
    assert first["locations"][0]["physicalLocation"]["region"]["startLine"] == 20
    assert run["tool"]["driver"]["rules"][first["ruleIndex"]]["id"] == "dropping-column"
    assert second["suppressions"] == [{"kind": "inSource", "justification": "tiny table"}]
    json_report = report.as_json()
    assert json_report["ok"] is False and json_report["findings"][0]["revision"] == "b"
