"""`devtool down`: stop the stack. With --volumes the database volume goes, and with it every snapshot copy its
server held: devtool names them first (and on a terminal asks), and forgets them after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from toolkit import snapshots, stack
from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
    from toolkit.context import Context
    from toolkit.snapshots import Snapshot


def down(ctx: Context, *, volumes: bool = False, confirm: Callable[[], bool] = lambda: True) -> list[Snapshot]:
    """The snapshots deleted with the volumes (none without `volumes`). `confirm` is asked when there are some."""
    ctx.containers()  # never another checkout's stack (refused before anything is asked or stopped)
    lost = snapshots.in_volumes(ctx) if volumes else []
    if lost:
        ctx.out.warn(f"--volumes deletes the database volume, and with it {len(lost)} snapshot(s) kept inside the "
                     f"database server: {', '.join(s.name for s in lost)} (`devtool snapshot export NAME FILE` keeps "
                     f"one as a file).")
        if not confirm():
            raise DevtoolError("Not confirmed: nothing was stopped or deleted.", exit_code=ExitCode.NEEDS_CONFIRMATION,
                               hint="Export the snapshots you need, then run `devtool down --volumes` again.")
    stack.down(ctx, volumes=volumes)
    for snapshot in lost:
        snapshots.forget(ctx, snapshot)
    return lost
