"""The review table of flagged changes, and the confirmation that follows it (migrate, setup, sync); the table of
a revision's changes. Long lists lead with a summary (counts per kind and risk); `--full` or -v lists each change,
`--json` gives them all."""

from collections import Counter

RISK_STYLE = {"safe": "green", "risky": "yellow", "rename": "magenta", "destructive": "bold red"}
RISK_ORDER = ("destructive", "rename", "risky", "safe")
SUMMARY_AFTER = 20  # more changes than this: a summary first, each change on request
FULL_OPTION_HELP = "List every change, however many (otherwise more than 20 are summed up)."


def what(change) -> str:
    """The Change cell: the operation and the index, constraint or type it names."""
    return f"{change.label} {change.name}" if change.name else change.label


def show_review(out, result) -> None:
    """The flagged changes, then the lint findings (an error among them needs the same approval)."""
    from toolkit.cli.lint import show_findings

    if result.review:
        show_changes(out, "Needs review", result.review, revision=True)
    show_findings(out, result.findings, "Lint (docs/lint.md)")


def show_changes(out, title: str, changes, *, revision: bool = False) -> None:
    """The changes, one per row (Revision, Database, Change, Table, Column, Risk, Why); many: a summary instead."""
    from toolkit.output import Column, styled

    if len(changes) > SUMMARY_AFTER and not (out.full or out.verbose):
        _summary(out, title, changes)
        return
    several = any(change.bind is not None for change in changes)  # a multi-database revision: name each one's
    columns = [Column("Revision", identifier=True)] if revision else []
    columns += [Column("Database", identifier=True)] if several else []
    columns += [Column("Change"), Column("Table", identifier=True), Column("Column", identifier=True),
                Column("Risk", identifier=True), Column("Why")]
    rows = [([change.revision or ""] if revision else []) + ([database_label(change.bind)] if several else [])
            + [what(change), str(change.table or ""), str(change.column or ""),
               styled(change.risk, RISK_STYLE[change.risk]), change.reason]
            for change in changes]
    out.table(title, columns, rows)


def _summary(out, title: str, changes) -> None:
    from toolkit.output import Column, styled

    counts = Counter((change.risk, change.label) for change in changes)
    tables: dict = {}
    for change in changes:
        where = f" ({database_label(change.bind)})" if change.bind is not None and change.table else ""
        tables.setdefault((change.risk, change.label), []).append(str(change.table or "") + where)
    rows = []
    for (risk, label), count in sorted(counts.items(), key=lambda item: (RISK_ORDER.index(item[0][0]), -item[1])):
        names = sorted(set(filter(None, tables[(risk, label)])))
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        rows.append([label, styled(risk, RISK_STYLE[risk]), str(count), shown])
    by_risk = Counter(change.risk for change in changes)
    out.table(f"{title}: {len(changes)} changes ("
              + ", ".join(f"{by_risk[risk]} {risk}" for risk in RISK_ORDER if by_risk[risk]) + ")",
              [Column("Change"), Column("Risk", identifier=True), Column("Count"), Column("Tables")], rows)
    out.info(f"{len(changes)} changes, summed up: `--full` (or -v) lists each one, `--json` gives them all.")


def database_label(bind) -> str:
    """Where a change of a multi-database revision runs: the main database, or a bind's."""
    return f"bind {bind}" if bind else "main"


def confirming(out, question: str):
    """A confirm callback for the core: show the review, then ask (only a person at a terminal is asked)."""
    def confirm(result) -> bool:
        show_review(out, result)
        return out.confirm(question)

    return confirm
