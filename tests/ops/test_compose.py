"""The compose file: it validates, runs a bounded search to the end on one host with
its alert monitor, and keeps every stored record across `down` and `up`."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO_ROOT
from .hosts import DockerEngine, wait_until

pytestmark = pytest.mark.ops

COMPOSE_FILE = REPO_ROOT / "docker" / "compose.yaml"
PROJECT = "riemann-compose-test"
SEARCH_LEVEL = 20


def write_env_file(folder: Path, **values: str) -> Path:
    env_file = folder / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return env_file


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE_FILE),
         "config", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_env_file(
        tmp_path_factory.mktemp("compose"),
        POSTGRES_PASSWORD="compose-test-password",
        RIEMANN_SEARCH_BOUNDS=f"--until-level {SEARCH_LEVEL}",
        RIEMANN_WORKERS="1",
    )


class Compose:
    """docker compose for one project on the test engine."""

    def __init__(self, engine: DockerEngine, env_file: Path) -> None:
        self.engine = engine
        self.env_file = env_file

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        completed = self.engine.docker(
            "compose", "--project-name", PROJECT, "--env-file", str(self.env_file),
            "-f", str(COMPOSE_FILE), *args, check=False, timeout=timeout,
        )  # fmt: skip
        if check:
            assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed.stdout

    def riemann(self, *args: str) -> str:
        return self("exec", "-T", "janitor", "riemann", *args)

    def status(self) -> dict:
        return json.loads(self.riemann("status", "--json"))

    def stored_records(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.riemann("export"))))


def block_counts(status: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for strategy in status["strategies"]:
        for state, count in strategy["blocks"].items():
            counts[state] = counts.get(state, 0) + count
    return counts


def search_finished(compose: Compose) -> bool:
    try:
        counts = block_counts(compose.status())
    except (AssertionError, json.JSONDecodeError):
        return False
    pending = sum(
        counts.get(state, 0) for state in ("NOT_STARTED", "IN_PROGRESS", "FAILED")
    )
    return counts.get("FINISHED", 0) > 0 and pending == 0


def closed_port(address: str) -> int:
    """A port on which nothing listens: mail to it is refused at once."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def running_env_file(docker_engine: DockerEngine, compose_env_file: Path) -> Path:
    """The settings plus the monitor's: this engine's socket and its group, and an
    SMTP server that refuses (the monitor's mail is tested in test_monitor.py)."""
    running = compose_env_file.with_name("running.env")
    running.write_text(
        compose_env_file.read_text()
        + f"RIEMANN_DOCKER_SOCKET={docker_engine.socket}\n"
        + f"RIEMANN_DOCKER_GID={os.stat(docker_engine.socket).st_gid}\n"
        + f"RIEMANN_ALERT_COMPOSE_PROJECT={PROJECT}\n"
        + "RIEMANN_ALERT_CLEAN_EXITS=true\n"
        + "RIEMANN_ALERT_INTERVAL=2\n"
        + f"RIEMANN_SMTP_HOST={docker_engine.gateway}\n"
        + f"RIEMANN_SMTP_PORT={closed_port(docker_engine.gateway)}\n"
        + "RIEMANN_SMTP_TO=ops@example.org\n"
        + "RIEMANN_SMTP_FROM=monitor@example.org\n"
    )
    return running


@pytest.fixture(scope="module")
def compose(
    docker_engine: DockerEngine, app_image: str, running_env_file: Path
) -> Iterator[Compose]:
    project = Compose(docker_engine, running_env_file)
    try:
        yield project
    finally:
        project("down", "--volumes", "--timeout", "10", check=False)


def test_compose_file_passes_config(compose_env_file: Path) -> None:
    checked = compose_config(compose_env_file)
    assert checked.returncode == 0, checked.stderr


def test_compose_config_requires_a_postgres_password(tmp_path: Path) -> None:
    checked = compose_config(write_env_file(tmp_path, RIEMANN_WORKERS="1"))
    assert checked.returncode != 0
    assert "POSTGRES_PASSWORD" in checked.stderr


def test_database_is_published_on_loopback_only_by_default(
    compose_env_file: Path,
) -> None:
    services = json.loads(compose_config(compose_env_file).stdout)["services"]
    assert [port["host_ip"] for port in services["db"]["ports"]] == ["127.0.0.1"]


