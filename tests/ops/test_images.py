"""The application image: it lints clean, builds, and runs the command line as a
non-root user with a health check."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import REPO_ROOT
from .hosts import DockerEngine, wait_until

pytestmark = pytest.mark.ops


def test_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run(
        ["hadolint", str(REPO_ROOT / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_stand_in_postgres_image_answers_pg_isready(
    docker_engine: DockerEngine,
) -> None:
    name = "riemann-test-postgres-stand-in"
    docker_engine.docker(
        "run", "--detach", "--name", name, "--env", "POSTGRES_PASSWORD=stand-in",
        "--env", "POSTGRES_USER=riemann", "--env", "POSTGRES_DB=riemann", "postgres:16",
    )  # fmt: skip
    try:
        wait_until(
            lambda: (
                docker_engine.docker(
                    "exec",
                    name,
                    "pg_isready",
                    "-U",
                    "riemann",
                    "-d",
                    "riemann",
                    check=False,
                ).returncode
                == 0
            ),
            timeout=60,
            what="the stand-in postgres",
        )
        query = docker_engine.docker(
            "exec", name, "psql", "-U", "riemann", "-d", "riemann", "-tAc", "select 1"
        )
        assert query.stdout.strip() == "1"
    finally:
        docker_engine.docker("rm", "--force", "--volumes", name, check=False)


def test_image_runs_as_a_non_root_user(
    docker_engine: DockerEngine, app_image: str
) -> None:
    user = docker_engine.docker(
        "run", "--rm", "--entrypoint", "id", app_image, "-u"
    ).stdout.strip()
    assert user != "0"


def test_image_entrypoint_is_the_command_line(
    docker_engine: DockerEngine, app_image: str
) -> None:
    configuration = json.loads(
        docker_engine.docker(
            "image", "inspect", "--format", "{{json .Config}}", app_image
        ).stdout
    )
    assert configuration["Entrypoint"] == ["riemann"]
    assert configuration["Healthcheck"]["Test"] == ["CMD", "riemann", "db", "check"]


def test_image_answers_help_for_every_job(
    docker_engine: DockerEngine, app_image: str
) -> None:
    for job in (["generate"], ["process"], ["cleanup"], ["db", "upgrade"]):
        shown = docker_engine.docker(
            "run", "--rm", app_image, *job, "--help", check=False
        )
        assert shown.returncode == 0, f"{job}: {shown.stdout}{shown.stderr}"


def test_image_carries_the_alert_monitor(
    docker_engine: DockerEngine, app_image: str
) -> None:
    shown = docker_engine.docker(
        "run", "--rm", "--entrypoint", "riemann-monitor", app_image, "--help",
        check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
