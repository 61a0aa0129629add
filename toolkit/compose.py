"""The Docker Compose CLI (v2 plugin, else v1 with a notice), always called with argument lists."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import DevtoolError, ExitCode

if TYPE_CHECKING:
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


def project_args(directory: Path, files: list[Path], name: str | None, profiles: list[str],
                 command: tuple[str, ...] | None = None) -> list[str]:
    """compose and its global options for one project: the same files, directory, name and profiles every time."""
    args = [*(command or compose_command()[0]), "--project-directory", str(directory)]
    if name:
        args += ["-p", name]
    for path in files:
        args += ["-f", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    return args


def config(directory: Path, files: list[Path], name: str | None, profiles: list[str]) -> subprocess.CompletedProcess:
    """The project's model as compose resolves it: JSON from `compose config --format json` (v1 prints YAML, it has
    no --format). `docker compose` is tried first without the version probe (a process less on every cache miss
    of the model); any failure is retried through compose_command()."""
    args = ["config", "--format", "json"]
    if compose_command.cache_info().currsize == 0 and shutil.which("docker"):
        options = project_args(directory, files, name, profiles, command=("docker", "compose"))
        result = run_args(options + args)
        if result.returncode == 0:
            return result
    command, v1_notice = compose_command()
    return run_args(project_args(directory, files, name, profiles) + (["config"] if v1_notice else args))


def base_args(project: ComposeProject) -> list[str]:
    return project_args(project.directory, project.files, project.name, project.profiles)


def run_args(args: list[str], *, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=dict(os.environ), text=True, stdin=subprocess.DEVNULL, capture_output=capture)


def run(project: ComposeProject, args: list[str], *, capture: bool = True) -> subprocess.CompletedProcess:
    """Run a compose subcommand for this project; without capture its output goes straight to the terminal."""
    return run_args(base_args(project) + args, capture=capture)
