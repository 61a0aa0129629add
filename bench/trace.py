#!/usr/bin/env python3
"""Where one devtool run spends its wall time: imports, each Docker API request, subprocesses, the exec stream.

    cd <a compose project> && python bench/trace.py migrate "add posts"      # any devtool arguments

Runs devtool in this process (the `toolkit` your Python imports) with a few wrappers, changes nothing on disk,
and prints a timeline to stderr when it exits: start offset, duration, what.  Pair it with
`python -X importtime -m toolkit ...` for the import side.  Used for the analysis in bench/RESULTS.md.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import time

T0 = time.perf_counter()
EVENTS: list[tuple[float, float, str]] = []


def mark(what: str, start: float) -> None:
    EVENTS.append((start - T0, time.perf_counter() - start, what))


_run = subprocess.run


def _timed_run(*args, **kwargs):
    start = time.perf_counter()
    try:
        return _run(*args, **kwargs)
    finally:
        command = args[0] if args else kwargs.get("args")
        mark("subprocess " + " ".join(map(str, command))[:100], start)


subprocess.run = _timed_run

start = time.perf_counter()
import requests.sessions  # noqa: E402  (docker-py's transport; imported here so its requests can be timed)

mark("import requests (docker-py's HTTP stack)", start)
_request = requests.sessions.Session.request


def _timed_request(self, method, url, *args, **kwargs):
    start = time.perf_counter()
    try:
        return _request(self, method, url, *args, **kwargs)
    finally:
        path = url.split("localhost", 1)[-1]
        mark(f"API {method} {path[:90]}", start)


requests.sessions.Session.request = _timed_request

import docker.api.exec_api as exec_api  # noqa: E402

_exec_start = exec_api.ExecApiMixin.exec_start


def _timed_exec_start(self, *args, **kwargs):
    start = time.perf_counter()
    stream = _exec_start(self, *args, **kwargs)
    if not kwargs.get("stream"):
        mark("exec_start", start)
        return stream

    def relay():
        first = True
        for item in stream:
            if first:
                mark("exec: first output", start)
                first = False
            yield item
        mark("exec: until the command in the container ended", start)

    return relay()


exec_api.ExecApiMixin.exec_start = _timed_exec_start


def report() -> None:
    total = time.perf_counter() - T0
    sys.stderr.write(f"\n--- devtool {' '.join(sys.argv[1:])}: {total * 1000:.0f} ms from tracer start "
                     "(add the interpreter's own start-up, ~30 ms)\n")
    for offset, duration, what in EVENTS:
        sys.stderr.write(f"{offset * 1000:8.1f} ms  +{duration * 1000:7.1f} ms  {what}\n")


atexit.register(report)

start = time.perf_counter()
from toolkit.cli import main  # noqa: E402

mark("import toolkit.cli (typer)", start)
sys.argv = ["devtool", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
