"""`devtool db`: any `flask db` subcommand in the backend container; options pass through, the exit code too."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from toolkit import orphans
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context

RELATIVE_REVISION = re.compile(r"^-\d+$")
SUBCOMMANDS = ("init", "revision", "migrate", "edit", "merge", "upgrade", "downgrade", "show", "history", "heads",
               "branches", "current", "stamp", "check", "list-templates")
# Subcommands the oldest supported Flask-Migrate (3.x) lacks, with the release that added them.
NEWER_SUBCOMMANDS = {"check": "4.0.2"}


def run(ctx: Context, args: list[str]) -> int:
    """Run `flask db ARGS` in the backend container; returns flask's exit code."""
    if args[0] not in SUBCOMMANDS:
        raise DevtoolError(f"Unknown db subcommand {args[0]!r}.", exit_code=ExitCode.USAGE,
                           hint=f"Use one of: {', '.join(SUBCOMMANDS)}.")
    agent = ctx.target.agent()
    if args[0] in NEWER_SUBCOMMANDS:
        require_subcommand(agent, args[0])
    code = agent.flask(["db", *with_relative_revisions(args)])
    if code != 0:
        explain_failure(ctx, args[0], code)
    return code


def explain_failure(ctx: Context, subcommand: str, code: int) -> None:
    """flask's "Can't locate revision" after a git checkout, in plain words: which revisions the database is
    at, where their files are, and `devtool sync` (looked at only when flask failed: no cost otherwise)."""
    try:
        report = orphans.diagnose(ctx)
    except DevtoolError:
        return  # the app itself is in trouble: flask's own message stands
    if report is not None:
        raise orphans.error(report, f"`flask db {subcommand}` failed (exit code {code}) because of it")


def require_subcommand(agent, name: str) -> None:
    """A clear message, not click's "No such command", when the app's Flask-Migrate predates `name`."""
    try:
        found = agent.commands()
    except DevtoolError:
        return  # let flask itself answer
    if name in found.commands:
        return
    version = found.flask_migrate or "(unknown version)"
    hint = f"Upgrade Flask-Migrate to {NEWER_SUBCOMMANDS[name]} or later in the backend's requirements."
    if name == "check":
        hint = "`devtool check` does the same (models changed without a migration) with any version. " + hint
    raise DevtoolError(f"`flask db {name}` is not available: the backend has Flask-Migrate {version}, "
                       f"and `{name}` came with Flask-Migrate {NEWER_SUBCOMMANDS[name]}.",
                       hint=hint, exit_code=ExitCode.USAGE)


def with_relative_revisions(args: list[str]) -> list[str]:
    """`downgrade -1` is what people type; click would read -1 as an option, so put it after `--`."""
    if "--" in args:
        return args
    for index, arg in enumerate(args[1:], start=1):
        if RELATIVE_REVISION.match(arg):
            return [*args[:index], "--", *args[index:]]
    return args
