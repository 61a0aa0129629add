"""The one domain exception and the exit codes it maps to (documented in README.md)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a command run in the container failed (its own code passes through where there is one)
    USAGE = 2  # bad arguments or options
    CONFIG = 3  # compose file or devtool configuration missing or invalid
    DOCKER_UNAVAILABLE = 4  # Docker engine unreachable, socket permission denied, compose missing
    SERVICE_NOT_FOUND = 5  # the backend (or db) service cannot be resolved
    STACK_FAILED = 6  # a service exited, is unhealthy, or did not become ready in time
    MIGRATION_FAILED = 7  # autogenerate or upgrade raised an error
    NEEDS_CONFIRMATION = 8  # destructive or risky revision and no --yes
    MULTIPLE_HEADS = 9  # more than one head: merge first
    MODELS_NOT_IMPORTED = 10  # model classes the app never loads
    NO_MIGRATIONS = 11  # no migrations folder in the backend
    SNAPSHOT_FAILED = 12  # snapshot or restore failed, or no such snapshot
    PENDING_MODEL_CHANGES = 13  # `devtool check`: models changed without a migration
    DATABASE_BEHIND = 14  # `devtool check`: database not at head
    CHECKS_FAILED = 15  # `devtool doctor`: at least one check failed
    ORPHANED = 16  # the database is at a revision this checkout does not have (after a git checkout): `devtool sync`
    CANNOT_DOWNGRADE = 17  # `devtool sync`: no copy of a revision to downgrade anywhere, or its downgrade failed
    PERMISSION_DENIED = 18  # a folder devtool or the backend's user must write is not writable (ownership)
    DATABASE_UNAVAILABLE = 20  # the app's database cannot be reached or read (which database, the driver's reason)
    STATUS_BROKEN = 21  # `devtool status`: something it shows is broken
    REVISION_FILE = 22  # a migrations file cannot be read, or the history refers to a revision no file defines
    APP_NOT_LOADED = 23  # the Flask app cannot be loaded in the backend container
    LINT_FAILED = 24  # `devtool lint` / `check`: a revision breaks a lint rule of severity error (or none could run)
    LOCK_TIMEOUT = 25  # a lock was not granted in time: a revision's table lock (holder named), or devtool's own
    REHEARSAL_FAILED = 26  # `devtool rehearse`: a revision (or its downgrade) failed on the clone
    REPLAY_FAILED = 27  # `devtool check --replay`: the history fails from an empty database (revision and step named)
    PARTLY_APPLIED = 28  # a revision failed half-way on a database that commits schema changes at once (MySQL)
    DATABASE_LOST = 29  # the database stopped answering (restarted, network cut, past the deadlines): what was done named
    OTHER_CHECKOUT = 31  # the project name's containers belong to another checkout (another folder or compose file)
    INTERRUPTED = 130  # Ctrl-C


class DevtoolError(Exception):
    """An expected failure: shown as one line (plus an optional hint and detail), never a traceback."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        exit_code: int = ExitCode.FAILED,
        detail: str | None = None,
        data: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = int(exit_code)
        self.detail = detail
        self.data = data or {}
