"""devtool's migration commands as plain functions: migrate, upgrade, status. The CLI only renders results."""

from __future__ import annotations

from typing import Any, Callable

from toolkit.backend import backend_container, resolve_service, run_agent
from toolkit.context import Context
from toolkit.errors import DevtoolError, ExitCode

MAX_MESSAGE_LENGTH = 500

AGENT_ERRORS = {
    "no_migrations": (ExitCode.NO_MIGRATIONS, "Create it with `devtool db init`, then `devtool migrate \"initial\"`."),
    "no_flask_migrate": (ExitCode.CONFIG, "Initialise Flask-Migrate in the app: `migrate.init_app(app, db)`."),
    "models_not_imported": (ExitCode.MODELS_NOT_IMPORTED,
                            "Add the import lines above to init_app, or run again with --fix-imports."),
    "multiple_heads": (ExitCode.MULTIPLE_HEADS,
                       "Merge them: `devtool migrate --merge \"MESSAGE\"` or `devtool db merge heads -m \"merge\"`."),
    "app_not_loaded": (ExitCode.MIGRATION_FAILED, "Check FLASK_APP and that the app imports; `devtool -v` shows more."),
    "generate_failed": (ExitCode.MIGRATION_FAILED, "Fix the cause above, then run `devtool migrate` again."),
    "upgrade_failed": (ExitCode.MIGRATION_FAILED,
                       "Nothing of the failing revision was applied. Fix it (the file is kept), then `devtool db upgrade`."),
    "agent_failed": (ExitCode.MIGRATION_FAILED, "Run again with -v to see the container's output."),
}


def agent(ctx: Context, container: Any, request: dict) -> dict:
    """Run an agent action; turn its failures into DevtoolError with the matching exit code."""
    result = run_agent(ctx, container, request)
    if result.get("ok"):
        return result
    code, hint = AGENT_ERRORS.get(result.get("code"), (ExitCode.MIGRATION_FAILED, None))
    raise DevtoolError(result.get("message", "The migration failed."), hint=hint, exit_code=code,
                       detail=_error_detail(result), data=result)


def _error_detail(result: dict) -> str | None:
    if result.get("code") == "models_not_imported":
        return "\n".join(f"  {m['class']} ({m['module']}, table {m['table']}): add  {m['import_line']}"
                         for m in result["models"])
    if result.get("code") == "multiple_heads":
        return "\n".join(f"  {h['id']}  {h['message']}" for h in result["heads"])
    if result.get("error") and result.get("error") != result.get("message"):
        return "Database error:\n  " + result["error"].replace("\n", "\n  ")
    return None


def validate_message(message: str) -> str:
    if not message or not message.strip():
        raise DevtoolError("The migration message is empty.", hint='Describe the change: devtool migrate "add posts".',
                           exit_code=ExitCode.USAGE)
    if len(message) > MAX_MESSAGE_LENGTH:
        raise DevtoolError(f"The migration message is {len(message)} characters long (at most {MAX_MESSAGE_LENGTH}).",
                           hint="Keep it to one line; put details in the revision file's docstring.",
                           exit_code=ExitCode.USAGE)
    return message


def migrate(
    ctx: Context,
    message: str,
    *,
    upgrade: bool = True,
    yes: bool = False,
    fix_imports: bool = False,
    merge: bool = False,
    confirm: Callable[[dict], bool] | None = None,
) -> dict:
    """Generate a revision from the models and apply it; flagged revisions need --yes or a confirmation."""
    from toolkit import stack

    validate_message(message)
    resolve_service(ctx)  # fail on a wrong --service before starting anything
    stack.up(ctx, settle=False)
    container = backend_container(ctx)
    request = {"action": "migrate", "message": message, "upgrade": upgrade, "fix_imports": fix_imports,
               "merge": merge}
    with ctx.out.status("Generating the revision…"):
        result = agent(ctx, container, request)
    if result["status"] == "behind_needs_confirmation":
        _confirm_or_stop(ctx, container, result, yes, confirm, generated=False)
        upgrade_to_head(ctx, container, result, yes=True)
        with ctx.out.status("Generating the revision…"):
            result = dict(agent(ctx, container, request), upgraded_first=result["pending"])
    if result["status"] == "needs_confirmation":
        _confirm_or_stop(ctx, container, result, yes, confirm, generated=True)
        applied = upgrade_to_head(ctx, container, result, yes=True)
        result.update(status="applied", applied=applied["applied"], current_after=applied["current_after"],
                      snapshot=applied.get("snapshot"))
    _add_host_paths(container, result)
    return result


def _add_host_paths(container: Any, result: dict) -> None:
    """Paths the user can open: where the container's files lie on the host."""
    from toolkit.backend import host_path

    if result.get("revision"):
        result["revision"]["host_path"] = host_path(container, result["revision"]["path"])
    for model in result.get("fixed_imports", []):
        model["fixed_in"] = host_path(container, model["fixed_in"])


def _confirm_or_stop(ctx: Context, container: Any, result: dict, yes: bool,
                     confirm: Callable[[dict], bool] | None, *, generated: bool) -> None:
    if yes or (confirm is not None and confirm(result)):
        return
    if generated:
        _add_host_paths(container, result)
    kept = f" The revision file is kept for editing: {result['revision']['host_path']}." if generated else ""
    raise DevtoolError(
        "The migration needs review: it drops, changes or probably renames data; the database was not changed." + kept,
        hint="Review the changes above, edit the revision if needed, then run again with --yes.",
        exit_code=ExitCode.NEEDS_CONFIRMATION, data=result)


def upgrade_to_head(ctx: Context, container: Any, reviewed: dict, *, yes: bool) -> dict:
    """Apply pending revisions; take a snapshot first when any of them is destructive or a probable rename."""
    from toolkit import snapshots

    snapshot = None
    if any(c["risk"] in ("destructive", "rename") for c in reviewed.get("review", [])):
        snapshot = snapshots.take(ctx, reason="before migration", database=reviewed["database"],
                                  revision=reviewed.get("current_before") or reviewed.get("current_after"))
    with ctx.out.status("Applying migrations…"):
        result = agent(ctx, container, {"action": "upgrade", "yes": yes})
    result["snapshot"] = snapshot
    return result


def upgrade(ctx: Context, *, yes: bool = False, confirm: Callable[[dict], bool] | None = None) -> dict:
    """Bring the database to head (used by `devtool setup`), with the same review as migrate."""
    from toolkit import stack

    stack.up(ctx, settle=False)
    container = backend_container(ctx)
    with ctx.out.status("Checking pending migrations…"):
        result = agent(ctx, container, {"action": "upgrade", "yes": False})
    if result["status"] == "needs_confirmation":
        _confirm_or_stop(ctx, container, result, yes, confirm, generated=False)
        result = upgrade_to_head(ctx, container, result, yes=True)
    return result


def status(ctx: Context, *, models: bool = False, model_changes: bool = False, start: bool = False) -> dict:
    container = backend_container(ctx, start=start)
    return agent(ctx, container, {"action": "status", "models": models, "model_changes": model_changes})
