"""Show each service's state and health, the backend container, and the database revision against head.

Example: devtool status --json
"""

import typer


def collect(context) -> dict:
    """Services from the engine; revisions from the agent when the backend runs."""
    from toolkit import migrations
    from toolkit.backend import resolve_service
    from toolkit.engine import NUMBER_LABEL, SERVICE_LABEL, health
    from toolkit.errors import DevtoolError

    containers = context.containers()
    services = []
    for name in context.project.services:
        mine = sorted((c for c in containers if c.labels.get(SERVICE_LABEL) == name),
                      key=lambda c: int(c.labels.get(NUMBER_LABEL, "0") or 0))
        services.append({"service": name, "state": mine[0].status if mine else "not created",
                         "health": health(mine[0]) if mine else None, "container": mine[0].name if mine else None})
    report = {"project": context.project.name, "backend": resolve_service(context), "services": services}
    try:
        report["migrations"] = migrations.status(context)
    except DevtoolError as exc:
        report["migrations"] = {"error": exc.message, "hint": exc.hint}
    return report


def command(ctx: typer.Context, json_output: bool = typer.Option(False, "--json", help="Print as JSON.")):
    from rich.table import Table

    context = ctx.obj
    context.out.json_mode = json_output
    report = collect(context)
    if json_output:
        context.out.data(report)
        return
    table = Table(title=f"Project {report['project']} (backend: {report['backend']})", title_justify="left")
    for column in ("Service", "State", "Health", "Container"):
        table.add_column(column)
    for service in report["services"]:
        table.add_row(service["service"], service["state"], service["health"] or "-", service["container"] or "-")
    context.out.show(table)
    info = report["migrations"]
    if "error" in info:
        context.out.warn(f"Migrations: {info['error']}")
        return
    heads = ", ".join(h["id"] for h in info["heads"]) or "none"
    current = ", ".join(info.get("current") or []) or "base (empty)"
    context.out.info(f"Database revision: {current}; head: {heads}")
    for revision in info.get("pending", []):
        context.out.warn(f"Pending: {revision['id']} {revision['message']}")
    if len(info["heads"]) > 1:
        context.out.warn("Multiple heads: merge with `devtool migrate --merge \"msg\"`.")
    elif not info.get("pending"):
        context.out.success("Database is at head.")
