"""devtool's own configuration: `[tool.devtool]` in pyproject.toml or a devtool.toml, then DEVTOOL_* variables.

Precedence, lowest first: defaults < configuration file < environment (DEVTOOL_<KEY>) < command line.
The file is looked for in the -C directory, else in the current directory and its parents; the first directory
with a devtool.toml, or a pyproject.toml that has a [tool.devtool] table, wins (devtool.toml first). A
pyproject.toml without the table is not a devtool configuration and does not stop the search (as with ruff and
pytest), so a backend's own pyproject.toml in a sub-directory does not hide the project's devtool.toml.

No typer here, and nothing heavy at import time: this module is imported when a command runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from toolkit.context import Settings
from toolkit.errors import DevtoolError, ExitCode

DEFAULT = "default"
COMMAND_LINE = "command line"
PYPROJECT = "pyproject.toml"
DEVTOOL_TOML = "devtool.toml"
PYPROJECT_TABLE = "pyproject.toml [tool.devtool]"


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(_string(v) for v in value):
        return list(value)
    return None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _non_negative_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _non_negative_number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value != float("inf"):
        return float(value)
    return None


def _positive_number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value != float("inf"):
        return float(value)
    return None


@dataclass(frozen=True)
class Key:
    name: str
    expected: str  # for messages: "<key> must be <expected>, got <value>"
    check: Callable[[Any], Any]  # returns the checked value, or None when invalid
    from_env: Callable[[str], Any]  # DEVTOOL_<KEY> text -> the value check() then validates

    @property
    def env(self) -> str:
        return f"DEVTOOL_{self.name.upper()}"


def _env_number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("backend_service", "a non-empty string (a compose service name)", _string, str),
    Key("compose_files", "a non-empty list of file names", _string_list,
        lambda text: [p for p in text.split(os.pathsep) if p]),
    Key("project_name", "a non-empty string (the compose project name)", _string, str),
    Key("migrations_dir", "a non-empty string (the migrations folder, relative to the backend)", _string, str),
    Key("flask_app", "a non-empty string (like FLASK_APP, e.g. 'app:create_app')", _string, str),
    Key("db_service", "a non-empty string (a compose service name)", _string, str),
    Key("snapshot_keep", "an integer ≥ 1", _positive_int, _env_number),
    Key("snapshot_image", "a non-empty string (an image with pg_dump, e.g. 'postgres:16')", _string, str),
    Key("wait_timeout", "a number of seconds > 0", _positive_number, _env_number),
    Key("hook_deadline", "a number of seconds > 0", _positive_number, _env_number),
    Key("db_connect_timeout", "a number of seconds > 0", _positive_number, _env_number),
    Key("db_lost_after", "a number of seconds > 0", _positive_number, _env_number),
    Key("lock_timeout", "a number of seconds ≥ 0 (0: no limit)", _non_negative_number, _env_number),
    Key("statement_timeout", "a number of seconds ≥ 0 (0: no limit)", _non_negative_number, _env_number),
    Key("lock_retries", "an integer ≥ 0", _non_negative_int, _env_number),
)}


def describe_value(value: Any) -> str:
    """A value as the user wrote it, for messages: 'ten', true, 0, ['a', 1]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    return repr(value)


# ---- finding and reading the file


@dataclass
class ConfigFile:
    path: Path
    label: str  # "devtool.toml" or "pyproject.toml [tool.devtool]": the prefix of every message about it
    values: dict[str, Any]

    @property
    def source(self) -> str:
        return f"{self.label} ({self.path})"


def find_config(start: Path, *, walk_up: bool = True) -> ConfigFile | None:
    """The configuration in `start` (and, with walk_up, its parents); None when there is none."""
    start = start.resolve()
    for directory in (start, *start.parents) if walk_up else (start,):
        candidate = directory / DEVTOOL_TOML
        if candidate.is_file():
            return ConfigFile(candidate, DEVTOOL_TOML, _validate(_read_toml(candidate, DEVTOOL_TOML), DEVTOOL_TOML,
                                                                 candidate))
        candidate = directory / PYPROJECT
        if candidate.is_file():
            table = _pyproject_table(candidate)
            if table is not None:
                return ConfigFile(candidate, PYPROJECT_TABLE, _validate(table, PYPROJECT_TABLE, candidate))
    return None


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DevtoolError(f"{label}: cannot read {path}: {exc}.", exit_code=ExitCode.CONFIG) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DevtoolError(f"{label}: invalid TOML {_toml_position(exc)}.", exit_code=ExitCode.CONFIG,
                           hint=f"Fix {path} (TOML syntax: https://toml.io).") from None


