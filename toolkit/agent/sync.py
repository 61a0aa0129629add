"""Revisions the database is at but the checkout lacks (a git checkout removed their files): finding them,
taking in the copies devtool sent for them, and judging what downgrading them would lose."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from typing import Dict, Iterator, List, Optional

from .app import fail, first_line, review_file
from .apply import down_revisions
from .protocol import Change, ErrorCode, PendingRevision, Risk
from .server import private_dir

COPIES_FOLDER = re.compile(r"^/tmp/devtool-revisions-[0-9a-f]{8,32}$")  # what the host's upload is named
ROW_CAP = 10000  # rows are counted up to this many: "more than 10000 rows" is all a review needs


def has(script, revision_id: str) -> bool:
    """Exactly this revision id (Alembic also resolves a prefix of an id, which would be another revision)."""
    try:
        found = script.get_revision(revision_id)
    except Exception:  # ResolutionError and its kinds: not there (or ambiguous)
        return False
    return found is not None and found.revision == revision_id


def orphans(script, current: List[str]) -> List[str]:
    """The database's revisions the checkout has no file for."""
    return [c for c in current if not has(script, c)]


def refuse_orphans(script, current: List[str]) -> None:
    """Stop before anything is generated or applied: a revision generated against an orphaned schema is wrong."""
    missing = orphans(script, current)
    if missing:
        raise fail(ErrorCode.ORPHANED, "The database is at %s, which this checkout does not have; nothing was "
                   "changed." % ", ".join(missing), current=current)


def known(script) -> List[str]:
    return [r.revision for r in script.walk_revisions()]


@contextlib.contextmanager
def kept_versions(folder: Optional[str]) -> Iterator[Optional[str]]:
    """The copies devtool uploaded (root-owned, nobody else may write them, `complete` last), copied into a
    private folder of the agent's own, removed afterwards: an extra version location for Alembic."""
    if not folder:
        yield None
        return
    _check_trusted(folder, directory=True)
    if not os.path.isfile(os.path.join(folder, "complete")):
        raise fail(ErrorCode.COPIES_UNTRUSTED, "The copies devtool sent to %s are incomplete; nothing was "
                   "changed." % folder)
    home = private_dir()
    if home is None:
        raise fail(ErrorCode.COPIES_UNTRUSTED, "No private folder for the revision copies (/tmp/devtool-%d is "
                   "not the agent's alone); nothing was changed." % os.geteuid())
    versions = tempfile.mkdtemp(prefix="revisions-", dir=home)
    try:
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            source = os.path.join(folder, name)
            _check_trusted(source, directory=False)
            with open(source, "rb") as handle:
                content = handle.read()
            fd = os.open(os.path.join(versions, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        shutil.rmtree(folder, ignore_errors=True)  # done with it (devtool removes it too, as root)
        yield versions
    finally:
        shutil.rmtree(versions, ignore_errors=True)


def _check_trusted(path: str, *, directory: bool) -> None:
    if directory and not COPIES_FOLDER.match(path):
        raise fail(ErrorCode.COPIES_UNTRUSTED, "%s is not a folder devtool makes for revision copies." % path)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise fail(ErrorCode.COPIES_UNTRUSTED, "Cannot read the revision copies devtool sent (%s); nothing was "
                   "changed." % first_line(exc))
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    if not kind_ok or info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
        raise fail(ErrorCode.COPIES_UNTRUSTED, "Not using the revision copies in %s: somebody other than devtool "
                   "could have written %s; nothing was changed." % (os.path.dirname(path) if not directory
                                                                    else path, path))


def orphan_chain(checkout, merged, current: List[str]) -> list:
    """The revisions to downgrade, newest first: each current revision the checkout lacks, and its ancestors
    down to the first the checkout has. Each must be among the copies (`merged` = checkout + copies)."""
    found: Dict[str, object] = {}
    stack = orphans(checkout, current)
    while stack:
        revision_id = stack.pop()
        if revision_id in found:
            continue
        if merged is None or not has(merged, revision_id):
            raise fail(ErrorCode.NO_COPY, "No copy of revision %s to downgrade it with; nothing was changed."
                       % revision_id, current=current)
        found[revision_id] = merged.get_revision(revision_id)
        stack.extend(d for d in down_revisions(found[revision_id]) if not has(checkout, d))
    newest_first = []
    while found:  # a revision no remaining one stands on is the newest
        below = {d for r in found.values() for d in down_revisions(r)}
        for revision_id in sorted(r for r in found if r not in below):
            newest_first.append(found.pop(revision_id))
    return newest_first


def pending_after(checkout, merged, current: List[str], taken_back: set) -> List[PendingRevision]:
    """The checkout's revisions that are not applied once `taken_back` are downgraded, oldest first, each
    with its reviewed changes."""
    applied = set()
    stack = list(current)
    while stack:
        revision_id = stack.pop()
        if revision_id in applied:
            continue
        applied.add(revision_id)
        stack.extend(down_revisions(merged.get_revision(revision_id)))
    applied -= taken_back
    return [PendingRevision(id=r.revision, message=(r.doc or "").strip(), path=r.path, changes=review_file(r.path))
            for r in reversed(list(checkout.walk_revisions())) if r.revision not in applied]


def review_downgrades(session, chain: list) -> List[PendingRevision]:
    """Each downgrade's operations; dropping a table or column (or casting it) is flagged only when it holds
    data: what would be lost is counted and said."""
    reviewed = []
    for revision in chain:
        changes = review_file(revision.path, "downgrade")
        for change in changes:
            _judge_loss(session, change)
        reviewed.append(PendingRevision(id=revision.revision, message=(revision.doc or "").strip(),
                                        path=revision.path, changes=changes))
    return reviewed


def _judge_loss(session, change: Change) -> None:
    casts = change.op == "alter_column" and change.risk == Risk.DESTRUCTIVE
    if change.op not in ("drop_table", "drop_column") and not casts or not change.table:
        return
    column = change.column if change.op == "drop_column" else None
    try:
        rows = _count(session, change.table, column, change.bind or None)
    except Exception as exc:  # could not look: it stays flagged, and says why
        change.reason = "downgrade: %s (could not count its rows: %s)" % (change.reason, first_line(exc))
        return
    where = "%s.%s" % (change.table, column) if column else change.table
    if rows == 0:
        change.risk, change.reason = Risk.SAFE, "downgrade: %s is empty, nothing is lost" % where
        return
    many = "more than %d" % ROW_CAP if rows > ROW_CAP else "%d" % rows
    change.risk = Risk.DESTRUCTIVE
    change.reason = "downgrade: %s %s of %s lost" % (many, "value(s)" if column else "row(s)", where)


def _count(session, table: str, column: Optional[str], bind: Optional[str]) -> int:
    import sqlalchemy as sa

    rows = sa.select(sa.literal(1)).select_from(sa.table(table))
    if column:
        rows = rows.where(sa.column(column).is_not(None))
    query = sa.select(sa.func.count()).select_from(rows.limit(ROW_CAP + 1).subquery())
    with session.engine(bind).connect() as connection:
        return int(connection.execute(query).scalar())
