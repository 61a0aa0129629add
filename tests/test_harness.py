"""The test harness itself: the tests exercise the checkout they live in."""

import os
import subprocess
import sys

from conftest import REPO, run_devtool


def test_devtool_subprocess_imports_this_checkout(tmp_path):
    """Even from an unrelated directory, with another devtool pip-installed (editable) and a PYTHONPATH set."""
    result = run_devtool("--version", cwd=tmp_path, env={"PYTHONVERBOSE": "1", "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    # python -v names the file (or its .pyc) each module comes from
    loaded = [line for line in result.stderr.splitlines()
              if "/toolkit/__init__.py" in line or "/toolkit/__pycache__/__init__." in line]
    assert loaded and all(str(REPO / "toolkit") + "/" in line for line in loaded), loaded


def test_engine_tests_without_the_docker_marker_fail_collection(tmp_path):
    """The guard in conftest: a test reaching engine_ready (here through make_stack) must be marked `docker`."""
    (tmp_path / "test_drift.py").write_text(
        "import pytest\n\n\n"
        "def test_unmarked(make_stack):\n    pass\n\n\n"
        "@pytest.mark.docker\ndef test_marked(make_stack):\n    pass\n\n\n"
        "def test_pure():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}  # `-p conftest`: this suite's conftest as a plugin
    for selection in ([], ["-m", "not docker"]):
        result = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
                                 "--collect-only", "-q", *selection, "test_drift.py"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (selection, result.stdout, result.stderr)  # interrupted: collection errors
        errors = [line for line in result.stdout.splitlines() if "has no `docker` marker" in line]
        assert errors == ["test_drift.py::test_unmarked uses the engine_ready fixture but has no `docker` marker: "
                          "add `pytestmark = pytest.mark.docker` to its module or @pytest.mark.docker to it."], \
            result.stdout