def _toml_position(exc: Exception) -> str:
    """tomllib says 'Expected ... (at line 3, column 9)'; turn it into 'at line 3, column 9: Expected ...'."""
    text = str(exc)
    match = re.match(r"(?s)(.*?)\s*\((at (?:line \d+, column \d+|end of document))\)\s*$", text)
    if match:
        return f"{match.group(2)}: {match.group(1)}"
    line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    return f"at line {line}, column {column}: {text}" if line else f": {text}"


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    document = _read_toml(path, PYPROJECT)
    tool = document.get("tool")
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise DevtoolError(f"{PYPROJECT}: 'tool' must be a table, got {describe_value(tool)}.",
                           exit_code=ExitCode.CONFIG, hint=f"Fix {path}.")
    if "devtool" not in tool:
        return None
    table = tool["devtool"]
    if not isinstance(table, dict):
        raise DevtoolError(f"{PYPROJECT}: [tool.devtool] must be a table, got {describe_value(table)}.",
                           exit_code=ExitCode.CONFIG, hint=f"Write it as a [tool.devtool] section in {path}.")
    return table


def _validate(values: Mapping[str, Any], label: str, path: Path) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, raw in values.items():
        key = KEYS.get(name)
        if key is None:
            close = difflib.get_close_matches(name, KEYS, n=1)
            suggestion = f" (did you mean '{close[0]}'?)" if close else ""
            raise DevtoolError(f"{label}: unknown key '{name}'{suggestion}", exit_code=ExitCode.CONFIG,
                               hint=f"Valid keys: {', '.join(KEYS)}. Fix {path}.")
        value = key.check(raw)
        if value is None:
            raise DevtoolError(f"{label}: {name} must be {key.expected}, got {describe_value(raw)}",
                               exit_code=ExitCode.CONFIG, hint=f"Fix {path}.")
        if name == "compose_files":  # relative to the file that names them, as compose does
            value = [str((path.parent / os.path.expanduser(v)).resolve()) for v in value]
        checked[name] = value
    return checked


# ---- the layers


def resolve(cli: Settings, cli_sources: Mapping[str, str], *, environ: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Settings:
    """Effective settings: defaults < configuration file < DEVTOOL_* < command line (`cli_sources` says which
    fields of `cli` were given, and how: "command line" or "env DEVTOOL_SERVICE" for an option's own variable)."""
    environ = os.environ if environ is None else environ
    cwd = Path(cwd or os.getcwd())
    defaults = Settings()
    values: dict[str, Any] = {name: getattr(defaults, name) for name in KEYS}
    sources: dict[str, str] = {name: DEFAULT for name in KEYS}

    if cli.project_dir is None:
        found = find_config(cwd)
    elif (cwd / cli.project_dir).is_dir():  # with -C: that directory only
        found = find_config(cwd / cli.project_dir, walk_up=False)
    else:
        found = None  # loading the project says the directory does not exist
    if found is not None:
        for name, value in found.values.items():
            values[name], sources[name] = value, found.source

    for name, key in KEYS.items():
        text = environ.get(key.env)
        if not text:  # unset or empty: not an override (as click does for an option's envvar)
            continue
        value = key.check(key.from_env(text))
        if value is None:
            raise DevtoolError(f"env {key.env}: {name} must be {key.expected}, got {text!r}",
                               exit_code=ExitCode.CONFIG, hint=f"Fix or unset {key.env}.")
        if name == "compose_files":
            value = [str(cwd / os.path.expanduser(v)) for v in value]
        values[name], sources[name] = value, f"env {key.env}"

    for name, source in cli_sources.items():
        if name in KEYS:
            values[name], sources[name] = getattr(cli, name), source
    sources["project_dir"] = cli_sources.get("project_dir", DEFAULT)

    if values["compose_files"]:
        values["compose_files"] = [Path(p) for p in values["compose_files"]]
    return dataclasses.replace(cli, **values, sources=sources, config_file=found.path if found else None)


def describe(settings: Settings) -> dict[str, dict[str, Any]]:
    """{key: {"value": ..., "source": ...}} for `devtool config` (JSON-ready: paths as strings)."""
    report = {}
    for name in ("project_dir", *KEYS):
        value = getattr(settings, name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = [str(v) for v in value]
        report[name] = {"value": value, "source": settings.sources.get(name, DEFAULT)}
    return report


URL_VARIABLES = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")  # where compose files usually give the app its URL


def dialect_entry(ctx: Any) -> dict[str, Any]:
    """{"value": ..., "source": ...} for `devtool config`: the database dialect the backend service's URL names
    in the compose model (no engine needed); the value is None when the compose file does not say."""
    from toolkit.dialects import name_of_url

    try:
        service = ctx.services.backend
        environment = ctx.project.services[service].get("environment") or {}
    except DevtoolError as exc:
        return {"value": None, "source": f"unknown: {exc.message}"}
    if not isinstance(environment, dict):
        environment = dict(e.split("=", 1) for e in environment if "=" in e)
    for name in URL_VARIABLES:
        dialect = name_of_url(str(environment.get(name) or ""))
        if dialect:
            return {"value": dialect, "source": f"{name} of service {service} (compose)"}
    return {"value": None, "source": f"not in service {service}'s compose environment: the app's own settings "
                                    "decide (`devtool status` shows it)"}
