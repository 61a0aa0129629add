"""The warm server: importing Flask, SQLAlchemy, Alembic and the driver takes most of a second, the app itself
a few ms. A server in the container imports the libraries once and forks a fresh child per request: the child
imports the app anew (model edits are always seen) and writes straight to the caller's stdout/stderr, whose
file descriptors travel over a unix socket. Stale libraries (a pip install) make it step down.

Nobody else is trusted: the socket lives in a private folder (/tmp/devtool-<uid>, mode 0700, owned by the agent's
user); a folder or socket that anybody else made or can enter is never used, the client checks the server's peer
credentials before it sends anything (the request carries the environment and the caller's stdin/stdout/stderr),
and the server serves only callers of its own uid. Anything squatted means a run without the warm server.
"""

from __future__ import annotations

import array
import importlib
import json
import os
import select
import socket
import stat
import struct
import sys
import time
from typing import Callable, Optional

from .protocol import DEBUG_MARK

PRELOAD = ("flask", "flask.cli", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql",
           "flask_sqlalchemy", "flask_migrate", "alembic.command", "alembic.autogenerate", "alembic.script",
           "alembic.runtime.migration", "alembic.runtime.environment", "alembic.operations", "mako.template",
           "psycopg", "psycopg2", "pymysql", "sqlite3", "dotenv")
IDLE_SECONDS = 900
START_DEADLINE = 5.0  # seconds a first call waits for the server it started before running the request itself


def private_dir() -> Optional[str]:
    """/tmp/devtool-<uid>, created 0700 if missing; None (and said with -v) when it is not ours alone."""
    path = "/tmp/devtool-%d" % os.geteuid()
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        _not_used(path, exc.strerror or str(exc))
        return None
    problem = not_private(os.lstat(path), stat.S_ISDIR, "a folder")
    if problem:
        _not_used(path, problem)
        return None
    return path


def not_private(info: os.stat_result, kind: Callable[[int], bool], what: str) -> Optional[str]:
    """Why a path with this lstat is not this user's alone (None: it is)."""
    if not kind(info.st_mode):
        return "not %s" % what
    if info.st_uid != os.geteuid():
        return "owned by uid %d, not %d" % (info.st_uid, os.geteuid())
    if info.st_mode & 0o077:
        return "mode %04o lets others in" % stat.S_IMODE(info.st_mode)
    return None


class Untrusted(Exception):
    """The warm server's path is somebody else's: never talk to it."""


def _not_used(path: str, why: str) -> None:
    """Said with -v: the host shows DEBUG_MARK lines only then."""
    sys.stderr.write("%sdevtool agent: not using %s: %s\n" % (DEBUG_MARK, path, why))
    sys.stderr.flush()


def socket_path(agent_id: str) -> Optional[str]:
    folder = private_dir()
    return os.path.join(folder, "agent-%s.sock" % agent_id) if folder else None


def via_warm_server(path: str, request_text: str) -> Optional[int]:
    """Hand the request (and this process's stdin/stdout/stderr) to the warm server; its exit code, or None
    when there is none or it stepped down. Raises Untrusted, before anything is sent, when the socket or the
    process listening on it is not this user's."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    problem = not_private(info, stat.S_ISSOCK, "a socket")
    if problem:
        raise Untrusted("%s: %s" % (path, problem))
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            connection.connect(path)
        except OSError:
            return None
        peer = peer_uid(connection)
        if peer != os.geteuid():
            raise Untrusted("%s: the process listening on it runs as uid %s, not %d" % (path, peer, os.geteuid()))
        payload = json.dumps({"request": request_text, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        message = struct.pack("!I", len(payload)) + payload
        fds = array.array("i", [0, 1, 2])
        sent = connection.sendmsg([message[:4096]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        connection.sendall(message[sent:])
        reply = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
        answer = json.loads(reply.decode() or "{}")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()
    return answer.get("code")


def peer_uid(connection: socket.socket) -> Optional[int]:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED), None when it cannot be told."""
    try:
        raw = connection.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", raw)[1]


