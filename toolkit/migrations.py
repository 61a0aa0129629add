"""devtool's migration commands as plain functions (migrate, upgrade, status); the CLI renders their results.

A flagged revision (destructive, risky, probable rename) is applied only after approval (--yes, or the
`confirm` callback the CLI passes), and after a snapshot when it can lose data: the agent stops before
applying it (first call), devtool asks and snapshots, then the agent applies (second call).
"""

from __future__ import annotations

import contextlib
import unicodedata
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Callable, Iterator

from toolkit.agent.protocol import (ErrorCode, MigrateRequest, MigrationResult, Risk, Status, StatusRequest,
                                    StatusResult, UpgradeRequest)
from toolkit import orphans, snapshots
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context
    from toolkit.protocol import Agent
    from toolkit.rehearse import Rehearsal

MAX_MESSAGE_LENGTH = 500
Confirm = Callable[[MigrationResult], bool]
OfferRestore = Callable[[dict], bool]  # asked with a snapshot taken in this run: restore it now?


def never(result: MigrationResult) -> bool:
    return False


def never_restore(snapshot: dict) -> bool:
    return False


def validate_message(message: str) -> str:
    """Refuse, before anything is written, a message the revision file could not keep exactly: empty, too long,
    control characters (line breaks and tabs are kept), bytes that are not text."""
    if not message or not message.strip():
        raise DevtoolError("The migration message is empty.", hint='Describe the change: devtool migrate "add posts".',
                           exit_code=ExitCode.USAGE)
    if len(message) > MAX_MESSAGE_LENGTH:
        raise DevtoolError(f"The migration message is {len(message)} characters long (at most {MAX_MESSAGE_LENGTH}).",
                           hint="Keep it to one line; put details in the revision file's docstring.",
                           exit_code=ExitCode.USAGE)
    for position, char in enumerate(message, start=1):
        category = unicodedata.category(char)
        if category == "Cs":  # a byte the terminal's encoding could not decode, smuggled in as a surrogate
            raise DevtoolError(f"The migration message is not valid text (an undecodable byte at character "
                               f"{position}); nothing was written.", exit_code=ExitCode.USAGE,
                               hint="Type it again in your terminal's encoding (UTF-8).")
        if category == "Cc" and char not in "\n\t":
            raise DevtoolError(f"The migration message contains a control character (U+{ord(char):04X} at character "
                               f"{position}); nothing was written.", exit_code=ExitCode.USAGE,
                               hint="Use printable text; line breaks and tabs are fine.")
    return message


def migrate(ctx: Context, message: str, *, upgrade: bool = True, yes: bool = False, fix_imports: bool = False,
            merge: bool = False, confirm: Confirm = never, snapshot: bool = True,
            offer_restore: OfferRestore = never_restore,
            rehearse: Callable[[], Rehearsal] | None = None) -> MigrationResult:
    """Apply what is pending, generate a revision from the models, apply it. `snapshot` False (--no-snapshot):
    destructive changes are applied without a snapshot first. A revision that fails half-way (MySQL commits
    schema changes at once) offers the snapshot taken before it. With `rehearse`, the new revision is rehearsed
    on a copy of the database first, and applied only if the rehearsal holds."""
    validate_message(message)
    ctx.services.backend  # a wrong --service fails before anything starts
    agent = ctx.target.agent()
    request = MigrateRequest(message=message, upgrade=upgrade and rehearse is None, fix_imports=fix_imports,
                             merge=merge)
    if rehearse is not None and upgrade:  # a database that is behind: what is pending is rehearsed first
        behind = rehearse()
        if behind.exit_code:
            raise DevtoolError(f"{behind.message()} Nothing was applied and no revision written.",
                               hint="Fix that revision, then run again.", exit_code=behind.exit_code,
                               data=behind.as_json())
    with ctx.out.status("Generating the revision…"), _offering(ctx, None, offer_restore), orphans.explained(
            ctx, "nothing was generated or applied (a revision generated against that schema would be wrong)",
            hint=f"{orphans.SYNC_HINT}, then migrate; `devtool migrate --sync \"MESSAGE\"` does both."):
        result = agent.call(request)
    while result.status == Status.NEEDS_REVIEW:
        _add_host_paths(ctx, result)
        approved = _approve(result, yes, confirm)
        try:
            taken = _snapshot_first(ctx, result, snapshot)
        except KeyboardInterrupt:
            raise _interrupted("during the snapshot before the reviewed changes", result) from None
        with ctx.out.status("Applying migrations…"), _offering(ctx, taken, offer_restore):
            if result.revision:  # written and kept: it is pending now; apply it (and anything before it)
                result = _applied_after_review(result, agent.call(UpgradeRequest(approved=approved)))
            else:  # stopped before generating: apply what is pending, then generate, in one go
                result = agent.call(replace(request, approved=approved))
        result.snapshot = result.snapshot or taken
    _add_host_paths(ctx, result)
    if rehearse is not None and upgrade and result.status == Status.GENERATED:
        result = _rehearsed_then_applied(ctx, agent, result, rehearse, yes, confirm, snapshot, offer_restore)
    return result


