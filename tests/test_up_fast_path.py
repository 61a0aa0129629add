"""`devtool up` skips compose when nothing changed, and still picks up a changed compose file or image
(issue 4 §2). Timings are the benchmark's business; this checks behaviour."""

import json
import subprocess

import pytest

pytestmark = pytest.mark.docker


def _backend(stack):
    ids = stack.compose("ps", "-q", "backend").stdout.split()
    return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True).stdout)[0]


def test_fast_path_and_changes_are_picked_up(make_stack):
    s = make_stack()
    image = f"devtool-fastpath-{s.project}:dev"
    subprocess.run(["docker", "tag", "devtool-backend:dev", image], check=True)
    try:
        compose = s.root / "docker-compose.yml"
        compose.write_text(compose.read_text().replace("image: devtool-backend:dev", f"image: {image}"))
        assert s.devtool("up").returncode == 0
        first = _backend(s)

        again = s.devtool("-v", "up")  # unchanged: the engine is asked, compose is not run
        assert again.returncode == 0 and "compose not needed" in again.stderr
        assert _backend(s)["Id"] == first["Id"]

        compose.write_text(compose.read_text().replace("      DATABASE_URL:", "      FASTPATH_MARK: changed\n"
                                                                             "      DATABASE_URL:"))
        changed = s.devtool("-v", "up")
        assert changed.returncode == 0 and "compose not needed" not in changed.stderr
        recreated = _backend(s)
        assert "FASTPATH_MARK=changed" in recreated["Config"]["Env"] and recreated["Id"] != first["Id"]

        build = subprocess.run(["docker", "build", "-q", "-t", image, "-"], input=f"FROM {image}\nLABEL mark=new\n",
                               text=True, capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
        assert build.returncode == 0, build.stderr
        rebuilt = s.devtool("-v", "up")
        assert rebuilt.returncode == 0 and "compose not needed" not in rebuilt.stderr
        assert _backend(s)["Config"]["Labels"].get("mark") == "new"
    finally:
        s.down()
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