def run_warm(agent_id: str, home: str, request_text: str) -> Optional[int]:
    """The request's exit code through the warm server, starting one when there is none; None: run it here."""
    path = socket_path(agent_id)
    if path is None:
        _not_used("the warm server", "no private folder for its socket; running without it")
        return None
    try:
        code = via_warm_server(path, request_text)
        if code is None:  # start one and use it: the same import time as running here, and the next call is fast
            _start(home, path)
            deadline = time.monotonic() + START_DEADLINE
            while code is None and time.monotonic() < deadline:
                time.sleep(0.02)
                code = via_warm_server(path, request_text)
    except Untrusted as exc:
        _not_used("the warm server", "%s; running without it" % exc)
        return None
    return code


def _start(home: str, path: str) -> None:
    """Detach a warm server (double fork: nobody has to reap it)."""
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        code = "import sys; sys.path.append(sys.argv[1]); from devtool_agent.main import serve; serve(sys.argv[2])"
        os.execv(sys.executable, [sys.executable, "-c", code, home, path])
    finally:
        os._exit(1)


def _libraries_mtime() -> float:
    """Changes when packages are installed or removed in any import directory."""
    latest = 0.0
    for entry in sys.path:
        try:
            latest = max(latest, os.stat(entry or ".").st_mtime)
        except OSError:
            pass
    return latest


def serve(path: str, run_request: Callable[[str], None]) -> None:
    """Accept requests on `path` until idle for IDLE_SECONDS or the libraries change; run each in a fork."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = "%s.%d" % (path, os.getpid())
    listener.bind(temporary)
    os.chmod(temporary, 0o600)
    listener.listen(16)
    os.rename(temporary, path)  # atomic: clients never see a socket that is not listening yet
    libraries = _libraries_mtime()
    children = {}  # pid -> the connection waiting for its exit code
    idle_since = time.time()
    while True:
        ready, _, _ = select.select([listener], [], [], 0.05 if children else 5)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
                _reply(children.pop(pid), {"code": code})
                idle_since = time.time()
        if not ready:
            if not children and time.time() - idle_since > IDLE_SECONDS:
                break
            continue
        connection, _ = listener.accept()
        if peer_uid(connection) != os.geteuid():  # only our own user: it would get our environment's rights
            connection.close()
            continue
        try:
            message, fds = _receive(connection)
        except (OSError, ValueError):
            connection.close()
            continue
        if _libraries_mtime() != libraries or not os.path.exists(path):
            for fd in fds:
                os.close(fd)
            _reply(connection, {"stale": True})
            break
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.close()
            _become_child(message, fds, run_request)
        for fd in fds:
            os.close(fd)
        children[pid] = connection
    try:
        if os.path.exists(path):
            os.unlink(path)
    finally:
        os._exit(0)


def _receive(connection: socket.socket):
    fds = array.array("i")
    data, ancillary, _flags, _address = connection.recvmsg(4096, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[:len(raw) - (len(raw) % fds.itemsize)])
    if len(fds) != 3 or len(data) < 4:
        for fd in fds:
            os.close(fd)
        raise ValueError("bad request")
    size = struct.unpack("!I", data[:4])[0]
    body = data[4:]
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ValueError("short request")
        body += chunk
    return json.loads(body.decode()), list(fds)


def _reply(connection: socket.socket, answer: dict) -> None:
    try:
        connection.sendall(json.dumps(answer).encode())
    except OSError:
        pass
    connection.close()


def _become_child(message: dict, fds: list, run_request: Callable[[str], None]) -> None:
    """In the fork: the caller's streams, directory and environment, then the request as if run directly."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = os.fdopen(0, "r", closefd=False)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(message["env"])
    code = 0
    try:
        run_request(message["request"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
