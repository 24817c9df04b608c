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


def test_image_entrypoint_selects_the_job_and_checks_the_database(
    docker_engine: DockerEngine, app_image: str
) -> None:
    configuration = json.loads(
        docker_engine.docker(
            "image", "inspect", "--format", "{{json .Config}}", app_image
        ).stdout
    )
    assert configuration["Entrypoint"] == ["riemann-entrypoint"]
    assert configuration["Healthcheck"]["Test"] == ["CMD", "riemann", "db", "check"]


def test_image_answers_help_for_every_job(
    docker_engine: DockerEngine, app_image: str
) -> None:
    jobs = (["generate"], ["process"], ["cleanup"], ["db", "upgrade"], ["monitor"])
    for job in jobs:
        shown = docker_engine.docker(
            "run", "--rm", app_image, *job, "--help", check=False
        )
        assert shown.returncode == 0, f"{job}: {shown.stdout}{shown.stderr}"
        assert f"usage: {'monitor.py' if job == ['monitor'] else 'riemann'}" in (
            shown.stdout
        ), f"{job}: {shown.stdout}"


# A `riemann` that prints the worker count it was given, put first on PATH so that
# the entry point runs it instead of the real one.
SHOW_WORKERS = (
    "mkdir -p /tmp/stand-in && printf '#!/bin/sh\\necho \"$RIEMANN_WORKERS $*\"\\n' "
    "> /tmp/stand-in/riemann && chmod 755 /tmp/stand-in/riemann && "
    'nproc && PATH=/tmp/stand-in:$PATH riemann-entrypoint "$@"'
)


def entrypoint_with_stand_in(
    engine: DockerEngine, image: str, *options: str, job: str = "process"
) -> list[str]:
    shown = engine.docker(
        "run", "--rm", *options, "--entrypoint", "sh", image,
        "-c", SHOW_WORKERS, "entrypoint", job,
    )  # fmt: skip
    return shown.stdout.splitlines()


def test_process_job_runs_one_worker_per_core_the_container_may_use(
    docker_engine: DockerEngine, app_image: str
) -> None:
    cores, on_all = entrypoint_with_stand_in(docker_engine, app_image)
    one_core, on_cpu_0 = entrypoint_with_stand_in(
        docker_engine, app_image, "--cpuset-cpus", "0"
    )

    assert on_all == f"{cores} process"
    assert (one_core, on_cpu_0) == ("1", "1 process")


def test_process_job_keeps_the_configured_worker_count(
    docker_engine: DockerEngine, app_image: str
) -> None:
    _, shown = entrypoint_with_stand_in(
        docker_engine, app_image, "--env", "RIEMANN_WORKERS=3"
    )

    assert shown == "3 process"


def test_final_image_has_no_compiler(
    docker_engine: DockerEngine, app_image: str
) -> None:
    found = docker_engine.docker(
        "run", "--rm", "--entrypoint", "sh", app_image, "-c",
        "for compiler in gcc cc c++ g++ clang; do command -v $compiler; done; true",
    )  # fmt: skip
    assert found.stdout.strip() == ""
