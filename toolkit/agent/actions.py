"""What the agent does, one function per request type; main.ACTIONS is the dispatch table."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from typing import Iterator, List, Optional

from . import enums
from .app import (AgentError, Session, current_revision, database_of, describe, error_text, fail, file_failure,
                  first_line, log, review_and_lint, so_far)
from .apply import (Limits, Run, apply_pending, database_lost, downgrade, interrupted, keep_applied, run_plan,
                    stop_if_client_gone, with_callback)
from .client import client_gone, on_client_gone
from .dialects import (connection_environment, connection_lost, database_copies, dialect, dialect_of,
                       file_snapshots, linter, migration_lock, server_version)
from .files import Written, database_files, hand_over_all, watch_files
from .models import add_imports, load_modules, unloaded_models
from .protocol import (COPY_PREFIX, DEBUG_MARK, FLASK_DATABASE_LOST, REHEARSAL_PREFIX, WRITING_SUBCOMMANDS, BindState,
                       CommandsResult, ConnectionResult, CopyResult, Database, DatabaseTarget, DropResult, ErrorCode,
                       FileSnapshotResult, LintedRevision, LintResult, LintRule, MigrationResult, ModelChange,
                       PendingRevision, Phase, RehearsalResult, ReplayResult, ReplayStep, Revision, RevisionsResult,
                       SnapshotDatabase, Status, StatusResult, Unwritable)
from .rehearsal import Recorder
from .render import upgrade_sql
from .review import needs_review, read_source
from .sync import kept_versions, known, orphan_chain, orphans, pending_after, refuse_orphans, review_downgrades
from .writable import not_writable, require_writable, unwritable


def migrate(request) -> MigrationResult:
    """Apply what is pending, generate a revision from the models, apply it. Flagged changes that the
    request does not approve stop the run before anything flagged is applied (a new file is kept)."""
    session = Session(request)
    stop_if_client_gone([], "anything started (the app was loading)")
    require_writable(versions_folder(session.directory), "Cannot write revision files")  # before anything is done
    result = MigrationResult(status=Status.NO_CHANGES, database=session.database())
    missing, packages, result.unscanned_modules = unloaded_models(session.db)
    if missing and request.fix_imports:
        try:
            left, looked = add_imports(packages, missing)
        except PermissionError as exc:
            raise not_writable(exc.filename or os.path.dirname(packages[0].__file__),
                               "Cannot add the missing imports")
        result.fixed_imports = [m for m in missing if m.fixed_in]
        if left:
            raise fail(ErrorCode.MODELS_NOT_IMPORTED, "Models defined but never loaded by the app, and --fix-imports "
                       "found no init_app function to add their imports to (looked in %s); nothing was changed."
                       % (", ".join(looked) or "no package of the app"), models=left,
                       path=looked[0] if looked else None,
                       hint="Add the import lines above where the app sets up its models (e.g. in create_app), "
                            "then run `devtool migrate` again.")
        load_modules(result.fixed_imports)  # as the app will from now on: this revision includes them
        missing = left
    if missing:
        raise fail(ErrorCode.MODELS_NOT_IMPORTED, "Models defined but never loaded by the app.", models=missing)

    with _named_if_lost(result), migration_lock(session, request.lock_wait) as lock:
        result.lock_waited = lock.waited
        script = session.script()
        result.current_before = result.current_after = session.current()
        refuse_orphans(script, session.currents())
        if len(script.get_heads()) > 1:
            if not request.merge:
                raise _multiple_heads(session.heads(script))
            result.merged = _merge_heads(session)
            script = session.script(reload=True)
        rules = linter(session)
        result.pending = session.pending(script, result.current_before, rules)
        if result.pending:
            if _stop_for_review(result, result.pending, request.approved):
                return result
            log("the database is behind head: applying %d pending revision(s) before generating"
                % len(result.pending))
            result.upgraded_first = apply_pending(session, script, _limits(request))
            result.applied = list(result.upgraded_first)
            result.current_after = session.current()
        stop_if_client_gone(result.applied, "the revision was generated")
        result.revision = _generate(session, request.message, result.applied, result.current_after)
        if result.revision is None:
            result.status = Status.APPLIED if result.applied else Status.NO_CHANGES
            return result
        script = session.script(reload=True)  # with the file autogenerate wrote
        written = script.get_revision(result.revision.id)
        result.changes, findings = review_and_lint(result.revision.path, rules,
                                                   lambda: upgrade_sql(session, script, written))
        new = PendingRevision(id=result.revision.id, message=result.revision.message, path=result.revision.path,
                              changes=result.changes, findings=findings)
        if not request.upgrade:
            result.findings += [replace(f, revision=new.id, path=new.path) for f in findings]
            result.status = Status.GENERATED
            return result
        if _stop_for_review(result, [new], request.approved):
            return result
        try:
            result.applied += apply_pending(session, script, _limits(request))
        except AgentError as exc:
            unapplied = not any(r.id == new.id for r in exc.failure.applied)
            if exc.failure.code == ErrorCode.DATABASE_LOST:
                raise database_lost(exc.failure.error or "", result.applied + exc.failure.applied,
                                    exc.failure.revision, new.path if unapplied else None)
            if exc.failure.code == ErrorCode.INTERRUPTED and unapplied:
                exc.failure.message += " The new revision file is kept, not applied: %s." % new.path
                exc.failure.applied = result.applied + exc.failure.applied
                exc.failure.path = new.path
            raise
        result.status = Status.APPLIED
        result.current_after = session.current()
    return result


def upgrade(request) -> MigrationResult:
    """Apply every pending revision; flagged changes need approval."""
    session = Session(request)
    stop_if_client_gone([], "anything started (the app was loading)")
    with migration_lock(session, request.lock_wait) as lock:
        script = session.script()
        current = session.current()
        refuse_orphans(script, session.currents())
        if len(script.get_heads()) > 1:
            raise _multiple_heads(session.heads(script))
        result = MigrationResult(status=Status.UP_TO_DATE, database=session.database(), current_before=current,
                                 current_after=current, lock_waited=lock.waited)
        result.pending = session.pending(script, current, linter(session))
        if not result.pending or _stop_for_review(result, result.pending, request.approved):
            return result
        result.applied = apply_pending(session, script, _limits(request))
        result.status = Status.APPLIED
        result.current_after = session.current()
    return result


def sync(request) -> MigrationResult:
    """Downgrade the revisions the checkout lacks (from the copies devtool sent), merge several heads when
    asked, then apply what is pending: all under the migration lock, flagged changes only with approval."""
    session = Session(request)
    stop_if_client_gone([], "anything started (the app was loading)")
    with migration_lock(session, request.lock_wait) as lock, kept_versions(request.copies) as copies:
        current = session.current()
        checkout = session.script()
        chain = orphan_chain(checkout, session.script(copies) if copies else None, current)
        planned = sorted(r.revision for r in chain)
        if planned and planned != sorted(request.expected):
            raise fail(ErrorCode.ORPHANED, "The database moved while devtool looked (it is now at %s); nothing "
                       "was changed." % ", ".join(current), current=current)
        result = MigrationResult(status=Status.UP_TO_DATE, database=session.database(), current_before=current,
                                 current_after=current, lock_waited=lock.waited)
        if len(checkout.get_heads()) > 1:
            if not request.merge:
                raise _multiple_heads(session.heads(checkout))
            result.merged = _merge_heads(session)
            checkout = session.script(reload=True)
        merged = session.script(copies) if copies else checkout
        chain = orphan_chain(checkout, merged, current)
        result.pending = pending_after(checkout, merged, current, set(planned))
        if _stop_for_review(result, review_downgrades(session, chain) + result.pending, request.approved):
            return result
        if chain:
            result.downgraded = downgrade(session, merged, chain, _limits(request))
            result.current_after = session.current()
        if result.pending:
            try:
                result.applied = apply_pending(session, checkout, _limits(request))
            except AgentError as exc:
                if result.downgraded:
                    exc.failure.message = "Downgraded %s; then %s" % (
                        ", ".join(r.id for r in result.downgraded), exc.failure.message[:1].lower()
                        + exc.failure.message[1:])
                raise
        if result.downgraded or result.applied or result.merged:
            result.status = Status.APPLIED
        result.current_after = session.current()
    return result


@contextlib.contextmanager
def _named_if_lost(result: MigrationResult) -> Iterator[None]:
    """The database lost outside a revision (reading its revision, comparing the models): what this request
    had applied and generated by then is named."""
    try:
        yield
    except AgentError:
        raise
    except Exception as exc:
        if not connection_lost(None, exc):
            raise
        kept = result.revision.path if result.revision and not any(
            r.id == result.revision.id for r in result.applied) else None
        raise database_lost(error_text(exc), result.applied, kept=kept)
def _limits(request) -> Limits:
    return Limits(lock_timeout=request.lock_timeout, statement_timeout=request.statement_timeout,
                  lock_retries=request.lock_retries)


def versions_folder(directory: str) -> str:
    """Where Alembic writes new revision files (the migrations folder itself before `versions/` exists)."""
    versions = os.path.join(directory, "versions")
    return versions if os.path.isdir(versions) else directory


def _stop_for_review(result: MigrationResult, revisions: List[PendingRevision], approved: List[str]) -> bool:
    """Add the flagged changes and the lint findings of `revisions` to the review; True (status needs_review)
    if a flagged change or a lint error is not approved. On a database at base (a new one) lint errors do not
    stop: there are no rows to rewrite and no code running against it."""
    flagged = [replace(c, revision=r.id) for r in revisions for c in needs_review(r.changes)]
    findings = [replace(f, revision=r.id, path=r.path) for r in revisions for f in r.findings]
    result.review += flagged
    result.findings += findings
    stopping = {c.revision for c in flagged}
    if result.current_before:
        stopping |= {f.revision for f in findings if f.blocking}
    if stopping - set(approved):
        result.status = Status.NEEDS_REVIEW
        return True
    return False


def _multiple_heads(heads: List[Revision]) -> Exception:
    return fail(ErrorCode.MULTIPLE_HEADS, "The migrations have %d heads (%s); nothing was changed." % (
        len(heads), ", ".join("%s %s" % (h.id, h.message) for h in heads)), heads=heads)


def _merge_heads(session) -> Revision:
    from alembic import command

    written = Written(session.directory)
    merged = command.merge(session.config(), "heads", message="merge heads")
    written.hand_over()
    return describe(merged)


class EmptyCheck:
    """Notes whether autogenerate found nothing, and stops it before it writes the file when devtool has gone
    away meanwhile (comparing a large schema takes seconds). It must not empty the directives itself: env.py's
    own hook (Flask-Migrate's) may run after it and read directives[0]."""

    def __init__(self, applied: List[Revision]) -> None:
        self.empty, self.applied = False, applied

    def __call__(self, context, revision, directives) -> None:
        stop_if_client_gone(self.applied, "the revision file was written")
        # upgrade_ops_list: a multi-database env.py writes one UpgradeOps per database (upgrade_ops refuses)
        self.empty = bool(directives) and all(ops.is_empty() for ops in directives[0].upgrade_ops_list)


def _generate(session, message: str, applied: List[Revision], current: List[str]):
    """Autogenerate a revision file; None when the models match the database. A failure, or a file that would not
    keep the message exactly as its docstring, leaves no file behind."""
    from alembic import command

    written = Written(session.directory)
    empty = EmptyCheck(applied)
    enums.install()
    try:
        revision = command.revision(session.config(autogenerate=True), message=docstring_text(message),
                                    autogenerate=True, process_revision_directives=empty)
    except AgentError:  # devtool went away: stopped before the file was written
        _remove(written.new())
        raise
    except Exception as exc:
        import traceback

        traceback.print_exc()
        new = written.new()
        _remove(new)
        if connection_lost(None, exc):
            raise database_lost(error_text(exc), applied)
        if isinstance(exc, PermissionError):
            raise not_writable(exc.filename or session.directory, "Cannot write the revision file")
        unreadable = file_failure(exc, [session.directory])
        if unreadable is not None and unreadable.failure.path not in new:  # env.py, or another revision file
            unreadable.failure.message += ". No revision file was written. " + so_far(applied, current)
            raise unreadable from None
        what = "the revision file written for this message could not be loaded, so it was removed" \
            if unreadable is not None else "no revision file was written"
        raise fail(ErrorCode.GENERATE_FAILED, "Autogenerate failed: %s; %s. %s" % (
            first_line(exc).rstrip("."), what, so_far(applied, current)), error=error_text(exc), applied=applied,
                   current=current)
    if isinstance(revision, list):
        revision = revision[0] if revision else None
    if revision is not None and empty.empty:  # an env.py without Flask-Migrate's check wrote an empty file
        _remove(written.new())
        session.script(reload=True)
        revision = None
    if revision is None:
        return None
    problem = _unfaithful(revision.path, message)
    if problem:
        _remove(written.new())
        raise fail(ErrorCode.GENERATE_FAILED, "The revision file for this message %s, so it was not kept. %s" % (
            problem, so_far(applied, current)), applied=applied, current=current,
                   hint="Use a plainer message (the revision template, script.py.mako, decides where it goes).")
    written.hand_over()
    return describe(revision)


def docstring_text(message: str) -> str:
    """The message as it must be written inside the template's triple-quoted docstring for Python to read it
    back exactly: backslashes and quotes escaped."""
    return message.replace("\\", "\\\\").replace('"', '\\"')


def _unfaithful(path: str, message: str) -> Optional[str]:
    """Why the written revision file is not what the user asked for (None when it is): Python must read it, and
    its docstring, where it has one, must hold the message exactly."""
    import ast

    try:
        tree = ast.parse(read_source(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return "is not valid Python (%s)" % first_line(exc)
    docstring = ast.get_docstring(tree, clean=False)
    if docstring is not None and message not in docstring:
        return "would not show the message exactly in its docstring"
    return None


def _remove(paths) -> None:
    for path in sorted(paths, reverse=True):  # files before their folders
        try:
            os.rmdir(path) if os.path.isdir(path) else os.remove(path)
        except OSError:
            pass
        stem, extension = os.path.splitext(os.path.basename(path))
        cache = os.path.join(os.path.dirname(path), "__pycache__")
        if extension == ".py" and os.path.isdir(cache):  # what importing it left behind
            for name in os.listdir(cache):
                if name.startswith(stem + ".") and name.endswith(".pyc"):
                    try:
                        os.remove(os.path.join(cache, name))
                    except OSError:
                        pass


def status(request) -> StatusResult:
    """Heads, the database's revision and what is pending; a database that cannot be read is reported in the
    result (database_error) with everything that could be looked at without it."""
    session = Session(request)
    script = session.script()
    result = StatusResult(heads=session.heads(script), database=session.database(), directory=session.directory)
    if request.models:
        result.unloaded_models, _, result.unscanned_modules = unloaded_models(session.db)
    folder = unwritable(versions_folder(session.directory))
    if folder is not None:
        info = os.stat(folder)
        result.not_writable = Unwritable(folder, [os.geteuid(), os.getegid()], [info.st_uid, info.st_gid])
    try:
        result.current = session.current()
    except AgentError as exc:
        if exc.failure.code != ErrorCode.DATABASE_UNREACHABLE:
            raise
        result.database_error = exc.failure.message
        return result
    result.dialect, result.server_version = dialect_of(session.engine())
    result.binds = _bind_states(session)
    unread = [b for b in result.binds if b.error]
    if unread:  # a check that cannot look at every database fails: nothing is compared
        result.current = None
        result.database_error = "; ".join("Database %s (bind %s) cannot be read: %s" % (
            b.database.name, b.bind, b.error) for b in unread)
        return result
    result.orphans = orphans(script, sorted(set(result.current).union(*(b.current for b in result.binds))))
    if result.orphans:  # what is pending cannot be told; the host traces the orphans with the known ids
        result.known = known(script)
    elif len(result.heads) == 1:
        result.pending = session.pending(script, result.current, linter(session))
    if request.model_changes:
        result.model_changes = _model_changes(session)
    return result


def _bind_states(session) -> List[BindState]:
    states = []
    for bind, url in session.databases()[1:]:
        state = BindState(bind=bind, database=database_of(url))
        try:
            state.current = session.current(bind)
        except AgentError as exc:
            if exc.failure.code != ErrorCode.DATABASE_UNREACHABLE:
                raise
            state.error = (exc.failure.error or exc.failure.message).splitlines()[0]
        states.append(state)
    return states


def _model_changes(session) -> List[ModelChange]:
    """What autogenerate would write now, without writing anything (`devtool check`, doctor): in every
    database of the app, each compared with its own models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    enums.install()
    changes = []
    for bind in [None] + session.binds():
        with session.connect(bind) as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            changes += [replace(_diff(d), bind=bind) for d in compare_metadata(context, session.metadata(bind))]
    return changes


def _diff(diff) -> ModelChange:
    if isinstance(diff, list):
        diff = diff[0]
    kind, subject = diff[0], diff[1]
    name = getattr(subject, "name", None) or (diff[2] if len(diff) > 2 else "")
    if kind in ("add_column", "remove_column"):
        name = "%s.%s" % (diff[2], diff[3].name)
    elif kind.startswith("modify_"):
        name = "%s.%s" % (diff[2], diff[3])
    return ModelChange(kind=kind, name=str(name))


def lint(request) -> LintResult:
    """The lint findings of the revisions the request names (by default the ones not applied yet)."""
    session = Session(request)
    script = session.script()
    rules = linter(session)
    result = LintResult(dialect=rules.dialect, selection="pending", server_version=rules.server_version,
                        rules=[LintRule(r.id, r.severity, r.title, r.why, r.safe) for r in rules.rules])
    if request.revisions:
        result.selection = "given"
        chosen = [_revision(script, r) for r in request.revisions]
    elif request.all:
        result.selection = "all"
        chosen = list(reversed(list(script.walk_revisions())))
    elif request.since:
        result.selection = "since %s" % request.since
        since = _revision(script, request.since)
        chosen = list(reversed(list(script.iterate_revisions("heads", since.revision))))[1:]
    else:
        result.current = session.current()
        if len(script.get_heads()) > 1:
            raise _multiple_heads(session.heads(script))
        lower = result.current[0] if len(result.current) == 1 else None
        chosen = list(reversed(list(script.iterate_revisions("heads", lower))))
    for revision in chosen:
        changes, findings = review_and_lint(revision.path, rules,
                                            lambda revision=revision: upgrade_sql(session, script, revision))
        result.revisions.append(LintedRevision(id=revision.revision, message=(revision.doc or "").strip(),
                                               path=revision.path, findings=findings))
    return result


def _revision(script, name: str):
    """A revision by id, unique prefix or symbol (head), with Alembic's own message when it has none."""
    try:
        found = script.get_revision(name)
    except Exception as exc:
        raise fail(ErrorCode.NO_SUCH_REVISION, "No revision %s: %s" % (name, first_line(exc)), error=error_text(exc))
    if found is None:
        raise fail(ErrorCode.NO_SUCH_REVISION, "No revision %s in %s." % (name, script.dir))
    return found


def rehearse(request) -> RehearsalResult:
    """The pending revisions on a copy of the app's database (in its own server), statement by statement, then
    their downgrade and the upgrade again; the copy is dropped whatever happens, and the app's own database is
    never touched (every connection proves it reaches the copy)."""
    session = Session(request)
    url = session.engine().url
    session.engine().dispose()  # no connection of ours keeps the copy waiting
    name = "%s%d_%s" % (REHEARSAL_PREFIX, int(time.time()), uuid.uuid4().hex[:6])
    try:
        with database_copies(url, request.wait) as copies:
            for stale in copies.scratch_copies(REHEARSAL_PREFIX):  # left by an agent that was killed
                if _age(stale) > STALE_SECONDS:
                    copies.drop_scratch(stale, REHEARSAL_PREFIX)
            log("copying database %s for the rehearsal" % url.database)
            copies.copy(url.database, name, "devtool rehearsal of %s" % url.database)
    except AgentError as exc:
        raise fail(ErrorCode.REHEARSAL_COPY_FAILED, "Could not copy database %s for the rehearsal: %s" % (
            url.database, exc.failure.message), error=exc.failure.error)
    try:
        return _rehearse_on(session, request, DatabaseTarget(name=name, check_sql="SELECT current_database()",
                                                             check_value=name))
    finally:
        session.engine().dispose()
        with database_copies(url, request.wait) as copies:
            copies.drop_scratch(name, REHEARSAL_PREFIX)


STALE_SECONDS = 3600  # a rehearsal copy this old was left by an agent that was killed


def _age(name: str) -> float:
    stamp = name[len(REHEARSAL_PREFIX):].split("_")[0]
    return time.time() - int(stamp) if stamp.isdigit() else 0.0


def _rehearse_on(session, request, target: DatabaseTarget) -> RehearsalResult:
    session.use_database(target)
    script = session.script()
    if len(script.get_heads()) > 1:
        raise _multiple_heads(session.heads(script))
    current = session.current()
    result = RehearsalResult(database=session.database(), current=current)
    lower = current[0] if len(current) == 1 else None
    result.pending = [describe(r) for r in reversed(list(script.iterate_revisions("heads", lower)))]
    if not result.pending:
        return result
    catalog, limits = dialect(session), Limits(request.lock_timeout, request.statement_timeout, 0)

    def guard(connection) -> None:
        session.prove(connection, target)

    def upgrade(heads):
        return script._upgrade_revs("heads", heads)

    run = Run(batch=False)
    recorder = Recorder(session.engine(), catalog, run)
    try:
        result.phases.append(_phase(session, script, "upgrade", upgrade, limits, catalog, guard, run))
    finally:
        recorder.stop()
    result.statements = recorder.reports
    if result.phases[-1].ok:
        down_to = current[0] if len(current) == 1 else "base"
        result.phases.append(_phase(session, script, "downgrade", lambda heads: script._downgrade_revs(down_to, heads),
                                    limits, catalog, guard))
    if result.phases[-1].ok:
        result.phases.append(_phase(session, script, "upgrade again", upgrade, limits, catalog, guard))
    return result


def _phase(session, script, name, plan, limits, catalog, guard, run=None) -> Phase:
    """One pass of `plan` on the redirected database, each revision in its own transaction."""
    run = run or Run(batch=False)
    started = time.monotonic()
    phase = Phase(name=name, ok=True)
    try:
        run_plan(session, script, run, plan, limits, catalog, guard=guard)
    except AgentError:
        raise
    except Exception as exc:
        import traceback

        traceback.print_exc()
        if run.running is None:
            raise
        phase.ok, phase.failed, phase.error = False, describe(run.running), error_text(exc)
    phase.seconds = round(time.monotonic() - started, 3)
    phase.revisions = [r.id for r in run.completed]
    if run.stopped_before:
        raise interrupted(session, run.completed, run.stopped_before)
    return phase


REPLAY_STEPS = ("one head", "upgrade from an empty database, one revision at a time",
                "models match the schema at head", "each revision's downgrade, then its upgrade again (stairway)",
                "downgrade to base leaves nothing behind")


def replay(request) -> ReplayResult:
    """What pytest-alembic checks, on an empty throw-away server: one head; upgrade one revision at a time; the
    models match at head; each downgrade then upgrade; base leaves no table, type or sequence behind."""
    from alembic.runtime.migration import RevisionStep

    session = Session(request)
    session.use_database(request.target)
    script = session.script()
    catalog, limits = dialect(session), Limits(request.lock_timeout, request.statement_timeout, 0)
    history = list(script.walk_revisions())  # head first
    result = ReplayResult(revisions=len(history), server_version=server_version(session))
    steps = [ReplayStep(name=name, ok=None) for name in REPLAY_STEPS]
    result.steps = steps

    def guard(connection) -> None:
        session.prove(connection, request.target)

    with session.engine().connect() as connection:
        before = set(catalog.leftovers(connection))
    heads = session.heads(script)
    steps[0].ok = len(heads) == 1
    steps[0].detail = ", ".join("%s (%s)" % (h.id, h.message) for h in heads) or "no revisions"
    if not steps[0].ok:
        return result

    started = time.monotonic()
    upgrade = _phase(session, script, "upgrade", lambda current: script._upgrade_revs("heads", current), limits,
                     catalog, guard)
    _outcome(steps[1], upgrade, started, "%d revision(s) applied, each in its own transaction" % len(upgrade.revisions))
    if not steps[1].ok:
        return result

    started = time.monotonic()
    changes = _model_changes(session)
    steps[2].ok, steps[2].seconds = not changes, round(time.monotonic() - started, 3)
    steps[2].detail = ", ".join("%s %s" % (c.kind, c.name) for c in changes[:10]) or "no difference"

    def stairway(current):
        for revision in history:
            yield RevisionStep(script.revision_map, revision, False)
            yield RevisionStep(script.revision_map, revision, True)
            yield RevisionStep(script.revision_map, revision, False)

    started = time.monotonic()
    run = Run(batch=False)
    down_up = _phase(session, script, "stairway", stairway, limits, catalog, guard, run)
    _outcome(steps[3], down_up, started, "%d revision(s): downgrade, upgrade, downgrade" % len(history))
    if not down_up.ok:
        tries = [s for s in run.steps if s.revision.revision == down_up.failed.id]
        steps[3].detail = ["its downgrade failed", "its upgrade failed after its downgrade ran (the downgrade left "
                           "something behind)", "its downgrade failed after upgrading again"][min(len(tries), 3) - 1]
        return result

    started = time.monotonic()
    with session.engine().connect() as connection:
        left = [thing for thing in catalog.leftovers(connection) if thing not in before]
    steps[4].ok, steps[4].seconds = not left, round(time.monotonic() - started, 3)
    steps[4].detail = ", ".join(left) or "nothing left"
    return result


def _outcome(step: ReplayStep, phase: Phase, started: float, detail: str) -> None:
    step.ok, step.seconds = phase.ok, round(time.monotonic() - started, 3)
    step.detail, step.revision, step.error = (detail, None, None) if phase.ok else ("", phase.failed, phase.error)


def flask(request) -> None:
    """`flask ...` in this process, then hand new files to their folder's owner; the exit code passes through.
    When devtool goes away, the command is interrupted like a Ctrl-C (its transaction rolls back)."""
    import _thread

    from flask import cli as flask_cli

    watched = {}
    args = list(request.args)
    writes = args[:1] == ["db"] and args[1:2] != [] and args[1] in WRITING_SUBCOMMANDS
    applied: List[str] = []  # revisions this command applied upwards (each commits on its own)

    def record(ctx, step, heads, run_args) -> None:
        if step.is_upgrade:
            applied.append(step.up_revision.revision)

    def watch(directory: str) -> None:
        directory = os.path.abspath(directory)
        if writes:  # a clear refusal before flask writes anything (not a PermissionError traceback)
            require_writable(versions_folder(directory), "Cannot write revision files")
        watched.setdefault(directory, Written(directory))

    for index, arg in enumerate(args[:args.index("--")] if "--" in args else args):  # `-d DIR` given to flask db
        if arg in ("-d", "--directory") and index + 1 < len(args):
            watch(args[index + 1])
        elif arg.startswith("--directory="):
            watch(arg.split("=", 1)[1])
    if request.directory:
        watch(request.directory)
    load_app = flask_cli.ScriptInfo.load_app

    def load_and_watch(info):
        """Once flask has loaded the app: the app's own folder (Migrate(app, db, directory=...)) is watched,
        every revision `flask db upgrade` applies is handed to devtool to keep, and an SQLite file it creates
        goes to its folder's owner."""
        app = load_app(info)
        state = getattr(app, "extensions", {}).get("migrate")
        if not request.directory:
            watch(getattr(state, "directory", None) or "migrations")
        callbacks = state.configure_args.get("on_version_apply") if state is not None else None
        if state is not None and keep_applied not in (callbacks if isinstance(callbacks, list) else [callbacks]):
            state.configure_args["on_version_apply"] = with_callback(callbacks, keep_applied)
        if state is not None:
            with app.app_context():
                watch_files(database_files(state.db.engine.url))
            state.configure_args["on_version_apply"] = with_callback(state.configure_args.get("on_version_apply"),
                                                                     record)
        return app

    flask_cli.ScriptInfo.load_app = load_and_watch
    on_client_gone(_thread.interrupt_main)
    sys.argv = ["flask"] + args
    code = 0
    try:
        flask_cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except AgentError:
        raise  # devtool's own refusal (a folder it may not write): its result line, before flask wrote anything
    except Exception as exc:
        import traceback

        if not connection_lost(None, exc):  # what `flask` itself would do: the traceback, exit code 1
            traceback.print_exc()
            code = 1
        else:
            for line in traceback.format_exc().splitlines():  # with -v only
                sys.stderr.write(DEBUG_MARK + line + "\n")
            done = ("applied before: %s" % ", ".join(applied)) if applied else "nothing was applied"
            sys.stderr.write("Lost the connection to the database during `flask %s` (%s): %s; a revision under way "
                             "is rolled back by the server. `devtool status` tells where the database is once it "
                             "answers.\n" % (" ".join(args), first_line(exc), done))
            code = FLASK_DATABASE_LOST
    for written in watched.values():
        written.hand_over()
    hand_over_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def database(request) -> Database:
    return Session(request, migrations=False).database()


def db_commands(request) -> CommandsResult:
    """The subcommands of the installed Flask-Migrate's `flask db` (3.x has no `check`), and its version."""
    from flask_migrate.cli import db

    try:
        from importlib.metadata import version

        installed = version("Flask-Migrate")
    except Exception:  # not installed as a distribution (vendored, source checkout)
        installed = None
    return CommandsResult(commands=sorted(db.commands), flask_migrate=installed)


# ---------------------------------------------------------------------------------------------- snapshots


def snapshot_copy(request) -> CopyResult:
    """Copy each of the app's databases (the main one, then each bind's) inside its own server (the fast
    snapshot); when one cannot be copied, the copies already made are dropped."""
    session = Session(request, migrations=False)
    session.dispose()  # no connection of ours keeps the copy waiting
    result = CopyResult(databases=[])
    try:
        for index, (bind, url) in enumerate(session.databases()):
            with database_copies(url, request.wait) as copies:
                # Postgres cuts names at 63 bytes: the index keeps two long bind names apart
                copy = (COPY_PREFIX + request.token + ("_%d_%s" % (index, bind) if bind else ""))[:63]
                log("copying database %s inside its server" % url.database)
                result.closed += copies.copy(url.database, copy, request.comment)
                result.databases.append(SnapshotDatabase(
                    database=database_of(url), bind=bind, copy=copy, size=copies.size(copy),
                    revision=current_revision(url.set(database=copy)) or [], server_version=copies.server_version))
        if client_gone():  # nobody would record these copies: they would only take space on the server
            raise fail(ErrorCode.INTERRUPTED, "devtool went away while the snapshot was taken; it was dropped.")
    except BaseException:
        _drop_quietly(session, [d.copy for d in result.databases])
        raise
    return result


def snapshot_restore(request) -> CopyResult:
    """Put each database of the snapshot back from its copy, all or nothing as far as the servers allow: each
    must be the database the snapshot was taken from and its copy must still be there; every fresh copy is
    made before the first swap, a swap that fails puts the databases swapped before it back, and only then
    are the replaced databases dropped. Needs no migrations: it works at any revision."""
    session = Session(request, migrations=False)
    session.dispose()
    urls = dict(session.databases())
    for taken in request.databases:
        url = urls.get(taken.bind)
        now = database_of(url) if url is not None else None
        if now is None or (now.host, now.port, now.name) != (taken.database.host, taken.database.port,
                                                               taken.database.name):
            where = "%s on %s:%s" % (now.name, now.host, now.port) if now else "no such database"
            of = " (bind %s)" % taken.bind if taken.bind else ""
            raise fail(ErrorCode.SNAPSHOT_MISMATCH, "The snapshot was taken from database %s on %s:%s%s; the app now "
                       "uses %s: restoring it there is refused; nothing was restored." % (
                           taken.database.name, taken.database.host, taken.database.port, of, where))
    for bind, url in session.databases():
        if bind not in [t.bind for t in request.databases]:
            log("database %s (bind %s) is not in this snapshot (taken before the bind existed?): left as it is"
                % (url.database, bind))
    result = CopyResult(databases=[])
    with ExitStack() as stack:
        servers = [stack.enter_context(database_copies(urls[t.bind], request.wait)) for t in request.databases]
        for server, taken in zip(servers, request.databases):
            server.check_copy(taken.copy)
        swaps = []
        try:
            for index, (server, taken) in enumerate(zip(servers, request.databases)):
                log("copying snapshot %s for database %s" % (taken.copy, urls[taken.bind].database))
                swaps.append((server, server.prepare(taken.copy, urls[taken.bind].database,
                                                     "%s_%d" % (request.token, index))))
            swapped = []
            try:
                for server, swap in swaps:
                    log("swapping it in for database %s" % swap.target)
                    result.closed += server.swap(swap)
                    swapped.append((server, swap))
            except BaseException:
                for server, swap in reversed(swapped):
                    _unswap_quietly(server, swap)
                raise
        except BaseException:
            for server, swap in swaps:
                server.discard(swap)
            raise
        for server, swap in swaps:
            server.finish(swap)
        for server, taken in zip(servers, request.databases):
            url = urls[taken.bind]
            result.databases.append(SnapshotDatabase(database=database_of(url), bind=taken.bind, copy=taken.copy,
                                                     revision=current_revision(url) or [],
                                                     server_version=server.server_version))
    return result


def _unswap_quietly(server, swap) -> None:
    try:
        server.unswap(swap)
        log("database %s put back as it was" % swap.target)
    except Exception as exc:
        log("could not put database %s back (%s); the data it held is in database %s" % (
            swap.target, first_line(exc), swap.replaced))
        swap.replaced = None  # never dropped: it holds that data
        swap.owner = None


def snapshot_drop(request) -> DropResult:
    session = Session(request, migrations=False)
    dropped, missing = _drop_copies(session, request.copies)
    return DropResult(dropped=dropped, missing=missing)


def _drop_copies(session, names: List[str]):
    """Drop snapshot copies wherever the app's databases live (a bind's copies may be on another server)."""
    dropped, left = [], list(names)
    for url in _servers(session):
        if not left:
            break
        with database_copies(url, 0) as copies:
            here, _ = copies.drop([name for name in left if copies.exists(name)])
        dropped += here
        left = [name for name in left if name not in here]
    return dropped, left


def _servers(session) -> list:
    """One URL per database server the app uses (main database's first)."""
    found, seen = [], set()
    for _, url in session.databases():
        if (url.get_backend_name(), url.host, url.port) not in seen:
            seen.add((url.get_backend_name(), url.host, url.port))
            found.append(url)
    return found


def _drop_quietly(session, copies) -> None:
    if not copies:
        return
    try:
        _drop_copies(session, copies)
    except Exception as exc:
        log("could not drop the partial snapshot copies %s: %s" % (", ".join(copies), first_line(exc)))


def connection(request) -> ConnectionResult:
    """How pg_dump and pg_restore reach the app's database (or a snapshot copy on its server), as the backend
    does; the environment carries the password: the host never prints it."""
    session = Session(request, migrations=False)
    url = session.engine().url
    if request.database:
        url = url.set(database=request.database)
    environment, server_version = connection_environment(url)
    return ConnectionResult(database=database_of(url), environment=environment, revision=current_revision(url),
                            server_version=server_version,
                            others=[database_of(other) for _, other in session.databases()[1:]])


def snapshot_file(request) -> FileSnapshotResult:
    """A copy of the app's database file in a private folder (SQLite), once no devtool migration runs."""
    session = Session(request, migrations=False)
    url = session.engine().url
    files = file_snapshots(url, request.wait)
    with migration_lock(session, request.wait):
        log("copying database %s (backup API)" % files.path)
        path, size, revision = files.backup()
    return FileSnapshotResult(database=database_of(url), path=path, size=size, revision=revision,
                              server_version=files.version)


def restore_file(request) -> FileSnapshotResult:
    """Put the app's database file back from a copy the host sent, once no devtool migration runs."""
    session = Session(request, migrations=False)
    url = session.engine().url
    files = file_snapshots(url, request.wait)
    with migration_lock(session, request.wait):
        log("restoring database %s (backup API)" % files.path)
        files.restore(request.path)
    return FileSnapshotResult(database=database_of(url), path=files.path, size=os.path.getsize(files.path),
                              revision=current_revision(url), server_version=files.version)


def revisions(request) -> RevisionsResult:
    """Which of the given revisions this checkout's migrations do not have."""
    session = Session(request)
    script = session.script()
    return RevisionsResult(unknown=orphans(script, request.revisions), heads=sorted(script.get_heads()))
