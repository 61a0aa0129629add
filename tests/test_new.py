"""devtool new (issue 5.2): a project from templates/ that runs on the real engine, and the refusals."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import POSTS_MODEL, REPO, run_devtool

TEMPLATE_BACKEND = REPO / "templates" / "backend"


def compose(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", *args], cwd=project, text=True, capture_output=True, check=check,
                          stdin=subprocess.DEVNULL)


def template_files() -> dict[str, bytes]:
    return {p.relative_to(TEMPLATE_BACKEND).as_posix(): p.read_bytes() for p in TEMPLATE_BACKEND.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


@pytest.fixture(scope="module")
def project(tmp_path_factory, engine_ready):
    """`devtool new` then `devtool setup`: one running generated project for the module; removed afterwards."""
    name = f"new{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("new") / name
    result = run_devtool("new", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stderr
    try:
        setup = run_devtool("setup", cwd=path)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        yield path
    finally:
        compose(path, "down", "-v", "--remove-orphans", "-t", "1", check=False)
        subprocess.run(["docker", "image", "rm", "-f", f"{name}-backend:dev"], capture_output=True)


def tables(project: Path) -> set[str]:
    name = project.name  # database and user are the project name
    result = compose(project, "exec", "-T", "db", "psql", "-X", "-At", "-U", name, "-d", name, "-c",
                     "SELECT tablename FROM pg_tables WHERE schemaname='public'")
    return set(result.stdout.split())


@pytest.mark.docker
def test_generated_project_is_set_up_with_the_users_table(project):
    assert {"users", "alembic_version"} <= tables(project)
    services = compose(project, "config", "--services").stdout.split()
    assert sorted(services) == ["backend", "db"]
    config = compose(project, "config", "--format", "json").stdout
    document = json.loads(config)
    assert document["name"] == project.name
    assert document["services"]["backend"]["image"] == f"{project.name}-backend:dev"
    assert document["services"]["db"]["image"] == "postgres:15"
    assert "pg_isready" in document["services"]["db"]["healthcheck"]["test"]
    assert not (project / "devtool.toml").exists()  # found by auto-detection: the service is `backend`


@pytest.mark.docker
def test_migrate_in_the_generated_project(project):
    models = project / "backend" / "app" / "models"
    (models / "post.py").write_text(POSTS_MODEL)
    init = models / "__init__.py"
    anchor = "    from . import user  # noqa: F401\n"
    init.write_text(init.read_text().replace(anchor, anchor + "    from . import post  # noqa: F401\n"))

    result = run_devtool("migrate", "add posts", cwd=project)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "posts" in tables(project)
    assert len(list((project / "backend" / "migrations" / "versions").glob("*_add_posts.py"))) == 1


def test_backend_is_a_verbatim_copy_and_templates_are_rendered(tmp_path):
    path = tmp_path / "shop"
    result = run_devtool("new", str(path), "--name", "My Shop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    copied = {p.relative_to(path / "backend").as_posix(): p.read_bytes()
              for p in (path / "backend").rglob("*") if p.is_file()}
    assert copied == template_files()
    assert "versions/310ddeb54bfc_create_users_table.py" in " ".join(copied)
    assert not list(path.rglob("__pycache__"))
    for name in ("compose.yaml", ".env.example", "README.md", ".gitignore"):
        text = (path / name).read_text()
        assert "{{" not in text and "{%" not in text, name
    compose_text = (path / "compose.yaml").read_text()
    assert "name: myshop" in compose_text and "image: myshop-backend:dev" in compose_text
    assert "POSTGRES_USER=myshop" in (path / ".env.example").read_text()
    assert (path / "README.md").read_text().startswith("# My Shop\n")


@pytest.mark.docker
def test_other_service_name_writes_devtool_toml_and_devtool_finds_it(tmp_path, engine_ready):
    path = tmp_path / "api-project"
    result = run_devtool("new", str(path), "--service", "api", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (path / "api" / "app" / "models" / "user.py").is_file()
    assert not (path / "backend").exists()
    assert 'backend_service = "api"' in (path / "devtool.toml").read_text()
    assert sorted(compose(path, "config", "--services").stdout.split()) == ["api", "db"]

    report = json.loads(run_devtool("config", "--json", cwd=path).stdout)
    assert report["backend_service"] == {"value": "api", "source": f"devtool.toml ({path / 'devtool.toml'})"}
    status = run_devtool("status", "--json", cwd=path)  # nothing running: only which service is the backend
    assert json.loads(status.stdout)["backend"] == "api", status.stderr


def test_refuses_a_non_empty_directory_and_writes_nothing(tmp_path):
    path = tmp_path / "existing"
    path.mkdir()
    (path / "notes.txt").write_text("mine")

    result = run_devtool("new", str(path), cwd=tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("✗")]
    assert errors == [f"✗ {path} is not empty (notes.txt); nothing written."]
    assert "--force" in result.stderr
    assert [p.name for p in path.iterdir()] == ["notes.txt"]


def test_force_writes_into_a_non_empty_directory_keeping_other_files(tmp_path):
    path = tmp_path / "existing"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "README.md").write_text("old readme")

    result = run_devtool("new", str(path), "--force", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (path / "notes.txt").read_text() == "mine"
    assert (path / "README.md").read_text().startswith("# existing\n")
    assert "Overwrote 1 existing file(s): README.md" in result.stderr
    assert (path / "compose.yaml").is_file() and (path / "backend" / "Dockerfile").is_file()


@pytest.mark.parametrize("args, message", [
    (["--name", "___"], "Cannot make a project name from '___'."),
    (["--service", "db"], "The backend service cannot be called 'db'"),
    (["--service", "my service"], "Invalid service name 'my service'."),
])
def test_bad_names_are_refused(tmp_path, args, message):
    result = run_devtool("new", str(tmp_path / "p"), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p").exists()


def test_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = run_devtool("new", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert "exists and is not a directory" in result.stderr


def test_new_ignores_a_broken_configuration_around_it(tmp_path):
    (tmp_path / "devtool.toml").write_text("unknown = 1\n")
    result = run_devtool("new", "fresh", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh" / "compose.yaml").is_file()
    # its own refusal is what is reported, not the configuration around it
    result = run_devtool("new", "fresh", cwd=tmp_path)
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert "unknown key" not in result.stderr and "Traceback" not in result.stderr

