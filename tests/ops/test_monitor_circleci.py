"""The CircleCI configuration: its structure, its shell steps, its coverage upload.

CircleCI itself cannot run here: these tests check what can be checked offline, that
the jobs, executors and workflows name each other, that every step is valid shell,
and what the Coveralls step does with and without a token (with a stand-in `docker`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG_PATH = Path(__file__).resolve().parents[2] / ".circleci" / "config.yml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG_PATH.read_text())


def run_steps(config: dict) -> dict[str, str]:
    """Each job's `run` steps, by step name (job/name), as their shell command."""
    steps = {}
    for job_name, job in config["jobs"].items():
        for step in job["steps"]:
            if isinstance(step, dict) and "run" in step:
                run = step["run"]
                if isinstance(run, str):
                    run = {"name": run, "command": run}
                steps[f"{job_name}/{run['name']}"] = run["command"]
    return steps


def test_config_is_version_2_1_and_its_parts_name_each_other(config):
    assert config["version"] == 2.1
    assert config["jobs"]
    for workflow in config["workflows"].values():
        for entry in workflow["jobs"]:
            job_name = entry if isinstance(entry, str) else next(iter(entry))
            assert job_name in config["jobs"], f"workflow names unknown job {job_name}"
    for job_name, job in config["jobs"].items():
        assert job["executor"] in config["executors"], f"{job_name}: unknown executor"
        assert job["steps"][0] == "checkout", f"{job_name} does not check out first"


def test_the_tests_run_through_the_local_ci_entry_point(config):
    commands = run_steps(config).values()

    assert any(command.strip().endswith("bash .ci/run") for command in commands), (
        "no step runs bash .ci/run"
    )


def test_postgres_runs_from_a_postgres_image_in_the_tests_network(config):
    job = config["jobs"]["test"]
    command = run_steps(config)["test/Start the PostgreSQL service beside the tests"]

    assert job["environment"]["POSTGRES_IMAGE"].startswith("postgres:")
    assert '"$POSTGRES_IMAGE"' in command
    assert "--network container:riemann-ci" in command


def test_postgres_has_the_roles_and_databases_the_tests_connect_as(config):
    # tests/integration connects as postgres; the monitor's tests and the riemann
    # commands as root, the user the tests run as; databases test, root and postgres.
    command = run_steps(config)["test/Start the PostgreSQL service beside the tests"]
    start = command.split('"$POSTGRES_IMAGE"')[0]

    assert "POSTGRES_USER" not in start or "POSTGRES_USER=postgres" in start
    assert "createuser --host 127.0.0.1 --username postgres --superuser root" in (
        command
    )
    for database in ("test", "root"):
        assert f"createdb --host 127.0.0.1 --username postgres {database}" in command


def container_setup_lines(config) -> list[str]:
    """The lines of the script that prepares the test container, in order."""
    command = run_steps(config)[
        "test/Start the test container (privileged, the checkout mounted)"
    ]
    script = command.split("riemann-ci sh -ec '", 1)[1].split("'", 1)[0]
    return [line.strip() for line in script.replace("\\\n", " ").splitlines()]


def test_test_container_gets_the_postgresql_server_without_a_cluster(config):
    # The server binaries and the postgres user, as the local CI machine has, but
    # no cluster: the service container owns 127.0.0.1:5432 in this namespace.
    lines = container_setup_lines(config)
    install = next(
        i for i, line in enumerate(lines) if line.startswith(("apt-get install", "UCF"))
    )
    packages = lines[install].split("--no-install-recommends", 1)[1].split()

    assert "postgresql" in packages
    no_cluster = next(
        i for i, line in enumerate(lines) if "create_main_cluster = false" in line
    )
    assert lines[no_cluster].endswith("> /etc/postgresql-common/createcluster.conf")
    assert lines[no_cluster].startswith("echo ")
    assert "UCF_FORCE_CONFFOLD=1" in lines[install]
    refusal = next(
        i
        for i, line in enumerate(lines)
        if line.endswith("> /usr/sbin/policy-rc.d") and "exit 101" in line
    )
    assert no_cluster < install
    assert refusal < install


def test_every_run_step_is_valid_shell(config):
    for name, command in run_steps(config).items():
        checked = subprocess.run(
            ["bash", "-n"], input=command, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, f"{name}: {checked.stderr}"


@pytest.fixture
def stand_in_docker(tmp_path) -> Path:
    """A `docker` that records its arguments instead of running anything."""
    folder = tmp_path / "bin"
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" >> "{tmp_path}/docker-calls"\n')
    docker.chmod(0o755)
    return tmp_path


def run_upload(
    config: dict, home: Path, **variables: str
) -> subprocess.CompletedProcess:
    command = run_steps(config)["test/Upload coverage to Coveralls"]
    environment = {
        "PATH": f"{home / 'bin'}:{os.environ['PATH']}",
        "CIRCLECI": "true",
        **variables,
    }
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", command],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_coverage_upload_is_skipped_and_says_so_without_a_token(
    config, stand_in_docker
):
    result = run_upload(config, stand_in_docker)

    assert result.returncode == 0
    assert "COVERALLS_REPO_TOKEN is not set: skipped the upload" in result.stdout
    assert not (stand_in_docker / "docker-calls").exists()


def test_coverage_upload_runs_coveralls_in_the_test_container_with_a_token(
    config, stand_in_docker
):
    result = run_upload(config, stand_in_docker, COVERALLS_REPO_TOKEN="token-1234")

    assert result.returncode == 0, result.stderr
    arguments = (stand_in_docker / "docker-calls").read_text().split("\0")[:-1]
    assert arguments[0] == "exec"
    assert "COVERALLS_REPO_TOKEN" in arguments
    assert "token-1234" not in arguments
    assert "riemann-ci" in arguments
    assert "python3 -m coveralls" in arguments[-1]
    inner_script = subprocess.run(
        ["sh", "-n", "-c", arguments[-1]], capture_output=True, text=True, check=False
    )
    assert inner_script.returncode == 0, inner_script.stderr
