"""Pure logic: how `up` (and every command that starts the stack) judges a container from the engine's state.
A crash loop is a failure in every state the engine can show it in (issue 16 §3)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from toolkit.stack import BACKEND_SETTLE, RESTART_SETTLE, _readiness, restart_loop


@dataclass
class Container:
    """The engine's view of a container, as docker-py's Container exposes it (status, attrs, labels)."""
    status: str
    restarts: int = 0
    exit_code: int = 0
    policy: str = "no"
    up_for: float = 60.0  # seconds since its main process last started
    labels: dict = field(default_factory=lambda: {"com.docker.compose.service": "backend"})

    @property
    def attrs(self) -> dict:
        started = datetime.now(timezone.utc) - timedelta(seconds=self.up_for)
        return {"State": {"ExitCode": self.exit_code, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f123Z")},
                "RestartCount": self.restarts, "HostConfig": {"RestartPolicy": {"Name": self.policy}}}


LOOP = "keeps exiting: its restart policy restarted it"


def test_a_crash_loop_is_the_same_failure_running_or_restarting():
    between_crashes = Container("running", restarts=7, policy="always")
    waiting = Container("restarting", restarts=8, exit_code=3, policy="always")
    for container in (between_crashes, waiting):
        for is_backend in (True, False):  # any service, not only the backend
            for settle in (True, False):  # `devtool up` and the commands that exec into the backend alike
                problem, busy = _readiness(container, is_backend, settle)
                assert problem.startswith(LOOP) and not busy, (container, is_backend, settle)
    assert restart_loop(between_crashes) == f"{LOOP} 7 times since it was started"
    assert restart_loop(Container("running", restarts=1, policy="unless-stopped")).endswith("1 time since it was "
                                                                                            "started")


def test_a_restart_policy_that_gave_up_is_an_exit():
    problem, _ = _readiness(Container("exited", restarts=3, exit_code=3, policy="on-failure"), True, True)
    assert problem == "exited with code 3"


def test_a_started_backend_with_a_restart_policy_is_watched_longer():
    for policy, settle_time in (("always", RESTART_SETTLE), ("on-failure", RESTART_SETTLE), ("no", BACKEND_SETTLE)):
        young = Container("running", policy=policy, up_for=settle_time - 0.5)
        assert _readiness(young, True, True) == (None, True), policy
        assert _readiness(young, True, False) == (None, False), policy  # a command that execs: explained if it dies
        assert _readiness(Container("running", policy=policy, up_for=settle_time + 0.5), True, True) == (None, False)
    watched = Container("running", up_for=BACKEND_SETTLE + 0.5)  # restarted by `up --force`, any service
    assert _readiness(watched, False, True, watched=True) == (None, True)


def test_a_job_that_finished_and_a_healthy_service_are_ready():
    assert _readiness(Container("exited"), False, True) == (None, False)
    assert _readiness(Container("running", restarts=0, policy="always"), False, True) == (None, False)
