"""Open a shell (bash, else sh) in the backend container, or in SERVICE.

Example: devtool shell db
"""

import os
import sys
from typing import Optional

import typer


def command(ctx: typer.Context, service: Optional[str] = typer.Argument(None, help="Service (default: the backend).")):
    from toolkit.shell import shell_command

    argv = shell_command(ctx.obj, service, tty=sys.stdin.isatty() and sys.stdout.isatty())
    sys.stdout.flush()
    os.execvp(argv[0], argv)
