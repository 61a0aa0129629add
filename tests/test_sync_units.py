"""Pure logic of issue 10 (no engine): reading revision files, devtool's kept copies, finding a revision in
git's history, tracing orphans, the CI verdict, KEEP lines in a stream, and hooks that uninstall byte for byte."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit import git, hooks, kept, orphans
from toolkit.agent.protocol import KEEP_MARK, Database, Revision, RevisionFile, StatusResult
from toolkit.check import verdict
from toolkit.context import Settings
from toolkit.project import ComposeProject

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def revision_file(rev: str, down, message: str = "add things", annotated: bool = False) -> str:
    types = (": str", ": Union[str, Sequence[str], None]") if annotated else ("", "")
    return (f'"""{message}\n\nRevision ID: {rev}\nRevises: {down}\n"""\nfrom alembic import op\n\n'
            f"revision{types[0]} = {rev!r}\ndown_revision{types[1]} = {down!r}\n\n\ndef upgrade():\n    pass\n")


def test_parse_reads_revision_files_as_alembic_writes_them():
    assert kept.parse(revision_file("a1", None).encode()) == kept.ParsedRevision("a1", [], "add things")
    assert kept.parse(revision_file("b2", "a1", annotated=True).encode()).down == ["a1"]
    assert kept.parse(revision_file("m3", ("a1", "b2"), "merge heads").encode()).down == ["a1", "b2"]
    bom = b"\xef\xbb\xbf" + revision_file("c4", "b2", "caf\u00e9").encode()
    assert kept.parse(bom).message == "caf\u00e9"
    latin = ("# -*- coding: latin-1 -*-\n" + revision_file("d5", "c4", "d\u00e9j\u00e0")).encode("latin-1")
    assert kept.parse(latin).message == "d\u00e9j\u00e0"
    assert kept.parse(b"revision = compute()\n") is None and kept.parse(b"def (:") is None
    assert kept.parse(b"x = 1\n") is None


def _project(tmp_path: Path, monkeypatch) -> ComposeProject:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return ComposeProject(directory=tmp_path / "project", files=[], name="demo", services={})


def _applied(rev: str, down, text: str | None = None) -> RevisionFile:
    content = (text or revision_file(rev, down)).encode()
    return RevisionFile(id=rev, message="", down=[], path=f"/app/migrations/versions/{rev}.py",
                        content=base64.b64encode(content).decode())


def test_kept_copies_are_content_addressed_and_the_last_applied_wins(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    first = kept.keep(project, _applied("a1", None))
    assert kept.keep(project, _applied("a1", None)) == first  # the same file: one copy
    edited = kept.keep(project, _applied("a1", None, revision_file("a1", None, "edited")))
    os.utime(first, (1, 1))
    assert edited != first and kept.newest(project, "a1").message == "edited"
    assert "kept copy" in kept.newest(project, "a1").where and kept.newest(project, "zz") is None
    odd = kept.keep(project, _applied("../../odd id", None))  # an id is no path
    assert odd.parent.parent == kept.folder(project) and kept.newest(project, "../../odd id").id == "../../odd id"


class Repo:
    """A git repository with one revision file (a1) on main."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "repo"
        self.versions = self.root / "migrations" / "versions"
        self.versions.mkdir(parents=True)
        self.run("init", "-q", "-b", "main")
        (self.versions / "a1_base.py").write_text(revision_file("a1", None, "base"))
        self.commit("base")

    def run(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True,
                       env={**os.environ, **GIT_ENV})

    def commit(self, message: str) -> None:
        self.run("add", "-A")
        self.run("commit", "-qm", message)


def test_git_finds_the_branch_that_has_a_revision_file_and_says_when_none_has(tmp_path):
    repo = Repo(tmp_path)
    repo.run("checkout", "-qb", "feature")
    (repo.versions / "b2_add_posts.py").write_text(revision_file("b2", "a1", "add posts"))
    repo.commit("b2")
    repo.run("checkout", "-qb", "later")
    (repo.versions / "c3_child.py").write_text(revision_file("c3", "b2", "child names b2"))  # mentions b2 too
    repo.commit("c3")
    repo.run("checkout", "-q", "main")

    found = git.find_revision(repo.root / "migrations", "b2")
    assert found.id == "b2" and found.message == "add posts" and found.down == ["a1"]
    assert found.where.startswith("branches feature, later (commit ") and "b2_add_posts.py" in found.where
    repo.run("branch", "-qD", "feature")
    repo.run("checkout", "-q", "later")
    repo.run("tag", "before-drop")
    (repo.versions / "b2_add_posts.py").unlink()
    repo.commit("drop b2 from later")
    repo.run("checkout", "-q", "main")
    assert git.find_revision(repo.root, "b2").where.startswith("tag before-drop (commit ")
    repo.run("tag", "-d", "before-drop")
    assert "no branch has it any more" in git.find_revision(repo.root, "b2").where  # later's history has it
    repo.run("branch", "-qD", "later")
    assert git.find_revision(repo.root, "b2") is None
    assert git.find_revision(tmp_path / "not-a-repo", "b2") is None and git.toplevel(tmp_path) is None


