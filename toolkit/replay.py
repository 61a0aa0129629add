"""`devtool check --replay`: the whole history on an empty throw-away Postgres (the db service's own image, no
volume), checked the way pytest-alembic's built-in tests do; the server is removed afterwards whatever
happens."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.agent.protocol import ConnectionRequest, ReplayRequest, ReplayResult
from toolkit.dialects import for_database
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class Replay:
    result: ReplayResult
    seconds: float

    @property
    def failed(self):
        return next((s for s in self.result.steps if s.ok is False), None)

    @property
    def exit_code(self) -> int:
        return int(ExitCode.REPLAY_FAILED) if self.failed else 0

    def message(self) -> str:
        step = self.failed
        if step is None:
            return ""
        revision = f" at revision {step.revision.id} ({step.revision.message})" if step.revision else ""
        what = f": {step.detail}" if step.detail else ""
        error = f": {step.error.splitlines()[0]}" if step.error else ""
        return f"Replay failed at step '{step.name}'{revision}{what}{error}."

    def hint(self) -> str:
        step = self.failed
        gone = "the throw-away server is gone and your database was not used"
        if step is not None and step.name.startswith("models match"):
            return f"Write the missing revision (`devtool migrate \"msg\"`) or fix the models; {gone}."
        if step is not None and step.name == "one head":
            return f"Merge the heads: `devtool migrate --merge \"merge heads\"`; {gone}."
        return f"Fix that revision, then run `devtool check --replay` again; {gone}."

    def as_json(self) -> dict:
        return {"ok": not self.exit_code, "exit_code": self.exit_code, "seconds": self.seconds,
                "revisions": self.result.revisions, "server_version": self.result.server_version,
                "steps": [dataclasses.asdict(s) for s in self.result.steps]}


def replay(ctx: Context) -> Replay:
    ctx.services.backend  # a wrong --service fails before anything starts
    agent = ctx.target.agent()
    started = time.monotonic()
    connection = agent.call(ConnectionRequest())  # the app's database and its server's version
    dialect = for_database(connection.database, purpose="Replays are", exit_code=ExitCode.REPLAY_FAILED)
    if not hasattr(dialect, "throwaway_server"):
        raise DevtoolError(f"Replays are not supported for {dialect.label(connection.server_version)} databases "
                           "yet; nothing was started.", exit_code=ExitCode.REPLAY_FAILED,
                           hint="`devtool check` still checks heads, pending revisions and models.")
    with dialect.throwaway_server(ctx, connection) as target:
        with ctx.out.status("Replaying the migration history from an empty database…"):
            result = agent.call(ReplayRequest(target=target))
    return Replay(result, round(time.monotonic() - started, 3))
