"""The compose project as compose itself sees it: `docker compose config --format json` gives the model (profiles,
`include:`, `extends:`, interpolation and env files all resolved by compose), and the model is cached, keyed by
every file compose read and every variable those files can use, so an unchanged project never pays for compose.

devtool finds the compose files itself (the same rules as compose: -f, COMPOSE_FILE, compose.yaml and an override
file in the directory or its parents) and passes them to compose explicitly, so both always read the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from toolkit.errors import DevtoolError, ExitCode

# compose-go's own lists, in its order of preference (cli/options.go)
DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")
CACHE_FORMAT = 2
# Variables compose reads by itself, whatever the files say (project name, profiles, files, engine, platform).
IMPLICIT_PREFIXES = ("COMPOSE_", "DOCKER_")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize_project_name(raw: str) -> str:
    """compose-go's rule: lower-case, keep only [a-z0-9_-], no leading '_' or '-'."""
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()).lstrip("_-")


@dataclass
class ComposeProject:
    directory: Path
    files: list[Path]  # the compose files devtool gives compose (-f), in order
    name: str
    services: dict[str, dict]  # compose's resolved model of each active service
    profiles: list[str] = field(default_factory=list)  # given with --profile (COMPOSE_PROFILES compose reads itself)
    inputs: list[Path] = field(default_factory=list)  # every file compose read (or would read if it existed)
    inactive: dict[str, list[str]] = field(default_factory=dict)  # services outside the active profiles: profiles
    digest: str = ""  # of the resolved model: changes whenever what compose would create changes
    service_digests: dict[str, str] = field(default_factory=dict)  # of each service and what it uses
    warnings: list[str] = field(default_factory=list)  # compose's own, e.g. a variable that is not set

    def bind_mounts(self, service: str) -> list[tuple[Path, str]]:
        """(host path, container path) of each bind mount of a service (compose resolved the paths)."""
        mounts = []
        for volume in self.services.get(service, {}).get("volumes") or []:
            if isinstance(volume, dict) and volume.get("type") == "bind" and volume.get("source"):
                mounts.append((Path(volume["source"]), str(volume.get("target", ""))))
        return mounts

    def build(self, service: str) -> dict:
        build = self.services.get(service, {}).get("build")
        return build if isinstance(build, dict) else {}

    def build_context(self, service: str) -> Path | None:
        """The build context on this machine (None for none, or a remote one such as a git URL)."""
        context = self.build(service).get("context")
        return Path(context) if isinstance(context, str) and os.path.isabs(context) else None

    def environment(self, service: str) -> dict[str, str]:
        """The service's environment as compose passes it (env_file values included)."""
        environment = self.services.get(service, {}).get("environment") or {}
        return {k: ("" if v is None else str(v)) for k, v in environment.items()}

    def has_healthcheck(self, service: str) -> bool:
        check = self.services.get(service, {}).get("healthcheck")
        return bool(check) and not check.get("disable", False)

    def not_active(self, service: str) -> str | None:
        """Why a service compose knows is not part of the project now, or None."""
        if service not in self.inactive:
            return None
        profiles = self.inactive[service]
        return (f"it is in profile {', '.join(profiles)}, which is not active (pass --profile {profiles[0]}, or set "
                f"COMPOSE_PROFILES)")


def load_project(
    project_dir: Path | None = None,
    files: list[Path] | None = None,
    project_name: str | None = None,
    profiles: Iterable[str] = (),
) -> ComposeProject:
    """The project compose would load for these options (compose's model, from the cache when nothing changed)."""
    start = Path(project_dir or os.getcwd()).resolve()
    if project_dir is not None and not start.is_dir():
        raise DevtoolError(f"Project directory {start} does not exist.", hint="Pass an existing directory to -C.",
                           exit_code=ExitCode.CONFIG)
    compose_files = _find_compose_files(start, files, _read_dotenv(start / ".env"))
    directory = start if project_dir is not None else compose_files[0].parent
    if project_name is not None and not normalize_project_name(project_name):
        raise DevtoolError(f"Cannot derive a compose project name from {project_name!r}.", exit_code=ExitCode.CONFIG,
                           hint="Pass one with -p NAME: lower-case letters, digits, '_' and '-'.")
    key = _Key(directory, compose_files, project_name and normalize_project_name(project_name),
               sorted(set(profiles)))
    entry = _cached(key)
    if entry is None:
        entry = _from_compose(key)
    model = entry["model"]
    services = model.get("services") or {}
    if not services:
        raise DevtoolError(f"{compose_files[0].name} defines no services (with the active profiles).",
                           exit_code=ExitCode.CONFIG,
                           hint="Add a `services:` section with your backend and database, or activate a profile.")
    return ComposeProject(
        directory=directory, files=compose_files, name=model.get("name") or normalize_project_name(directory.name),
        services=services, profiles=key.profiles, inputs=[Path(p) for p in entry["inputs"]],
        inactive={name: profiles for name, profiles in entry["declared"].items()
                  if name not in services and profiles},
        digest=entry["digest"], service_digests=entry["service_digests"], warnings=entry.get("warnings", []))


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


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


