"""Finding the backend container the way compose does (issue 2 §5, test e), on the real engine."""

import json
import subprocess

import pytest

from conftest import POSTS_MODEL, copy_demo, run_devtool


def _rename_backend(stack, new_name: str, *, with_second_flask: bool = False):
    compose = stack.root / "docker-compose.yml"
    text = compose.read_text().replace("  backend:\n", f"  {new_name}:\n")
    if with_second_flask:  # a second service that also holds a Flask app with migrations
        text = text.replace("\n  db:\n", "\n  worker:\n    image: devtool-backend:dev\n    command: [\"sleep\", \"infinity\"]\n"
                                       "    volumes:\n      - ./templates/backend:/app\n  db:\n")  # top level only
    compose.write_text(text)


@pytest.mark.docker
def test_container_name_is_honoured(make_stack):
    s = make_stack()
    name = f"custom-{s.project}"
    compose = s.root / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("    image: devtool-backend:dev\n",
                                                   f"    image: devtool-backend:dev\n    container_name: {name}\n"))
    assert s.devtool("db", "upgrade").returncode == 0
    status = json.loads(s.devtool("status", "--json").stdout)
    assert {x["service"]: x["container"] for x in status["services"]}["backend"] == name
    s.add_model("post", POSTS_MODEL)
    assert s.devtool("migrate", "add posts").returncode == 0
    assert "posts" in s.tables()


@pytest.mark.docker
def test_directory_with_capitals_and_dots(make_stack):
    s = make_stack("My.Shop_App-2")
    assert s.project == "myshop_app-2"
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(["docker", "ps", "--filter", "label=com.docker.compose.project=myshop_app-2",
                             "--format", "{{.Names}}"], capture_output=True, text=True).stdout.split()
    assert sorted(listed) == ["myshop_app-2-backend-1", "myshop_app-2-db-1"]
    # devtool and compose agree on the name (compose's own reading of the same directory)
    config = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=s.root, capture_output=True,
                            text=True)
    assert json.loads(config.stdout)["name"] == s.project


@pytest.mark.docker
def test_two_checkouts_at_once_each_find_their_own(make_stack):
    first, second = make_stack("shop"), make_stack("shop-feature")
    assert first.devtool("db", "upgrade").returncode == 0
    assert second.devtool("db", "upgrade").returncode == 0
    second.add_model("post", POSTS_MODEL)
    assert second.devtool("migrate", "add posts").returncode == 0
    assert "posts" in second.tables() and "posts" not in first.tables()
    assert not any("add_posts" in p.name for p in first.versions())


def test_project_name_from_env_and_option(tmp_path, no_devtool_settings):
    """Files only, no engine: a copy of the demo stack, read in-process."""
    root = copy_demo(tmp_path / "demo")
    (root / ".env").write_text("COMPOSE_PROJECT_NAME=fromdotenv\n")
    from toolkit.project import load_project

    assert load_project(root).name == "fromdotenv"
    assert load_project(root, project_name="Given.Name").name == "givenname"


@pytest.mark.docker
def test_service_not_named_backend(make_stack):
    s = make_stack()
    _rename_backend(s, "web")
    s.project = s.project  # same project
    # auto-detected: the one service with a Flask app and migrations
    result = s.devtool("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert s.devtool("--service", "web", "db", "current").returncode == 0


@pytest.mark.docker
def test_ambiguous_backend_lists_candidates(tmp_path, engine_ready):
    root = copy_demo(tmp_path / "ambig")
    stack = type("S", (), {"root": root})()
    _rename_backend(stack, "web", with_second_flask=True)
    result = run_devtool("status", cwd=root)
    assert result.returncode == 5
    assert "Cannot tell which service is the Flask backend (candidates: web, worker)" in result.stderr
    assert "--service" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("raw,expected", [("My.Shop", "myshop"), ("__x-Y", "x-y"), ("a b!c", "abc"),
                                          ("_-9z", "9z")])
def test_normalize_project_name_unit(raw, expected):
    from toolkit.project import normalize_project_name

    assert normalize_project_name(raw) == expected
