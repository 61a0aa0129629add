"""Pure tests for issue 16 §1, §2, §5: what counts as private, marked lines in flask's stream."""

from __future__ import annotations

import os
import socket
import stat

from toolkit.agent.protocol import DEBUG_MARK, KEEP_MARK
from toolkit.agent.server import not_private, peer_uid


def test_only_a_path_of_this_user_that_nobody_else_may_enter_is_private(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    assert not_private(os.lstat(folder), stat.S_ISDIR, "a folder") is None
    folder.chmod(0o711)
    assert not_private(os.lstat(folder), stat.S_ISDIR, "a folder") == "mode 0711 lets others in"
    folder.chmod(0o700)
    assert not_private(os.lstat(folder), stat.S_ISSOCK, "a socket") == "not a socket"
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert not_private(os.lstat(link), stat.S_ISDIR, "a folder") == "not a folder"
    other = os.lstat(folder)
    stranger = os.stat_result((other.st_mode, *other[1:4], os.geteuid() + 1, *other[5:]))
    assert not_private(stranger, stat.S_ISDIR, "a folder") == f"owned by uid {os.geteuid() + 1}, not {os.geteuid()}"


def test_the_peer_of_a_unix_socket_is_known():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.geteuid()


def test_debug_lines_leave_flasks_stream_and_reach_debug():
    from toolkit.protocol import _KeepLines

    kept, debug = [], []
    lines = _KeepLines(kept.append, debug.append)
    line = (DEBUG_MARK + "devtool agent: not using /tmp/devtool-0: owned by uid 1000, not 0\n").encode()
    shown = lines.feed(b"abc123 (head)\n" + line[:3]) + lines.feed(line[3:] + (KEEP_MARK + "{}\n").encode())
    assert shown == b"abc123 (head)\n" and kept == [(KEEP_MARK + "{}").encode()]
    assert debug == [b"devtool agent: not using /tmp/devtool-0: owned by uid 1000, not 0"]
    assert lines.feed(DEBUG_MARK.encode()[:4]) == b"" and lines.flush() == DEBUG_MARK.encode()[:4]


def test_the_first_stop_signal_closes_the_commands_input_and_a_second_one_leaves():
    """Stopping, armed around an exec's socket: SIGTERM half-closes it (the agent reads end-of-file) and calls
    on_stop, output can still be read; a second signal raises Abandoned; afterwards the handlers are back."""
    import signal

    import pytest

    from toolkit.engine import Abandoned, Stopping

    ours, agent = socket.socketpair()
    stops = []
    previous = signal.getsignal(signal.SIGTERM)
    with ours, agent:
        with Stopping(ours, stops.append).armed():
            os.kill(os.getpid(), signal.SIGTERM)
            assert stops == ["SIGTERM"] and agent.recv(10) == b""  # end of file on the agent's stdin
            agent.sendall(b"answer")
            assert ours.recv(10) == b"answer"  # its answer still arrives
            with pytest.raises(Abandoned, match="SIGTERM again"):
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is previous
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