# ---- asking compose, and remembering its answer


@dataclass
class _Key:
    directory: Path
    files: list[Path]
    project_name: str | None
    profiles: list[str]

    def cache_file(self) -> Path:
        from toolkit.state import state_home

        text = json.dumps([CACHE_FORMAT, str(self.directory), [str(f) for f in self.files], self.project_name,
                           self.profiles])
        return state_home() / "compose" / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".json")


def _from_compose(key: _Key) -> dict:
    """Run `docker compose config`, note every file it read, and cache the answer (when it can be keyed)."""
    from toolkit import compose

    result = compose.config(key.directory, key.files, key.project_name, key.profiles)
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    warnings = [_compose_message(line) for line in lines if "level=warning" in line]
    if result.returncode != 0:
        problem = next((_compose_message(line) for line in reversed(lines) if "level=warning" not in line),
                       "no reason given")
        raise _rejected(key.files, problem)
    model = _model(result.stdout)
    environment = {**_read_dotenv(key.directory / ".env"), **os.environ}
    inputs, declared, keyable = _inputs(key, environment)
    entry = {"format": CACHE_FORMAT, "directory": str(key.directory),
             "inputs": {str(p): _file_digest(p) for p in sorted(inputs)}, "model": model,
             "declared": declared, "warnings": warnings,
             "digest": hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest(),
             "service_digests": {name: _service_digest(model, name) for name in model.get("services") or {}}}
    entry["variables"] = sorted(_names(inputs))
    entry["environment"] = _environment_digest(entry["variables"])
    if keyable:
        _write_cache(key.cache_file(), entry)
    return entry


def _model(text: str) -> dict:
    """compose v2's JSON, or v1's YAML."""
    import yaml

    try:
        model = json.loads(text)
    except ValueError:
        try:
            model = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            model = None
    if not isinstance(model, dict):
        raise DevtoolError("docker compose config printed no model devtool can read.", exit_code=ExitCode.CONFIG,
                           hint="Upgrade Docker Compose to v2.")
    return model


