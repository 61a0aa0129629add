"""Faults never turn into silent actions (issue 16 §1, §2, §5), on the real engine: the warm agent's socket
trusts no one, ..."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import FIXTURES, wait_for

pytestmark = pytest.mark.docker

STRANGER = "1000"  # an ordinary user inside the backend container


def _sh(stack, script: str, user: str = "0", check: bool = True) -> str:
    return stack.compose("exec", "-T", "-u", user, stack.layout.backend, "sh", "-c", script, check=check).stdout


@pytest.fixture(scope="module")
def squat(module_stack):
    """start(socket path) runs FIXTURES/faults/squatter.py as uid 1000 listening there; returns what its
    callers sent (a list of dicts). Every stranger is stopped afterwards and root's folder removed."""
    stack = module_stack
    stack.compose("cp", str(FIXTURES / "faults" / "squatter.py"), f"{stack.layout.backend}:/tmp/squatter.py")
    _sh(stack, "chmod 644 /tmp/squatter.py")
    started = []

    def start(path: str) -> callable:
        n = len(started)
        folder = f"/tmp/stranger{n}"
        _sh(stack, f"mkdir -p {folder}", user=STRANGER)
        stack.compose("exec", "-d", "-u", STRANGER, stack.layout.backend, "python3", "/tmp/squatter.py", path,
                      f"{folder}/log", f"{folder}/ready")
        wait_for(lambda: _sh(stack, f"test -e {folder}/ready && echo yes", check=False).strip() == "yes",
                 timeout=30, what="the stranger's socket to listen")
        started.append(folder)

        def received() -> list[dict]:
            text = _sh(stack, f"cat {folder}/log 2>/dev/null || true")
            return [json.loads(line) for line in text.splitlines()]

        return received

    yield start
    _sh(stack, "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in "
               "*squatter.py*) kill ${p#/proc/};; esac; done; rm -rf /tmp/devtool-0 /tmp/stranger*", check=False)


def _agent_id(stack) -> str:
    (home,) = _sh(stack, "ls -d /tmp/devtool-agent-*").split()
    return home.split("-")[2]


def _assert_not_fooled(result: subprocess.CompletedProcess, revision: str) -> None:
    assert result.returncode == 0, result.stderr
    assert revision in result.stdout
    assert "forged" not in result.stdout + result.stderr


def test_a_squatted_socket_folder_is_never_used(module_stack, squat):
    """uid 1000 made /tmp/devtool-0 (root's folder name) before root's server and listens in it: root's devtool
    runs without the warm server, says so with -v, and the stranger receives nothing."""
    stack = module_stack
    _sh(stack, "rm -rf /tmp/devtool-0")
    _sh(stack, "mkdir -m 700 /tmp/devtool-0", user=STRANGER)
    received = squat(f"/tmp/devtool-0/agent-{_agent_id(stack)}.sock")

    _assert_not_fooled(stack.devtool("db", "current"), stack.layout.initial)
    verbose = stack.devtool("-v", "db", "current")
    _assert_not_fooled(verbose, stack.layout.initial)
    assert "not using /tmp/devtool-0: owned by uid 1000, not 0" in verbose.stderr
    migrate = stack.devtool("migrate", "nothing new")
    assert migrate.returncode == 0 and "forged" not in migrate.stdout + migrate.stderr, migrate.stderr
    assert "No schema changes" in migrate.stdout + migrate.stderr
    assert received() == []


def test_a_strangers_socket_in_roots_folder_is_never_talked_to(module_stack, squat):
    """The folder is root's, but the socket in it is a stranger's (owner uid 1000), then a stranger's listener
    behind a root-owned socket file (peer credentials): nothing is sent to it, no environment, no descriptors."""
    stack = module_stack
    _sh(stack, "rm -rf /tmp/devtool-0 && mkdir -m 700 /tmp/devtool-0")
    path = f"/tmp/devtool-0/agent-{_agent_id(stack)}.sock"
    received = squat("/tmp/stranger-socket.sock")
    _sh(stack, f"mv /tmp/stranger-socket.sock {path}")

    owned = stack.devtool("-v", "db", "current")
    _assert_not_fooled(owned, stack.layout.initial)
    assert f"{path}: owned by uid 1000, not 0; running without it" in owned.stderr
    assert received() == []

    _sh(stack, f"chown 0:0 {path} && chmod 600 {path}")
    peer = stack.devtool("-v", "db", "current")
    _assert_not_fooled(peer, stack.layout.initial)
    assert f"{path}: the process listening on it runs as uid 1000, not 0; running without it" in peer.stderr
    status = stack.devtool("status", "--json")
    assert status.returncode == 0 and "forged" not in status.stdout + status.stderr, status.stderr
    assert received() and all(r == {"bytes": 0, "fds": 0, "database_url": False} for r in received())


CALLER = """
import array, socket, struct, sys
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(sys.argv[1])
payload = sys.argv[2].encode()
reply = b""
try:
    connection.sendmsg([struct.pack("!I", len(payload)) + payload],
                       [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
    while True:
        chunk = connection.recv(4096)
        if not chunk:
            break
        reply += chunk
except (BrokenPipeError, ConnectionResetError):  # closed on us: no answer either
    pass
print("reply:%r" % reply)
"""


def test_the_warm_server_serves_only_its_own_uid(module_stack):
    """Root's warm server, its folder and socket opened up by mistake: a request from uid 1000 gets no answer
    and nothing runs; root's own requests still do."""
    from toolkit.agent.protocol import FlaskRequest, encode_request

    stack = module_stack
    _sh(stack, "rm -rf /tmp/devtool-0")
    assert stack.devtool("db", "current").returncode == 0  # starts root's warm server
    path = f"/tmp/devtool-0/agent-{_agent_id(stack)}.sock"
    wait_for(lambda: _sh(stack, f"test -S {path} && echo yes", check=False).strip() == "yes", timeout=30,
             what="root's warm server to listen")
    message = json.dumps({"request": encode_request(FlaskRequest(args=["db", "current"])),
                          "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"}, "cwd": "/tmp"})
    try:
        _sh(stack, f"chmod 711 /tmp/devtool-0 && chmod 666 {path}")
        answer = stack.compose("exec", "-T", "-u", STRANGER, stack.layout.backend, "python3", "-c", CALLER, path,
                               message, check=False)
    finally:
        _sh(stack, f"chmod 700 /tmp/devtool-0 && chmod 600 {path}")
    assert answer.returncode == 0 and answer.stdout.strip() == "reply:b''", answer.stderr and stack.layout.initial not in answer.stdout + answer.stderr
    again = stack.devtool("-v", "db", "current")
    _assert_not_fooled(again, stack.layout.initial)
    assert "not using" not in again.stderr
