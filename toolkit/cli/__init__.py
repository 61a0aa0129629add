"""The devtool command line: global options, command registration, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from toolkit import __version__
from toolkit.errors import DevtoolError, ExitCode


class DevtoolGroup(TyperGroup):
    """Turns DevtoolError and Ctrl-C into one clear message and an exit code; never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DevtoolError as exc:
            _output(ctx).error(exc.message, hint=exc.hint, detail=exc.detail)
            if getattr(ctx.obj, "settings", None) is not None and _output(ctx).json_mode:
                _output(ctx).data({"ok": False, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code,
                                   **({"data": exc.data} if exc.data else {})})
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _output(ctx).warn("Interrupted: nothing further was started (devtool's agent in the container starts "
                              "nothing new either). `devtool status` shows where the stack and the database are.")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:  # click's (or typer's own copy of click's) NoSuchOption: by name
            value = _dash_value(exc)
            if value is None:
                raise
            import shlex

            command = exc.ctx.info_name
            said = exc.format_message().rstrip(".") if value == exc.option_name else \
                f"No such option: {exc.option_name} (in {value!r})"
            _output(ctx).error(f"{said}.", hint=f"If {value!r} is meant as the value, not an option, put it after "
                                                f"`--` (options before it): devtool {command} [OPTIONS] -- "
                                                f"{shlex.quote(value)}")
            raise typer.Exit(ExitCode.USAGE) from None


def _dash_value(exc: Exception) -> str | None:
    """The argument the user meant as a value (a migration message starting with '-') that click read as an
    unknown option; None for any other error, or a command that takes no value."""
    if type(exc).__name__ != "NoSuchOption" or getattr(exc, "ctx", None) is None:
        return None
    if not any(getattr(p, "param_type_name", "") == "argument" for p in exc.ctx.command.params):
        return None
    option = exc.option_name or ""
    return next((a for a in sys.argv[1:] if a.startswith(option) and a not in ("--help", "-h")), None)


def _output(ctx):
    from toolkit.output import Output

    root = ctx.find_root()
    if getattr(root.obj, "out", None) is None:
        return Output()
    return root.obj.out


app = typer.Typer(
    cls=DevtoolGroup,
    name="devtool",
    help="Migrate the database (PostgreSQL, MySQL/MariaDB, SQLite) of a Flask + Flask-SQLAlchemy backend running under "
         "Docker Compose.\n\n"
         'Example: devtool migrate "add posts table"',
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"devtool {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    project_dir: Optional[Path] = typer.Option(None, "-C", "--project-dir", envvar="DEVTOOL_PROJECT_DIR",
                                               help="Project directory (default: where the compose file is)."),
    file: Optional[List[Path]] = typer.Option(None, "-f", "--file", help="Compose file (repeatable)."),
    project_name: Optional[str] = typer.Option(None, "-p", "--project-name", help="Compose project name."),
    profile: Optional[List[str]] = typer.Option(None, "--profile", help="Compose profile to enable (repeatable; "
                                                "COMPOSE_PROFILES works too)."),
    service: Optional[str] = typer.Option(None, "--service", envvar="DEVTOOL_SERVICE",
                                          help="The backend service (default: auto-detected)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show compose and container output."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    from toolkit.context import Context, Settings
    from toolkit.output import Output

    settings = Settings(project_dir=project_dir, compose_files=list(file or []), project_name=project_name,
                        profiles=list(profile or []), backend_service=service, verbose=verbose)
    given = given_options(ctx, {"project_dir": "project_dir", "file": "compose_files",
                                 "project_name": "project_name", "service": "backend_service"})

    def resolve() -> Settings:  # on first use only: `devtool up --help` never reads the configuration
        from toolkit.config import resolve as resolve_config

        return resolve_config(settings, given)

    ctx.obj = Context(settings, Output(verbose=verbose), resolve=resolve)


def given_options(ctx: typer.Context, fields: dict) -> dict:
    """{settings field: "command line" | "env VAR"} for the global options given on the command line or through
    their own environment variable (click knows which); options left at their default are not listed."""
    import os

    given = {}
    for param in ctx.command.params:
        # By name: typer may bring its own copy of click, whose ParameterSource is another enum than click's.
        source = getattr(ctx.get_parameter_source(param.name), "name", None)
        if param.name not in fields or source not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        if source == "COMMANDLINE":
            given[fields[param.name]] = "command line"
        else:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
            given[fields[param.name]] = "env " + next((n for n in names if os.environ.get(n)), " / ".join(names))
    return given


def _register() -> None:
    from toolkit.cli import (check, config, db, doctor, down, hooks, lint, migrate, new, rehearse, restore, setup,
                             shell, snapshot, status, sync, up)

    app.command("up", help=up.__doc__)(up.command)
    app.command("down", help=down.__doc__)(down.command)
    app.command("migrate", help=migrate.__doc__)(migrate.command)
    app.command("db", help=db.__doc__, context_settings=db.CONTEXT_SETTINGS, add_help_option=False)(db.command)
    app.command("shell", help=shell.__doc__)(shell.command)
    app.command("status", help=status.__doc__)(status.command)
    app.command("doctor", help=doctor.__doc__)(doctor.command)
    app.command("setup", help=setup.__doc__)(setup.command)
    app.command("check", help=check.__doc__)(check.command)
    app.command("lint", help=lint.__doc__)(lint.command)
    app.command("rehearse", help=rehearse.__doc__)(rehearse.command)
    app.add_typer(snapshot.app, name="snapshot", help=snapshot.__doc__)
    app.command("restore", help=restore.__doc__)(restore.command)
    app.command("config", help=config.__doc__)(config.command)
    app.command("new", help=new.__doc__)(new.command)
    app.command("sync", help=sync.__doc__)(sync.command)
    app.add_typer(hooks.app, name="hooks", help=hooks.__doc__)


_register()


def main() -> None:
    import signal

    for name in ("SIGTERM", "SIGHUP"):  # a process manager's stop and a closed terminal mean what Ctrl-C means
        if signal.getsignal(getattr(signal, name)) != signal.SIG_IGN:  # (nohup: a hang-up is no stop)
            signal.signal(getattr(signal, name), signal.default_int_handler)
    app()
