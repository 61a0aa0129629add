"""Issue 16 §6, readable at any width: identifiers (snapshot names, revision ids, paths, risk words) are never cut;
prose wraps at word boundaries on a terminal and stays one line per message without one; a review of hundreds of
changes leads with a summary; after a confirmed destructive migrate the last line says what was applied.

The rendering is tested here without the engine (the Output object on a 60-column terminal console); the engine
tests at the end run devtool through a pseudo-terminal of 60 columns."""

from __future__ import annotations

import io
import re

import pytest

from conftest import run_on_terminal

LONG_PATH = "/home/newcomer/projects/review/shop/templates/backend/migrations/versions/3f2a1b0c9d8e_drop_posts.py"


def terminal(width: int = 60, json_mode: bool = False, full: bool = False):
    """An Output whose two consoles are a terminal of `width` columns, each writing into a buffer."""
    from rich.console import Console

    from toolkit.output import Output

    out = Output(json_mode=json_mode)
    out.full = full
    shared = io.StringIO()  # both streams on one screen, in the order they were written
    out.stdout, out.stderr = (Console(file=shared, force_terminal=True, width=width, no_color=True,
                                      highlight=False, soft_wrap=True) for _ in range(2))
    return out


def screen(out) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout.file.getvalue())  # bold and italic stay with NO_COLOR


def snapshot(name: str):
    from toolkit.agent.protocol import Database, SnapshotDatabase
    from toolkit.snapshots import Snapshot

    return Snapshot(name=name, kind="copy", created="2026-11-24T05:10:00+00:00", reason="before migration",
                    project="shop", service="backend", size=1234567,
                    databases=[SnapshotDatabase(database=Database(backend="postgresql", name="shop"),
                                                revision=["310ddeb54bfc"])])


def change(label: str, table: str, risk: str = "safe", column: str | None = None, reason: str = ""):
    from toolkit.agent.protocol import Change

    return Change(op=label, label=label, table=table, column=column, risk=risk, reason=reason,
                  revision="3f2a1b0c9d8e")


def test_snapshot_names_that_differ_at_the_end_are_shown_whole_at_60_columns():
    from toolkit.cli.snapshot import _render

    out = terminal()
    names = ["auto-20261124T051000123456Z", "auto-20261124T051000654321Z"]
    _render(out, "Snapshots of shop", [snapshot(n) for n in names])
    text = screen(out)
    for name in names + ["310ddeb54bfc", "backend"]:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), (name, text)
    assert "…" not in text


def test_a_wide_terminal_keeps_the_table():
    from toolkit.cli.snapshot import _render

    out = terminal(width=160)
    _render(out, "Snapshots of shop", [snapshot("auto-20261124T051000123456Z")])
    assert "┃ Name" in screen(out) and "auto-20261124T051000123456Z" in screen(out)


def test_error_lines_wrap_at_word_boundaries_and_never_break_a_path():
    out = terminal()
    message = (f"Revision 3f2a1b0c9d8e failed and was rolled back; the revision file {LONG_PATH} is kept for "
               f"editing and the database is unchanged at 310ddeb54bfc.")
    out.error(message, hint="Fix the revision file, then run `devtool db upgrade` again.")
    lines = screen(out).splitlines()
    assert lines[0].startswith("✗ ")
    assert all(len(line) <= 60 for line in lines if LONG_PATH not in line), lines
    assert any(line.strip() == LONG_PATH for line in lines)  # alone on its line, whole
    words = " ".join(line.strip() for line in lines).split()
    assert words[1:1 + len(message.split())] == message.split()  # no word cut, none lost
    assert all(line.startswith("  ") for line in lines[1:])


def test_without_a_terminal_each_message_is_one_line():
    from rich.console import Console

    from toolkit.output import Output

    out = Output()
    out.stderr = Console(file=io.StringIO(), force_terminal=False, width=60, highlight=False, soft_wrap=True)
    message = f"The revision file {LONG_PATH} is kept for editing and the database is unchanged at 310ddeb54bfc."
    out.error(message, hint="Run again.")
    assert out.stderr.file.getvalue().splitlines() == [f"✗ {message}", "  Run again."]


def test_the_review_at_60_columns_shows_whole_risk_words():
    from toolkit.agent.protocol import MigrationResult
    from toolkit.cli.review import show_review

    out = terminal()
    result = MigrationResult(status="needs_review", review=[
        change("drop_table", "posts", "destructive", reason="drops the table and every row in it"),
        change("add_column", "users", "risky", column="age", reason="NOT NULL without a server default"),
        change("alter_column", "users", "rename", column="full_name", reason="probably a rename of name")])
    show_review(out, result)
    text = screen(out)
    for word in ("destructive", "risky", "rename", "3f2a1b0c9d8e", "full_name"):
        assert re.search(rf"(^|\s){word}(\s|$)", text, re.M), (word, text)
    assert "…" not in text


def test_hundreds_of_changes_lead_with_a_summary_and_the_rest_on_request():
    from toolkit.cli.review import show_changes

    changes = ([change("add_table", f"table_{n:03}") for n in range(500)]
               + [change("drop_table", "legacy_orders", "destructive", reason="drops the table")])
    out = terminal(width=100)
    show_changes(out, "Detected changes", changes)
    text = screen(out)
    assert len(text.splitlines()) < 20, text
    assert "501 changes (1 destructive, 500 safe)" in text
    assert re.search(r"drop_table\s*│\s*destructive\s*│\s*1\s*│\s*legacy_orders", text)
    assert re.search(r"add_table\s*│\s*safe\s*│\s*500\s*│\s*table_000, table_001, table_002 and 497 more", text)
    assert "--full" in text and "--json" in text

    out = terminal(width=100, full=True)
    show_changes(out, "Detected changes", changes)
    assert all(f"table_{n:03}" in screen(out) for n in range(500))


