"""Where a Dockerfile puts the build context's folders (toolkit/dockerfile.py): what devtool needs to find a baked
backend's migrations folder on the host (issue 9 §2). Pure logic, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, REPO
from toolkit.dockerfile import Copy, context_copies, context_path, image_path, instructions


@pytest.fixture
def context(tmp_path: Path) -> Path:
    for folder in ("migrations/versions", "src/db/migrations", "app"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "requirements.txt").write_text("flask\n")
    return tmp_path


def test_the_demo_and_legacy_dockerfiles():
    demo = context_copies((REPO / "templates/backend/Dockerfile").read_text())
    assert demo == [Copy("requirements.txt", "/app"), Copy(".", "/app")]
    legacy = context_copies((FIXTURES / "legacy/docker/api.Dockerfile").read_text())
    assert Copy("src", "/srv/api") in legacy
    assert image_path(FIXTURES / "legacy/src/db/migrations", FIXTURES / "legacy", legacy) == "/srv/api/db/migrations"
    assert context_path("/srv/api/db/migrations/env.py", FIXTURES / "legacy", legacy) == \
        FIXTURES / "legacy/src/db/migrations/env.py"


def test_folders_map_both_ways(context):
    copies = context_copies("FROM python\nWORKDIR /srv\nCOPY requirements.txt .\nWORKDIR app\nCOPY . .\n")
    assert image_path(context / "migrations", context, copies) == "/srv/app/migrations"
    assert context_path("/srv/app/migrations/versions/x.py", context, copies) == context / "migrations/versions/x.py"
    assert context_path("/srv/requirements.txt", context, copies) is None  # a file copy is never a folder's parent
    assert context_path("/opt/elsewhere", context, copies) is None
    assert image_path(Path("/somewhere/else"), context, copies) is None


def test_a_later_copy_wins_and_a_subfolder_copy_counts(context):
    copies = context_copies("FROM python\nCOPY . /app\nCOPY src/ /code/\n")
    assert image_path(context / "src/db/migrations", context, copies) == "/code/db/migrations"
    assert context_path("/code/db/migrations/env.py", context, copies) == context / "src/db/migrations/env.py"
    assert context_path("/app/src/db/migrations", context, copies) == context / "src/db/migrations"


@pytest.mark.parametrize("text", [
    "FROM python\nCOPY --from=builder /src /app\n",  # from another stage, not from the context
    "FROM python\nARG SRC=.\nCOPY $SRC /app\n",  # a variable devtool cannot expand
    "FROM python\nCOPY *.py /app/\n",  # a glob
    "FROM python\nADD https://example.com/app.tar.gz /app\n",  # a URL
    "FROM python\nWORKDIR $HOME\nCOPY . .\n",  # a destination under a variable workdir
])
def test_copies_devtool_cannot_follow_are_not_guessed(context, text):
    copies = context_copies(text)
    assert image_path(context / "migrations", context, copies) is None


def test_stages_target_and_inheritance(context):
    text = ("# syntax=docker/dockerfile:1\nFROM python:3.11 AS base\nWORKDIR /app\nCOPY . .\n\n"
            "FROM base AS dev\nRUN pip install debugpy\n\nFROM python:3.11-slim AS prod\nCOPY --from=base /app /app\n")
    assert image_path(context / "migrations", context, context_copies(text, "dev")) == "/app/migrations"
    assert image_path(context / "migrations", context, context_copies(text)) is None  # the last stage: prod
    assert image_path(context / "migrations", context, context_copies(text, "DEV")) == "/app/migrations"


def test_instruction_syntax(context):
    text = ('# escape=`\nFROM python\nCOPY [ "src/", `\n  "/opt/app/" ]\n'
            '# a comment\nCOPY --chown=1000:1000 --link migrations /data/migrations\n')
    assert instructions(text)[1][0] == "COPY"
    copies = context_copies(text)
    assert Copy("src", "/opt/app") in copies
    assert image_path(context / "migrations", context, copies) == "/data/migrations"
    continued = context_copies("FROM python\nRUN apt-get update \\\n    # comment inside\n    && true\nCOPY . /w\n")
    assert continued == [Copy(".", "/w")]
