"""The host side of devtool's agent: the one place that ships it into a container, runs requests there, reads
their results, and turns its error codes into exit codes and hints.

The agent package (toolkit/agent) travels as one tar archive (docker-py put_archive) into
/tmp/devtool-agent-<content hash>-<nonce>, root-owned and read-only for others; it is sent only when the
container has no trusted, complete copy of this version. A small fixed bootstrap, run with the app's own
Python, finds that copy and calls its main(); the request travels as one argument, never through a shell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from toolkit import kept
from toolkit.agent.protocol import (DEBUG_MARK, KEEP_MARK, LOG_MARK, RESULT_MARK, RESULTS, CommandsRequest, ErrorCode,
                                    Failure, FlaskRequest, Request, RevisionFile, decode, encode_request)
from toolkit.engine import STOP_DEADLINE, Abandoned, exec_stream
from toolkit.errors import DevtoolError, ExitCode

AGENT_PACKAGE = Path(__file__).with_name("agent")
MISSING_EXIT = 97  # the bootstrap found no trusted copy of this agent version: send it, then run again
MISSING_MARK = "devtool-agent-missing"
LOST_WAIT = 3.0  # seconds the engine gets to notice that a container ended after its command was killed

# Runs its arguments with the Python that runs `flask` (venv, system Python or a uv-managed .venv), else python3.
LAUNCHER = (
    'for f in "$(command -v flask 2>/dev/null)" ./.venv/bin/flask; do '
    'if [ -f "$f" ]; then read -r line < "$f"; case "$line" in "#!"*python*) exec ${line#??} "$@";; esac; fi; '
    "done; "
    'command -v python3 >/dev/null 2>&1 && exec python3 "$@"; exec python "$@"'
)
# argv: AGENT_ID REQUEST_JSON. A copy counts only if root (or this user) owns it and nobody else may write it.
BOOTSTRAP = f"""
import glob, os, stat, sys
for home in sorted(glob.glob("/tmp/devtool-agent-%s-*" % sys.argv[1])):
    info = os.lstat(home)
    if (stat.S_ISDIR(info.st_mode) and info.st_uid in (0, os.geteuid()) and not info.st_mode & 0o022
            and os.path.isfile(os.path.join(home, "complete"))):
        sys.path.append(home)
        from devtool_agent.main import main
        main(sys.argv[2])
        sys.exit(0)
