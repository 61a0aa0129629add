"""The backend's migrations folder on both sides: in its container and on the host.

With a bind mount the host sees what the container writes. When the source is baked into the image (`COPY .
/app`, no volume) devtool copies through the engine (put_archive / get_archive, never the local filesystem, so a
remote engine works the same): before each command, the host's migrations folder into the container (the host's
files are the truth: a container recreated from an older image gets them back), and after a command that writes
revision files, every new or changed file back into the host's folder. Where the host folder cannot be told,
commands that would write a revision refuse before anything is written.
"""

from __future__ import annotations

import functools
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import dockerfile
from toolkit.agent.protocol import WRITING_SUBCOMMANDS, FlaskRequest, MigrateRequest, Request, SyncRequest
from toolkit.errors import DevtoolError, ExitCode
from toolkit.services import MIGRATION_GLOBS

SKIPPED = ("__pycache__",)


@dataclass
class MigrationsFolder:
    container: str | None  # in the container (None when shared: the app's own setting decides)
    host: Path | None  # on the host (None when shared: the bind mounts map each path)
    shared: bool  # a bind mount: the host sees the container's writes directly
    how: str  # how devtool knows, for doctor and messages
    problem: str | None = None  # why the host folder cannot be told


def writes_revisions(request: Request) -> bool:
    if isinstance(request, MigrateRequest) or (isinstance(request, SyncRequest) and request.merge):
        return True
    return isinstance(request, FlaskRequest) and request.args[:1] == ["db"] and \
        request.args[1:2] != [] and request.args[1] in WRITING_SUBCOMMANDS  # devtool db puts it first


