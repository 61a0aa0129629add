"""What devtool reads from git: where a revision file lives in the history (`git log --all`), and where the
project's hooks go. Argument lists only, each call with a deadline; the project need not be a repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from toolkit.kept import RevisionCopy, parse

GIT_TIMEOUT = 15.0  # seconds for one git call (a large history's `log -S` is the slowest)
KINDS = {"refs/heads/": ("branch", "branches"), "refs/remotes/": ("remote branch", "remote branches"),
         "refs/tags/": ("tag", "tags")}


def _git(cwd: Path, *args: str, input: bytes | None = None) -> bytes | None:
    """git's stdout, or None when git is missing, fails (not a repository) or misses the deadline."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], input=input, capture_output=True, env=env,
                              timeout=GIT_TIMEOUT, stdin=None if input is not None else subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def toplevel(directory: Path) -> Path | None:
    out = _git(directory, "rev-parse", "--show-toplevel")
    return Path(out.decode().strip()) if out else None


def hooks_dir(directory: Path) -> Path | None:
    """The folder git runs this repository's hooks from (core.hooksPath honoured, worktrees included)."""
    out = _git(directory, "rev-parse", "--git-path", "hooks")
    return (directory / out.decode().strip()).resolve() if out else None


def find_revision(directory: Path, revision_id: str) -> RevisionCopy | None:
    """The newest commit of any branch, tag or remote that has the file defining `revision_id`."""
    top = toplevel(directory)
    if top is None:
        return None
    # Commits where the number of occurrences of the id changed in a .py file: the one that added the file
    # is among them (and the files that name it as their down_revision, told apart by parsing).
    log = _git(top, "log", "--all", "-z", "--format=%x01%H", f"-S{revision_id}", "--name-only", "--", "*.py")
    candidates, commit = [], None
    for token in (log or b"").split(b"\0"):
        token = token.strip(b"\n")
        if token.startswith(b"\x01"):
            commit = token[1:].decode()
        elif token and commit and b"\n" not in token:
            candidates.append((commit, token.decode("utf-8", "surrogateescape")))
    if not candidates:
        return None
    contents = _objects(top, [f"{c}:{p}" for c, p in candidates])
    for (commit, path), content in zip(candidates, contents):
        parsed = parse(content) if content is not None else None
        if parsed is not None and parsed.id == revision_id:
            return RevisionCopy(id=parsed.id, message=parsed.message, down=parsed.down, content=content,
                                where=_where(top, commit, path))
    return None


def _objects(top: Path, names: list[str]) -> list[bytes | None]:
    """The contents of `commit:path` objects in one `git cat-file --batch` (None where missing)."""
    out = _git(top, "cat-file", "--batch", input="".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape"))
    found: list[bytes | None] = []
    rest = out or b""
    for _ in names:
        header, _, rest = rest.partition(b"\n")
        parts = header.split()
        if len(parts) == 3 and parts[1] == b"blob":
            size = int(parts[2])
            found.append(rest[:size])
            rest = rest[size + 1:]
        else:
            found.append(None)
    return found


def _where(top: Path, commit: str, path: str) -> str:
    """The branches (or tags, remotes) whose tip still has the file, else the commit alone."""
    refs = (_git(top, "for-each-ref", "--contains", commit, "--format=%(refname)", *KINDS) or b"").decode(
        "utf-8", "replace").split()
    having = []
    if refs:
        checked = _git(top, "cat-file", "--batch-check", input="".join(f"{r}:{path}\n" for r in refs).encode())
        lines = (checked or b"").decode("utf-8", "replace").splitlines()
        having = [ref for ref, line in zip(refs, lines) if not line.endswith(" missing")]
    named = []
    for prefix, (one, many) in KINDS.items():
        names = [ref[len(prefix):] for ref in having if ref.startswith(prefix)]
        if names:
            named.append(f"{one if len(names) == 1 else many} {', '.join(names)}")
    if named:
        return f"{'; '.join(named)} (commit {commit[:10]}, {path})"
    return f"commit {commit[:10]} ({path}; no branch has it any more)"
