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