class SourceFiles:
    """The backend container's files as the host sees them: one per command, for the backend container."""

    def __init__(self, ctx: Any, container: Any) -> None:
        self.ctx, self.container = ctx, container
        self.pushed = False

    # ---- where things are

    def mounts(self) -> list[tuple[str, Path]]:
        """(path in the container, host path) of each bind mount, longest container path first."""
        found = [(m.get("Destination", "").rstrip("/") or "/", Path(m["Source"]))
                 for m in self.container.attrs.get("Mounts") or [] if m.get("Type") == "bind" and m.get("Source")]
        return sorted(found, key=lambda m: len(m[0]), reverse=True)

    def through_mounts(self, path: str) -> Path | None:
        for target, source in self.mounts():
            if path == target or path.startswith(target.rstrip("/") + "/"):
                rest = path[len(target):].lstrip("/")
                return source / rest if rest else source
        return None

    @functools.cached_property
    def workdir(self) -> str:
        return self.container.attrs.get("Config", {}).get("WorkingDir") or "/"

    @functools.cached_property
    def context(self) -> Path | None:
        return self.ctx.project.build_context(self.ctx.services.backend)

    @functools.cached_property
    def copies(self) -> list[dockerfile.Copy] | str:
        """The folders the Dockerfile copies from the build context into the image, or why they are unknown."""
        build = self.ctx.project.build(self.ctx.services.backend)
        if self.context is None:
            return "the service has no build context on this machine (no `build:`)"
        text = build.get("dockerfile_inline")
        if text is None:
            path = Path(build.get("dockerfile") or "Dockerfile")
            path = path if path.is_absolute() else self.context / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return f"its Dockerfile cannot be read ({exc})"
        return dockerfile.context_copies(text, build.get("target"))

    @functools.cached_property
    def folder(self) -> MigrationsFolder:
        configured = self.ctx.settings.migrations_dir
        if configured:
            inside = posixpath.normpath(posixpath.join(self.workdir, configured))
            host = self.through_mounts(inside)
            if host is not None:
                return MigrationsFolder(None, None, True, f"bind mount {host} -> {inside}")
            copies = self.copies if isinstance(self.copies, list) else []
            host = (dockerfile.context_path(inside, self.context, copies) if self.context else None) \
                or (self.context or self.ctx.project.directory) / configured
            return MigrationsFolder(inside, host, False, f"migrations_dir = {configured!r}")
        if self.through_mounts(self.workdir) is not None or any(
                any(source.glob(pattern)) for _, source in self.mounts() if source.is_dir()
                for pattern in MIGRATION_GLOBS):
            return MigrationsFolder(None, None, True, "bind mount")
        return self._baked()

    def _baked(self) -> MigrationsFolder:
        """No bind mount holds the source: the Dockerfile says where the build context's folder went."""
        def unknown(problem: str) -> MigrationsFolder:
            return MigrationsFolder(None, None, False, "", problem)

        if isinstance(self.copies, str):
            return unknown(f"it is not bind-mounted and {self.copies}")
        candidates = sorted({env.parent for pattern in MIGRATION_GLOBS for env in self.context.glob(pattern)})
        placed = [(host, dockerfile.image_path(host, self.context, self.copies)) for host in candidates]
        known = [(host, inside) for host, inside in placed if inside]
        if len(known) > 1:  # the app's default folder wins, as Flask-Migrate's would
            known = [k for k in known if k[1] == posixpath.join(self.workdir, "migrations")] or known
        if len(known) == 1:
            host, inside = known[0]
            return MigrationsFolder(inside, host, False, f"copied into the image by the Dockerfile ({inside})")
        if known:
            return unknown("it is not bind-mounted and the build context has several migrations folders ("
                           + ", ".join(str(h) for h, _ in known) + ")")
        if candidates:
            return unknown(f"it is not bind-mounted and the Dockerfile does not show where {candidates[0]} "
                           "goes in the image")
        inside = posixpath.join(self.workdir, "migrations")  # `db init` will make it here
        host = dockerfile.context_path(inside, self.context, self.copies)
        if host is not None:
            return MigrationsFolder(inside, host, False, f"copied into the image by the Dockerfile ({inside})")
        return unknown(f"it is not bind-mounted and the build context {self.context} has no migrations folder "
                       "the Dockerfile copies")

    def host_path(self, path: str) -> str | None:
        """Where a file of the container lies (or is copied to) on the host; None when it is in the container only."""
        through = self.through_mounts(path)
        if through is not None:
            return str(through)
        folder = self.folder
        if folder.container and folder.host and (path == folder.container or
                                                 path.startswith(folder.container.rstrip("/") + "/")):
            return str(folder.host / path[len(folder.container):].lstrip("/"))
        if self.context and isinstance(self.copies, list):
            found = dockerfile.context_path(path, self.context, self.copies)
            return str(found) if found else None
        return None

    # ---- copying through the engine

    def before(self, request: Request) -> None:
        """The host's migrations into the container; refuse a write whose result could not reach the host."""
        folder = self.folder
        if folder.shared:
            return
        if folder.host is None:
            if writes_revisions(request):
                raise DevtoolError(
                    f"Cannot tell where the migrations folder of service {self.ctx.services.backend} is on the host: "
                    f"{folder.problem}. Nothing was written.", exit_code=ExitCode.CONFIG,
                    hint="Set migrations_dir in [tool.devtool] (or DEVTOOL_MIGRATIONS_DIR): the folder relative to "
                         "the backend's build context, which is its working directory in the container too (e.g. "
                         "\"migrations\"); or bind-mount the backend's source.")
            return
        request.directory = request.directory or folder.container
        if not self.pushed:
            self._push(folder.host, folder.container)
            self.pushed = True

    def after(self, request: Request, extra: list[str] = ()) -> list[Path]:
        """Every file the request wrote (the migrations folder's new or changed files, and `extra` paths of the
        container) copied to the host; each is named."""
        folder = self.folder
        if folder.shared or folder.host is None or not writes_revisions(request):
            return []
        written = self._fetch(folder.container, folder.host)
        for path in extra:
            host = self.host_path(path)
            if host is not None:
                written += self._fetch(path, Path(host))
        for path in written:
            self.ctx.out.info(f"Copied from the container to the host (the migrations folder is not shared): {path}")
        return written

    def _push(self, host: Path, inside: str) -> None:
        if not host.is_dir():
            return
        owner = _numeric_user(self.container.attrs.get("Config", {}).get("User") or "")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(host.rglob("*")):
                relative = path.relative_to(host)
                if not path.is_file() or any(p in SKIPPED for p in relative.parts) or path.suffix == ".pyc":
                    continue
                data = path.read_bytes()
                info = tarfile.TarInfo(posixpath.join(posixpath.basename(inside), relative.as_posix()))
                info.size, info.mode, info.mtime = len(data), 0o644, int(path.stat().st_mtime)
                info.uid, info.gid = owner
                tar.addfile(info, io.BytesIO(data))  # files only: folders in the container keep their owner
        self.ctx.out.debug(f"copying {host} into the container at {inside}")
        self._engine("copy the host's migrations into", lambda: self.ctx.client.api.put_archive(
            self.container.id, posixpath.dirname(inside), buffer.getvalue()))

    def _fetch(self, inside: str, host: Path) -> list[Path]:
        data = self._engine("copy files out of", lambda: b"".join(
            self.ctx.client.api.get_archive(self.container.id, inside)[0]), missing=b"")
        if not data:
            return []
        written = []
        root = posixpath.basename(inside.rstrip("/"))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if (not member.isfile() or parts[0] != root or ".." in parts or
                        any(p in SKIPPED for p in parts) or member.name.endswith(".pyc")):
                    continue
                target = host.joinpath(*parts[1:]) if len(parts) > 1 else host
                content = tar.extractfile(member).read()
                if target.is_file() and target.read_bytes() == content:
                    continue
                _write(target, content)
                written.append(target)
        return written

    def _engine(self, what: str, action: Any, missing: Any = None) -> Any:
        from docker.errors import APIError, NotFound

        try:
            return action()
        except APIError as exc:
            if missing is not None and isinstance(exc, NotFound):
                return missing
            raise DevtoolError(f"Cannot {what} container {self.container.name}: {exc.explanation or exc}.",
                               hint="Is the container still running? `devtool status` shows the stack.",
                               exit_code=ExitCode.STACK_FAILED) from None


def _numeric_user(user: str) -> tuple[int, int]:
    """The uid and gid a compose `user:` names, where it names them by number; root otherwise."""
    uid, _, gid = user.partition(":")
    number = int(uid) if uid.isdigit() else 0
    return number, int(gid) if gid.isdigit() else number


def _write(target: Path, content: bytes) -> None:
    """Atomically, and owned like the folder it goes into (devtool run as root writes a user's file)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.devtool-{os.getpid()}")
        temporary.write_bytes(content)
        folder = target.parent.stat()
        if os.geteuid() == 0 and (folder.st_uid, folder.st_gid) != (0, 0):
            os.chown(temporary, folder.st_uid, folder.st_gid)
        os.replace(temporary, target)
    except OSError as exc:
        raise DevtoolError(f"Cannot copy {target.name} from the container to {target}: {exc.strerror or exc}.",
                           hint="It is still in the container; make the host folder writable and run "
                                "`docker compose cp` to fetch it.",
                           exit_code=ExitCode.PERMISSION_DENIED if isinstance(exc, PermissionError)
                           else ExitCode.FAILED) from None
