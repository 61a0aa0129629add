"""`devtool status`: each service's state and health from the engine, and the database revision against head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit import migrations, orphans
from toolkit.agent.protocol import StatusResult
from toolkit.dialects import describe
from toolkit.engine import health, service_containers
from toolkit.errors import DevtoolError, ExitCode
from toolkit.orphans import OrphanReport

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class ServiceState:
    service: str
    state: str  # Docker's (running, exited, ...) or "not created"
    health: str | None
    container: str | None


@dataclass
class StatusReport:
    project: str
    backend: str
    services: list[ServiceState]
    migrations: StatusResult | None = None
    migrations_error: DevtoolError | None = None  # why the migrations could not be read
    orphans: OrphanReport | None = None  # the database is at revisions this checkout does not have

    @property
    def exit_code(self) -> int:
        return ExitCode.ORPHANED if self.orphans else ExitCode.OK

    def as_json(self) -> dict:
        dialect = None
        if self.migrations is not None:
            migrations = dict(dataclasses.asdict(self.migrations), ok=not self.orphans)
            del migrations["known"]
            migrations["orphans"] = self.orphans.as_json()["orphans"] if self.orphans else []
            dialect = {"name": self.migrations.dialect or self.migrations.database.backend,
                       "server_version": self.migrations.server_version,
                       "description": describe(self.migrations.database, self.migrations.server_version,
                                                self.migrations.dialect)}
        else:
            migrations = {"error": self.migrations_error.message, "hint": self.migrations_error.hint}
        return {"project": self.project, "backend": self.backend, "dialect": dialect,
                "services": [dataclasses.asdict(s) for s in self.services], "migrations": migrations}


def report(ctx: Context) -> StatusReport:
    """Services from the engine; revisions from the agent when the backend runs (the stack is not started)."""
    containers = ctx.containers()
    services = []
    for name in ctx.project.services:
        mine = service_containers(containers, name)
        first = mine[0] if mine else None
        services.append(ServiceState(name, first.status if first else "not created",
                                     health(first) if first else None, first.name if first else None))
    result = StatusReport(project=ctx.project.name, backend=ctx.services.backend, services=services)
    try:
        result.migrations = migrations.status(ctx)
        result.orphans = orphans.trace(ctx, result.migrations)
    except DevtoolError as exc:
        result.migrations_error = exc
    return result
