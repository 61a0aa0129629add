"""Engines other than the default socket (issue 5 §5): DOCKER_HOST over TCP, docker contexts, Compose v1.

The TCP engine is the same dockerd behind a second listener (socat, TCP loopback -> the unix socket), run with
-v so every HTTP request it forwards is logged: the User-Agent header tells docker-py (devtool itself) from
the compose CLI, which proves both went through TCP and not through the default socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import DEMO, copy_demo, run_devtool, wait_for

DEVTOOL_UA = "User-Agent: docker-sdk-python"
COMPOSE_UA = "User-Agent: compose/"
DEMO_HEAD = DEMO.initial


def _unix_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the engine is not on a unix socket here (DOCKER_HOST={host})")
    return host[len("unix://"):]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TcpEngine:
    """socat on 127.0.0.1:PORT forwarding to the engine's unix socket; its -v log holds each request."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = _free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.handle = open(log, "wb")
        self.process = subprocess.Popen(
            ["socat", "-d", "-d", "-v", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
             f"UNIX-CONNECT:{_unix_socket()}"], stdout=subprocess.DEVNULL, stderr=self.handle)
        wait_for(self._listening, timeout=15, interval=0.05, what=f"socat listening on {self.port}")
        self.offset = 0

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"socat exited ({self.process.returncode}): {self.log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def requests_since_mark(self) -> str:
        """What went through the listener since the last call."""
        data = self.log.read_bytes()
        new, self.offset = data[self.offset:], len(data)
        return new.decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.handle.close()


