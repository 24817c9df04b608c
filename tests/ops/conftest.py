"""Fixtures of the operations tests: a Docker engine of the tests' own, the stand-in
base images, a local PyPI mirror and the application image.

Other ops tests (the monitor's, for one) get a ready engine from `docker_engine`
(its `docker_host` is the DOCKER_HOST value) and the application image from
`app_image`. Everything is cached under RIEMANN_OPS_CACHE (default
/var/cache/riemann-tests) so that a second run skips debootstrap, downloads and most
of the image build. What cannot be had (not root, a tool not installed) skips the
tests with the reason; tests/ops/install-prerequisites.sh installs every tool. Under
CI (the CI variable set, as CircleCI and .ci/run's callers set it) it fails them
instead: CI installs every tool, so a missing one is a broken CI, not a reason to
pass without testing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .base_images import load_stand_in_images, stand_in_rootfs
from .hosts import CACHE_DIR, DockerEngine, TestNetwork
from .package_index import PackageIndex, build_wheelhouse

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_IMAGE = "riemann:latest"
REQUIRED_COMMANDS = (
    "dockerd", "docker", "iptables", "debootstrap", "sshd", "ssh", "ssh-keygen",
    "nsenter", "unshare", "ip", "git", "hadolint",
)  # fmt: skip


def missing_prerequisite() -> str | None:
    """Why the ops tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the ops tests need root (network namespaces, dockerd, debootstrap)"
    search_path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    for command in REQUIRED_COMMANDS:
        if shutil.which(command, path=search_path) is None:
            return f"{command} is not installed; run tests/ops/install-prerequisites.sh"
    compose = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    )
    if compose.returncode != 0:
        return "the docker compose plugin is missing; run install-prerequisites.sh"
    return None


def remove_leftovers(engine: DockerEngine) -> None:
    """Empties an engine kept from an earlier run, keeping its images and cache."""
    containers = engine.docker("ps", "--all", "--quiet").stdout.split()
    if containers:
        engine.docker("rm", "--force", "--volumes", *containers)
    volumes = engine.docker("volume", "ls", "--quiet").stdout.split()
    if volumes:
        engine.docker("volume", "rm", "--force", *volumes)
    engine.docker("network", "prune", "--force")
    engine.docker("image", "prune", "--force")


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def ops_cache() -> Iterator[Path]:
    """The cache folder; while ops fixtures live, SIGTERM still runs their teardown
    (namespaces, daemons), as pytest does for Ctrl-C."""
    reason = missing_prerequisite()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield CACHE_DIR
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


@pytest.fixture(scope="session")
def stand_in_images(ops_cache: Path) -> Path:
    """The cached root filesystems of python:3.11-slim and postgres:16 stand-ins."""
    return stand_in_rootfs(ops_cache)


@pytest.fixture(scope="session")
def wheelhouse(ops_cache: Path) -> Path:
    return build_wheelhouse(ops_cache, REPO_ROOT / "requirements.txt")


@pytest.fixture(scope="session")
def docker_engine(ops_cache: Path, stand_in_images: Path) -> Iterator[DockerEngine]:
    """A dockerd in a namespace of its own with the stand-in base images loaded."""
    network = TestNetwork.create()
    try:
        host = network.add_host("engine")
        engine = host.start_docker(persistent_name="engine")
        remove_leftovers(engine)
        load_stand_in_images(engine, stand_in_images)
        yield engine
    finally:
        network.close()


@pytest.fixture(scope="session")
def package_index(
    wheelhouse: Path, docker_engine: DockerEngine
) -> Iterator[PackageIndex]:
    """The wheelhouse served where the engine's builds reach it."""
    index = PackageIndex(wheelhouse, docker_engine.gateway)
    yield index
    index.close()


def build_arguments(index: PackageIndex) -> list[str]:
    host = index.url.split("/")[2].split(":")[0]
    return [
        "--build-arg", f"PIP_INDEX_URL={index.url}",
        "--build-arg", f"PIP_TRUSTED_HOST={host}",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def app_image(docker_engine: DockerEngine, package_index: PackageIndex) -> str:
    """The application image built from this working tree, tagged riemann:latest."""
    built = docker_engine.docker(
        "build", "--file", str(REPO_ROOT / "docker" / "Dockerfile"),
        "--tag", APP_IMAGE, *build_arguments(package_index), str(REPO_ROOT),
        check=False, timeout=1200,
    )  # fmt: skip
    assert built.returncode == 0, f"image build failed:\n{built.stdout}\n{built.stderr}"
    return APP_IMAGE
