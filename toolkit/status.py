"""`devtool status`: each service's state and health from the engine, and the database revision against head;
anything shown that is broken (a service down, an app or a database that cannot be read, several heads) is a
problem, and the command fails."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit import migrations, orphans, stack
from toolkit.agent.protocol import StatusResult
from toolkit.dialects import describe
from toolkit.engine import health, service_containers
from toolkit.errors import DevtoolError, ExitCode
from toolkit.orphans import OrphanReport
from toolkit.stack import service_problem

if TYPE_CHECKING:
    from toolkit.context import Context

ORPHANED = "the database has revisions applied that this checkout does not have"


@dataclass
class ServiceState:
    service: str
    state: str  # Docker's (running, exited, ...) or "not created"
    health: str | None
    container: str | None
    restarts: int = 0  # by its restart policy since it was started: above 0 it keeps exiting (stack.restart_loop)


@dataclass
class StatusReport:
    project: str
    backend: str
    services: list[ServiceState]
    migrations: StatusResult | None = None
    migrations_error: DevtoolError | None = None  # why the migrations could not be read
    orphans: OrphanReport | None = None  # the database is at revisions this checkout does not have
    unapplied_change: str | None = None  # the compose configuration (or an image) changed since the stack started
    problems: list[str] = dataclasses.field(default_factory=list)  # everything shown that is broken

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """ORPHANED for a database at revisions this checkout lacks (`devtool sync` is the way out), else
        STATUS_BROKEN for anything else that is broken."""
        return ExitCode.ORPHANED if self.orphans else ExitCode.STATUS_BROKEN if self.problems else ExitCode.OK

    def as_json(self) -> dict:
        dialect = None
        if self.migrations is not None:
            migrations = dict(dataclasses.asdict(self.migrations),
                              ok=self.migrations.current is not None and not self.orphans)
            del migrations["known"]
            migrations["orphans"] = self.orphans.as_json()["orphans"] if self.orphans else []
            dialect = {"name": self.migrations.dialect or self.migrations.database.backend,
                       "server_version": self.migrations.server_version,
                       "description": describe(self.migrations.database, self.migrations.server_version,
                                                self.migrations.dialect)}
        else:
            migrations = {"error": self.migrations_error.message, "hint": self.migrations_error.hint,
                          "exit_code": self.migrations_error.exit_code}
        return {"ok": self.ok, "problems": self.problems, "project": self.project, "backend": self.backend,
                "dialect": dialect,
                "services": [dataclasses.asdict(s) for s in self.services], "migrations": migrations,
                "unapplied_change": self.unapplied_change}


def report(ctx: Context) -> StatusReport:
    """Services from the engine; revisions from the agent when the backend runs (the stack is not started)."""
    containers = ctx.containers()
    services = []
    problems = []
    for name in ctx.project.services:
        mine = service_containers(containers, name)
        first = mine[0] if mine else None
        services.append(ServiceState(name, first.status if first else "not created",
                                     health(first) if first else None, first.name if first else None,
                                     restarts=first.attrs.get("RestartCount") or 0 if first else 0))
        problem = service_problem(ctx, name, first)
        if problem:
            problems.append(f"service {name} is {problem}")
    result = StatusReport(project=ctx.project.name, backend=ctx.services.backend, services=services,
                          problems=problems, unapplied_change=stack.unapplied_change(ctx))
    try:
        result.migrations = info = migrations.status(ctx)
        result.orphans = orphans.trace(ctx, info)
    except DevtoolError as exc:
        result.migrations_error = exc
        problems.append(f"migrations cannot be read: {exc.message}")
        return result
    if info.current is None:
        problems.append(f"database cannot be read: {info.database_error}")
    if result.orphans:
        problems.append(f"{ORPHANED}: {result.orphans.names()}")
    if len(info.heads) > 1:
        problems.append(f"the migrations have {len(info.heads)} heads")
    return result
