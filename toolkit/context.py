"""What every command works with: the settings, the output, and (loaded on first use and kept) the compose
project, the engine, the resolved services and the target the commands run on."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from toolkit.errors import DevtoolError
from toolkit.output import Output


@dataclass
class Settings:
    project_dir: Path | None = None
    compose_files: list[Path] = field(default_factory=list)
    project_name: str | None = None
    profiles: list[str] = field(default_factory=list)  # --profile, passed to compose (COMPOSE_PROFILES it reads itself)
    backend_service: str | None = None
    db_service: str | None = None
    migrations_dir: str | None = None
    flask_app: str | None = None
    snapshot_keep: int = 10
    snapshot_image: str | None = None
    wait_timeout: float = 180.0
    db_connect_timeout: float = 10.0  # seconds a database connection may take to open
    db_lost_after: float = 30.0  # seconds of silence from the database server before a connection counts as lost
    hook_deadline: float = 4.0
    lock_timeout: float = 5.0  # seconds a revision's statement may wait for a table lock (0: no limit)
    statement_timeout: float = 600.0  # seconds a revision's statement may run (0: no limit)
    lock_retries: int = 3  # tries again after a lock timeout, with backoff
    verbose: bool = False
    # Where each effective value came from: "default", "devtool.toml (<path>)", "pyproject.toml [tool.devtool]
    # (<path>)", "env DEVTOOL_X", "command line" (toolkit/config.py fills it; `devtool config` shows it).
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None


class Context:
    """`resolve`, when given, computes the effective settings (configuration file, DEVTOOL_* variables) on
    first use of `settings`: --help and --version never read, nor fail on, the configuration."""

    def __init__(self, settings: Settings, out: Output, resolve: Callable[[], Settings] | None = None) -> None:
        self._settings = settings
        self._resolve = resolve
        self.config_error: DevtoolError | None = None
        self.out = out

    @property
    def settings(self) -> Settings:
        if self._resolve is not None:
            resolve, self._resolve = self._resolve, None
            # Already handling an error (the first look at the settings is the error handler's): report that
            # error, not a configuration problem on top of it.
            handling = sys.exc_info()[1] is not None
            try:
                self._settings = resolve()
            except DevtoolError as exc:
                self.config_error = exc  # from now on: command-line settings, and project/client re-raise this
                if not handling:
                    raise
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings, self._resolve = value, None

    def _checked_settings(self) -> Settings:
        settings = self.settings
        if self.config_error is not None:
            raise self.config_error
        return settings

    @functools.cached_property
    def project(self):
        from toolkit.project import load_project

        settings = self._checked_settings()
        return load_project(settings.project_dir, settings.compose_files or None, settings.project_name,
                            settings.profiles)

    @functools.cached_property
    def client(self) -> Any:
        from toolkit.engine import connect

        self._checked_settings()
        return connect()

    @functools.cached_property
    def services(self):
        """The backend (and database) services, resolved once per command."""
        from toolkit.services import Services

        return Services(self.project, self._checked_settings(), self.out)

    @functools.cached_property
    def target(self):
        """Where commands run: the backend's container, its agent, its host paths (resolved once)."""
        from toolkit.targets.compose import ComposeTarget

        return ComposeTarget(self)

    def containers(self) -> list[Any]:
        """The project's containers; refused (exit 31) when they are another checkout's (toolkit/checkouts.py):
        every command that finds, starts or stops the stack asks here first."""
        from toolkit.checkouts import own_containers
        from toolkit.engine import project_containers

        return own_containers(self.project, self.client, project_containers(self.client, self.project.name))
