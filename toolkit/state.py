"""devtool's state on the host: one folder per project (compose project name plus where it lives), under
$XDG_STATE_HOME/devtool (default ~/.local/state/devtool). Every feature that keeps something for a project
(the `up` fast path, snapshots, copies of applied revisions) keeps it under `project_state(project)`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.project import ComposeProject


def state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devtool"


def project_state(project: ComposeProject) -> Path:
    """The project's own folder (created on first use), with project.json saying which directory it is for."""
    key = hashlib.sha1(str(project.directory).encode()).hexdigest()[:10]
    folder = state_home() / "projects" / f"{project.name}-{key}"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "project.json").write_text(json.dumps({"name": project.name, "directory": str(project.directory)}))
    return folder


def name_owner(name: str) -> str | None:
    """The folder of the checkout whose containers devtool last saw carry compose project name `name` (the
    project's volumes were made there), or None."""
    try:
        return json.loads((state_home() / "names" / f"{name}.json").read_text()).get("directory")
    except (OSError, ValueError, AttributeError):
        return None


def record_name_owner(project: ComposeProject) -> None:
    """Remember that this checkout runs containers under its project name (written only when it changes)."""
    if name_owner(project.name) == str(project.directory):
        return
    path = state_home() / "names" / f"{project.name}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"name": project.name, "directory": str(project.directory)}))
        partial.replace(path)
    except OSError:
        pass  # only the check on volumes left by a stopped look-alike is lost


def known_projects() -> list[tuple[Path, dict]]:
    """Every project folder devtool keeps state in, with its project.json ({} when unreadable)."""
    found = []
    for folder in sorted((state_home() / "projects").glob("*")):
        if folder.is_dir():
            try:
                found.append((folder, json.loads((folder / "project.json").read_text())))
            except (OSError, ValueError):
                found.append((folder, {}))
    return found
