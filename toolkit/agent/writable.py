"""A folder the agent's user may not write is reported before anything is written (the folder, the user, the
folder's owner), not met as a PermissionError half-way."""

from __future__ import annotations

import os

from .app import AgentError, fail
from .protocol import ErrorCode


def require_writable(directory: str, what: str) -> None:
    """Fail (naming the folder, this process's user and the folder's owner) unless this process may create files
    in `directory`, or in its nearest existing parent when it does not exist yet."""
    path = unwritable(directory)
    if path is not None:
        raise not_writable(path, what)


def unwritable(directory: str):
    """The folder (`directory`, else its nearest existing parent) this process may not create files in, or None."""
    path = os.path.abspath(directory)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return None if os.access(path, os.W_OK | os.X_OK) else path


def not_writable(path: str, what: str) -> AgentError:
    try:
        info = os.stat(path)
        owner = [info.st_uid, info.st_gid]
    except OSError:
        owner = None
    return fail(ErrorCode.NOT_WRITABLE, "%s into %s: permission denied" % (what, path), path=path,
                user=[os.geteuid(), os.getegid()], owner=owner)