sys.stderr.write("{MISSING_MARK}\\n")
sys.exit({MISSING_EXIT})
"""

# What each agent error means for the user: exit code and next step.
ERRORS = {
    ErrorCode.NO_MIGRATIONS: (ExitCode.NO_MIGRATIONS,
                              "Create it with `devtool db init`, then `devtool migrate \"initial\"`."),
    ErrorCode.NO_FLASK_MIGRATE: (ExitCode.CONFIG,
                                 "Initialise Flask-Migrate in the app: `migrate.init_app(app, db)`."),
    ErrorCode.MODELS_NOT_IMPORTED: (ExitCode.MODELS_NOT_IMPORTED,
                                    "Add the import lines above to init_app, or run again with --fix-imports."),
    ErrorCode.MULTIPLE_HEADS: (ExitCode.MULTIPLE_HEADS,
                               "Both branches of a git merge added a revision. Merge them: `devtool sync --merge` (the "
                               "database too) or `devtool migrate --merge \"MESSAGE\"`."),
    ErrorCode.APP_NOT_LOADED: (ExitCode.APP_NOT_LOADED, "Fix the app's error above (or FLASK_APP); `devtool -v` "
                                                        "shows the whole traceback. Nothing was changed."),
    ErrorCode.DATABASE_UNREACHABLE: (ExitCode.DATABASE_UNAVAILABLE,
                                     "Check that the database runs (`devtool status`) and the backend's DATABASE_URL "
                                     "(host, port, user, password, database name)."),
    ErrorCode.REVISION_UNREADABLE: (ExitCode.REVISION_FILE, "Fix or remove that file; nothing was changed."),
    ErrorCode.HISTORY_BROKEN: (ExitCode.REVISION_FILE, "Restore the missing revision file (e.g. from git), or fix "
                                                       "down_revision in the file named; nothing was changed."),
    ErrorCode.GENERATE_FAILED: (ExitCode.MIGRATION_FAILED, "Fix the cause above, then run `devtool migrate` again; "
                                                           "no revision file was kept."),
    ErrorCode.UPGRADE_FAILED: (ExitCode.MIGRATION_FAILED, "Nothing of the failing revision was applied. Fix it (the "
                                                          "file is kept), then `devtool db upgrade`."),
    ErrorCode.PARTLY_APPLIED: (ExitCode.PARTLY_APPLIED, "Undo the statements listed (or restore a snapshot from "
                                                        "before it), fix the revision, then run again."),
    ErrorCode.LOCK_UNAVAILABLE: (ExitCode.MIGRATION_FAILED, "Fix the lock file named (or let the container's user "
                                                            "write the database's folder), then run again."),
    ErrorCode.LOCK_TIMEOUT: (ExitCode.LOCK_TIMEOUT, "Wait for the other migration to finish (or stop it), then "
                                                    "run again; raise the deadline with DEVTOOL_WAIT_TIMEOUT."),
    ErrorCode.LOCK_BLOCKED: (ExitCode.LOCK_TIMEOUT, "End that session's transaction (or SELECT pg_terminate_backend"
                                                    "(PID)), then run again; raise lock_timeout (DEVTOOL_LOCK_TIMEOUT) "
                                                    "to wait longer. The revision file is kept."),
    ErrorCode.STATEMENT_TIMEOUT: (ExitCode.MIGRATION_FAILED, "Make the statement cheaper (batches), or raise "
                                                             "statement_timeout (DEVTOOL_STATEMENT_TIMEOUT; 0: no "
                                                             "limit). The revision file is kept."),
    ErrorCode.NO_SUCH_REVISION: (ExitCode.USAGE, "`devtool db history` lists the revisions."),
    ErrorCode.REHEARSAL_COPY_FAILED: (ExitCode.REHEARSAL_FAILED, "The copy needs CREATEDB and no other session on "
                                                                 "the database for a moment; `devtool status` shows "
                                                                 "the stack. Your database was not changed."),
    ErrorCode.NOT_REDIRECTED: (ExitCode.CONFIG, "Let env.py connect through the app's engine "
                                                "(current_app.extensions['migrate'].db.engine, as Flask-Migrate's "
                                                "env.py does): devtool runs revisions only where it can prove where."),
    ErrorCode.DATABASE_LOST: (ExitCode.DATABASE_LOST, "Check the database (`devtool status`, `docker compose logs` of "
                                                      "its service), then run again; on a slow network raise "
                                                      "db_lost_after / db_connect_timeout."),
    ErrorCode.INTERRUPTED: (ExitCode.INTERRUPTED, "`devtool status` shows where the database is."),
    ErrorCode.ORPHANED: (ExitCode.ORPHANED, "Run `devtool sync` to bring the database to this checkout's head."),
    ErrorCode.NO_COPY: (ExitCode.CANNOT_DOWNGRADE, "`devtool sync` says which revision has no copy, and which "
                                                   "snapshot `devtool sync --restore` would put back."),
    ErrorCode.COPIES_UNTRUSTED: (ExitCode.CANNOT_DOWNGRADE, "Something else writes to the container's /tmp: find "
                                                            "out what, then run `devtool sync` again."),
    ErrorCode.DOWNGRADE_FAILED: (ExitCode.CANNOT_DOWNGRADE, "That revision was rolled back whole. Fix its "
                                                            "downgrade(), or `devtool sync --restore`."),
    ErrorCode.AGENT_FAILED: (ExitCode.MIGRATION_FAILED, "Run again with -v to see the container's output."),
    ErrorCode.COPY_UNSUPPORTED: (ExitCode.SNAPSHOT_FAILED, "Grant the app's database role CREATEDB and the ownership "
                                                           "of its database, so devtool can copy it inside the server."),
    ErrorCode.SNAPSHOT_MISSING: (ExitCode.SNAPSHOT_FAILED, "`devtool snapshot delete NAME` forgets it; `devtool "
                                                           "snapshot list` shows the others."),
    ErrorCode.SNAPSHOT_MISMATCH: (ExitCode.SNAPSHOT_FAILED, "Restore it where it came from, or take a snapshot of this "
                                                            "database first; nothing was changed."),
    ErrorCode.SNAPSHOT_FAILED: (ExitCode.SNAPSHOT_FAILED, "Nothing was changed; `devtool -v` shows more."),
    ErrorCode.NOT_WRITABLE: (ExitCode.PERMISSION_DENIED, "Give the folder to the backend's user, or run the service "
                                                         "as the folder's owner (`user:` in the compose file)."),
}


@functools.lru_cache(maxsize=1)
def agent_files() -> tuple[str, dict[str, bytes]]:
    """(content hash, {file name: bytes}) of the agent package, read once per run."""
    files = {p.name: p.read_bytes() for p in sorted(AGENT_PACKAGE.glob("*.py"))}
    digest = hashlib.sha256()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:12], files


def agent_archive(agent_id: str, files: dict[str, bytes]) -> bytes:
    """A tar for /tmp: a fresh folder per upload (never rewritten while another run reads it); `complete`
    comes last, so a half-extracted copy is never used."""
    home = f"devtool-agent-{agent_id}-{uuid.uuid4().hex[:8]}"
    return trusted_archive([(home, None), (f"{home}/devtool_agent", None),
                            *((f"{home}/devtool_agent/{name}", data) for name, data in files.items()),
                            (f"{home}/complete", b"")])


def trusted_archive(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A tar of folders (data None) and files, in order, root-owned and writable by root only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.mtime = int(time.time())
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def agent_command(request: Request) -> list[str]:
    agent_id, _ = agent_files()
    return ["sh", "-c", LAUNCHER, "devtool", "-c", BOOTSTRAP, agent_id, encode_request(request)]


class Agent:
    """devtool's agent in one container: `call` for a typed result, `flask` for streamed passthrough."""

    def __init__(self, ctx: Any, container: Any, *, on_lost: Callable[..., None] | None = None,
                 source: Any = None, host_path: Callable[[str], str] | None = None) -> None:
        self.ctx, self.container = ctx, container
        self.on_lost = on_lost  # on_lost(container, wait=seconds): explains a container that stopped or restarted
        self.source = source  # the target's SourceFiles: host files in before a request, its writes out after
        self.stopped: str | None = None  # the signal that told the request under way to stop
        self.host_path = host_path  # where a file the container names lies on the host

    def keep(self, line: bytes | str) -> None:
        """A KEEP_MARK line: the agent applied a revision; keep a copy of its file in the project's state."""
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        try:
            applied = decode(RevisionFile, json.loads(text[len(KEEP_MARK):]))
        except (ValueError, TypeError):
            return
        if kept.keep(self.ctx.project, applied) is None:
            self.ctx.out.warn(f"Could not keep a copy of revision {applied.id} in {kept.folder(self.ctx.project)}: "
                              "`devtool sync` will need git to downgrade it after a checkout.")

    def _prepared(self, request: Request) -> Request:
        settings = self.ctx.settings
        request.flask_app = request.flask_app or settings.flask_app
        request.directory = request.directory or settings.migrations_dir
        request.warm = os.environ.get("DEVTOOL_WARM_AGENT", "1") != "0"
        request.connect_timeout, request.lost_after = settings.db_connect_timeout, settings.db_lost_after
        if hasattr(request, "lock_wait"):
            request.lock_wait = settings.wait_timeout
        if hasattr(request, "lock_timeout"):
            request.lock_timeout, request.statement_timeout = settings.lock_timeout, settings.statement_timeout
            request.lock_retries = settings.lock_retries
        return request

    def _run(self, request: Request, on_output: Callable[[bytes | None, bytes | None], None]) -> int | None:
        """Run the request; send the agent first when the container lacks this version."""
        command = agent_command(self._prepared(request))
        for attempt in (1, 2):
            missing = bytearray()

            def filtered(out: bytes | None, err: bytes | None) -> None:
                if err and MISSING_MARK.encode() in err:
                    missing.extend(err)
                    err = err.replace(MISSING_MARK.encode() + b"\n", b"") or None
                on_output(out, err)

            try:
                code = exec_stream(self.ctx.client, self.container.id, command, on_output=filtered, stdin=True,
                                   on_stop=self._stopping)
            except DevtoolError:
                self._lost(None)  # the engine refused: a container that stopped or restarts is the real cause
                raise
            if code != MISSING_EXIT or not missing or attempt == 2 or self.stopped:
                return code
            self._send()
        return code

    def _lost(self, code: int | None = 0) -> None:
        """Raise the real cause when the container stopped or restarted; a killed process (no exit code, a
        signal's, or the runtime's 126/127 for an exec into a dying container) gives the engine a moment to
        notice its container's end."""
        if self.on_lost is not None:
            killed = code is None or code < 0 or code >= 126
            with self.ctx.out.status(f"Checking whether container {self.container.name} is still running…"):
                self.on_lost(self.container, wait=LOST_WAIT if killed else 0.0)

    def _send(self) -> None:
        from docker.errors import APIError

        agent_id, files = agent_files()
        self.ctx.out.debug(f"sending devtool's agent {agent_id} to container {self.container.name}")
        try:
            self.ctx.client.api.put_archive(self.container.id, "/tmp", agent_archive(agent_id, files))
        except APIError as exc:
            self._lost()
            raise DevtoolError(f"Cannot copy devtool's agent into container {self.container.name} (/tmp): "
                               f"{exc.explanation or exc}.", exit_code=ExitCode.STACK_FAILED,
                               hint="devtool needs a writable /tmp in the backend container.") from None

    def _stopping(self, signal_name: str) -> None:
        """The first stop signal during a request: the agent has been told (its stdin closed)."""
        self.stopped = signal_name
        self.ctx.out.warn(f"Stopping ({signal_name}): devtool's agent starts nothing new, and a revision under way "
                          f"commits or rolls back whole. Waiting up to {STOP_DEADLINE:.0f} s for it to say which "
                          "(Ctrl-C again to leave now).")

    def call(self, request: Request) -> Any:
        """Run one request and return its typed result; a failure becomes a DevtoolError with its exit code.
        Stopped by a signal, it says what the agent did (or that it left without knowing) and exits 130."""
        if self.source is not None:
            self.source.before(request)
        try:
            result = self._call(request)
        except DevtoolError:
            self._copy_out(request, failed=True)  # a revision kept after a failed upgrade must reach the host too
            raise
        self._copy_out(request, [m.fixed_in for m in getattr(result, "fixed_imports", None) or [] if m.fixed_in])
        return result

    def _copy_out(self, request: Request, extra: list[str] = (), *, failed: bool = False) -> None:
        """What the request wrote, onto the host (targets/source.py). After a failure, a copy that fails too is
        a warning: the first failure is the one to report."""
        if self.source is None or not self._container_up():
            return
        try:
            self.source.after(request, list(extra))
        except DevtoolError as exc:
            if not failed:
                raise
            self.ctx.out.warn(exc.message)

    def _container_up(self) -> bool:
        """Whether files can still be copied out (not after the container was found stopped)."""
        return self.container.status == "running"

    def _call(self, request: Request) -> Any:
        stdout = bytearray()
        progress = _Lines(self.ctx, self.keep)

        def collect(out: bytes | None, err: bytes | None) -> None:
            if out:
                stdout.extend(out)
            if err:
                progress.feed(err)

        try:
            code = self._run(request, collect)
        except Abandoned as exc:
            raise _abandoned(exc, progress.last_step) from None
        progress.flush()
        text = stdout.decode("utf-8", "replace")
        marker = text.rfind(RESULT_MARK)
        if marker < 0:
            if self.stopped:
                raise _abandoned(Abandoned(f"{self.stopped}; the agent ended without an answer (exit code {code})"),
                                 progress.last_step)
            self._no_result(code, progress.tail())
        if self.ctx.settings.verbose and text[:marker].strip():
            self.ctx.out.raw(text[:marker].encode(), stderr=True)
        result = self._answer(request, text[marker + len(RESULT_MARK):])
        if self.stopped:
            raise DevtoolError(f"Interrupted ({self.stopped}) after devtool's agent had finished: "
                               f"{_finished(result)}; nothing else was started.",
                               hint=ERRORS[ErrorCode.INTERRUPTED][1], exit_code=ExitCode.INTERRUPTED,
                               data=dataclasses.asdict(result) if result is not None else {})
        return result

    def _for_the_user(self, failure: Failure) -> Failure:
        """The host's view of a failure: the file it names as the user sees it, and what to do about a database
        the backend cannot reach (the database service's state is known here, not in the container)."""
        if failure.path and self.host_path is not None:
            failure.message = failure.message.replace(failure.path, self.host_path(failure.path))
        if failure.code == ErrorCode.DATABASE_UNREACHABLE and failure.database is not None and not failure.hint:
            from toolkit.dialects import unreachable_hint

            failure.hint = unreachable_hint(self.ctx, failure.database, failure.error or failure.message)
        return failure

    def _answer(self, request: Request, line: str) -> Any:
        answer = json.loads(line.strip().splitlines()[0])
        if answer["ok"]:
            return decode(RESULTS[type(request)], answer["result"]) if type(request) in RESULTS else None
        failure = decode(Failure, answer["failure"])
        if failure.code == ErrorCode.NOT_WRITABLE:
            raise not_writable_error(failure, self.container, self.source)
        raise failure_error(self._for_the_user(failure))

    def _no_result(self, code: int | None, log: str) -> None:
        self._lost(code)  # raises when the container stopped or restarted: that is the real cause
        raise DevtoolError(f"devtool's agent ended without an answer in container {self.container.name} "
                           f"(exit code {code}).", detail=log or None, exit_code=ExitCode.MIGRATION_FAILED,
                           hint="Does the container have Python with Flask installed? Run with -v for details.")

    def flask(self, args: list[str]) -> int:
        """`flask ARGS` in the container, output streamed live, exit code returned. A refusal of the agent's own
        (a folder it may not write) comes back as its result line and is raised."""
        request = FlaskRequest(args=args)
        if self.source is not None:
            self.source.before(request)
        marked = _KeepLines(self.keep, lambda line: self.ctx.out.debug(line.decode("utf-8", "replace")))
        mark, answer, answering = RESULT_MARK.encode(), bytearray(), []

        def stream(out: bytes | None, err: bytes | None) -> None:
            if out and not answering and mark in out:
                out, _, rest = bytes(out).partition(mark)
                answering.append(True)
                answer.extend(rest)
            elif out and answering:
                answer.extend(out)
                out = None
            self._stream(out, err, marked)

        try:
            code = self._run(request, stream)
        except Abandoned as exc:
            raise _abandoned(exc, f"flask {' '.join(args)}") from None
        rest = marked.flush()
        if rest:
            self.ctx.out.raw(rest, stderr=True)
        if answering:
            self._answer(request, answer.decode("utf-8", "replace"))  # raises: the agent refused
            return 0
        if self.stopped:
            raise DevtoolError(f"Interrupted ({self.stopped}): `flask {' '.join(args)}` stopped in the container (exit "
                               f"code {code}); a revision under way committed or rolled back whole, and nothing after "
                               "it ran.", hint=ERRORS[ErrorCode.INTERRUPTED][1], exit_code=ExitCode.INTERRUPTED)
        if code != 0:
            self._lost(code)  # raises when the container stopped or restarted under flask
        if code is None or code < 0 or code > 128:
            signal = f", signal {code - 128}" if code and code > 128 else ""
            self.ctx.out.warn(f"`flask {' '.join(args)}` was killed in container {self.container.name} (exit code "
                              f"{code}{signal}{': out of memory?' if code == 137 else ''}).")
        if self.source is not None:
            self.source.after(request)
        return 1 if code is None or code < 0 else code

    def _stream(self, out: bytes | None, err: bytes | None, marked: "_KeepLines") -> None:
        if out:
            self.ctx.out.raw(out)
        if err:
            shown = marked.feed(err)
            if shown:
                self.ctx.out.raw(shown, stderr=True)

    @contextlib.contextmanager
    def files(self, files: dict[str, bytes]) -> Iterator[str]:
        """`files` in a fresh folder of the container's /tmp (root-owned, writable by root only, `complete`
        last: the agent uses only such a folder), removed afterwards whatever happens. Yields its path."""
        from docker.errors import APIError

        home = f"devtool-revisions-{uuid.uuid4().hex[:16]}"
        archive = trusted_archive([(home, None), *((f"{home}/{n}", d) for n, d in files.items()),
                                   (f"{home}/complete", b"")])
        try:
            self.ctx.client.api.put_archive(self.container.id, "/tmp", archive)
        except APIError as exc:
            raise DevtoolError(f"Cannot copy revision files into container {self.container.name} (/tmp): "
                               f"{exc.explanation or exc}; nothing was changed.", exit_code=ExitCode.STACK_FAILED,
                               hint="devtool needs a writable /tmp in the backend container.") from None
        try:
            yield f"/tmp/{home}"
        finally:
            try:  # as root: the folder is root's; a container that went away took it along
                exec_stream(self.ctx.client, self.container.id, ["rm", "-rf", "--", f"/tmp/{home}"],
                            on_output=lambda out, err: None, user="0")
            except DevtoolError:
                pass

    def commands(self) -> Any:
        return self.call(CommandsRequest())


