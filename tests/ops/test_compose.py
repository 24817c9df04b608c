"""The compose file: it validates, runs a bounded search to the end on one host, and
keeps every stored record across `down` and `up`."""

from __future__ import annotations

import csv
import io
import json
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


@pytest.fixture(scope="module")
def compose(
    docker_engine: DockerEngine, app_image: str, compose_env_file: Path
) -> Iterator[Compose]:
    project = Compose(docker_engine, compose_env_file)
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


def test_up_runs_a_bounded_search_to_the_end(compose: Compose) -> None:
    compose("up", "--detach", "--no-build", "--scale", "worker=2")
    wait_until(lambda: search_finished(compose), timeout=420, interval=3,
               what=f"every block up to level {SEARCH_LEVEL} to finish")  # fmt: skip
    assert block_counts(compose.status())["FINISHED"] > 0


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
