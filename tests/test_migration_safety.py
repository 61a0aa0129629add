"""Migrations safe under load (issue 11), on the real engine and a real Postgres, on one shared demo stack:
lint rules and suppressions, apply under lock_timeout with the blocking session named, autocommit blocks under
devtool's lock, rehearse on a copy, and check --replay on a throw-away server. Every test leaves the stack as it
found it (revision files removed, database back at the template's revision)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from conftest import DEVTOOL, checkout_env, wait_for
from test_lint_rules import INVALID_ALLOW, RULE_IDS, doc_sections

pytestmark = pytest.mark.docker

LOCKER_APP = "report-job"
REPLAY_LABEL = "org.devtool.replay"


@pytest.fixture
def shared(module_stack):
    """The module's stack, put back afterwards: revision files written by the test removed, the database
    downgraded to the template's revision, the rows the test added deleted."""
    stack = module_stack
    before = {p.name for p in stack.versions()}
    initial = stack.layout.initial
    yield stack
    if stack.db_revision() != initial:
        result = stack.devtool("db", "downgrade", initial)
        assert result.returncode == 0, result.stderr
    for path in stack.versions():
        if path.name not in before:
            path.unlink()
    stack.psql("DELETE FROM users")
    assert stack.db_revision() == initial


def body(code: str) -> str:
    return "".join("    " + line + "\n" for line in code.strip("\n").splitlines()).rstrip("\n")


def write_chain(stack, revisions: list[tuple[str, str, str]], downgrades: dict[str, str] | None = None) -> None:
    """(id, message, upgrade body) revisions, each on top of the previous one, after the current head."""
    down = stack.layout.initial
    for rev, message, code in revisions:
        path = stack.write_revision(rev, down, body(code), message)
        if downgrades and rev in downgrades:
            path.write_text(path.read_text().replace("def downgrade():\n    pass",
                                                     "def downgrade():\n" + body(downgrades[rev])))
        down = rev