class _Lines:
    """The agent's stderr: progress lines (LOG_MARK) are shown as they come, the rest only with -v; the last
    lines are kept for a failure's detail."""

    def __init__(self, ctx: Any, keep: Callable[[str], None]) -> None:
        self.ctx, self.keep, self.pending, self.kept = ctx, keep, b"", []
        self.last_step: str | None = None  # the agent's last progress line

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._line(line.decode("utf-8", "replace"))

    def flush(self) -> None:
        if self.pending:
            self._line(self.pending.decode("utf-8", "replace"))
            self.pending = b""

    def _line(self, line: str) -> None:
        if line.startswith(KEEP_MARK):
            self.keep(line)
            return
        if line.startswith(DEBUG_MARK):
            self.ctx.out.debug(line[len(DEBUG_MARK):])
            return
        self.kept = (self.kept + [line])[-15:]
        if line.startswith(LOG_MARK):
            self.last_step = line[len(LOG_MARK):]
            self.ctx.out.info(self.last_step)
        elif self.ctx.settings.verbose:
            self.ctx.out.raw((line + "\n").encode(), stderr=True)

    def tail(self) -> str:
        return "\n".join(self.kept).strip()


class _KeepLines:
    """flask's stderr as it arrives, minus the agent's marked lines: KEEP_MARK lines are handed to `keep`,
    DEBUG_MARK lines to `debug`; only a line that may be one (from its first byte) waits for its end."""

    START = KEEP_MARK.encode()[:1]
    MARKS = (KEEP_MARK.encode(), DEBUG_MARK.encode())

    def __init__(self, keep: Callable[[bytes], None], debug: Callable[[bytes], None] = lambda line: None) -> None:
        self.keep, self.debug, self.pending = keep, debug, b""

    def feed(self, chunk: bytes) -> bytes:
        data, self.pending, shown = self.pending + chunk, b"", bytearray()
        while data:
            start = data.find(self.START)
            if start < 0:
                shown += data
                break
            shown += data[:start]
            end = data.find(b"\n", start)
            if end < 0:
                tail = data[start:]
                if any(tail.startswith(mark) or mark.startswith(tail) for mark in self.MARKS):
                    self.pending = tail  # (the start of) a marked line: wait for its end
                else:
                    shown += tail
                break
            line, data = data[start:end], data[end + 1:]
            if not self._marked(line):
                shown += line + b"\n"
        return bytes(shown)

    def _marked(self, line: bytes) -> bool:
        if line.startswith(KEEP_MARK.encode()):
            self.keep(line)
        elif line.startswith(DEBUG_MARK.encode()):
            self.debug(line[len(DEBUG_MARK.encode()):])
        else:
            return False
        return True

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return b"" if rest and self._marked(rest) else rest


