"""The test harness itself: the tests exercise the checkout they live in, and engine tests are marked `docker`."""

import pytest

from conftest import REPO, run_devtool


def test_devtool_subprocess_imports_this_checkout(tmp_path):
    """Even from an unrelated directory, with another devtool pip-installed (editable) and a PYTHONPATH set."""
    result = run_devtool("--version", cwd=tmp_path, env={"PYTHONVERBOSE": "1", "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    # python -v names the file (or its .pyc) each module comes from
    loaded = [line for line in result.stderr.splitlines()
              if "/toolkit/__init__.py" in line or "/toolkit/__pycache__/__init__." in line]
    assert loaded and all(str(REPO / "toolkit") + "/" in line for line in loaded), loaded


def test_engine_tests_without_the_docker_marker_fail_collection(pytester, monkeypatch):
    """The guard in conftest: a test reaching engine_ready (here through make_stack) must be marked `docker`."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only pytest and this conftest: quick
    pytester.makepyfile(test_drift="""
        import pytest


        def test_unmarked(make_stack):
            pass


        @pytest.mark.docker
        def test_marked(make_stack):
            pass


        def test_pure():
            pass
    """)
    for selection in ([], ["-m", "not docker"], ["-m", "docker"]):  # the guard runs before -m deselects
        result = pytester.runpytest_inprocess("-p", "conftest", "-p", "no:cacheprovider", "--collect-only", "-q",
                                              *selection)  # `-p conftest`: this suite's conftest as a plugin
        assert result.ret == pytest.ExitCode.INTERRUPTED, (selection, result.outlines)  # collection errors
        # the error itself; a short summary (`-ra`, on or off depending on options) may repeat it after "ERROR "
        errors = [line for line in result.outlines if line.startswith("test_drift.py::")]
        assert errors == ["test_drift.py::test_unmarked uses the engine_ready fixture but has no `docker` marker: "
                          "add `pytestmark = pytest.mark.docker` to its module or @pytest.mark.docker to it."], \
            result.outlines
