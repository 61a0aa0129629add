"""Files the agent writes into a bind mount belong to whoever owns the folder on the host, not to root."""

from __future__ import annotations

import os
from typing import Iterable, Set, Tuple


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
