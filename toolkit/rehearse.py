"""`devtool rehearse`: the pending revisions on a copy of the app's database (a template copy in the same
server, made and dropped by the agent), statement by statement, then their downgrade and the upgrade again;
the app's database is never touched."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.agent.protocol import Database, RehearsalResult, RehearseRequest, Revision, StatusRequest
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class Rehearsal:
    database: Database  # the app's own
    current: list[str]  # the app's database revision, before and after (a rehearsal never moves it)
    pending: list[Revision] = field(default_factory=list)
    result: RehearsalResult | None = None  # None: nothing was pending, no copy was made
    copy: str | None = None
    seconds: float = 0.0

    @property
    def failed(self):
        """The phase that failed, or None."""
        return next((p for p in self.result.phases if not p.ok), None) if self.result else None

    @property
    def exit_code(self) -> int:
        return int(ExitCode.REHEARSAL_FAILED) if self.failed else 0

    def message(self) -> str:
        failed = self.failed
        if failed is None:
            return ""
        revision = f"{failed.failed.id} ({failed.failed.message})" if failed.failed else "a revision"
        step = {"upgrade": "its upgrade", "downgrade": "its downgrade",
                "upgrade again": "its upgrade after the downgrade"}.get(failed.name, failed.name)
        return (f"Rehearsal failed: {revision}: {step} failed on the copy: "
                f"{(failed.error or '').splitlines()[0] if failed.error else 'error'}. The copy was dropped; "
                f"{self.database.name} was not touched (still at {', '.join(self.current) or 'base'}).")

    def as_json(self) -> dict:
        return {"ok": not self.exit_code, "exit_code": self.exit_code, "database": dataclasses.asdict(self.database),
                "current": self.current, "pending": [dataclasses.asdict(r) for r in self.pending], "copy": self.copy,
                "seconds": self.seconds,
                "statements": [dataclasses.asdict(s) for s in self.result.statements] if self.result else [],
                "phases": [dataclasses.asdict(p) for p in self.result.phases] if self.result else []}


def rehearse(ctx: Context) -> Rehearsal:
    """Rehearse what is pending; a Rehearsal whose exit_code says whether it held (the caller raises)."""
    ctx.services.backend  # a wrong --service fails before anything starts
    agent = ctx.target.agent()
    with ctx.out.status("Looking for pending revisions…"):
        status = agent.call(StatusRequest())
    if status.current is None:
        raise DevtoolError(f"Cannot read the database's revision: {status.database_error}; nothing was rehearsed.",
                           exit_code=ExitCode.REHEARSAL_FAILED, hint="`devtool doctor` checks the database.")
    if len(status.heads) > 1:
        raise DevtoolError(f"The migrations have {len(status.heads)} heads; nothing was rehearsed.",
                           exit_code=ExitCode.MULTIPLE_HEADS,
                           hint='Merge them first: `devtool migrate --merge "merge heads"`.')
    rehearsal = Rehearsal(database=status.database, current=status.current,
                          pending=[Revision(p.id, p.message, p.path) for p in status.pending])
    if not status.pending:
        return rehearsal
    started = time.monotonic()
    with ctx.out.status(f"Rehearsing {len(status.pending)} revision(s) on a copy of {status.database.name}…"):
        rehearsal.result = agent.call(RehearseRequest(wait=ctx.settings.wait_timeout))
    rehearsal.copy = rehearsal.result.database.name
    rehearsal.seconds = round(time.monotonic() - started, 3)
    return rehearsal