def _rejected(files: list[Path], problem: str) -> DevtoolError:
    """compose refused the project: say where, as precisely as a YAML parser can, else in compose's words."""
    import yaml

    hint = f"Fix {', '.join(str(f) for f in files)}; `docker compose config` shows compose's own reading."
    documents = []
    for path in files:
        try:
            documents.append(yaml.load(path.read_text(encoding="utf-8"),
                                       Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            return DevtoolError(f"{path.name} is not valid YAML{where}: {getattr(exc, 'problem', None) or problem}.",
                                exit_code=ExitCode.CONFIG, hint=hint)
        except (OSError, UnicodeDecodeError) as exc:
            return DevtoolError(f"Cannot read {path}: {exc}.", exit_code=ExitCode.CONFIG)
    if not any(isinstance(d, dict) and (d.get("services") or d.get("include")) for d in documents):
        return DevtoolError(f"{files[0].name} defines no services ({problem}).", exit_code=ExitCode.CONFIG,
                            hint="Add a `services:` section with your backend and database.")
    return DevtoolError(f"docker compose cannot load the project: {problem}", exit_code=ExitCode.CONFIG, hint=hint)


def _service_digest(model: dict, name: str) -> str:
    """Changes when anything compose creates the service's container from changes: its configuration and the
    networks, volumes, secrets and configs it uses (not when another service, or a profile, comes or goes)."""
    service = model["services"][name]
    uses = {"networks": list(service.get("networks") or {}),
            "volumes": [v.get("source") for v in service.get("volumes") or [] if isinstance(v, dict)
                        and v.get("type") == "volume"],
            "secrets": [s.get("source") for s in service.get("secrets") or [] if isinstance(s, dict)],
            "configs": [c.get("source") for c in service.get("configs") or [] if isinstance(c, dict)]}
    used = {kind: {n: (model.get(kind) or {}).get(n) for n in names if n} for kind, names in uses.items()}
    return hashlib.sha256(json.dumps([service, used], sort_keys=True).encode()).hexdigest()


def _compose_message(line: str) -> str:
    """compose's logrus line (time=... level=... msg="...") reduced to its message."""
    match = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
    return match.group(1).replace('\\"', '"') if match else line.strip()


def _cached(key: _Key) -> dict | None:
    """The cached answer when every input file and every variable they can use are as they were."""
    try:
        entry = json.loads(key.cache_file().read_text())
    except (OSError, ValueError):
        return None
    if entry.get("format") != CACHE_FORMAT or not isinstance(entry.get("inputs"), dict):
        return None
    if any(_file_digest(Path(path)) != digest for path, digest in entry["inputs"].items()):
        return None
    if _environment_digest(entry.get("variables", [])) != entry.get("environment"):
        return None
    return entry


def _write_cache(path: Path, entry: dict) -> None:
    """Private to the user: the model holds the services' environment, secrets included. Entries of projects
    whose directory is gone are dropped on the way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for other in path.parent.glob("*.json"):
            try:
                if not Path(json.loads(other.read_text()).get("directory") or "/").is_dir():
                    other.unlink()
            except (OSError, ValueError):
                other.unlink(missing_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle)
        os.replace(temporary, path)
    except OSError:
        pass  # only the cache is lost: the next command asks compose again


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # missing (or not readable): its appearance later is a change too
        return None


def _names(paths: Iterable[Path]) -> set[str]:
    """Every name a file mentions: a superset of the variables interpolation and `environment: [NAME]` use."""
    names = set()
    for path in paths:
        try:
            names.update(NAME.findall(path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            pass
    return names


def _environment_digest(names: Iterable[str]) -> str:
    wanted = set(names) | {n for n in os.environ if n.startswith(IMPLICIT_PREFIXES)}
    digest = hashlib.sha256()
    for name in sorted(wanted):
        if name in os.environ:
            digest.update(f"{name}={os.environ[name]}\0".encode())
    return digest.hexdigest()


# ---- the files compose reads: compose files, included and extended files, env files, .env


def _inputs(key: _Key, environment: dict[str, str]) -> tuple[set[Path], dict[str, list[str]], bool]:
    """(every file compose can read for this project, each declared service's profiles, whether a path used a
    variable devtool could not expand: then the model is not cached). Relative paths are tried against both the
    file's folder and the project directory: a file too many only costs a needless refresh."""
    inputs = {key.directory / ".env"}
    declared: dict[str, list[str]] = {}
    keyable = True
    queue: list[tuple[Path, Path, bool]] = [(path, key.directory, True) for path in key.files]
    seen: set[Path] = set()

    def resolve(raw: Any, *bases: Path) -> list[Path]:
        nonlocal keyable
        if not isinstance(raw, str) or not raw:
            return []
        text = _interpolate(raw, environment)
        if text is None:
            keyable = False
            return []
        text = os.path.expanduser(text)
        return [Path(os.path.normpath(text if os.path.isabs(text) else os.path.join(base, text))) for base in bases]

    while queue:
        path, workdir, declares = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        inputs.add(path)
        document = _yaml(path)
        if not isinstance(document, dict):
            continue
        for entry in _as_list(document.get("include")):
            spec = {"path": entry} if isinstance(entry, str) else entry if isinstance(entry, dict) else {}
            paths = [p for raw in _as_list(spec.get("path")) for p in resolve(raw, workdir, path.parent)]
            if not paths:
                continue
            project = (resolve(spec.get("project_directory"), workdir) or [paths[0].parent])[0]
            env_files = [p for raw in _as_list(spec.get("env_file")) for p in resolve(raw, workdir)]
            inputs.update(env_files or [project / ".env"])
            queue += [(p, project, declares) for p in paths]
        services = document.get("services")
        for name, service in (services.items() if isinstance(services, dict) else []):
            if not isinstance(service, dict):
                continue
            if declares:
                profiles = service.get("profiles")
                declared[name] = [str(p) for p in profiles] if isinstance(profiles, list) else declared.get(name, [])
            extends = service.get("extends")
            if isinstance(extends, dict):
                queue += [(p, workdir, False) for p in resolve(extends.get("file"), path.parent, workdir)]
            for field_name in ("env_file", "label_file"):
                for entry in _as_list(service.get(field_name)):
                    raw = entry.get("path") if isinstance(entry, dict) else entry
                    inputs.update(resolve(raw, workdir, path.parent))
    return inputs, declared, keyable


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # compose itself reports what is wrong with it


INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _interpolate(text: str, environment: dict[str, str]) -> str | None:
    """compose's interpolation of a path (${VAR}, ${VAR:-default}, $VAR, $$); None when devtool cannot tell."""
    failed = False

    def substitute(match: re.Match) -> str:
        nonlocal failed
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        value = environment.get(name)
        if operator is None:
            return value or ""
        unset = value is None or (operator.startswith(":") and value == "")
        if operator.endswith("-"):
            return argument if unset else value
        if operator.endswith("+"):
            return "" if unset else argument
        failed = failed or unset  # ${VAR:?message}: compose would refuse
        return value or ""

    result = INTERPOLATION.sub(substitute, text)
    return None if failed or "${" in result else result
