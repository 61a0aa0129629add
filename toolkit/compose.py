"""The Docker Compose CLI (v2 plugin, else v1 with a notice), always called with argument lists."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from toolkit.errors import DevtoolError, ExitCode
from toolkit.project import ComposeProject


@functools.lru_cache(maxsize=1)
def compose_command() -> tuple[tuple[str, ...], str | None]:
    """(`docker compose` or `docker-compose`, a notice when falling back to v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ("docker", "compose"), None
    if shutil.which("docker-compose"):
        return ("docker-compose",), "Docker Compose v2 not found; using docker-compose (v1). Upgrade when you can."
    raise DevtoolError("Docker Compose is not installed.", exit_code=ExitCode.DOCKER_UNAVAILABLE,
                       hint="Install Compose v2 (the docker-compose-plugin package, or Docker Desktop).")


def base_args(project: ComposeProject) -> list[str]:
    args = [*compose_command()[0], "--project-directory", str(project.directory), "-p", project.name]
    for path in project.files:
        args += ["-f", str(path)]
    return args


def run(project: ComposeProject, args: list[str], *, capture: bool = True) -> subprocess.CompletedProcess:
    """Run a compose subcommand for this project; without capture its output goes straight to the terminal."""
    env = dict(os.environ)
    return subprocess.run(base_args(project) + args, env=env, text=True, stdin=subprocess.DEVNULL,
                          capture_output=capture)
