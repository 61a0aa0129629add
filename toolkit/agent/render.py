"""The SQL `upgrade --sql` writes for one revision, by the line of the revision file that wrote it: what the
lint reads where op.execute builds its SQL at run time."""

from __future__ import annotations

import io
import os
import sys
from typing import Dict, List, Optional


class _LineBuffer(io.StringIO):
    """Alembic's offline output, each piece kept with the line of `path` that was running when it was written."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.pieces = path, []

    def write(self, text: str) -> int:
        frame = sys._getframe(1)
        while frame is not None and os.path.abspath(frame.f_code.co_filename) != self.path:
            frame = frame.f_back
        if frame is not None:
            self.pieces.append((frame.f_lineno, text))
        return len(text)


def upgrade_sql(session, script, revision) -> Optional[Dict[int, List[str]]]:
    """{line: [SQL text]} of `revision`'s upgrade, rendered offline; None when it cannot be (a revision that
    queries the database, an env.py without offline mode, a merge point)."""
    from alembic.runtime.environment import EnvironmentContext

    down = revision.down_revision
    if isinstance(down, (tuple, list)):
        if len(down) != 1:
            return None
        down = down[0]
    buffer = _LineBuffer(os.path.abspath(revision.path))
    try:
        with EnvironmentContext(session.config(), script, as_sql=True, starting_rev=down,
                                destination_rev=revision.revision, output_buffer=buffer, tag=None,
                                fn=lambda rev, context: script._upgrade_revs(revision.revision, rev)):
            script.run_env()
    except Exception:  # whatever the revision or env.py does offline: the lint says it could not see the SQL
        return None
    rendered: Dict[int, List[str]] = {}
    for line, text in buffer.pieces:
        rendered.setdefault(line, []).append(text)
    return {line: ["".join(texts)] for line, texts in rendered.items()}
