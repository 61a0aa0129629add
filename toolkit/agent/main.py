"""The agent's entry point and its one dispatch table.

The host's bootstrap puts this package's folder on sys.path and calls main(REQUEST_JSON) with the app's own
Python; the warm server calls run_request() in a fresh fork for each request.
"""

from __future__ import annotations

import os
import sys

from . import actions, server
from .app import AgentError, error_text, first_line
from .client import watch_client
from .connections import guard_connections
from .dialects import connection_lost
from .files import hand_over_all
from .protocol import (CommandsRequest, ConnectionRequest, CopyRequest, DatabaseRequest, DropCopiesRequest,
                       ErrorCode, Failure, FileSnapshotRequest, FlaskRequest, LintRequest, MigrateRequest,
                       RehearseRequest, ReplayRequest, RestoreCopyRequest, RestoreFileRequest, RevisionsRequest,
                       StatusRequest, SyncRequest, UpgradeRequest,
                       decode_request, result_line)

ACTIONS = {
    MigrateRequest.action: actions.migrate,
    UpgradeRequest.action: actions.upgrade,
    StatusRequest.action: actions.status,
    FlaskRequest.action: actions.flask,  # streams and exits with flask's own code
    DatabaseRequest.action: actions.database,
    CommandsRequest.action: actions.db_commands,
    CopyRequest.action: actions.snapshot_copy,
    RestoreCopyRequest.action: actions.snapshot_restore,
    DropCopiesRequest.action: actions.snapshot_drop,
    ConnectionRequest.action: actions.connection,
    RevisionsRequest.action: actions.revisions,
    SyncRequest.action: actions.sync,
    FileSnapshotRequest.action: actions.snapshot_file,
    RestoreFileRequest.action: actions.restore_file,
    LintRequest.action: actions.lint,
    RehearseRequest.action: actions.rehearse,
    ReplayRequest.action: actions.replay,
}

HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # /tmp/devtool-agent-<id>-<nonce>
AGENT_ID = os.path.basename(HOME).split("-")[2]  # the content hash: a new devtool never talks to an old server


def main(request_text: str) -> None:
    if decode_request(request_text).warm:
        code = server.run_warm(AGENT_ID, HOME, request_text)
        if code is not None:
            sys.exit(code)
    run_request(request_text)


def run_request(request_text: str) -> None:
    """Do one request in this process and print its result line (flask requests exit with flask's code)."""
    watch_client()
    _bytecode_cache()
    try:
        request = decode_request(request_text)
        guard_connections(request.connect_timeout, request.lost_after)
        result = ACTIONS[request.action](request)
    except AgentError as exc:
        result = exc.failure
    except Exception as exc:  # the app's or a library's failure: one readable line back to devtool
        import traceback

        traceback.print_exc()
        result = Failure(code=ErrorCode.AGENT_FAILED, message="%s: %s" % (type(exc).__name__, first_line(exc)),
                         error=error_text(exc))
        if connection_lost(None, exc):
            result = Failure(code=ErrorCode.DATABASE_LOST, message="The database did not answer (%s); nothing was "
                             "changed." % first_line(exc), error=error_text(exc))
    hand_over_all()
    sys.stdout.write(result_line(result))
    sys.stdout.flush()


def _bytecode_cache() -> None:
    """Compiled modules (the revision files above all: a long history is read by every command, and compiling
    3,000 files costs most of a second) are kept in devtool's private folder, never next to the sources."""
    folder = server.private_dir()
    if folder is not None:
        sys.pycache_prefix = os.path.join(folder, "pycache")
        sys.dont_write_bytecode = False


def serve(path: str) -> None:
    server.serve(path, run_request)
