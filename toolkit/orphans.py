"""A database at revisions this checkout does not have ("orphans": typically a feature branch's revisions,
after `git checkout main`): which revisions, their messages, where their files are, and the one error every
command gives for it. Costs nothing on the normal path: the agent names orphans while reading the revision,
and only then does devtool look at its kept copies and at git."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from toolkit import git, kept
from toolkit.agent.protocol import ErrorCode, StatusRequest, StatusResult
from toolkit.errors import DevtoolError, ExitCode
from toolkit.kept import RevisionCopy

if TYPE_CHECKING:
    from toolkit.context import Context

SYNC_HINT = "Run `devtool sync` to bring the database to this checkout's head"
NO_COPY = "no copy anywhere (devtool kept none, and no git branch or commit has it)"


@dataclass
class Orphan:
    id: str
    message: str  # "" when no copy says it
    where: str  # the git branch or commit that has the file, else devtool's kept copy
    copy: RevisionCopy | None = None  # what sync downgrades with: devtool's kept copy, else git's

    def line(self) -> str:
        return f"{self.id}  {self.message or '(message unknown)'} — {self.where}"

    def described(self) -> str:
        return f"{self.id} ({self.message or 'message unknown'}) — {self.where}"

    def as_json(self) -> dict:
        source = None if self.copy is None else "kept" if self.copy.where.startswith("kept copy") else "git"
        return {"id": self.id, "message": self.message, "where": self.where, "copy": source,
                "down": self.copy.down if self.copy else None}


@dataclass
class OrphanReport:
    current: list[str]  # the database's revisions
    orphans: list[Orphan]  # newest first; those without a copy included (copy None)
    target: list[str] = field(default_factory=list)  # the checkout's revisions the downgrade ends at

    @property
    def missing(self) -> list[Orphan]:
        return [o for o in self.orphans if o.copy is None]

    def names(self) -> str:
        return ", ".join(f"{o.id} ({o.message})" if o.message else o.id for o in self.orphans)

    def detail(self) -> str:
        return "\n".join("  " + o.line() for o in self.orphans)

    def as_json(self) -> dict:
        return {"current": self.current, "orphans": [o.as_json() for o in self.orphans], "target": self.target}


def trace(ctx: Context, status: StatusResult, *, locate: bool = True) -> OrphanReport | None:
    """Follow each orphan down to the checkout's revisions, through devtool's kept copies and git's history;
    None when the database has no orphans. Without `locate`, git is asked only about revisions devtool kept
    no copy of (the hook's quick line needs no branch names)."""
    if not status.orphans:
        return None
    known = set(status.known)
    directory = _git_directory(ctx, status.directory)
    report = OrphanReport(current=list(status.current or []), orphans=[])
    queue, seen = list(status.orphans), set()
    while queue:
        revision_id = queue.pop(0)
        if revision_id in seen:
            continue
        seen.add(revision_id)
        kept_copy = kept.newest(ctx.project, revision_id)
        git_copy = git.find_revision(directory, revision_id) if locate or kept_copy is None else None
        copy = kept_copy or git_copy
        where = git_copy.where if git_copy else f"{kept_copy.where} (in no git branch)" if kept_copy else NO_COPY
        report.orphans.append(Orphan(revision_id, copy.message if copy else "", where, copy))
        for down in copy.down if copy else []:
            if down not in known:
                queue.append(down)
            elif down not in report.target:
                report.target.append(down)
    return report


def _git_directory(ctx: Context, container_directory: str) -> Path:
    """Where to ask git: the migrations folder on the host when it is bind-mounted, else the project's."""
    host = Path(ctx.target.host_path(container_directory))
    return host if host.is_dir() else ctx.project.directory


def diagnose(ctx: Context) -> OrphanReport | None:
    """The database's orphans as the agent sees them now (one status request), traced."""
    return trace(ctx, ctx.target.agent().call(StatusRequest()))


def error(report: OrphanReport, unchanged: str, *, hint: str | None = None) -> DevtoolError:
    """The one error for a database at revisions the checkout lacks: which, where their files are, and that
    `devtool sync` is the way back. `unchanged` says what the command did not do."""
    one = len(report.orphans) == 1
    return DevtoolError(
        f"The database has {'a revision' if one else f'{len(report.orphans)} revisions'} applied that this checkout "
        f"does not have: {report.names()} (a git checkout removed {'its file' if one else 'their files'}); "
        f"{unchanged}.",
        hint=hint or f"{SYNC_HINT}.", exit_code=ExitCode.ORPHANED, detail=report.detail(),
        data={"code": ErrorCode.ORPHANED, **report.as_json()})


@contextlib.contextmanager
def explained(ctx: Context, unchanged: str, *, hint: str | None = None) -> Iterator[None]:
    """The agent stopped because the database is orphaned: say which revisions, and where their files are."""
    try:
        yield
    except DevtoolError as exc:
        if exc.data.get("code") != ErrorCode.ORPHANED:
            raise
        report = diagnose(ctx)
        if report is None:  # synced in between: the agent's own words stand
            raise
        raise error(report, unchanged, hint=hint) from None
