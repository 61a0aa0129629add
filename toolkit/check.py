"""`devtool check`, for CI: one exit code per cause when models, migrations and the database disagree."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit import migrations
from toolkit.agent.protocol import StatusResult
from toolkit.errors import ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class Verdict:
    exit_code: int  # of the first problem, in the order they must be fixed; 0 when consistent
    problems: list[str]
    status: StatusResult

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_json(self) -> dict:
        status = self.status
        return {"ok": self.ok, "exit_code": self.exit_code, "problems": self.problems,
                "heads": [dataclasses.asdict(h) for h in status.heads], "current": status.current,
                "pending": [p.id for p in status.pending],
                "model_changes": [dataclasses.asdict(c) for c in status.model_changes]}


def verdict(status: StatusResult) -> tuple[int, list[str]]:
    """(exit code of the first problem, every problem found), in the order they must be fixed."""
    problems = []
    codes = []
    if len(status.heads) > 1:
        problems.append(f"{len(status.heads)} heads: merge with `devtool migrate --merge \"merge heads\"`")
        codes.append(ExitCode.MULTIPLE_HEADS)
    if status.pending:
        problems.append(f"database behind head by {len(status.pending)} revision(s): `devtool db upgrade`")
        codes.append(ExitCode.DATABASE_BEHIND)
    if status.model_changes:
        listed = ", ".join(f"{c.kind} {c.name}" for c in status.model_changes[:5])
        problems.append(f"models changed without a migration ({listed}): `devtool migrate \"msg\"`")
        codes.append(ExitCode.PENDING_MODEL_CHANGES)
    return (int(codes[0]) if codes else 0), problems


def check(ctx: Context) -> Verdict:
    status = migrations.status(ctx, model_changes=True, start=True)
    return Verdict(*verdict(status), status=status)
