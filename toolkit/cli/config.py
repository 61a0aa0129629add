"""Show each effective setting and where it came from: default, devtool.toml, [tool.devtool], DEVTOOL_*, command line;
and the database dialect the backend's DATABASE_URL names.

Example: devtool config --json
"""

import typer


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    from toolkit.config import describe, dialect_entry

    out = ctx.obj.out
    out.json_mode = json_output
    settings = ctx.obj.settings
    report = {**describe(settings), "dialect": dialect_entry(ctx.obj)}
    out.emit(report, lambda: render(out, settings, report))


def render(out, settings, report: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    where = f"configuration file: {settings.config_file}" if settings.config_file else "no configuration file"
    table = Table(title=Text(f"devtool settings ({where})"), title_justify="left")
    for column in ("Key", "Value", "Source"):
        table.add_column(column)
    for key, entry in report.items():
        value = entry["value"]
        if value is None or value == []:
            shown = "(auto)"
        elif isinstance(value, list):
            shown = ", ".join(value)
        else:
            shown = str(value)
        table.add_row(key, Text(shown), Text(entry["source"]))  # Text: `[tool.devtool]` is not markup
    out.show(table)