def _rehearsed_then_applied(ctx: Context, agent: Agent, generated: MigrationResult,
                            rehearse: Callable[[], Rehearsal], yes: bool, confirm: Confirm,
                            snapshot: bool, offer_restore: OfferRestore) -> MigrationResult:
    """migrate --rehearse: the new revision (and anything pending) on a copy first; applied only if that held,
    after the same review as ever."""
    rehearsal = rehearse()
    generated.rehearsal = rehearsal.as_json()
    if rehearsal.exit_code:
        raise DevtoolError(f"{rehearsal.message()} The new revision was not applied; it is kept: "
                           f"{generated.revision.host_path or generated.revision.path}.",
                           hint="Fix the revision, then `devtool rehearse` (or `devtool db upgrade` to apply it).",
                           exit_code=rehearsal.exit_code, data=asdict(generated))
    with ctx.out.status("Applying migrations…"), _offering(ctx, None, offer_restore):
        applied = agent.call(UpgradeRequest())
    if applied.status == Status.NEEDS_REVIEW:
        approved = _approve(replace(generated, review=applied.review, findings=applied.findings), yes, confirm)
        taken = _snapshot_first(ctx, applied, snapshot)
        with ctx.out.status("Applying migrations…"), _offering(ctx, taken, offer_restore):
            applied = agent.call(UpgradeRequest(approved=approved))
        applied.snapshot = taken
    result = _applied_after_review(generated, applied)
    result.snapshot = applied.snapshot
    return result


def upgrade(ctx: Context, *, yes: bool = False, confirm: Confirm = never, snapshot: bool = True,
            offer_restore: OfferRestore = never_restore) -> MigrationResult:
    """Bring the database to head (`devtool setup`), with the same review as migrate."""
    agent = ctx.target.agent()
    with ctx.out.status("Checking pending migrations…"), _offering(ctx, None, offer_restore), \
            orphans.explained(ctx, "nothing was applied"):
        result = agent.call(UpgradeRequest())
    if result.status == Status.NEEDS_REVIEW:
        approved = _approve(result, yes, confirm)
        taken = _snapshot_first(ctx, result, snapshot)
        with ctx.out.status("Applying migrations…"), _offering(ctx, taken, offer_restore):
            result = agent.call(UpgradeRequest(approved=approved))
        result.snapshot = taken
    return result


def status(ctx: Context, *, models: bool = False, model_changes: bool = False, start: bool = False,
           agent: Agent | None = None) -> StatusResult:
    agent = agent or ctx.target.agent(start=start)
    result = agent.call(StatusRequest(models=models, model_changes=model_changes))
    if result.database_error is not None:
        from toolkit.dialects import unreachable_hint

        result.database_hint = unreachable_hint(ctx, result.database, result.database_error)
    return result


def require_database(status: StatusResult) -> StatusResult:
    """For a command that acts on the database's revision: a database that could not be read stops it before
    anything is changed (never "up to date" about a database nobody looked at)."""
    if status.current is None:
        raise DevtoolError(f"{status.database_error}; nothing was changed.", hint=status.database_hint,
                           exit_code=ExitCode.DATABASE_UNAVAILABLE)
    return status


def _approve(result: MigrationResult, yes: bool, confirm: Confirm) -> list[str]:
    """The revisions whose flagged changes may now be applied; without approval, stop (exit 8) and say
    truthfully what was and was not done."""
    try:
        approved = yes or confirm(result)
    except KeyboardInterrupt:  # Ctrl-C at the question
        raise _interrupted("at the question", result) from None
    if approved:
        return sorted({c.revision for c in result.review if c.revision} |
                      {f.revision for f in result.findings if f.blocking and f.revision})
    applied, kept = _left_undone(result)
    reasons = ["it drops, changes or probably renames data"] if result.review else []
    rules = sorted({f.rule for f in result.findings if f.blocking})
    if rules:
        reasons.append(f"it breaks lint rule{'s' if len(rules) > 1 else ''} {', '.join(rules)}")
    raise DevtoolError(f"The migration needs review: {' and '.join(reasons)}, and was not applied." + applied + kept,
                       hint="Review the changes above, edit the revision if needed, then run again with --yes.",
                       exit_code=ExitCode.NEEDS_CONFIRMATION, data=asdict(result))


