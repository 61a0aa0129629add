"""`devtool setup`: a fresh clone to a working, migrated stack in one command (idempotent); with `--from FILE`,
loaded with a teammate's data first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import migrations, snapshots, stack
from toolkit.doctor import Check, first_failure, run_checks
from toolkit.errors import DevtoolError, ExitCode
from toolkit.migrations import Confirm, OfferRestore, never, never_restore

if TYPE_CHECKING:
    from toolkit.context import Context


def _stop_at(check: Check, code: int = ExitCode.CHECKS_FAILED) -> DevtoolError:
    return DevtoolError(f"{check.name}: {check.detail}", hint=check.fix or None, exit_code=code)


def setup(ctx: Context, *, yes: bool = False, confirm: Confirm = never, snapshot: bool = True,
          data: Path | None = None, offer_restore: OfferRestore = never_restore) -> list[Check]:
    """Checks, then up, then (with `data`) the data from that snapshot file, then upgrade to head, then every
    check again; stops at the first problem. The file is checked before the database is touched."""
    failed = first_failure(run_checks(ctx, deep=False))
    if failed:
        raise _stop_at(failed)
    ctx.out.success(f"Docker, compose and the backend service ({ctx.project.name}) are in order.")
    stack.up(ctx)  # its failure, or the upgrade's, is reported as it is: it says what was and was not done
    ctx.out.success("Stack is up and healthy.")
    if data is not None:
        imported = snapshots.import_file(ctx, data)
        snapshots.restore(ctx, imported.name)
        ctx.out.success(f"Loaded {data.name} (snapshot {imported.name}, revision "
                        f"{', '.join(imported.revision) or 'none'}).")
    result = migrations.upgrade(ctx, yes=yes, confirm=confirm, snapshot=snapshot, offer_restore=offer_restore)
    if result.snapshot:
        ctx.out.info(f"Snapshot {result.snapshot['name']} taken before applying; `devtool restore --latest` brings "
                     f"the data back.")
    ctx.out.success(f"Database at head ({', '.join(result.current_after) or 'base'}); "
                    f"{len(result.applied)} revision(s) applied.")
    checks = run_checks(ctx)
    failed = first_failure(checks)
    if failed:
        raise _stop_at(failed)
    return checks
