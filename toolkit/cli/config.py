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
    from toolkit.output import Column

    where = f"configuration file: {settings.config_file}" if settings.config_file else "no configuration file"
    rows = []
    for key, entry in report.items():
        value = entry["value"]
        if value is None or value == []:
            shown = "(auto)"
        elif isinstance(value, list):
            shown = ", ".join(value)
        else:
            shown = str(value)
        rows.append([key, shown, entry["source"]])
    out.table(f"devtool settings ({where})", [Column("Key", identifier=True), Column("Value", identifier=True),
                                               Column("Source")], rows)
