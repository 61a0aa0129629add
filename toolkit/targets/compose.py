"""The compose target: the backend service's running container (the stack is brought up to date when needed),
devtool's agent in it, and its files on the host (bind mounts, or copies through the engine when the source is
baked into the image: targets/source.py). Resolved once per command and kept."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from toolkit import stack
from toolkit.engine import SIDECAR_LABEL, Sidecar, fetch_file, inside, put_private, sidecar, service_containers
from toolkit.masking import masker
from toolkit.protocol import Agent
from toolkit.targets.source import SourceFiles


class ComposeTarget:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._backend: Any = None
        self._source: SourceFiles | None = None

    def backend(self, *, start: bool = True) -> Any:
        """The backend's running container; with `start`, the stack is brought up (to date) first."""
        if self._backend is None:
            self._backend = stack.service_container(self.ctx, self.ctx.services.backend, start=start)
            masker.learn_environment(self._backend.attrs.get("Config", {}).get("Env") or [])
        return self._backend

    def source(self, *, start: bool = True) -> SourceFiles:
        """The backend's migrations folder on the host and in the container."""
        if self._source is None:
            self._source = SourceFiles(self.ctx, self.backend(start=start))
        return self._source

    def agent(self, *, start: bool = True) -> Agent:
        return Agent(self.ctx, self.backend(start=start), source=self.source(start=start),
                     on_lost=lambda c, wait: stack.explain_stopped(self.ctx, c, wait=wait),
                     host_path=lambda path: self.host_path(path) or path)

    def host_path(self, path: str) -> str | None:
        """Where a file the backend container wrote lies on the host (None: in the container only)."""
        return self.source().host_path(path)

    @contextlib.contextmanager
    def sidecar(self, image: str, environment: dict[str, str]) -> Iterator[Sidecar]:
        """A throw-away container of `image` that reaches exactly what the backend reaches (it shares the
        backend container's network: a database outside the project included); removed afterwards."""
        with sidecar(self.ctx.client, image, beside=self.backend().id, environment=environment,
                     labels={SIDECAR_LABEL: self.ctx.project.name}) as container:
            yield container

    @contextlib.contextmanager
    def in_service(self, service: str, environment: dict[str, str]) -> Iterator[Sidecar | None]:
        """The running container of the project's `service` (the database's own, with its own tools), used like a
        sidecar; None when it does not run. Files devtool puts there go afterwards."""
        running = [c for c in service_containers(self.ctx.containers(), service) if c.status == "running"]
        if not running:
            yield None
            return
        with inside(self.ctx.client, running[0].id, environment) as tools:
            yield tools

    def fetch(self, path: str, into: Any) -> None:
        """Copy a file the agent wrote in the backend container to `into`."""
        fetch_file(self.ctx.client, self.backend().id, path, into)

    def send(self, file: Any, name: str) -> str:
        """Copy a host file into a new folder of the backend container's /tmp that only root may write (readable
        by the container's user); its path there."""
        return put_private(self.ctx.client, self.backend().id, file, name, mode=0o755) + "/" + name

    def discard(self, folder: str) -> None:
        """Remove a private folder devtool made in the backend container's /tmp."""
        from toolkit.engine import exec_stream

        if not folder.startswith("/tmp/devtool-") or "/" in folder[len("/tmp/"):] or ".." in folder:
            raise ValueError(f"not a devtool folder: {folder}")
        exec_stream(self.ctx.client, self.backend().id, ["rm", "-rf", "--", folder], on_output=lambda o, e: None)
