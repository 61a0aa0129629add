"""What every command works with: the settings, the output, and (loaded on first use) project and engine."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.output import Output


@dataclass
class Settings:
    project_dir: Path | None = None
    compose_files: list[Path] = field(default_factory=list)
    project_name: str | None = None
    backend_service: str | None = None
    db_service: str | None = None
    migrations_dir: str | None = None
    flask_app: str | None = None
    snapshot_keep: int = 10
    wait_timeout: float = 180.0
    verbose: bool = False


class Context:
    def __init__(self, settings: Settings, out: Output) -> None:
        self.settings = settings
        self.out = out

    @functools.cached_property
    def project(self):
        from toolkit.project import load_project

        return load_project(self.settings.project_dir, self.settings.compose_files or None,
                            self.settings.project_name)

    @functools.cached_property
    def client(self) -> Any:
        from toolkit.engine import connect

        return connect()

    def containers(self) -> list[Any]:
        from toolkit.engine import project_containers

        return project_containers(self.client, self.project.name)