@pytest.fixture
def tcp_engine(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (scripts/provision installs it; or apt-get install socat)")
    engine = TcpEngine(tmp_path / "socat.log")
    yield engine
    engine.stop()


@pytest.fixture
def docker_config(tmp_path):
    """A private DOCKER_CONFIG (contexts made here touch nothing global), with the real CLI plugins."""
    config = tmp_path / "docker-config"
    config.mkdir()
    plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
    if plugins.is_dir():
        (config / "cli-plugins").symlink_to(plugins)
    return config


def _through_tcp(engine: TcpEngine, *, compose: bool) -> None:
    seen = engine.requests_since_mark()
    assert DEVTOOL_UA in seen, "devtool's own engine calls did not go through the TCP listener"
    if compose:
        assert COMPOSE_UA in seen, "compose's engine calls did not go through the TCP listener"


def _up_upgrade_current_status(s, engine: TcpEngine, env: dict) -> None:
    engine.requests_since_mark()
    up = s.devtool("up", env=env)
    assert up.returncode == 0, up.stderr
    _through_tcp(engine, compose=True)

    upgrade = s.devtool("db", "upgrade", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    current = s.devtool("db", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert DEMO_HEAD in current.stdout
    _through_tcp(engine, compose=False)

    status = s.devtool("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "backend: backend" in status.stdout and "Database is at head" in status.stdout
    _through_tcp(engine, compose=False)


@pytest.mark.docker
def test_docker_host_on_tcp_loopback(make_stack, tcp_engine):
    s = make_stack()
    _up_upgrade_current_status(s, tcp_engine, {"DOCKER_HOST": tcp_engine.url})
    forced = s.devtool("up", "--force", env={"DOCKER_HOST": tcp_engine.url})
    assert forced.returncode == 0, forced.stderr
    _through_tcp(tcp_engine, compose=True)


@pytest.mark.docker
def test_docker_context_from_env_var(make_stack, tcp_engine, docker_config):
    env = {"DOCKER_CONFIG": str(docker_config)}
    created = subprocess.run(["docker", "context", "create", "devtool-tcp", "--docker", f"host={tcp_engine.url}"],
                             env={**os.environ, **env}, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    s = make_stack()
    _up_upgrade_current_status(s, tcp_engine, {**env, "DOCKER_CONTEXT": "devtool-tcp"})


@pytest.mark.docker
def test_docker_context_use(make_stack, tcp_engine, docker_config):
    """`docker context use` (currentContext in config.json), in the private DOCKER_CONFIG only."""
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    env.pop("DOCKER_CONTEXT", None)
    for args in (["create", "devtool-tcp", "--docker", f"host={tcp_engine.url}"], ["use", "devtool-tcp"]):
        done = subprocess.run(["docker", "context", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    s = make_stack()
    tcp_engine.requests_since_mark()
    up = run_devtool("up", cwd=s.root, env={"DOCKER_CONFIG": str(docker_config)})
    assert up.returncode == 0, up.stderr
    _through_tcp(tcp_engine, compose=True)


def test_unknown_docker_context_is_a_clear_error(tmp_path, docker_config, monkeypatch):
    """Refused before any engine is asked: a copy of the demo stack is enough (DOCKER_HOST would win)."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    root = copy_demo(tmp_path / "demo")
    result = run_devtool("status", cwd=root,
                         env={"DOCKER_CONFIG": str(docker_config), "DOCKER_CONTEXT": "no-such-context"})
    assert result.returncode == 4, result.stderr
    assert "no-such-context" in result.stderr and "docker context ls" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- Compose v1 fallback (toolkit/compose.py)

def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """An empty directory that alone is PATH (plus /bin for sh), and compose_command's cache cleared around."""
    from toolkit import compose

    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}:/nonexistent")
    compose.compose_command.cache_clear()
    yield folder
    compose.compose_command.cache_clear()


def test_compose_v2_plugin_preferred(fake_bin):
    from toolkit import compose

    _script(fake_bin / "docker", '[ "$1 $2" = "compose version" ] && { echo 2.40.3; exit 0; }; exit 1')
    _script(fake_bin / "docker-compose", "exit 0")
    assert compose.compose_command() == (("docker", "compose"), None)


def test_compose_v1_fallback_with_notice(fake_bin):
    from toolkit import compose

    _script(fake_bin / "docker", 'echo "docker: unknown command: docker compose" >&2; exit 1')
    _script(fake_bin / "docker-compose", "echo 'docker-compose version 1.29.2'")
    command, notice = compose.compose_command()
    assert command == ("docker-compose",)
    assert "docker-compose (v1)" in notice and "Upgrade" in notice


def test_compose_v1_fallback_without_docker_cli(fake_bin):
    from toolkit import compose

    _script(fake_bin / "docker-compose", "exit 0")
    assert compose.compose_command()[0] == ("docker-compose",)


def test_no_compose_at_all_is_a_clear_error(fake_bin):
    from toolkit import compose
    from toolkit.errors import DevtoolError, ExitCode

    _script(fake_bin / "docker", "exit 1")
    with pytest.raises(DevtoolError) as caught:
        compose.compose_command()
    assert caught.value.exit_code == ExitCode.DOCKER_UNAVAILABLE
    assert "not installed" in caught.value.message and "docker-compose-plugin" in caught.value.hint


@pytest.mark.docker
def test_devtool_up_through_v1_fallback_shows_notice(make_stack, tmp_path):
    """End to end: `docker compose` made to fail, a `docker-compose` standing in for v1 (it runs v2 underneath)."""
    real_docker = shutil.which("docker")
    folder = tmp_path / "v1bin"
    folder.mkdir()
    _script(folder / "docker", f'[ "$1" = compose ] && exit 1; exec "{real_docker}" "$@"')
    _script(folder / "docker-compose", f'exec "{real_docker}" compose "$@"')
    s = make_stack()
    up = s.devtool("up", env={"PATH": f"{folder}:{os.environ['PATH']}"})
    assert up.returncode == 0, up.stderr
    assert "Docker Compose v2 not found; using docker-compose (v1)" in up.stderr
    assert "backend running" in up.stdout and "db healthy" in up.stdout


def test_context_store_without_config_json_with_tls(docker_config, tmp_path, monkeypatch):
    """The CLI keeps contexts in $DOCKER_CONFIG even with no config.json there; docker-py alone misses them."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a throw-away certificate)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=devtool-test"], check=True, capture_output=True)
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    subprocess.run(["docker", "context", "create", "devtool-tls", "--docker",
                    f"host=tcp://127.0.0.1:2376,ca={cert},cert={cert},key={key}"], env=env, check=True,
                   capture_output=True)
    assert not (docker_config / "config.json").exists()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    monkeypatch.setenv("DOCKER_CONTEXT", "devtool-tls")
    monkeypatch.delenv("DOCKER_HOST", raising=False)  # it would win over the context
    from toolkit.engine import _named_context, engine_address

    context = _named_context("devtool-tls")
    assert context.Host == "tcp://127.0.0.1:2376"
    assert context.TLSConfig.verify is True and context.TLSConfig.cert[0].endswith("cert.pem")
    assert engine_address() == "context devtool-tls (tcp://127.0.0.1:2376)"
