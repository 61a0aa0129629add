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
                "orphans": self.orphans.as_json()["orphans"] if self.orphans else [],
                "unloaded_models": [dataclasses.asdict(m) for m in status.unloaded_models],
                "unscanned_modules": status.unscanned_modules,
                "database_error": status.database_error,
                "findings": [dict(dataclasses.asdict(f), revision=p.id) for p in status.pending for f in p.findings]}


def verdict(status: StatusResult, report: OrphanReport | None = None) -> tuple[int, list[str]]:
    """(exit code of the first problem, every problem found), in the order they must be fixed. What could not be
    looked at is a problem too: a database that cannot be read never passes as "at head" or "models match". A
    database at revisions the checkout lacks comes next: its schema is not one the checkout describes, so the
    models are not compared with it."""
    problems = []
    codes = []
    if status.current is None:
        problems.append(f"{status.database_error or 'The database could not be read'}; the revision and the models "
                        f"were not compared. {status.database_hint or ''}".strip())
        codes.append(ExitCode.DATABASE_UNAVAILABLE)
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
    errors = [(p.id, f) for p in status.pending for f in p.findings if f.blocking]
    if errors:
        listed = ", ".join(f"{f.rule} ({revision} line {f.line})" for revision, f in errors[:5])
        problems.append(f"{len(errors)} lint error(s) in the pending revisions ({listed}): `devtool lint` says why "
                        f"and the safe way")
        codes.append(ExitCode.LINT_FAILED)
    if status.pending:
        problems.append(f"database behind head by {len(status.pending)} revision(s): `devtool db upgrade`")
        codes.append(ExitCode.DATABASE_BEHIND)
    if status.unloaded_models:
        listed = "; ".join(f"{m.model} ({m.module}, table {m.table}): add `{m.import_line}`"
                           for m in status.unloaded_models)
        problems.append(f"model classes the app never loads, so migrations cannot see them: {listed} "
                        f"(or `devtool migrate --fix-imports \"msg\"`)")
        codes.append(ExitCode.MODELS_NOT_IMPORTED)
    if status.unscanned_modules:
        problems.append(f"modules that look like models could not be looked at: {'; '.join(status.unscanned_modules)}"
                        f" (fix them, or move them out of the app's package)")
        codes.append(ExitCode.MODELS_NOT_IMPORTED)
    if status.model_changes and not status.orphans and len(status.heads) <= 1:  # else: not against one head
        listed = ", ".join(f"{c.kind} {c.name}" + (f" in bind {c.bind}" if c.bind else "")
                           for c in status.model_changes[:5])
        problems.append(f"models changed without a migration ({listed}): `devtool migrate \"msg\"`")
        codes.append(ExitCode.PENDING_MODEL_CHANGES)
    return (int(codes[0]) if codes else 0), problems


def check(ctx: Context) -> Verdict:
    status = migrations.status(ctx, models=True, model_changes=True, start=True)
    report = orphans.trace(ctx, status)
    return Verdict(*verdict(status, report), status=status, orphans=report)