def _left_undone(result: MigrationResult) -> tuple[str, str]:
    """What a migration stopped before its reviewed changes had done: (applied first, revision file kept)."""
    applied = (f" Applied first: {', '.join(r.id for r in result.applied)} (safe, already pending)."
               if result.applied else " The database was not changed.")
    kept = (f" The new revision is kept for editing: {result.revision.host_path or result.revision.path}."
            if result.revision else "")
    return applied, kept


def _interrupted(when: str, result: MigrationResult) -> DevtoolError:
    applied, kept = _left_undone(result)
    return DevtoolError(f"Interrupted {when}: the migration was not applied." + applied + kept,
                        hint="Run again (with --yes to apply it) when you are ready.", exit_code=ExitCode.INTERRUPTED,
                        data=asdict(result))


def _snapshot_first(ctx: Context, result: MigrationResult, wanted: bool) -> dict | None:
    """A snapshot before anything that can lose data is applied. When none can be taken, nothing flagged is
    applied and the message says why, once, with --no-snapshot as the deliberate way on."""
    if not any(c.risk in Risk.SNAPSHOT_FIRST for c in result.review):
        return None
    if not wanted:
        ctx.out.warn("No snapshot before the destructive change (--no-snapshot): devtool cannot bring its data back.")
        return None
    try:
        return snapshots.take(ctx, reason="before migration").as_json()
    except DevtoolError as exc:
        applied = (f" Applied before it: {', '.join(r.id for r in result.applied)} (safe)." if result.applied else "")
        kept = (f" The new revision is kept, not applied: {result.revision.host_path or result.revision.path}."
                if result.revision else "")
        raise DevtoolError(f"No snapshot before the destructive change, so it was not applied. {exc.message}"
                           + applied + kept, detail=exc.detail, exit_code=ExitCode.SNAPSHOT_FAILED,
                           hint=(exc.hint + " " if exc.hint else "") + "To apply it without a snapshot, run again "
                                                                         "with --no-snapshot.",
                           data=asdict(result)) from None


@contextlib.contextmanager
def _offering(ctx: Context, taken: dict | None, offer: OfferRestore) -> Iterator[None]:
    """A revision that failed half-way (its first statements stay: MySQL) names the snapshot taken before it in
    this run and, when `offer` says yes, restores it; without one, says that none was taken."""
    try:
        yield
    except DevtoolError as exc:
        if exc.data.get("code") != ErrorCode.PARTLY_APPLIED:
            raise
        if taken is None:
            raise DevtoolError(exc.message, detail=exc.detail, exit_code=exc.exit_code, data=exc.data,
                               hint="No snapshot was taken before it (nothing in it was flagged as destructive): "
                                    "undo the statements listed by hand, fix the revision, then run again.") from None
        name = taken["name"]
        if not offer(taken):
            raise DevtoolError(exc.message, detail=exc.detail, exit_code=exc.exit_code,
                               data={**exc.data, "snapshot": taken},
                               hint=f"`devtool restore {name}` puts the database back as it was before this "
                                    f"migration (snapshot taken just now); then fix the revision and run again.") \
                from None
        restored = snapshots.restore(ctx, name)
        raise DevtoolError(f"{exc.message.rstrip('.')}. Restored snapshot {name}: the database is back at "
                           f"{', '.join(restored.revision) or 'base'}, as before this migration.",
                           detail=exc.detail, exit_code=exc.exit_code,
                           data={**exc.data, "snapshot": taken, "restored": True},
                           hint="Fix the revision, then run again.") from None


def _applied_after_review(generated: MigrationResult, applied: MigrationResult) -> MigrationResult:
    """The second call applied the revision the first one wrote: one result for the whole migrate."""
    if applied.status == Status.NEEDS_REVIEW:  # something else flagged appeared in between: ask about it
        return replace(generated, review=applied.review)
    new_id = generated.revision.id
    return replace(generated, status=Status.APPLIED if applied.applied else applied.status,
                   applied=generated.applied + applied.applied,
                   upgraded_first=generated.upgraded_first + [r for r in applied.applied if r.id != new_id],
                   current_after=applied.current_after, lock_waited=generated.lock_waited + applied.lock_waited)


def _add_host_paths(ctx: Context, result: MigrationResult) -> None:
    """Paths the user can open: where the container's files lie on the host (None: in the container only)."""
    for revision in (result.revision, result.merged):
        if revision is not None:
            revision.host_path = ctx.target.host_path(revision.path)
    for model in result.fixed_imports:
        model.fixed_in = ctx.target.host_path(model.fixed_in) or model.fixed_in