class Locker:
    """Another session (psql, application_name report-job) that holds a lock, as a report or a debugger would."""

    def __init__(self, stack, sql: str) -> None:
        self.stack = stack
        self.process = subprocess.Popen(
            ["docker", "compose", "-p", stack.project, "exec", "-T", "-e", f"PGAPPNAME={LOCKER_APP}", "db",
             "psql", "-X", "-q", "-U", stack.layout.db_user, "-d", stack.layout.db_name],
            cwd=stack.root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()
        wait_for(lambda: self.pid(), timeout=60, what="the other session to hold its lock")

    def pid(self) -> str:
        return self.stack.psql(f"SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l USING (pid) "
                               f"WHERE a.application_name = '{LOCKER_APP}' AND l.relation = 'users'::regclass "
                               f"AND l.granted LIMIT 1")

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("ROLLBACK;\n\\q\n")
            self.process.stdin.close()
            self.process.wait(timeout=60)


# ---------------------------------------------------------------------------------------------- lint


def test_every_rule_fires_on_its_unsafe_revision_and_not_on_its_safe_one(shared):
    sections = doc_sections()
    revisions, expected = [], {}
    for index, rule in enumerate(sorted(sections)):
        for kind, codes in sections[rule].items():
            for number, code in enumerate(codes[:1] if kind == "unsafe" else codes):
                rev = f"{index:02d}{'u' if kind == 'unsafe' else 's'}{number}{uuid.uuid4().hex[:8]}"
                revisions.append((rev, f"{kind} {rule}", code))
                expected[rev] = (rule, kind)
    write_chain(shared, revisions)
    before = shared.db_revision()

    result = shared.devtool("lint", "--json")
    assert result.returncode == 24, result.stderr
    report = json.loads(result.stdout)
    assert report["dialect"] == "postgresql" and report["server_version"] >= 150000
    by_revision = {r["id"]: {f["rule"] for f in r["findings"] if f["allowed"] is None} for r in report["revisions"]}
    assert set(expected) <= set(by_revision)
    for rev, (rule, kind) in expected.items():
        if kind == "safe" or rule == "adding-enum-value-in-transaction":  # Postgres 15 allows it: no finding
            assert rule not in by_revision[rev], (rule, kind, by_revision[rev])
        else:
            assert rule in by_revision[rev], (rule, kind, by_revision[rev])
    assert set().union(*by_revision.values()) >= (RULE_IDS | {INVALID_ALLOW}) - {"adding-enum-value-in-transaction"}

    sarif = shared.devtool("lint", "--format", "sarif")
    assert sarif.returncode == 24
    run = json.loads(sarif.stdout)["runs"][0]
    assert len(run["results"]) == len(report["findings"])
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert all(uri.startswith("templates/backend/migrations/versions/") for uri in uris)

    check = shared.devtool("check", "--json")
    assert check.returncode == 24, check.stderr
    assert "lint error(s) in the pending revisions" in json.loads(check.stdout)["problems"][0]

    migrate = shared.devtool("migrate", "anything")  # errors need --yes: nothing applied, nothing written
    assert migrate.returncode == 8, migrate.stderr
    assert "Lint" in migrate.stdout and "breaks lint rules" in migrate.stderr
    assert shared.db_revision() == before and len(shared.versions()) == len(revisions) + 1


def test_an_allow_comment_silences_exactly_one_rule_and_the_reason_is_shown(shared):
    write_chain(shared, [("a11000000001", "two rules", (
        "# devtool: allow adding-required-field users is empty in every environment\n"
        "op.add_column('users', sa.Column('age', sa.Integer(), nullable=False))\n"
        "op.create_check_constraint('ck_users_age', 'users', 'age >= 0')"))])
    result = shared.devtool("lint")
    assert result.returncode == 24, result.stderr
    assert "(allowed: users is empty in every environment)" in result.stdout
    report = json.loads(shared.devtool("lint", "--json").stdout)
    findings = {f["rule"]: f for f in report["findings"]}
    assert findings["adding-required-field"]["allowed"] == "users is empty in every environment"
    assert findings["adding-check-constraint"]["allowed"] is None and findings["adding-check-constraint"]["line"]


# ---------------------------------------------------------------------------------------------- timeouts


SET_DEFAULT = "op.execute(\"ALTER TABLE users ALTER COLUMN name SET DEFAULT 'anonymous'\")"


def _name_default(stack) -> str:
    return stack.psql("SELECT coalesce(column_default, '') FROM information_schema.columns "
                      "WHERE table_name = 'users' AND column_name = 'name'")


def test_a_revision_blocked_by_another_session_fails_after_the_timeout_names_it_and_changes_nothing(shared):
    write_chain(shared, [("b10000000001", "default name", SET_DEFAULT)])
    locker = Locker(shared, "BEGIN; SELECT count(*) FROM users;")
    try:
        result = shared.devtool("migrate", "m", "--json", env={"DEVTOOL_LOCK_TIMEOUT": "1",
                                                               "DEVTOOL_LOCK_RETRIES": "1"})
        holder = locker.pid()
    finally:
        locker.release()
    assert result.returncode == 25, result.stderr
    failure = json.loads(result.stdout)
    assert "b10000000001" in failure["error"] and f"pid {holder}" in failure["error"]
    assert f"application '{LOCKER_APP}'" in failure["error"] and "idle in transaction" in failure["error"]
    assert "lock_timeout (1 s, 2 tries)" in failure["error"] and "trying again" in result.stderr
    assert "Traceback" not in result.stderr
    assert shared.db_revision() == shared.layout.initial and _name_default(shared) == ""


def test_a_lock_released_during_the_backoff_lets_the_retry_through(shared, tmp_path):
    write_chain(shared, [("b20000000001", "default name", SET_DEFAULT)])
    locker = Locker(shared, "BEGIN; SELECT count(*) FROM users;")
    log = tmp_path / "stderr"
    with open(log, "w") as stderr:
        run = subprocess.Popen([*DEVTOOL, "migrate", "m"], cwd=shared.root, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=stderr,
                               env=checkout_env({**os.environ, "NO_COLOR": "1", "DEVTOOL_LOCK_TIMEOUT": "1",
                                                 "DEVTOOL_LOCK_RETRIES": "5"}))
        try:
            wait_for(lambda: "trying again" in log.read_text(), timeout=120, what="a first lock timeout")
        finally:
            locker.release()
        assert run.wait(timeout=120) == 0, log.read_text()
    assert shared.db_revision() == "b20000000001" and "anonymous" in _name_default(shared)


def test_quick_revisions_before_a_failing_one_stay_applied_and_the_failing_one_is_named(shared):
    """Quick revisions share a transaction; when one of them fails, the ones before it are applied again one
    transaction each and kept, and only the failing one is rolled back (and named)."""
    write_chain(shared, [("g10000000001", "first", "op.execute('CREATE SEQUENCE first_numbers')"),
                         ("g10000000002", "second", "op.execute('CREATE SEQUENCE second_numbers')"),
                         ("g10000000003", "broken", "op.execute('CREATE SEQUENCE third_numbers')\n"
                                                    "op.execute('SELECT * FROM no_such_table')")],
                downgrades={"g10000000001": "op.execute('DROP SEQUENCE first_numbers')",
                            "g10000000002": "op.execute('DROP SEQUENCE second_numbers')"})
    result = shared.devtool("migrate", "m", "--json")
    assert result.returncode == 7, result.stderr
    failure = json.loads(result.stdout)
    assert "g10000000003 (broken)" in failure["error"] and "no_such_table" in failure["error"]
    assert [r["id"] for r in failure["data"]["applied"]] == ["g10000000001", "g10000000002"]
    assert failure["data"]["current"] == ["g10000000002"] and shared.db_revision() == "g10000000002"
    sequences = shared.psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'S' "
                            "AND relname LIKE '%_numbers'")
    assert sequences == "first_numbers,second_numbers"


