"""`devtool setup`: a fresh clone to a working, migrated stack in one command (idempotent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit import migrations, stack
from toolkit.doctor import Check, first_failure, run_checks
from toolkit.errors import DevtoolError, ExitCode
from toolkit.migrations import Confirm, never

if TYPE_CHECKING:
    from toolkit.context import Context


def _stop_at(check: Check, code: int = ExitCode.CHECKS_FAILED) -> DevtoolError:
    return DevtoolError(f"{check.name}: {check.detail}", hint=check.fix or None, exit_code=code)


def setup(ctx: Context, *, yes: bool = False, confirm: Confirm = never) -> list[Check]:
    """Checks, then up, then upgrade to head, then every check again; stops at the first problem."""
    failed = first_failure(run_checks(ctx, deep=False))
    if failed:
        raise _stop_at(failed)
    ctx.out.success(f"Docker, compose and the backend service ({ctx.project.name}) are in order.")
    try:
        stack.up(ctx)
        ctx.out.success("Stack is up and healthy.")
        result = migrations.upgrade(ctx, yes=yes, confirm=confirm)
    except DevtoolError as error:
        failed = first_failure(run_checks(ctx))
        if failed is not None and error.exit_code != ExitCode.NEEDS_CONFIRMATION:
            raise _stop_at(failed, error.exit_code) from None
        raise
    ctx.out.success(f"Database at head ({', '.join(result.current_after) or 'base'}); "
                    f"{len(result.applied)} revision(s) applied.")
    checks = run_checks(ctx)
    failed = first_failure(checks)
    if failed:
        raise _stop_at(failed)
    return checks