def _abandoned(exc: Abandoned, step: str | None) -> DevtoolError:
    under_way = f"the step under way ({step})" if step else "the step under way"
    return DevtoolError(f"Left without devtool's agent's answer ({exc}): in the container, {under_way} commits or "
                        "rolls back whole and nothing after it starts.", hint=ERRORS[ErrorCode.INTERRUPTED][1],
                        exit_code=ExitCode.INTERRUPTED)


def _finished(result: Any) -> str:
    """What a request that ended before it could stop had done (a migration's revisions, a new file)."""
    applied = getattr(result, "applied", None)
    revision = getattr(result, "revision", None)
    parts = [f"applied {', '.join(r.id for r in applied)}" if applied else "nothing applied"]
    if revision is not None and not any(r.id == revision.id for r in applied or []):
        parts.append(f"revision file {revision.host_path or revision.path} written, not applied")
    return ", ".join(parts) if hasattr(result, "applied") else "the request was complete"


def not_writable_error(failure: Failure, container: Any, source: Any) -> DevtoolError:
    """The folder, who the backend runs as, who owns the folder (on the host too, where devtool can see it), and
    the fix."""
    uid, gid = (failure.user or [None, None])[:2]
    owner_uid, owner_gid = (failure.owner or [None, None])[:2]
    host = source.host_path(failure.path) if source is not None and failure.path else None
    shared = host is not None and source.through_mounts(failure.path) is not None
    where = ""
    if shared and os.path.exists(host):
        info = os.stat(host)
        where = f"; on the host it is {host}, owned by {_user_name(info.st_uid)} (uid {info.st_uid})"
    elif host:
        where = f"; the host's copy is {host}"
    message = (f"{failure.message}. The backend (container {container.name}) runs as uid {uid} (gid {gid}); the "
               f"folder belongs to uid {owner_uid} (gid {owner_gid}){where}. Nothing was written.")
    if shared:
        hint = (f"Give the folder to the container's user: `sudo chown -R {uid}:{gid} {host}`; or run the service "
                f"as the folder's owner: `user: \"{owner_uid}:{owner_gid}\"` in the compose file.")
    else:
        hint = (f"Let uid {uid} write it in the image (`COPY --chown={uid}:{gid} ...` in the Dockerfile), or run "
                f"the service as uid {owner_uid} (`user:` in the compose file).")
    return DevtoolError(message, hint=hint, exit_code=ExitCode.PERMISSION_DENIED,
                        data={k: v for k, v in dataclasses.asdict(failure).items() if v})


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def failure_error(failure: Failure) -> DevtoolError:
    code, hint = ERRORS.get(failure.code, (ExitCode.MIGRATION_FAILED, None))
    return DevtoolError(failure.message, hint=failure.hint or hint, exit_code=code, detail=_detail(failure),
                        data={k: v for k, v in dataclasses.asdict(failure).items() if v})


def _detail(failure: Failure) -> str | None:
    if failure.models:
        return "\n".join(f"  {m.model} ({m.module}, table {m.table}): add  {m.import_line}" for m in failure.models)
    if failure.heads:
        return "\n".join(f"  {h.id}  {h.message}" for h in failure.heads)
    if failure.statements:
        return "\n".join(f"  stays applied: {s}" for s in failure.statements)
    if failure.error and failure.error not in failure.message:
        return "  " + failure.error.replace("\n", "\n  ")
    return None