def test_autocommit_block_revisions_apply_under_devtools_lock(shared, tmp_path):
    """CREATE INDEX CONCURRENTLY in an autocommit block runs under devtool's lock, and waits (lock_timeout does
    not cut that wait short: it blocks nobody) for an older transaction to end."""
    write_chain(shared, [
        ("c10000000001", "index concurrently", (
            "op.create_table('notes', sa.Column('id', sa.Integer(), primary_key=True))\n"
            "with op.get_context().autocommit_block():\n"
            "    op.create_index('ix_users_name', 'users', ['name'], postgresql_concurrently=True)")),
        ("c10000000002", "after it", "op.execute('COMMENT ON TABLE notes IS NULL')")],
        downgrades={"c10000000001": "op.drop_index('ix_users_name', table_name='users')\nop.drop_table('notes')"})
    lint = json.loads(shared.devtool("lint", "--json").stdout)
    assert lint["ok"] is True, lint["findings"]
    locker = Locker(shared, "BEGIN; UPDATE users SET name = name WHERE id < 0;")  # a writer CONCURRENTLY waits for
    log = tmp_path / "stderr"
    with open(log, "w") as stderr:
        run = subprocess.Popen([*DEVTOOL, "setup"], cwd=shared.root, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=stderr,
                               env=checkout_env({**os.environ, "NO_COLOR": "1", "DEVTOOL_LOCK_TIMEOUT": "1"}))
        try:
            waiting = ("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' "
                       "AND wait_event_type IS NOT NULL AND now() - query_start > interval '2 seconds'")
            wait_for(lambda: shared.psql(waiting) == "1", timeout=120, what="CONCURRENTLY to wait past lock_timeout")
        finally:
            locker.release()
        assert run.wait(timeout=120) == 0, log.read_text()
    assert shared.db_revision() == "c10000000002"
    assert shared.psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_users_name'::regclass") == "t"


# ---------------------------------------------------------------------------------------------- rehearse


def _clones(stack) -> str:
    return stack.psql("SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'devtool\\_rh\\_%'")


