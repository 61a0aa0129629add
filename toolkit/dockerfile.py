"""Just enough of a Dockerfile to tell where the build context's folders end up in the image: the COPY and ADD
of the stage that is built (and of the stages it is built FROM), with their WORKDIR. Pure functions."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Copy:
    source: str  # relative to the build context, normalised ("." for all of it)
    destination: str  # absolute in the image; a folder's contents go straight into it (as Docker copies them)


@dataclass
class Stage:
    name: str | None
    workdir: str | None = "/"  # None: devtool cannot tell (a variable)
    copies: list[Copy] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, before any instruction or comment
        match = re.match(r"^#\s*escape\s*=\s*(\S)\s*$", line)
        if match:
            escape = match.group(1)
            break
        if not re.match(r"^#\s*\w+\s*=", line):
            break
    found, pending = [], ""
    for line in lines:
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith(escape):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def stages(text: str) -> list[Stage]:
    """Every stage with the folders it copies from the build context; a stage built FROM an earlier one starts
    with what that one has."""
    found: list[Stage] = []
    current: Stage | None = None
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            base = next((s for s in found if words and s.name and s.name == words[0].lower()), None)
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            current = Stage(name, base.workdir if base else "/", list(base.copies) if base else [])
            found.append(current)
        elif current is None:
            continue  # ARG before the first FROM
        elif keyword == "WORKDIR":
            current.workdir = _join(current.workdir, arguments.strip().strip('"'))
        elif keyword in ("COPY", "ADD"):
            current.copies += _copies(arguments, current.workdir)
    return found


def context_copies(text: str, target: str | None = None) -> list[Copy]:
    """The copies from the build context that the built stage (`target`, else the last) holds."""
    found = stages(text)
    chosen = next((s for s in found if target and s.name == target.lower()), found[-1] if found else None)
    return chosen.copies if chosen else []


def image_path(host: Path, context: Path, copies: list[Copy]) -> str | None:
    """Where a folder of the build context is in the image (the last copy that brings it wins), or None."""
    try:
        relative = host.resolve().relative_to(context.resolve())
    except ValueError:
        return None
    found = None
    for copy in copies:
        source = Path(copy.source)
        if source == Path("."):
            rest = relative
        else:
            try:
                rest = relative.relative_to(source)
            except ValueError:
                continue
            if not (context / source).is_dir():
                continue  # a file: never a folder's parent
        found = posixpath.normpath(posixpath.join(copy.destination, rest.as_posix()))
    return found


def context_path(path: str, context: Path, copies: list[Copy]) -> Path | None:
    """The build context's file or folder that a path in the image was copied from, or None."""
    path = posixpath.normpath(path)
    best: tuple[int, Path] | None = None
    for copy in copies:
        source = context / copy.source
        if copy.source != "." and not source.is_dir():
            continue
        destination = copy.destination
        if path == destination or path.startswith(destination.rstrip("/") + "/"):
            rest = path[len(destination.rstrip("/")):].lstrip("/")
            if best is None or len(destination) >= best[0]:
                best = (len(destination), (source / rest) if rest else source)
    return best[1] if best else None


def _join(workdir: str | None, path: str) -> str | None:
    if workdir is None or "$" in path or not path:
        return None
    return posixpath.normpath(posixpath.join(workdir, path))


def _copies(arguments: str, workdir: str | None) -> list[Copy]:
    words = _words(arguments)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from") for f in flags):
        return []  # from another stage or image, not from the build context
    paths = [w for w in words if not w.startswith("--")]
    if len(paths) < 2:
        return []
    *sources, destination = paths
    if "$" in destination:
        return []
    target = destination if destination.startswith("/") else _join(workdir, destination)
    if target is None:
        return []
    found = []
    for source in sources:
        if WILDCARD.search(source) or "://" in source or source.startswith("git@") or "$" in source:
            continue  # globs, URLs and variables: never the migrations folder as a whole
        normal = posixpath.normpath(source.lstrip("/")) or "."
        if normal.startswith(".."):
            continue
        found.append(Copy(normal, posixpath.normpath(target)))
    return found


def _words(arguments: str) -> list[str]:
    if arguments.startswith("["):
        try:
            value = json.loads(arguments)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return arguments.split()
