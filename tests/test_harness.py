"""The test harness itself: the tests exercise the checkout they live in."""

from conftest import REPO, run_devtool


def test_devtool_subprocess_imports_this_checkout(tmp_path):
    """Even from an unrelated directory, with another devtool pip-installed (editable) and a PYTHONPATH set."""
    result = run_devtool("--version", cwd=tmp_path, env={"PYTHONVERBOSE": "1", "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    # python -v names the file (or its .pyc) each module comes from
    loaded = [line for line in result.stderr.splitlines()
              if "/toolkit/__init__.py" in line or "/toolkit/__pycache__/__init__." in line]
    assert loaded and all(str(REPO / "toolkit") + "/" in line for line in loaded), loaded
