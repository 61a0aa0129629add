"""Files the agent writes into a bind mount belong to whoever owns the folder on the host, not to root."""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Set, Tuple


def owner_of(path: str) -> Tuple[int, int]:
    """(uid, gid) of the nearest existing folder: in a bind mount, the host user who owns the project."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    info = os.stat(path or "/")
    return info.st_uid, info.st_gid


def tree(directory: str) -> Set[str]:
    """Every folder and file under `directory` (caches excluded): compare two of them to see what was written."""
    found = set()
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found.add(root)
        found.update(os.path.join(root, f) for f in files)
    return found


def give_to(owner: Tuple[int, int], paths: Iterable[str]) -> None:
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            if os.stat(path).st_uid != owner[0]:
                os.chown(path, owner[0], owner[1])
        except OSError:
            pass


class Written:
    """Watches a folder while something writes into it, then hands what is new to the folder's owner."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self.before, self.owner = tree(self.directory), owner_of(self.directory)

    def new(self) -> Set[str]:
        return tree(self.directory) - self.before if os.path.isdir(self.directory) else set()

    def hand_over(self) -> Set[str]:
        created = self.new()
        give_to(self.owner, created)
        return created


class NewFiles:
    """Watches a few named files (a database and its side files) while something may create them, then hands the
    ones that appeared to their folder's owner."""

    def __init__(self, paths) -> None:
        self.paths = list(paths)
        self.before = {p for p in self.paths if os.path.lexists(p)}

    def hand_over(self) -> Set[str]:
        created = {p for p in self.paths if p not in self.before and os.path.lexists(p)}
        for path in created:
            give_to(owner_of(os.path.dirname(path)), [path])
        return created


_watching: List[NewFiles] = []


def watch_files(paths) -> None:
    """Files this request may create (an SQLite database, its journal, devtool's lock file): hand_over_all()
    gives the ones that appeared to their folder's owner when the request ends."""
    _watching.append(NewFiles(paths))


def hand_over_all() -> None:
    for watched in _watching:
        watched.hand_over()


def database_file(url) -> Optional[str]:
    """The absolute path of the SQLite file a database URL names; None for a server or an in-memory database."""
    if url.get_backend_name() != "sqlite":
        return None
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in str(url.query):
        return None
    if name.startswith("file:"):  # a URI filename
        name = name[len("file:"):].split("?", 1)[0]
    return os.path.abspath(name)


def database_files(url) -> List[str]:
    """The SQLite file a URL names and the files SQLite keeps beside it; none for a server."""
    path = database_file(url)
    return [path + suffix for suffix in ("", "-journal", "-wal", "-shm")] if path else []
