"""`devtool new`: a new project from the templates: the backend copied as is, the project files rendered by Jinja2.

templates/backend/ is also the demo stack's backend source (the repo's docker-compose.yml builds and mounts it),
so it holds plain, runnable files and is copied verbatim. Only templates/project/*.jinja are templates.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import DevtoolError, ExitCode

DEFAULT_SERVICE = "backend"
# template in templates/project/ -> file in the new project
PROJECT_FILES = {
    "compose.yaml.jinja": "compose.yaml",
    "env.example.jinja": ".env.example",
    "gitignore.jinja": ".gitignore",
    "README.md.jinja": "README.md",
}
DEVTOOL_TOML = ("devtool.toml.jinja", "devtool.toml")  # only when the backend service is not `backend`
SKIP = ("__pycache__", "*.pyc", "*.pyo")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")  # one component of a Docker repository name


def templates_dir() -> Path:
    """templates/ next to the package in a checkout (editable install), or toolkit/_templates in a wheel."""
    import toolkit

    package = Path(toolkit.__file__).resolve().parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if (candidate / "project").is_dir() and (candidate / "backend").is_dir():
            return candidate
    raise DevtoolError(f"devtool's project templates are missing (looked in {package / '_templates'} and "
                       f"{package.parent / 'templates'}).", hint="Reinstall devtool.", exit_code=ExitCode.CONFIG)


@dataclass
class Plan:
    """Everything `new` will write, computed before anything is written."""

    target: Path
    variables: dict
    rendered: dict[str, str] = field(default_factory=dict)  # relative path -> text
    copied: dict[str, Path] = field(default_factory=dict)  # relative path -> source file

    @property
    def paths(self) -> list[str]:
        return sorted([*self.rendered, *self.copied])


def plan_project(path: Path, *, name: str | None = None, service: str = DEFAULT_SERVICE,
                 force: bool = False) -> Plan:
    """Check the target and the names, and render every file in memory: a refusal writes nothing."""
    from toolkit.project import normalize_project_name

    target = Path(os.path.abspath(os.path.expanduser(path)))
    if target.exists() and not target.is_dir():
        raise DevtoolError(f"{target} exists and is not a directory.", exit_code=ExitCode.USAGE,
                           hint="Pick a new directory for the project.")
    if target.is_dir() and not force:
        entries = sorted(p.name for p in target.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
            raise DevtoolError(f"{target} is not empty ({shown}); nothing written.", exit_code=ExitCode.USAGE,
                               hint="Pick a new or empty directory, or pass --force to write the project files "
                                    "into it (files of the same name are overwritten, others are kept).")

    if not SERVICE_NAME.match(service or ""):
        raise DevtoolError(f"Invalid service name {service!r}.", exit_code=ExitCode.USAGE,
                           hint="Use letters, digits, '.', '_' or '-', starting with a letter or digit.")
    if service == "db":
        raise DevtoolError("The backend service cannot be called 'db': that is the database service.",
                           exit_code=ExitCode.USAGE, hint="Pick another name with --service.")
    raw_name = name if name is not None else target.name
    project_name = normalize_project_name(raw_name)
    image_repository = f"{project_name}-{service.lower()}"
    if not project_name or not IMAGE_NAME.match(image_repository):
        raise DevtoolError(f"Cannot make a project name from {raw_name!r}.", exit_code=ExitCode.USAGE,
                           hint="Pass one with --name (lower-case letters, digits and '-', e.g. --name my-app).")

    db_identifier = re.sub(r"[^a-z0-9_]", "_", project_name)
    if not db_identifier[0].isalpha():
        db_identifier = "app_" + db_identifier
    db_identifier = db_identifier[:63]
    variables = {
        "display_name": raw_name.strip() or project_name,
        "project_name": project_name,
        "service": service,
        "backend_dir": service,
        "image": f"{image_repository}:dev",
        "db_user": db_identifier,
        "db_name": db_identifier,
        # URL-safe (it is part of DATABASE_URL); a development default, .env overrides it.
        "db_password": secrets.token_hex(12),
        "write_devtool_toml": service != DEFAULT_SERVICE,
    }
    plan = Plan(target=target, variables=variables)

    templates = templates_dir()
    environment = _jinja(templates / "project")
    files = dict(PROJECT_FILES)
    if variables["write_devtool_toml"]:
        files[DEVTOOL_TOML[0]] = DEVTOOL_TOML[1]
    for template, destination in files.items():
        plan.rendered[destination] = environment.get_template(template).render(**variables)

    backend = templates / "backend"
    for directory, subdirs, names in os.walk(backend):
        subdirs[:] = sorted(d for d in subdirs if not _skipped(d))
        for filename in sorted(names):
            if not _skipped(filename):
                source = Path(directory, filename)
                plan.copied[f"{variables['backend_dir']}/{source.relative_to(backend).as_posix()}"] = source
    return plan


def write_project(plan: Plan) -> list[str]:
    """Write the plan; returns the files that existed before and were overwritten (only with --force)."""
    overwritten = []
    for relative in plan.paths:
        destination = plan.target / relative
        if destination.is_dir():
            raise DevtoolError(f"{destination} is a directory; the project needs a file there.",
                               exit_code=ExitCode.USAGE, hint="Move it away, or pick another directory.")
    for relative in plan.paths:
        destination = plan.target / relative
        if destination.exists():
            overwritten.append(relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if relative in plan.rendered:
            destination.write_text(plan.rendered[relative], encoding="utf-8")
        else:
            shutil.copy(plan.copied[relative], destination)
    return overwritten


def create_project(path: Path, *, name: str | None = None, service: str = DEFAULT_SERVICE,
                   force: bool = False) -> dict:
    plan = plan_project(path, name=name, service=service, force=force)
    try:
        overwritten = write_project(plan)
    except OSError as exc:
        raise DevtoolError(f"Cannot write the project into {plan.target}: {exc.strerror or exc}.",
                           exit_code=ExitCode.FAILED) from None
    v = plan.variables
    return {"path": str(plan.target), "project_name": v["project_name"], "service": v["service"],
            "backend_dir": v["backend_dir"], "image": v["image"], "files": plan.paths, "overwritten": overwritten,
            "devtool_toml": v["write_devtool_toml"]}


def _skipped(name: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIP)


def _jinja(directory: Path):
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,  # a missing variable is an error, never an empty string
        keep_trailing_newline=True,
        autoescape=False,  # YAML, TOML, Markdown and dotenv files: nothing here is HTML
    )
    environment.filters["yaml"] = _yaml_scalar
    environment.filters["toml"] = json.dumps  # a JSON string is a valid TOML basic string
    return environment


def _yaml_scalar(value: str) -> str:
    """Plain when YAML reads it back as this same string, else double-quoted (names like `true`, `123`, `null`)."""
    import yaml

    try:
        if yaml.safe_load(value) == value and value.strip() == value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)
