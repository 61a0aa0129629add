"""`devtool hooks`: optional git hooks (post-checkout, post-merge) that say in one line when the database no
longer matches the checkout. The check is fast and never blocks: it starts nothing, has a deadline, and the
hook exits 0 whatever happens (git reports a failing post-checkout hook as a failed checkout).

A hook file devtool creates holds only its block; to an existing shell hook it appends its block, and
`uninstall` takes out exactly what `install` put in, byte for byte.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import git, migrations, orphans
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context

HOOKS = ("post-checkout", "post-merge")
BEGIN = "# >>> devtool hooks >>>"
END = "# <<< devtool hooks <<<\n"
SHEBANG = "#!/bin/sh\n"
# How devtool put its block in (the BEGIN line says it, so uninstall can put the file back exactly):
CREATED, APPENDED, APPENDED_NEWLINE = "created the file", "appended", "appended after a newline"


@dataclass
class HookChange:
    hook: str
    path: str
    action: str  # "installed", "updated", "removed", "not installed", "skipped: ..."


def _hooks_dir(ctx: Context) -> Path:
    found = git.hooks_dir(ctx.project.directory)
    if found is None:
        raise DevtoolError(f"{ctx.project.directory} is not in a git repository (or git is missing): there is "
                           "nothing to hook into.", exit_code=ExitCode.CONFIG,
                           hint="Run `devtool hooks install` inside the project's git checkout.")
    return found


def command_line(ctx: Context) -> list[str]:
    """How the hook runs devtool: this Python and this project, as installed (a GUI git client has no PATH)."""
    settings = ctx.settings
    args = [sys.executable, "-m", "toolkit", "-C", str(ctx.project.directory)]
    for path in settings.compose_files:
        args += ["-f", str(Path(path).resolve())]
    if settings.project_name:
        args += ["-p", settings.project_name]
    if settings.backend_service:
        args += ["--service", settings.backend_service]
    return args + ["hooks", "check"]


def block(hook: str, how: str, argv: list[str]) -> str:
    run = " ".join(shlex.quote(a) for a in argv)
    guard = '[ "$3" = "0" ] || ' if hook == "post-checkout" else ""  # $3 = 0: only files were checked out
    return (f"{BEGIN} {how}\n"
            "# `devtool hooks uninstall` removes this block. One line when the database no longer matches the\n"
            "# checkout; it never blocks or fails the git command.\n"
            f"{guard}{run} </dev/null || true\n"
            f"{END}")


def install(ctx: Context) -> list[HookChange]:
    folder = _hooks_dir(ctx)
    argv = command_line(ctx)
    changes = []
    for hook in HOOKS:
        path = folder / hook
        text = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else None
        if text is None:
            folder.mkdir(parents=True, exist_ok=True)
            _write(path, SHEBANG + block(hook, CREATED, argv), mode=0o755)
            changes.append(HookChange(hook, str(path), "installed"))
        elif BEGIN in text:
            before, how, after = _split(text)
            _write(path, before + block(hook, how, argv) + after)
            changes.append(HookChange(hook, str(path), "updated"))
        elif not _is_shell(text):
            changes.append(HookChange(hook, str(path), "skipped: it is not a shell script; add this line to it "
                                      "yourself: " + " ".join(shlex.quote(a) for a in argv)))
        else:
            how = APPENDED if text.endswith("\n") else APPENDED_NEWLINE
            _write(path, text + ("" if how == APPENDED else "\n") + block(hook, how, argv))
            executable = os.stat(path).st_mode & stat.S_IXUSR
            changes.append(HookChange(hook, str(path), "installed (added to your hook)" if executable else
                                      "installed, but your hook is not executable, so git does not run it"))
    return changes


def uninstall(ctx: Context) -> list[HookChange]:
    folder = _hooks_dir(ctx)
    changes = []
    for hook in HOOKS:
        path = folder / hook
        text = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else ""
        if BEGIN not in text:
            changes.append(HookChange(hook, str(path), "not installed"))
            continue
        before, how, after = _split(text)
        if how == CREATED and before == SHEBANG and not after:
            path.unlink()
        else:
            if how == APPENDED_NEWLINE and before.endswith("\n") and not after:
                before = before[:-1]
            elif how == CREATED and before == SHEBANG:
                before = ""
            _write(path, before + after)
        changes.append(HookChange(hook, str(path), "removed"))
    return changes


def _split(text: str) -> tuple[str, str, str]:
    """(what is before devtool's block, how it was put in, what is after it)."""
    start = text.index(BEGIN)
    end = text.find(END, start)
    end = len(text) if end < 0 else end + len(END)
    how = text[start + len(BEGIN):text.find("\n", start)].strip()
    return text[:start], how if how in (CREATED, APPENDED, APPENDED_NEWLINE) else APPENDED, text[end:]


def _is_shell(text: str) -> bool:
    """A hook devtool can append shell lines to: a shell's shebang (`#!/bin/sh`, `#!/usr/bin/env bash`) or none."""
    first = text.split("\n", 1)[0]
    if not first.startswith("#!"):
        return True
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return bool(words) and os.path.basename(words[0]) in ("sh", "bash", "dash", "zsh", "ksh")


def _write(path: Path, text: str, mode: int | None = None) -> None:
    temporary = path.with_name(f".{path.name}.devtool-partial")
    temporary.write_text(text, encoding="utf-8", errors="surrogateescape")
    os.chmod(temporary, mode if mode is not None else stat.S_IMODE(os.stat(path).st_mode))
    os.replace(temporary, path)


def mismatch(ctx: Context) -> str | None:
    """The one line the hook prints, or None when the database matches the checkout. Starts nothing."""
    status = migrations.status(ctx)
    report = orphans.trace(ctx, status, locate=False)
    if report is not None:
        return (f"devtool: the database has revisions applied that this checkout does not have "
                f"({report.names()}): run `devtool sync`.")
    if len(status.heads) > 1:
        return f"devtool: the migrations have {len(status.heads)} heads: run `devtool sync --merge`."
    if status.pending:
        return (f"devtool: the database is {len(status.pending)} revision(s) behind this checkout "
                f"({', '.join(p.id for p in status.pending)}): run `devtool sync`.")
    return None


def check(ctx: Context) -> str | None:
    """mismatch() within the `hook_deadline` setting's seconds; None when it fails or takes longer (a stopped
    engine, a stack that is down, a hung socket): the hook must never stand in git's way."""
    found: list[str | None] = []

    def run() -> None:
        try:
            found.append(mismatch(ctx))
        except BaseException:  # noqa: BLE001 - whatever goes wrong, the hook stays silent
            found.append(None)

    worker = threading.Thread(target=run, name="devtool-hook-check", daemon=True)
    worker.start()
    worker.join(ctx.settings.hook_deadline)
    return found[0] if found else None
