"""Run any `flask db` subcommand in the backend container; options pass through, the exit code too.

Example: devtool db downgrade -1
"""

from typing import List

import typer

from toolkit.errors import ExitCode

CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False}


def command(ctx: typer.Context, args: List[str] = typer.Argument(None, metavar="SUBCOMMAND [ARGS]...")):
    from toolkit import db

    args = list(args or [])
    if not args or args[0] in ("-h", "--help"):
        ctx.obj.out.info("Usage: devtool db SUBCOMMAND [ARGS]...   (subcommands: " + ", ".join(db.SUBCOMMANDS) + ")")
        ctx.obj.out.info("Example: devtool db history --verbose;  devtool db upgrade --help for flask's own help.")
        raise typer.Exit(0 if args else ExitCode.USAGE)
    raise typer.Exit(db.run(ctx.obj, args))
