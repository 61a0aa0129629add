"""`devtool check`, for CI: one exit code per cause when models, migrations and the database disagree."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit import migrations, orphans
from toolkit.agent.protocol import StatusResult
from toolkit.errors import ExitCode
from toolkit.orphans import OrphanReport

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class Verdict:
    exit_code: int  # of the first problem, in the order they must be fixed; 0 when consistent
    problems: list[str]
    status: StatusResult
    orphans: OrphanReport | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_json(self) -> dict:
        status = self.status
        return {"ok": self.ok, "exit_code": self.exit_code, "problems": self.problems,
                "heads": [dataclasses.asdict(h) for h in status.heads], "current": status.current,
                "pending": [p.id for p in status.pending],
                "model_changes": [dataclasses.asdict(c) for c in status.model_changes],
                "orphans": self.orphans.as_json()["orphans"] if self.orphans else []}


def verdict(status: StatusResult, report: OrphanReport | None = None) -> tuple[int, list[str]]:
    """(exit code of the first problem, every problem found), in the order they must be fixed. A database
    at revisions the checkout lacks comes first: its schema is not one the checkout describes, so the models
    are not compared with it."""
    problems = []
    codes = []
    if status.orphans:
        names = "; ".join(o.described() for o in report.orphans) if report else ", ".join(status.orphans)
        problems.append(f"the database has revisions applied that this checkout does not have: {names}: "
                        "run `devtool sync`")
        codes.append(ExitCode.ORPHANED)
    if len(status.heads) > 1:
        listed = ", ".join(f"{h.id} {h.message}" for h in status.heads)  # as migrate and sync say it
        problems.append(f"the migrations have {len(status.heads)} heads ({listed}): both branches of a git merge "
                        "added a revision; merge them with `devtool sync --merge`")
        codes.append(ExitCode.MULTIPLE_HEADS)
    if status.pending:
        problems.append(f"database behind head by {len(status.pending)} revision(s): `devtool db upgrade`")
        codes.append(ExitCode.DATABASE_BEHIND)
    if status.model_changes and not status.orphans and len(status.heads) <= 1:  # else: not against one head
        listed = ", ".join(f"{c.kind} {c.name}" + (f" in bind {c.bind}" if c.bind else "")
                           for c in status.model_changes[:5])
        problems.append(f"models changed without a migration ({listed}): `devtool migrate \"msg\"`")
        codes.append(ExitCode.PENDING_MODEL_CHANGES)
    return (int(codes[0]) if codes else 0), problems


def check(ctx: Context) -> Verdict:
    status = migrations.status(ctx, model_changes=True, start=True)
    report = orphans.trace(ctx, status)
    return Verdict(*verdict(status, report), status=status, orphans=report)
