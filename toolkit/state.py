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