def test_trace_follows_kept_copies_down_to_the_checkout_and_names_what_has_no_copy(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    for rev, down in (("c3", "b2"), ("b2", "x9"), ("d4", "a1")):
        kept.keep(project, _applied(rev, down))
    ctx = SimpleNamespace(project=project, target=SimpleNamespace(host_path=lambda path: path))
    status = StatusResult(heads=[Revision("a1", "base", "")], database=Database("postgresql"), directory="/nowhere",
                          current=["c3", "d4"], orphans=["c3", "d4"], known=["a1"])
    report = orphans.trace(ctx, status)
    assert [o.id for o in report.orphans] == ["c3", "d4", "b2", "x9"] and report.target == ["a1"]
    assert [o.id for o in report.missing] == ["x9"] and report.orphans[0].as_json()["copy"] == "kept"
    assert "no copy anywhere" in report.orphans[-1].where
    error = orphans.error(report, "nothing was applied")
    assert error.exit_code == 16 and "4 revisions applied that this checkout does not have" in error.message
    assert "c3 (add things)" in error.message and "devtool sync" in error.hint and "x9" in error.detail
    assert orphans.trace(ctx, StatusResult(heads=[], database=Database("postgresql"), directory="/")) is None


def test_check_names_orphans_first_and_compares_no_models_against_their_schema():
    from toolkit.agent.protocol import ModelChange

    status = StatusResult(heads=[Revision("a1", "", "")], database=Database("postgresql"), directory="/",
                          current=["b2"], orphans=["b2"], model_changes=[ModelChange("remove_table", "posts")])
    code, problems = verdict(status)
    assert code == 16 and len(problems) == 1 and "b2" in problems[0] and "devtool sync" in problems[0]


def test_keep_lines_leave_the_stream_and_everything_else_passes_as_it_comes():
    from toolkit.protocol import _KeepLines

    seen = []
    lines = _KeepLines(seen.append)
    line = (KEEP_MARK + '{"id": "a1"}\n').encode()
    shown = lines.feed(b"INFO upgrade\n" + line[:5]) + lines.feed(line[5:] + b"\x1eother\npartial")
    assert shown == b"INFO upgrade\n\x1eother\npartial" and seen == [line[:-1]]
    assert lines.feed(b"\x1e") == b"" and lines.flush() == b"\x1e"


@pytest.fixture
def hook_ctx(tmp_path):
    return SimpleNamespace(project=SimpleNamespace(directory=Repo(tmp_path).root),
                           settings=Settings(project_name="demo"))


def test_hooks_install_and_uninstall_give_back_every_byte(hook_ctx):
    root = hook_ctx.project.directory
    folder = root / ".git" / "hooks"
    mine = "#!/bin/bash\necho mine"  # no newline at the end
    (folder / "post-merge").write_text(mine)
    (folder / "post-merge").chmod(0o755)

    installed = {c.hook: c.action for c in hooks.install(hook_ctx)}
    assert installed == {"post-checkout": "installed", "post-merge": "installed (added to your hook)"}
    checkout = (folder / "post-checkout").read_text()
    assert checkout.startswith("#!/bin/sh\n") and "-p demo hooks check </dev/null || true" in checkout
    assert os.access(folder / "post-checkout", os.X_OK)
    merge = (folder / "post-merge").read_text()
    assert merge.startswith(mine + "\n" + hooks.BEGIN) and '[ "$3" = "0" ]' not in merge
    assert {c.action for c in hooks.install(hook_ctx)} == {"updated"}  # twice: still one block each
    assert (folder / "post-merge").read_text().count(hooks.BEGIN) == 1

    ran = subprocess.run(["sh", str(folder / "post-checkout"), "a", "b", "0"], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout + ran.stderr == ""  # a file checkout: nothing run

    assert {c.action for c in hooks.uninstall(hook_ctx)} == {"removed"}
    assert not (folder / "post-checkout").exists() and (folder / "post-merge").read_text() == mine
    assert {c.action for c in hooks.uninstall(hook_ctx)} == {"not installed"}


def test_hooks_leave_a_hook_in_another_language_alone_and_follow_core_hooks_path(hook_ctx):
    root = hook_ctx.project.directory
    subprocess.run(["git", "config", "core.hooksPath", ".githooks"], cwd=root, check=True)
    (root / ".githooks").mkdir()
    python_hook = "#!/usr/bin/env python3\nprint('mine')\n"
    (root / ".githooks" / "post-checkout").write_text(python_hook)
    changes = {c.hook: c.action for c in hooks.install(hook_ctx)}
    assert changes["post-checkout"].startswith("skipped: it is not a shell script")
    assert (root / ".githooks" / "post-checkout").read_text() == python_hook
    assert (root / ".githooks" / "post-merge").is_file() and not (root / ".git" / "hooks" / "post-merge").exists()
    hooks.uninstall(hook_ctx)
    assert sorted(p.name for p in (root / ".githooks").iterdir()) == ["post-checkout"]


def test_hooks_outside_a_repository_say_so(tmp_path):
    ctx = SimpleNamespace(project=SimpleNamespace(directory=tmp_path), settings=Settings())
    with pytest.raises(Exception) as raised:
        hooks.install(ctx)
    assert "not in a git repository" in str(raised.value) and raised.value.exit_code == 3
