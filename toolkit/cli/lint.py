"""Check revisions against the migration-safety rules (long locks, table rewrites, failing on existing rows,
breaking the running code): by default the revisions not applied yet. Each rule's why and safe way:
docs/lint.md. Silence one rule for a revision with a comment in it: `# devtool: allow <rule-id> <reason>`.

Example: devtool lint --format sarif > devtool-lint.sarif
"""

from typing import List, Optional

import typer

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}
FORMATS = ("table", "json", "sarif")


def command(
    ctx: typer.Context,
    revisions: Optional[List[str]] = typer.Argument(None, help="Revisions (ids or unique prefixes); default: "
                                                               "the ones not applied yet."),
    all_revisions: bool = typer.Option(False, "--all", help="Lint the whole history."),
    since: Optional[str] = typer.Option(None, "--since", metavar="REVISION",
                                        help="Lint the revisions after REVISION (e.g. the head of main)."),
    output_format: str = typer.Option("table", "--format", metavar="FORMAT", help="table, json or sarif."),
    json_output: bool = typer.Option(False, "--json", help="Same as --format json."),
):
    from toolkit.errors import DevtoolError, ExitCode
    from toolkit.lint import lint

    out = ctx.obj.out
    output_format = "json" if json_output else output_format.lower()
    if output_format not in FORMATS:
        raise DevtoolError(f"Unknown format {output_format!r}.", hint=f"Use one of: {', '.join(FORMATS)}.",
                           exit_code=ExitCode.USAGE)
    if sum(bool(x) for x in (revisions, all_revisions, since)) > 1:
        raise DevtoolError("Give revisions, --all or --since, not several.", exit_code=ExitCode.USAGE,
                           hint="`devtool lint` alone lints the revisions not applied yet.")
    out.json_mode = output_format != "table"
    report = lint(ctx.obj, revisions, all=all_revisions, since=since)
    if output_format == "sarif":
        out.data(report.sarif())
    else:
        out.emit(report.as_json(), lambda: render(out, report))
    if report.exit_code:
        if output_format != "table":
            out.error(report.summary())
        raise typer.Exit(report.exit_code)


def render(out, report) -> None:
    result = report.result
    if not result.revisions:
        at = ", ".join(result.current or []) or "base"
        out.success(f"Nothing to lint: no revision is pending (database at {at}). `devtool lint --all` lints "
                    f"the whole history.")
        return
    show_findings(out, report.findings, "Lint")
    summary = report.summary()
    if report.exit_code:
        out.error(summary, hint="Rewrite the revision the safe way shown above, or, where it is safe here, add "
                                "`# devtool: allow <rule-id> <reason>` to it.")
    elif report.warnings:
        out.warn(summary)
    else:
        out.success(summary)


def show_findings(out, findings, title: str) -> None:
    """A table of lint findings, then each rule's why and safe way once."""
    from toolkit.output import Column, styled

    if not findings:
        return
    rows, rules = [], {}
    for finding in findings:
        severity = styled(finding.severity, SEVERITY_STYLE.get(finding.severity, ""))
        message = finding.message
        if finding.allowed is not None:
            severity = styled("allowed", "dim")
            message += f" (allowed: {finding.allowed})"
        else:
            rules.setdefault(finding.rule, finding)
        rows.append([finding.revision or "", str(finding.line or ""), finding.rule, severity, message])
    out.table(title, [Column("Revision", identifier=True), Column("Line", identifier=True),
                      Column("Rule", identifier=True), Column("Severity", identifier=True), Column("Finding")], rows)
    why = []
    for rule, finding in rules.items():
        why += [[styled(rule, "bold"), finding.why], ["", styled(f"Safe: {finding.safe}", "green")]]
    if why:
        out.table(None, [Column("", identifier=True), Column("")], why, bare=True)
