"""The compose target: the backend service's running container (the stack is started when needed), devtool's
agent in it, and the host paths behind its bind mounts. Resolved once per command and kept."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from toolkit import stack
from toolkit.engine import SIDECAR_LABEL, Sidecar, sidecar
from toolkit.masking import masker
from toolkit.protocol import Agent


class ComposeTarget:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._backend: Any = None

    def backend(self, *, start: bool = True) -> Any:
        """The backend's running container; with `start`, the stack is brought up first if needed."""
        if self._backend is None:
            self._backend = stack.service_container(self.ctx, self.ctx.services.backend, start=start)
            masker.learn_environment(self._backend.attrs.get("Config", {}).get("Env") or [])
        return self._backend

    def agent(self, *, start: bool = True) -> Agent:
        return Agent(self.ctx, self.backend(start=start), on_lost=lambda c: stack.explain_stopped(self.ctx, c))

    def host_path(self, path: str) -> str:
        """Where a file the backend container wrote lies on the host, through its bind mounts."""
        best = None
        for mount in self.backend().attrs.get("Mounts") or []:
            target = mount.get("Destination", "").rstrip("/")
            if mount.get("Type") == "bind" and (path == target or path.startswith(target + "/")):
                if best is None or len(target) > len(best[0]):
                    best = (target, mount["Source"])
        if best is None:
            return path
        return best[1].rstrip("/") + path[len(best[0]):]

    @contextlib.contextmanager
    def sidecar(self, image: str, environment: dict[str, str]) -> Iterator[Sidecar]:
        """A throw-away container of `image` that reaches exactly what the backend reaches (it shares the
        backend container's network: a database outside the project included); removed afterwards."""
        with sidecar(self.ctx.client, image, beside=self.backend().id, environment=environment,
                     labels={SIDECAR_LABEL: self.ctx.project.name}) as container:
            yield container
