"""`devtool lint`: the revisions' operations against the database's lint rules (judged by the agent, which reads
the revision files where they run), as a report for people, JSON, or SARIF for code scanning."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import __version__
from toolkit.agent.protocol import Finding, LintRequest, LintResult, Severity
from toolkit.errors import ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


@dataclass
class LintReport:
    result: LintResult
    root: Path  # the project directory: SARIF paths are relative to it

    @property
    def findings(self) -> list[Finding]:
        return [dataclasses.replace(f, revision=r.id, path=r.host_path or r.path)
                for r in self.result.revisions for f in r.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.WARNING and f.allowed is None]

    @property
    def allowed(self) -> list[Finding]:
        return [f for f in self.findings if f.allowed is not None]

    @property
    def unchecked(self) -> bool:
        """Revisions were selected but the database has no rules: nothing was checked (never a pass)."""
        return bool(self.result.revisions) and not self.result.rules

    @property
    def exit_code(self) -> int:
        return int(ExitCode.LINT_FAILED) if self.errors or self.unchecked else 0

    def summary(self) -> str:
        revisions = len(self.result.revisions)
        if self.unchecked:
            return (f"No lint rules for {self.result.dialect} databases: {revisions} revision(s) were not checked.")
        counts = [f"{len(self.errors)} error(s)", f"{len(self.warnings)} warning(s)"]
        if self.allowed:
            counts.append(f"{len(self.allowed)} allowed")
        return f"{', '.join(counts)} in {revisions} revision(s) ({self.result.selection})."

    def as_json(self) -> dict:
        return {"ok": self.exit_code == 0, "exit_code": self.exit_code, "dialect": self.result.dialect,
                "server_version": self.result.server_version, "selection": self.result.selection,
                "current": self.result.current, "summary": self.summary(),
                "revisions": [{"id": r.id, "message": r.message, "path": r.host_path or r.path,
                               "findings": [dataclasses.asdict(f) for f in r.findings]}
                              for r in self.result.revisions],
                "findings": [dataclasses.asdict(f) for f in self.findings]}

    def sarif(self) -> dict:
        """SARIF 2.1.0, as GitHub code scanning (and other CI dashboards) read it."""
        rules = self.result.rules
        index = {r.id: i for i, r in enumerate(rules)}
        results = []
        for finding in self.findings:
            result = {"ruleId": finding.rule, "level": "error" if finding.severity == Severity.ERROR else "warning",
                      "message": {"text": f"{finding.message}. {finding.safe}"},
                      "locations": [{"physicalLocation": {
                          "artifactLocation": {"uri": self._uri(finding.path), "uriBaseId": "%SRCROOT%"},
                          "region": {"startLine": finding.line or 1}}}]}
            if finding.rule in index:
                result["ruleIndex"] = index[finding.rule]
            if finding.allowed is not None:
                result["suppressions"] = [{"kind": "inSource", "justification": finding.allowed}]
            results.append(result)
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "devtool", "version": __version__,
                                "rules": [{"id": r.id, "name": r.id, "shortDescription": {"text": r.title},
                                           "fullDescription": {"text": r.why},
                                           "help": {"text": f"{r.safe} (devtool's docs/lint.md#{r.id})"},
                                           "defaultConfiguration": {"level": r.severity}} for r in rules]}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": self.root.resolve().as_uri() + "/"}},
            "results": results}]}

    def _uri(self, path: str | None) -> str:
        if not path:
            return ""
        try:
            return Path(os.path.relpath(path, self.root.resolve())).as_posix()
        except ValueError:
            return Path(path).as_posix()


def lint(ctx: Context, revisions: list[str] | None = None, *, all: bool = False,
         since: str | None = None) -> LintReport:
    """Lint the given revisions, the whole history, those after `since`, or by default the pending ones."""
    ctx.services.backend  # a wrong --service fails before anything starts
    with ctx.out.status("Linting revisions…"):
        result = ctx.target.agent().call(LintRequest(revisions=list(revisions or []), all=all, since=since))
    for revision in result.revisions:
        revision.host_path = ctx.target.host_path(revision.path)
    return LintReport(result, ctx.project.directory)
