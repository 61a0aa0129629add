"""Is devtool still there? It keeps the exec's stdin open for as long as it runs, so end of file on stdin means
it went away (Ctrl-C, killed, connection lost): nothing it has not seen through may start after that."""

from __future__ import annotations

import os
import threading

_client_gone = threading.Event()


def watch_client() -> None:
    """devtool keeps the exec's stdin open for as long as it runs: end of file means it went away (Ctrl-C,
    killed, connection lost). The request itself reads /dev/null instead."""
    watched = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def wait() -> None:
        try:
            while os.read(watched, 4096):
                pass
        except OSError:
            pass
        _client_gone.set()

    threading.Thread(target=wait, name="devtool-client-watch", daemon=True).start()


def client_gone() -> bool:
    return _client_gone.is_set()


def on_client_gone(callback) -> None:
    """Call `callback` (in another thread) when devtool goes away."""
    threading.Thread(target=lambda: _client_gone.wait() and callback(), name="devtool-on-gone", daemon=True).start()
