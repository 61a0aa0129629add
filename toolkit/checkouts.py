"""Look-alike checkouts: two folders with one name (`~/work/shop`, `~/review/shop`) get one compose project name,
so compose would treat the second as the first (recreate its containers with the second's bind mounts, migrate
its database). Compose labels every container with the folder and the files it came from; a container of this
project name that came from another folder, or from compose files none of which are this checkout's, belongs to
another checkout, and devtool refuses before anything is started, recreated or migrated.

Volumes carry no folder: when the other checkout is stopped, its volumes (its database) would still be taken
over. devtool remembers which checkout it last saw running under each project name (toolkit/state.py), and
refuses too while that checkout's folder exists and the project's volumes are there."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.engine import project_volumes
from toolkit.errors import DevtoolError, ExitCode
from toolkit.project import normalize_project_name
from toolkit.state import name_owner, record_name_owner

if TYPE_CHECKING:
    from toolkit.project import ComposeProject

WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass
class Foreign:
    """Containers of this project name that another checkout made."""

    directory: str  # the other checkout's folder (compose's working_dir label)
    files: list[str]  # its compose files (the config_files label)
    services: list[str]


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def foreign(project: ComposeProject, containers: list[Any]) -> Foreign | None:
    """The other checkout whose containers carry this project's name, or None when they are all this one's (or
    carry no labels to tell: containers compose did not make)."""
    mine_dir = _real(str(project.directory))
    mine_files = {_real(str(f)) for f in project.files}
    others: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for container in containers:
        labels = container.labels or {}
        directory = labels.get(WORKING_DIR_LABEL)
        files = tuple(f for f in (labels.get(CONFIG_FILES_LABEL) or "").split(",") if f)
        if not directory:
            continue
        # An override file more or less is the same checkout; none of its files in common is another one.
        if _real(directory) != mine_dir or (files and not mine_files & {_real(f) for f in files}):
            others.setdefault((directory, files), []).append(labels.get(SERVICE_LABEL, container.name))
    if not others:
        return None
    (directory, files), services = next(iter(others.items()))
    return Foreign(directory=directory, files=list(files), services=sorted(services))


def suggested_name(project: ComposeProject) -> str:
    """A project name for this checkout that says where it is: the folder's parent joined to its name."""
    return normalize_project_name(f"{project.directory.parent.name}-{project.directory.name}") or f"{project.name}-2"


def _fix(project: ComposeProject) -> str:
    name = suggested_name(project)
    return (f"Give this checkout its own project name: `devtool -p {name} …` for one command, "
            f"COMPOSE_PROJECT_NAME={name} in {project.directory / '.env'}, or `name: {name}` at the top of "
            f"{project.files[0].name}.")


def conflict(project: ComposeProject, other: Foreign) -> DevtoolError:
    same_folder = _real(other.directory) == _real(str(project.directory))
    where = (f"compose file(s) {', '.join(other.files)}" if same_folder else other.directory)
    return DevtoolError(
        f"Project name {project.name} is taken by another checkout: its containers ({', '.join(other.services)}) "
        f"come from {where}, not from {project.directory}; nothing was started, recreated or migrated.",
        hint=_fix(project), exit_code=ExitCode.OTHER_CHECKOUT,
        data={"project": project.name, "other_directory": other.directory, "other_files": other.files,
              "services": other.services, "suggested_name": suggested_name(project)})


def volumes_conflict(project: ComposeProject, directory: str, volumes: list[str]) -> DevtoolError:
    return DevtoolError(
        f"Project name {project.name} is taken by another checkout: its volumes ({', '.join(volumes)}) hold the data "
        f"of {directory} (stopped; devtool last ran it there), not of {project.directory}; nothing was started, "
        f"recreated or migrated.",
        hint=_fix(project) + f" (Or, to give that data up, `devtool -C {directory} down --volumes` deletes it.)",
        exit_code=ExitCode.OTHER_CHECKOUT,
        data={"project": project.name, "other_directory": directory, "other_files": [], "volumes": volumes,
              "services": [], "suggested_name": suggested_name(project)})


def ensure_own(project: ComposeProject, containers: list[Any]) -> list[Any]:
    """`containers`, when they are all this checkout's; otherwise the refusal."""
    other = foreign(project, containers)
    if other is not None:
        raise conflict(project, other)
    return containers


def own_containers(project: ComposeProject, client: Any, containers: list[Any]) -> list[Any]:
    """The project's containers when they are this checkout's (remembered as such); with none, the project's
    volumes must not be those of a stopped look-alike devtool last saw running (its folder still there)."""
    ensure_own(project, containers)
    if containers:
        record_name_owner(project)
        return containers
    owner = name_owner(project.name)
    if owner and _real(owner) != _real(str(project.directory)) and os.path.isdir(owner):
        volumes = project_volumes(client, project.name)
        if volumes:
            raise volumes_conflict(project, owner, volumes)
    return containers
