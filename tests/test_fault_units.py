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


class _DriverError(Exception):
    def __init__(self, message: str, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def _wrapped(name: str, message: str, pgcode: str | None = None, invalidated: bool = False) -> Exception:
    """Like SQLAlchemy's DBAPIError: the driver's (psycopg2's) exception on .orig, invalidation noted."""
    original = type(name, (_DriverError,), {"__module__": "psycopg2.errors"})(message, pgcode)
    wrapper = Exception(message)
    wrapper.orig, wrapper.connection_invalidated = original, invalidated
    return wrapper


def test_a_lost_server_is_told_from_a_refused_statement():
    from toolkit.agent.dialects import connection_lost

    assert connection_lost("postgresql", _wrapped("OperationalError", "terminating connection", "57P01", True))
    assert connection_lost("postgresql", _wrapped("OperationalError", "could not receive data from server"))
    assert connection_lost("postgresql", _wrapped("OperationalError", "connection timeout expired"))
    assert connection_lost(None, _wrapped("OperationalError", "server closed the connection", "08006"))
    assert not connection_lost("postgresql", _wrapped("OperationalError", "canceling statement due to lock "
                                                                          "timeout", "55P03"))
    assert not connection_lost("postgresql", _wrapped("ProgrammingError", "relation does not exist", "42P01"))
    assert not connection_lost("postgresql", ValueError("not a database error"))
    assert connection_lost("sqlite", _wrapped("OperationalError", "gone", invalidated=True))


def test_connections_get_a_connect_timeout_and_keepalives_on_both_ends_the_apps_values_win():
    from toolkit.agent.dialects import postgres_connect_args

    args = postgres_connect_args(3, 6, {"host": "db", "options": "-c search_path=app"})
    assert args["connect_timeout"] == 3 and args["keepalives"] == 1
    assert args["keepalives_idle"] + args["keepalives_count"] * args["keepalives_interval"] == 6
    assert args["options"] == ("-c search_path=app -c tcp_keepalives_idle=3 -c tcp_keepalives_interval=1 "
                               "-c tcp_keepalives_count=3")
    assert postgres_connect_args(10, 30, {"connect_timeout": 60})["connect_timeout"] == 60


def test_a_lost_database_names_the_revision_what_was_applied_and_the_kept_file():
    from toolkit.agent.apply import database_lost
    from toolkit.agent.protocol import ErrorCode, Revision
    from toolkit.protocol import failure_error

    error = database_lost("could not receive data from server: Connection timed out\nmore", [Revision("a1", "one", "")],
                          Revision("b2", "slow", ""), "/app/migrations/versions/c3_new.py")
    assert error.failure.code == ErrorCode.DATABASE_LOST
    assert error.failure.message == (
        "Lost the connection to the database (could not receive data from server: Connection timed out) while "
        "revision b2 (slow) was being applied: the server rolls it back (unless its commit had reached it: "
        "`devtool status` tells once the database answers); applied before: a1; the new revision file is kept, "
        "not applied: /app/migrations/versions/c3_new.py.")
    assert failure_error(error.failure).exit_code == 29
    assert "nothing was applied." in database_lost("timeout expired", []).failure.message


def test_the_flask_exit_code_for_a_lost_database_is_devtools():
    from toolkit.agent.protocol import FLASK_DATABASE_LOST
    from toolkit.errors import ExitCode

    assert FLASK_DATABASE_LOST == ExitCode.DATABASE_LOST


def test_pg_dump_gets_a_connect_timeout_and_server_side_keepalives():
    from types import SimpleNamespace

    from toolkit.agent.dialects import libpq_environment

    url = SimpleNamespace(host="db", port=None, database="app", username="u", password="pw",
                          query={"options": "-c search_path=app", "connect_timeout": "60"})
    env = libpq_environment(url)
    assert env["PGCONNECT_TIMEOUT"] == "60"  # the app's own
    assert env["PGOPTIONS"] == ("-c search_path=app -c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 "
                                "-c tcp_keepalives_count=3")
    plain = libpq_environment(SimpleNamespace(host="db", port=5432, database="app", username=None, password=None,
                                              query={}))
    assert plain["PGCONNECT_TIMEOUT"] == "10" and plain["PGOPTIONS"].startswith("-c tcp_keepalives_idle=15")
