"""The compose project as compose itself sees it: files, directory, project name, services."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import DevtoolError, ExitCode

DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                  "docker-compose.override.yml")


def normalize_project_name(raw: str) -> str:
    """compose-go's rule: lower-case, keep only [a-z0-9_-], no leading '_' or '-'."""
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()).lstrip("_-")


@dataclass
class ComposeProject:
    directory: Path
    files: list[Path]
    name: str
    services: dict[str, dict]
    env: dict[str, str] = field(default_factory=dict)

    def bind_mounts(self, service: str) -> list[tuple[Path, str]]:
        """(host path, container path) of each bind mount the compose file declares for a service."""
        mounts = []
        for volume in self.services.get(service, {}).get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type") == "bind" and volume.get("source") and volume.get("target"):
                    mounts.append((self._host_path(volume["source"]), volume["target"]))
                continue
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                mounts.append((self._host_path(parts[0]), parts[1]))
        return mounts

    def build_context(self, service: str) -> Path | None:
        build = self.services.get(service, {}).get("build")
        if isinstance(build, dict):
            build = build.get("context", ".")
        return self._host_path(build) if isinstance(build, str) else None

    def has_healthcheck(self, service: str) -> bool:
        check = self.services.get(service, {}).get("healthcheck")
        return bool(check) and not check.get("disable", False)

    def _host_path(self, raw: str) -> Path:
        return (self.directory / os.path.expanduser(raw)).resolve()


def load_project(
    project_dir: Path | None = None,
    files: list[Path] | None = None,
    project_name: str | None = None,
) -> ComposeProject:
    """Resolve files and project name with compose's precedence: -p, COMPOSE_PROJECT_NAME, name:, directory."""
    start = Path(project_dir or os.getcwd()).resolve()
    if project_dir is not None and not start.is_dir():
        raise DevtoolError(f"Project directory {start} does not exist.", hint="Pass an existing directory to -C.",
                           exit_code=ExitCode.CONFIG)
    dotenv = _read_dotenv(start / ".env")
    compose_files = _find_compose_files(start, files, dotenv)
    directory = start if project_dir is not None else compose_files[0].parent
    if directory != start:
        dotenv = _read_dotenv(directory / ".env")

    services: dict[str, dict] = {}
    top_level_name = None
    for path in compose_files:
        document = _read_yaml(path)
        top_level_name = document.get("name") or top_level_name
        for service, config in (document.get("services") or {}).items():
            services.setdefault(service, {}).update(config or {})
    if not services:
        raise DevtoolError(f"{compose_files[0].name} defines no services.", exit_code=ExitCode.CONFIG,
                           hint="Add a `services:` section with your backend and database.")

    raw_name = (project_name or os.environ.get("COMPOSE_PROJECT_NAME") or dotenv.get("COMPOSE_PROJECT_NAME")
                or top_level_name or directory.name)
    name = normalize_project_name(str(raw_name))
    if not name:
        raise DevtoolError(f"Cannot derive a compose project name from {raw_name!r}.", exit_code=ExitCode.CONFIG,
                           hint="Pass one with -p NAME.")
    return ComposeProject(directory=directory, files=compose_files, name=name, services=services, env=dotenv)


def _find_compose_files(start: Path, files: list[Path] | None, dotenv: dict[str, str]) -> list[Path]:
    if files:
        resolved = [Path(f) if Path(f).is_absolute() else Path(os.getcwd(), f) for f in files]
    elif os.environ.get("COMPOSE_FILE") or dotenv.get("COMPOSE_FILE"):
        raw = os.environ.get("COMPOSE_FILE") or dotenv["COMPOSE_FILE"]
        resolved = [start / f for f in raw.split(os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)) if f]
    else:
        resolved = []
        for directory in (start, *start.parents):  # compose looks in parent directories too
            found = [directory / n for n in DEFAULT_COMPOSE_FILES if (directory / n).is_file()]
            if found:
                overrides = [directory / n for n in OVERRIDE_FILES if (directory / n).is_file()]
                resolved = found[:1] + overrides[:1]
                break
        if not resolved:
            raise DevtoolError(f"No compose file found in {start} or its parents.", exit_code=ExitCode.CONFIG,
                               hint="Run devtool in your project, or point to the file with -f / -C.")
    for path in resolved:
        if not path.is_file():
            raise DevtoolError(f"Compose file {path} does not exist.", exit_code=ExitCode.CONFIG,
                               hint="Check the path given to -f (or COMPOSE_FILE).")
    return [p.resolve() for p in resolved]


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise DevtoolError(f"{path.name} is not valid YAML{where}: {problem}.", exit_code=ExitCode.CONFIG,
                           hint=f"Fix {path}; `docker compose config` shows compose's own reading.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DevtoolError(f"Cannot read {path}: {exc}.", exit_code=ExitCode.CONFIG) from None
    if not isinstance(document, dict):
        raise DevtoolError(f"{path.name} is not a compose file (expected a mapping at the top).",
                           exit_code=ExitCode.CONFIG, hint=f"Fix {path}.")
    return document


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