def test_database_keeps_its_data_in_a_named_volume(compose_env_file: Path) -> None:
    services = json.loads(compose_config(compose_env_file).stdout)["services"]
    mounts = services["db"]["volumes"]
    assert [(mount["type"], mount["source"]) for mount in mounts] == [
        ("volume", "db-data")
    ]


def test_jobs_wait_for_a_healthy_database_and_the_finished_migration(
    compose_env_file: Path,
) -> None:
    services = json.loads(compose_config(compose_env_file).stdout)["services"]

    assert services["migrate"]["depends_on"] == {
        "db": {"condition": "service_healthy", "required": True}
    }
    for job in ("generator", "janitor", "worker"):
        assert services[job]["depends_on"] == {
            "db": {"condition": "service_healthy", "required": True},
            "migrate": {
                "condition": "service_completed_successfully",
                "required": True,
            },
        }, job


def test_monitor_service_reads_the_engine_socket_in_its_group(
    compose_env_file: Path, tmp_path: Path
) -> None:
    env_file = tmp_path / "monitor.env"
    env_file.write_text(
        compose_env_file.read_text()
        + "RIEMANN_DOCKER_GID=998\nRIEMANN_SMTP_PASSWORD=smtp-secret\n"
    )
    monitor = json.loads(compose_config(env_file).stdout)["services"]["monitor"]

    assert monitor["command"] == ["monitor"]
    assert monitor["group_add"] == ["998"]
    assert "depends_on" not in monitor
    assert {(mount["source"], mount["target"]) for mount in monitor["volumes"]} == {
        ("/var/run/docker.sock", "/var/run/docker.sock"),
        ("monitor-state", "/var/lib/riemann-monitor"),
    }
    environment = monitor["environment"]
    assert environment["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert environment["RIEMANN_SMTP_PASSWORD"] == "smtp-secret"
    assert environment["RIEMANN_ALERT_STATE_FILE"].startswith(
        "/var/lib/riemann-monitor/"
    )


def live_worker_hosts(compose: Compose) -> set[str]:
    return {worker["hostname"] for worker in compose.status()["workers"]}


def test_up_runs_a_bounded_search_to_the_end(compose: Compose) -> None:
    compose("up", "--detach", "--no-build", "--scale", "worker=2")
    wait_until(lambda: search_finished(compose), timeout=420, interval=3,
               what=f"every block up to level {SEARCH_LEVEL} to finish")  # fmt: skip
    assert block_counts(compose.status())["FINISHED"] > 0


def test_scale_runs_that_many_worker_containers(compose: Compose) -> None:
    workers = compose("ps", "--quiet", "--status", "running", "worker").split()

    assert len(workers) == 2
    # Each container's hostname is its id: one live worker in each.
    wait_until(lambda: len(live_worker_hosts(compose)) == 2, timeout=60,
               what="a live worker in each container")  # fmt: skip


def test_monitor_runs_beside_the_search_and_sees_its_exits(compose: Compose) -> None:
    # The one-shot migration exited 0; with clean exits included the monitor reports
    # it, which it can only do by reading the engine through the socket it was given.
    migrate = f"{PROJECT}-migrate-1"

    def reported() -> bool:
        logs = compose("logs", "--no-color", "monitor")
        return f"container exited container={migrate} exit_code=0" in logs

    wait_until(reported, timeout=60, interval=1, what="the monitor to see migrate")
    logs = compose("logs", "--no-color", "monitor")
    assert "Docker engine unreadable" not in logs
    assert "the SMTP server is unreachable" in logs
    running = compose("ps", "--quiet", "--status", "running", "monitor").split()
    assert len(running) == 1


def test_down_and_up_keep_every_stored_record(compose: Compose) -> None:
    wait_until(lambda: search_finished(compose), timeout=420, interval=3,
               what="the search to finish")  # fmt: skip
    records_before = compose.stored_records()
    assert records_before, "the search stored no record to keep"
    finished_before = block_counts(compose.status())["FINISHED"]

    compose("down", "--timeout", "60")
    compose("up", "--detach", "--no-build", "--scale", "worker=1")

    wait_until(lambda: search_finished(compose), timeout=120, interval=2,
               what="the search to answer again")  # fmt: skip
    assert compose.stored_records() == records_before
    assert block_counts(compose.status())["FINISHED"] == finished_before