def test_rehearse_reports_rewrites_and_locks_and_leaves_the_database_alone(shared):
    shared.psql("INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'n' || g "
                "FROM generate_series(1, 250) g")
    rows = shared.psql("SELECT md5(string_agg(id || email || coalesce(name, ''), ',' ORDER BY id)) FROM users")
    write_chain(shared, [("d10000000001", "widen and default", (
        "op.alter_column('users', 'id', existing_type=sa.Integer(), type_=sa.BigInteger())\n"
        "op.add_column('users', sa.Column('seen', sa.DateTime(), server_default=sa.func.now()))\n"
        "op.add_column('users', sa.Column('token', sa.Uuid(), server_default=sa.text('gen_random_uuid()')))"))],
        downgrades={"d10000000001": "op.drop_column('users', 'token')\nop.drop_column('users', 'seen')\n"
                                    "op.alter_column('users', 'id', existing_type=sa.BigInteger(), "
                                    "type_=sa.Integer())"})
    result = shared.devtool("rehearse", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_sql = {s["sql"].split(" ADD COLUMN ")[-1].split()[0] if "ADD COLUMN" in s["sql"] else "type": s
              for s in report["statements"]}
    assert by_sql["type"]["lock"] == "AccessExclusiveLock" and by_sql["type"]["table"] == "users"
    assert by_sql["type"]["rewrote"] == ["users"] and by_sql["type"]["rows"] == 250
    assert by_sql["seen"]["rewrote"] == []  # now() is stored once: no rewrite
    assert by_sql["token"]["rewrote"] == ["users"]  # a volatile default rewrites the table
    assert [(p["name"], p["ok"]) for p in report["phases"]] == [("upgrade", True), ("downgrade", True),
                                                                 ("upgrade again", True)]
    assert shared.db_revision() == shared.layout.initial
    assert shared.psql("SELECT md5(string_agg(id || email || coalesce(name, ''), ',' ORDER BY id)) FROM users") == rows
    assert shared.psql("SELECT data_type FROM information_schema.columns WHERE table_name = 'users' "
                       "AND column_name = 'id'") == "integer"
    assert not _clones(shared)


def test_rehearse_names_a_broken_downgrade_and_the_database_is_untouched(shared):
    write_chain(shared, [("d20000000001", "notes", "op.create_table('notes', sa.Column('id', sa.Integer()))")],
                downgrades={"d20000000001": "op.drop_table('no_such_table')"})
    result = shared.devtool("rehearse")
    assert result.returncode == 26, result.stderr
    assert "d20000000001 (notes): its downgrade failed on the copy" in result.stderr
    assert "no_such_table" in result.stderr and "Traceback" not in result.stderr
    assert shared.db_revision() == shared.layout.initial and "notes" not in shared.tables()
    assert not _clones(shared)


def test_migrate_rehearse_rehearses_the_new_revision_then_applies_it(shared):
    user = shared.backend_src / "app/models/user.py"
    original = user.read_text()
    user.write_text(original.replace("    name = db.Column(db.String(255))",
                                     "    name = db.Column(db.String(255))\n    nick = db.Column(db.String(40))"))
    try:
        result = shared.devtool("migrate", "--rehearse", "add nick")
    finally:
        user.write_text(original)
    assert result.returncode == 0, result.stderr
    assert "Rehearsal on a copy" in result.stdout and "ALTER TABLE users ADD COLUMN nick" in result.stdout
    assert "Migrated" in result.stdout
    assert "nick" in shared.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
    assert not _clones(shared)


# ---------------------------------------------------------------------------------------------- replay


def _replay_containers(stack) -> str:
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label={REPLAY_LABEL}={stack.project}"],
                          capture_output=True, text=True).stdout.strip()


def test_check_replay_passes_on_the_demo_history_on_a_server_without_volume_that_is_removed(shared, tmp_path):
    output = tmp_path / "stdout"
    with open(output, "w") as stdout:
        run = subprocess.Popen([*DEVTOOL, "check", "--replay", "--json"], cwd=shared.root, stdin=subprocess.DEVNULL,
                               stdout=stdout, stderr=subprocess.DEVNULL, env=checkout_env({**os.environ}))
        server = wait_for(lambda: _replay_containers(shared), timeout=120, what="the throw-away server to start")
        mounts = subprocess.run(["docker", "inspect", "-f", "{{json .Mounts}}", server], capture_output=True,
                                text=True).stdout.strip()
        assert run.wait(timeout=300) == 0, output.read_text()
    assert mounts in ("[]", "")  # no volume (its data lives in memory); "" if it was already gone
    report = json.loads(output.read_text())
    assert [s["ok"] for s in report["steps"]] == [True] * 5 and report["revisions"] == 1
    assert not _replay_containers(shared)


@pytest.mark.parametrize("case, upgrade, downgrade, step, said", [
    ("broken downgrade", "op.execute('CREATE SEQUENCE invoice_numbers')", "op.execute('DROP SEQUENCE no_such_seq')",
     "each revision's downgrade", "its downgrade failed"),
    ("downgrade leaves a sequence", "op.execute('CREATE SEQUENCE invoice_numbers')", "pass",
     "each revision's downgrade", "left something behind"),
    ("needs data made outside migrations", "op.execute(\"UPDATE settings SET value = 'x'\")", "pass",
     "upgrade from an empty database", "settings"),
    ("leaves a sequence at base", "op.execute('CREATE SEQUENCE IF NOT EXISTS stray_seq')", "pass",
     "downgrade to base leaves nothing behind", "sequence stray_seq"),
])
def test_check_replay_names_the_failing_revision_and_step(shared, case, upgrade, downgrade, step, said):
    shared.psql("CREATE TABLE IF NOT EXISTS settings (value text)")  # by hand, as on a long-lived database
    try:
        write_chain(shared, [("e10000000001", case, upgrade)], downgrades={"e10000000001": downgrade})
        result = shared.devtool("check", "--replay")
    finally:
        shared.psql("DROP TABLE settings")
    assert result.returncode == 27, result.stdout + result.stderr
    message = result.stderr
    assert f"Replay failed at step '{step}" in message and said in message + result.stdout
    if step != "downgrade to base leaves nothing behind":
        assert "e10000000001" in message
    assert "Traceback" not in message and not _replay_containers(shared)
    assert shared.db_revision() == shared.layout.initial
