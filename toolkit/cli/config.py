"""Show each effective setting and where it came from: default, devtool.toml, [tool.devtool], DEVTOOL_*, command line.

Example: devtool config --json
"""

import typer


def given_options(ctx: typer.Context, fields: dict) -> dict:
    """{settings field: "command line" | "env VAR"} for the global options given on the command line or through
    their own environment variable (click knows which); options left at their default are not listed."""
    import os

    given = {}
    for param in ctx.command.params:
        # By name: typer may bring its own copy of click, whose ParameterSource is another enum than click's.
        source = getattr(ctx.get_parameter_source(param.name), "name", None)
        if param.name not in fields or source not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        if source == "COMMANDLINE":
            given[fields[param.name]] = "command line"
        else:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
            given[fields[param.name]] = "env " + next((n for n in names if os.environ.get(n)), " / ".join(names))
    return given


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    from rich.table import Table
    from rich.text import Text

    from toolkit.config import describe

    context = ctx.obj
    context.out.json_mode = json_output
    settings = context.settings
    report = describe(settings)
    if json_output:
        context.out.data(report)
        return
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
    context.out.show(table)
