"""Run any `flask db` subcommand in the backend container; options pass through, the exit code too.

Example: devtool db downgrade -1
"""

import re
from typing import List

import typer

from toolkit.errors import DevtoolError, ExitCode

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False}
RELATIVE_REVISION = re.compile(r"^-\d+$")
SUBCOMMANDS = ("init", "revision", "migrate", "edit", "merge", "upgrade", "downgrade", "show", "history", "heads",
               "branches", "current", "stamp", "check", "list-templates")
# Subcommands the oldest supported Flask-Migrate (3.x) lacks, with the release that added them.
NEWER_SUBCOMMANDS = {"check": "4.0.2"}


def command(ctx: typer.Context, args: List[str] = typer.Argument(None, metavar="SUBCOMMAND [ARGS]...")):
    from toolkit.backend import backend_container, run_flask

    args = list(args or [])
    if not args or args[0] in ("-h", "--help"):
        ctx.obj.out.info("Usage: devtool db SUBCOMMAND [ARGS]...   (subcommands: " + ", ".join(SUBCOMMANDS) + ")")
        ctx.obj.out.info("Example: devtool db history --verbose;  devtool db upgrade --help for flask's own help.")
        raise typer.Exit(0 if args else ExitCode.USAGE)
    if args[0] not in SUBCOMMANDS:
        raise DevtoolError(f"Unknown db subcommand {args[0]!r}.", exit_code=ExitCode.USAGE,
                           hint=f"Use one of: {', '.join(SUBCOMMANDS)}.")
    container = backend_container(ctx.obj)
    if args[0] in NEWER_SUBCOMMANDS:
        require_subcommand(ctx.obj, container, args[0])
    code = run_flask(ctx.obj, container, ["db", *with_relative_revisions(args)])
    raise typer.Exit(code)


def require_subcommand(context, container, name: str) -> None:
    """A clear message, not click's "No such command", when the app's Flask-Migrate predates `name`."""
    from toolkit.backend import run_agent

    found = run_agent(context, container, {"action": "db_commands"})
    if not found.get("ok") or name in found.get("commands", []):
        return  # let flask itself answer
    version = found.get("flask_migrate") or "(unknown version)"
    hint = f"Upgrade Flask-Migrate to {NEWER_SUBCOMMANDS[name]} or later in the backend's requirements."
    if name == "check":
        hint = "`devtool check` does the same (models changed without a migration) with any version. " + hint
    raise DevtoolError(f"`flask db {name}` is not available: the backend has Flask-Migrate {version}, "
                       f"and `{name}` came with Flask-Migrate {NEWER_SUBCOMMANDS[name]}.",
                       hint=hint, exit_code=ExitCode.USAGE)


def with_relative_revisions(args: List[str]) -> List[str]:
    """`downgrade -1` is what people type; click would read -1 as an option, so put it after `--`."""
    if "--" in args:
        return args
    for index, arg in enumerate(args[1:], start=1):
        if RELATIVE_REVISION.match(arg):
            return [*args[:index], "--", *args[index:]]
    return args