def test_after_a_confirmed_destructive_migrate_the_last_line_says_what_was_applied():
    from toolkit.agent.protocol import MigrationResult, Revision
    from toolkit.cli.migrate import render

    out = terminal(width=200)
    applied = Revision(id="3f2a1b0c9d8e", message="drop posts", path="/app/migrations/versions/3f2a_drop_posts.py")
    render(out, MigrationResult(status="applied", upgraded_first=[applied], applied=[applied],
                                current_after=["3f2a1b0c9d8e"], snapshot={"name": "auto-1", "kind": "copy"}))
    last = screen(out).strip().splitlines()[-1]
    assert last == ("✓ Migrated: applied 3f2a1b0c9d8e (drop posts); database now at 3f2a1b0c9d8e. No further "
                    "model changes: no new revision written.")
    assert "No schema changes detected" not in screen(out)


def test_doctor_and_config_at_60_columns_keep_paths_whole():
    from toolkit.cli.config import render as render_config
    from toolkit.cli.doctor import render as render_doctor
    from toolkit.context import Settings
    from toolkit.doctor import Check

    out = terminal()
    render_doctor(out, [Check("Compose file", True, f"{LONG_PATH} (project shop)"),
                        Check("Database at head", False, "at 310ddeb54bfc, 2 pending",
                              "Apply them: `devtool db upgrade` (or `devtool setup`).")])
    lines = screen(out).splitlines()
    assert lines[0] == "✓ Compose file" and lines[1].strip() == LONG_PATH
    assert "✗ Database at head" in lines and all(len(line) <= 60 for line in lines if LONG_PATH not in line)

    out = terminal()
    settings = Settings(compose_files=[LONG_PATH], config_file=None)
    settings.sources = {"compose_files": "command line"}
    render_config(out, settings, {"compose_files": {"value": [LONG_PATH], "source": "command line"},
                                  "wait_timeout": {"value": 180.0, "source": "[tool.devtool] (pyproject.toml)"}})
    text = screen(out)
    assert LONG_PATH in text and "[tool.devtool] (pyproject.toml)" in text


# ---------------------------------------------------------------------------------------------- on a terminal

def run_in_terminal(args: list[str], cwd, *, columns: int = 60, env: dict | None = None,
                    answer: tuple[bytes, bytes] | None = None) -> tuple[int, str]:
    """devtool on a pseudo-terminal of `columns` columns (its real size: no COLUMNS variable), answering one
    prompt when `answer` = (prompt, reply); the screen without escape sequences."""
    code, screen = run_on_terminal(args, cwd, columns=columns, env={"TERM": "xterm", **(env or {})},
                                   answer=answer, timeout=240)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", screen)


@pytest.mark.docker
def test_sixty_columns_on_a_real_terminal(stack):
    """Snapshot names, a review with its risk words, a destructive migrate confirmed at the prompt, an error."""
    for name in ("auto-20261124T051000123456Z", "auto-20261124T051000654321Z"):
        assert stack.devtool("snapshot", name).returncode == 0
    code, text = run_in_terminal(["snapshot", "list"], stack.root)
    assert code == 0, text
    for name in ("auto-20261124T051000123456Z", "auto-20261124T051000654321Z"):
        assert re.search(rf"(^|\s){name}(\s|$)", text, re.M), text
    assert "…" not in text

    # the same at COLUMNS=60 on a wider terminal
    code, text = run_in_terminal(["snapshot", "list"], stack.root, columns=160, env={"COLUMNS": "60"})
    assert code == 0 and "auto-20261124T051000654321Z" in text and "┃ Name" not in text, text

    # The path: refused without a terminal (the revision file kept), then confirmed on one: the agent
    # applies the kept revision and has nothing new to generate; the last line says what was applied.
    user = stack.backend_src / "app/models/user.py"
    user.write_text(user.read_text().replace("    name = db.Column(db.String(255))\n", ""))
    refused = stack.devtool("migrate", "drop the name column")
    assert refused.returncode == 8, refused.stderr
    (kept,) = [p for p in stack.versions() if "drop_the_name_column" in p.name]
    revision = kept.name.split("_")[0]
    code, text = run_in_terminal(["migrate", "drop the name column"], stack.root, answer=(b"Apply it?", b"y"))
    assert code == 0, text
    assert re.search(r"(^|\s)destructive(\s|$)", text, re.M), text
    lines = text.strip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("✓ "))
    assert " ".join(line.strip() for line in lines[start:]) == (
        f"✓ Migrated: applied {revision} (drop the name column); database now at {revision}. No further model "
        f"changes: no new revision written."), text
    assert all(len(line) <= 60 for line in lines[start:]), lines[start:]
    assert "No schema changes detected" not in text
    assert "name" not in stack.psql("SELECT column_name FROM information_schema.columns WHERE table_name='users'")

    code, text = run_in_terminal(["restore", "no-such-snapshot-with-a-rather-long-name-0123456789"], stack.root)
    assert code == 12, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(len(line) <= 60 for line in lines), lines
    assert "no-such-snapshot-with-a-rather-long-name-0123456789" in text


@pytest.mark.docker
def test_no_tty_and_no_color_keep_one_line_per_message(stack):
    listed = stack.devtool("restore", "no-such-snapshot", env={"COLUMNS": "40"})
    assert listed.returncode == 12
    error = [line for line in listed.stderr.splitlines() if line.startswith("✗")]
    assert len(error) == 1 and "no-such-snapshot" in error[0] and len(error[0]) > 40
    assert "\x1b[" not in listed.stdout + listed.stderr
