"""Every database connection the agent makes has deadlines (issue 16 §2): a connect timeout and TCP keepalives
(the dialect's connection parameters, added to every engine of the process: the app's, Alembic's, devtool's
own), and a watch that says, with seconds, when the server does not answer. A connection that is lost anyway
becomes DATABASE_LOST naming what was done (apply.py, actions.py)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Dict, Optional

from .app import log
from .dialects import DEADLINES, connect_args

WATCH_EVERY = 1.0  # seconds between two looks at the connections in use
SLOW_CONNECT = 2.0  # seconds after which a connection still opening is announced

_busy: Dict[int, dict] = {}  # id of a DB-API connection (or of a connect attempt) -> what waits on it
_lock = threading.Lock()


def guard_connections(connect_timeout: float, lost_after: float) -> None:
    """Once per process, before the app is loaded: every engine's new connections get the deadlines, and a
    daemon thread says when a connection waits on a silent server."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    DEADLINES.update(connect_timeout=connect_timeout, lost_after=lost_after)

    def connecting(dialect, record, cargs, cparams) -> None:
        extra = connect_args(dialect, connect_timeout, lost_after, cparams)
        if extra is None:
            return None
        cparams.update(extra)
        key = id(record)
        where = "%s:%s" % (cparams.get("host") or "local socket", cparams.get("port") or "default port")
        with _lock:
            _busy[key] = {"since": time.monotonic(), "what": "connect", "where": where, "said": False}
        try:
            return dialect.connect(*cargs, **cparams)
        finally:
            with _lock:
                _busy.pop(key, None)

    def executing(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = getattr(cursor, "connection", None)
        fileno = getattr(raw, "fileno", None)
        if fileno is None:
            return
        url = conn.engine.url
        with _lock:
            _busy[id(raw)] = {"since": time.monotonic(), "what": "statement", "fd": fileno, "said": False,
                              "where": "%s:%s" % (url.host or "local socket", url.port or "default port")}

    def executed(conn, cursor, *args) -> None:
        with _lock:
            _busy.pop(id(getattr(cursor, "connection", None)), None)

    event.listen(Engine, "do_connect", connecting)
    event.listen(Engine, "before_cursor_execute", executing)
    event.listen(Engine, "after_cursor_execute", executed)
    event.listen(Engine, "handle_error", lambda context: executed(None, getattr(context, "cursor", None)))
    threading.Thread(target=_watch, args=(connect_timeout, lost_after), name="devtool-db-watch", daemon=True).start()


def _watch(connect_timeout: float, lost_after: float) -> None:
    while True:
        time.sleep(WATCH_EVERY)
        now = time.monotonic()
        with _lock:
            waiting = list(_busy.values())
        for wait in waiting:
            waited = now - wait["since"]
            if wait["what"] == "connect" and waited >= SLOW_CONNECT and not wait["said"]:
                wait["said"] = True
                log("waiting for the database server at %s to accept a connection: %.0f s so far, devtool gives "
                    "up after %.0f s" % (wait["where"], waited, connect_timeout))
            elif wait["what"] == "statement" and _unanswered(wait) and not wait["said"]:
                wait["said"] = True
                log("the database server at %s has stopped answering (TCP probes unanswered): %.0f s into the "
                    "statement, devtool gives up %.0f s after its last answer" % (wait["where"], waited, lost_after))


def _unanswered(wait: dict) -> bool:
    """The kernel is probing a silent peer, or resending data it never acknowledged (Linux TCP_INFO)."""
    try:
        fd = wait["fd"]() if callable(wait["fd"]) else wait["fd"]
        probe = socket.socket(fileno=os.dup(fd))
    except (OSError, ValueError, TypeError):
        return False
    try:
        info = probe.getsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_INFO", 11), 8)
    except OSError:
        return False
    finally:
        probe.close()
    _state, _ca_state, retransmits, probes = struct.unpack("4B", info[:4])
    return bool(retransmits or probes)
