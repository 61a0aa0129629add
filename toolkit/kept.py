"""Copies of the revision files devtool applied, kept in the project's state folder: when a git checkout has
removed a file while the database stays at its revision, `devtool sync` downgrades it from the copy.

Layout: <project state>/revisions/<revision id>/<sha256 of the file>.py. Content-addressed (applying the same
file twice keeps one copy); the copy applied last has the newest modification time.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.state import project_state

if TYPE_CHECKING:
    from toolkit.agent.protocol import RevisionFile
    from toolkit.project import ComposeProject

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class RevisionCopy:
    """A revision file found outside the checkout: devtool's kept copy, or a git commit's."""

    id: str
    message: str
    down: list[str]
    content: bytes
    where: str  # for people: "kept copy /path" or "branch feature (commit 1a2b3c4, migrations/versions/x.py)"


@dataclass
class ParsedRevision:
    id: str
    down: list[str]
    message: str


def parse(content: bytes) -> ParsedRevision | None:
    """revision, down_revision and the message (the docstring's first paragraph, as Alembic's `doc`) of a
    revision file, read the way Python reads it (BOM, coding cookie); None when it is not one."""
    try:
        tree = ast.parse(importlib.util.decode_source(content))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None
    values = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value is not None:
            try:
                values[target.id] = ast.literal_eval(node.value)
            except ValueError:
                return None
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        return None
    downs = [] if down is None else [down] if isinstance(down, str) else list(down)
    doc = ast.get_docstring(tree) or ""
    return ParsedRevision(id=revision, down=[str(d) for d in downs], message=re.split(r"\n\s*\n", doc)[0].strip())


def folder(project: ComposeProject) -> Path:
    return project_state(project) / "revisions"


def _id_folder(project: ComposeProject, revision_id: str) -> Path:
    name = revision_id if SAFE_ID.match(revision_id) else "id-" + hashlib.sha256(revision_id.encode()).hexdigest()[:16]
    return folder(project) / name


def keep(project: ComposeProject, applied: RevisionFile) -> Path | None:
    """Keep the file the agent applied; None when it could not be written (the state folder is not writable):
    losing a copy must never fail the migration that produced it."""
    content = base64.b64decode(applied.content)
    target = _id_folder(project, applied.id) / f"{hashlib.sha256(content).hexdigest()}.py"
    try:
        if target.is_file():
            os.utime(target)  # applied again: the newest copy
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temporary, target)
    except OSError:
        return None
    return target


def newest(project: ComposeProject, revision_id: str) -> RevisionCopy | None:
    """The copy of `revision_id` applied last, if devtool kept one."""
    found = []
    for path in _id_folder(project, revision_id).glob("*.py"):
        try:
            found.append((path.stat().st_mtime, path, path.read_bytes()))
        except OSError:
            continue
    for _, path, content in sorted(found, reverse=True):
        parsed = parse(content)
        if parsed is not None and parsed.id == revision_id:
            return RevisionCopy(id=parsed.id, message=parsed.message, down=parsed.down, content=content,
                                where=f"kept copy {path}")
    return None
