"""The review table of flagged changes, and the confirmation that follows it (migrate, setup, sync)."""

RISK_STYLE = {"safe": "green", "risky": "yellow", "rename": "magenta", "destructive": "bold red"}


def show_review(out, result) -> None:
    from rich.table import Table

    table = Table(title="Needs review", title_justify="left")
    for column in ("Revision", "Change", "Table", "Column", "Why"):
        table.add_column(column)
    for change in result.review:
        table.add_row(change.revision or "", change.label, str(change.table or ""), str(change.column or ""),
                      f"[{RISK_STYLE[change.risk]}]{change.risk}[/]: {change.reason}")
    out.show(table)


def confirming(out, question: str):
    """A confirm callback for the core: show the review, then ask (only a person at a terminal is asked)."""
    def confirm(result) -> bool:
        show_review(out, result)
        return out.confirm(question)

    return confirm
