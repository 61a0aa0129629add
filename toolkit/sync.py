"""`devtool sync`: the database follows the checkout.

Revisions the checkout lacks (a feature branch's, after `git checkout main`) are downgraded newest first, from
devtool's kept copies or else git's, under the migration lock; a downgrade that would lose data needs `--yes`
or a confirmation, and a snapshot is taken first. Then several heads are merged (`--merge`) and what is pending
is applied, with the same review as migrate. When a downgrade cannot run (no copy anywhere, or it fails), the
newest snapshot taken at a revision of this checkout is offered instead (`--restore`). A second run does
nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from toolkit import migrations, orphans, snapshots
from toolkit.agent.protocol import ErrorCode, MigrationResult, Risk, Status, StatusResult, SyncRequest
from toolkit.errors import DevtoolError, ExitCode
from toolkit.migrations import Confirm, never
from toolkit.orphans import OrphanReport
from toolkit.snapshots import Snapshot

if TYPE_CHECKING:
    from toolkit.context import Context


@dataclass
class SyncReport:
    result: MigrationResult
    orphans: OrphanReport | None = None  # what the database was at that the checkout lacks (None: nothing)
    restored: dict | None = None  # --restore: the snapshot put back (a SNAPSHOT, as `snapshot list --json`)
    saved: dict | None = None  # --restore: the snapshot of the database as it was before (None: --no-snapshot)

    def downgraded(self) -> list[dict]:
        where = {o.id: o.copy.where for o in self.orphans.orphans if o.copy} if self.orphans else {}
        return [{"id": r.id, "message": r.message, "from": where.get(r.id)} for r in self.result.downgraded]

    def as_json(self) -> dict:
        return {"ok": True, **dataclasses.asdict(self.result), "downgraded": self.downgraded(),
                "orphans": self.orphans.as_json()["orphans"] if self.orphans else [],
                "restored": self.restored, "saved_before_restore": self.saved}


@dataclass
class SyncedMigration:
    """`devtool migrate --sync`: the sync, then the migration."""

    sync: SyncReport
    migration: MigrationResult


def sync(ctx: Context, *, yes: bool = False, merge: bool = False, restore: bool = False,
         confirm: Confirm = never, snapshot: bool = True) -> SyncReport:
    """The database to the checkout's head: the revisions the checkout lacks downgraded (or, with `restore`,
    the newest snapshot at a revision of the checkout put back), several heads merged, the pending applied."""
    ctx.services.backend  # a wrong --service fails before anything starts
    agent = ctx.target.agent()
    with ctx.out.status("Reading the database's revision…"):
        status = migrations.require_database(migrations.status(ctx, agent=agent))
    report = orphans.trace(ctx, status)
    if restore and report is None:
        ctx.out.info("The database is at a revision of this checkout: nothing to restore.")
    if report is None and len(status.heads) == 1 and not status.pending:
        current = status.current or []
        return SyncReport(MigrationResult(status=Status.UP_TO_DATE, database=status.database,
                                          current_before=current, current_after=current))
    restored = saved = None
    downgrade = report
    if report is not None and restore:
        saved, restored = _restore(ctx, status, snapshot)
        downgrade = None
    elif report is not None and report.missing:
        raise _cannot_downgrade(ctx, status, report, _no_copy_reason(report))
    copies = {f"revision_{hashlib.sha256(o.copy.content).hexdigest()[:16]}.py": o.copy.content
              for o in downgrade.orphans} if downgrade else {}
    request = SyncRequest(expected=[o.id for o in downgrade.orphans] if downgrade else [], merge=merge)
    result = _call(ctx, agent, request, copies, status, report)
    while result.status == Status.NEEDS_REVIEW:
        approved = _approve(result, yes, confirm)
        taken = _snapshot_first(ctx, result, snapshot)
        result = _call(ctx, agent, replace(request, approved=approved), copies, status, report)
        result.snapshot = result.snapshot or taken
    if result.merged is not None:
        result.merged.host_path = ctx.target.host_path(result.merged.path)
    return SyncReport(result, report, restored, saved)


def sync_then_migrate(ctx: Context, message: str, *, yes: bool = False, merge: bool = False,
                      confirm: Confirm = never, snapshot: bool = True, **migrate_options) -> SyncedMigration:
    """`devtool migrate --sync`: the database to the checkout's head first, then the migration."""
    migrations.validate_message(message)
    synced = sync(ctx, yes=yes, merge=merge, confirm=confirm, snapshot=snapshot)
    return SyncedMigration(synced, migrations.migrate(ctx, message, yes=yes, confirm=confirm, snapshot=snapshot,
                                                      **migrate_options))


def _call(ctx: Context, agent, request: SyncRequest, copies: dict[str, bytes], status: StatusResult,
          report: OrphanReport | None) -> MigrationResult:
    """One sync request, with the copies in the container for its duration (the agent takes them in)."""
    doing = "Downgrading and applying revisions…" if request.expected else "Applying revisions…"
    try:
        with ctx.out.status(doing), agent.files(copies) if copies else contextlib.nullcontext() as folder:
            return agent.call(replace(request, copies=folder))
    except DevtoolError as exc:
        if exc.data.get("code") in (ErrorCode.DOWNGRADE_FAILED, ErrorCode.NO_COPY) and report is not None:
            raise _cannot_downgrade(ctx, status, report, exc.message.rstrip("."), exc.data) from None
        raise


