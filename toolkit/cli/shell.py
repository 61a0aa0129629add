"""Open a shell (bash, else sh) in the backend container, or in SERVICE.

Example: devtool shell db
"""

import os
import sys
from typing import Optional

import typer

from toolkit.errors import DevtoolError, ExitCode

SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"


def command(ctx: typer.Context, service: Optional[str] = typer.Argument(None, help="Service (default: the backend).")):
    from toolkit.backend import resolve_service
    from toolkit.stack import service_container

    context = ctx.obj
    if service and service not in context.project.services:
        raise DevtoolError(f"Service {service!r} is not in the compose file "
                           f"(services: {', '.join(context.project.services)}).", exit_code=ExitCode.SERVICE_NOT_FOUND)
    container = service_container(context, service or resolve_service(context))
    flags = "-it" if sys.stdin.isatty() and sys.stdout.isatty() else "-i"
    sys.stdout.flush()
    # The docker CLI owns the TTY (raw mode, resize); it honours DOCKER_HOST and contexts like we do.
    os.execvp("docker", ["docker", "exec", flags, container.id, "sh", "-c", SHELL])
