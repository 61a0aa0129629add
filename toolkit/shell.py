"""`devtool shell`: the command line that opens bash (else sh) in the backend container, or in SERVICE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.errors import DevtoolError, ExitCode
from toolkit.stack import service_container

if TYPE_CHECKING:
    from toolkit.context import Context

SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"


def shell_command(ctx: Context, service: str | None, *, tty: bool) -> list[str]:
    """`docker exec` for the service's container: the docker CLI owns the TTY (raw mode, resize) and honours
    DOCKER_HOST and contexts as devtool does."""
    if service and service not in ctx.project.services:
        inactive = ctx.project.not_active(service)
        raise DevtoolError(f"Service {service!r} is not active: {inactive}." if inactive else
                           f"Service {service!r} is not in the compose file "
                           f"(services: {', '.join(ctx.project.services)}).", exit_code=ExitCode.SERVICE_NOT_FOUND)
    container = ctx.target.backend() if service is None else service_container(ctx, service)
    return ["docker", "exec", "-it" if tty else "-i", container.id, "sh", "-c", SHELL]