def _approve(result: MigrationResult, yes: bool, confirm: Confirm) -> list[str]:
    """The revisions whose flagged changes may go ahead; without approval, stop before any (exit 8)."""
    try:
        approved = yes or confirm(result)
    except KeyboardInterrupt:  # Ctrl-C at the question
        raise DevtoolError("Interrupted at the question: nothing was changed.", exit_code=ExitCode.INTERRUPTED,
                           hint="Run `devtool sync` again when you are ready.",
                           data=dataclasses.asdict(result)) from None
    if approved:
        return sorted({c.revision for c in result.review if c.revision})
    flagged = "; ".join(f"{c.revision}: {c.label} {c.table or ''}{'.' + c.column if c.column else ''} ({c.reason})"
                        for c in result.review)
    raise DevtoolError(f"The sync needs review: {flagged}; nothing was changed.",
                       hint="Review the changes above, then run `devtool sync --yes` (a snapshot is taken first "
                            "when data would be lost).",
                       exit_code=ExitCode.NEEDS_CONFIRMATION, data=dataclasses.asdict(result))


def _snapshot_first(ctx: Context, result: MigrationResult, wanted: bool) -> dict | None:
    """A snapshot before a downgrade (or a pending revision) that loses data; when none can be taken, nothing
    is changed and --no-snapshot is the deliberate way on."""
    if not any(c.risk in Risk.SNAPSHOT_FIRST for c in result.review):
        return None
    if not wanted:
        ctx.out.warn("No snapshot before data is lost (--no-snapshot): devtool cannot bring it back.")
        return None
    try:
        return snapshots.take(ctx, reason="before sync").as_json()
    except DevtoolError as exc:
        raise DevtoolError(f"No snapshot before the sync loses data, so nothing was changed. {exc.message}",
                           detail=exc.detail, exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint=(exc.hint + " " if exc.hint else "") + "To go ahead without a snapshot, run again "
                                                                         "with --no-snapshot.",
                           data=dataclasses.asdict(result)) from None


def _no_copy_reason(report: OrphanReport) -> str:
    names = ", ".join(o.id for o in report.missing)
    return f"there is no copy of {names} anywhere (devtool kept none, and no git branch or commit has it)"


def restorable(ctx: Context, known: list[str]) -> Snapshot | None:
    """The backend service's newest snapshot taken at a revision of this checkout."""
    return next((s for s in snapshots.list_snapshots(ctx, ctx.services.backend) if set(s.revision) <= set(known)),
                None)


def age(created: str) -> str:
    """When a snapshot was taken, for people: "2026-11-25 17:46 UTC, 3 hour(s) ago"."""
    try:
        moment = datetime.fromisoformat(created).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return f"at {created}"
    seconds = (datetime.now(timezone.utc) - moment).total_seconds()
    ago = next((f"{int(seconds // size)} {unit}(s) ago" for unit, size in (("day", 86400), ("hour", 3600),
                                                                          ("minute", 60)) if seconds >= size),
               "just now")
    return f"{moment:%Y-%m-%d %H:%M} UTC, {ago}"


def _restore_offer(snapshot: Snapshot, report: OrphanReport) -> str:
    at = ", ".join(snapshot.revision) or "base"
    return (f"`devtool sync --restore` puts back snapshot {snapshot.name} (taken {age(snapshot.created)}, "
            f"at revision {at}): every change made to the database since then is lost, the data of "
            f"{report.names()} included; devtool snapshots the database as it is first.")


def _cannot_downgrade(ctx: Context, status: StatusResult, report: OrphanReport, reason: str,
                      failure: dict | None = None) -> DevtoolError:
    """A downgrade that cannot run: what happened, where the database is, and the snapshot that would do."""
    failure = failure or {}
    done = [r["id"] for r in failure.get("applied") or []]
    now = ", ".join(failure.get("current") or status.current or []) or "base"
    changed = (f"downgraded first: {', '.join(done)}; the database is at {now}" if done
               else f"the database was not changed (still at {now})")
    snapshot = restorable(ctx, status.known)
    hint = _restore_offer(snapshot, report) if snapshot else (
        "No snapshot was taken at a revision of this checkout, so there is none to restore. Put the revision "
        "file back into the migrations folder (from a colleague or a backup) and run `devtool sync` again, or "
        "start the database over: `devtool down --volumes && devtool setup` (every row is lost).")
    return DevtoolError(f"Cannot downgrade: {reason}; {changed}.", hint=hint,
                        exit_code=ExitCode.CANNOT_DOWNGRADE, detail=report.detail(),
                        data={"code": failure.get("code", ErrorCode.NO_COPY), **report.as_json(),
                              "current": failure.get("current") or report.current,
                              "restorable": snapshot.as_json() if snapshot else None})


def _restore(ctx: Context, status: StatusResult, wanted: bool) -> tuple[dict | None, dict]:
    """--restore: the newest snapshot at a revision of this checkout replaces the database, which is
    snapshotted first (nothing is lost for good; --no-snapshot: it is not)."""
    snapshot = restorable(ctx, status.known)
    if snapshot is None:
        raise DevtoolError("No snapshot taken at a revision of this checkout to restore; nothing was changed.",
                           hint="`devtool snapshot list` shows the snapshots and their revisions; `devtool sync` "
                                "says what else can be done.", exit_code=ExitCode.SNAPSHOT_FAILED)
    saved = snapshots.take(ctx, reason="before sync --restore").as_json() if wanted else None
    snapshots.restore(ctx, snapshot.name)
    return saved, snapshot.as_json()
