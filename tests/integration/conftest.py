"""A database of its own for every test, on the PostgreSQL server of the machine.

The server is found through RIEMANN_TEST_SERVER_DSN (default: the local server on
127.0.0.1:5432 as user postgres, which CI and the development machines run).
"""

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

from riemann.store import Store

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SERVER_DSN = os.environ.get(
    "RIEMANN_TEST_SERVER_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def _administer(statement: str) -> None:
    connection = psycopg2.connect(SERVER_DSN, connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture
def dsn() -> Iterator[str]:
    """The DSN of a new, empty database, dropped after the test."""
    try:
        _administer("SELECT 1")
    except psycopg2.OperationalError as error:
        pytest.fail(
            f"the test PostgreSQL server is not reachable ({SERVER_DSN}): {error}"
        )
    name = f"riemann_test_{uuid.uuid4().hex[:12]}"
    _administer(f'CREATE DATABASE "{name}"')
    yield make_dsn(SERVER_DSN, dbname=name)
    _administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    """A store on a fresh database with the current schema."""
    with Store(dsn) as opened:
        opened.upgrade()
        yield opened


def sql(dsn: str, statement: str, parameters: dict | None = None) -> list[tuple]:
    """Run one statement on the test database and return its rows (if any)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def cli_environment(**extra: str) -> dict[str, str]:
    """The environment for a `riemann` subprocess: no stray database settings."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in ("RIEMANN_DSN", "RIEMANN_DATA_DIR")
    }
    environment.update(extra)
    return environment


def riemann_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "riemann", *arguments]


def run_riemann(
    *arguments: str, timeout: float = 120, **environment: str
) -> subprocess.CompletedProcess[str]:
    """Run the command line to completion in a subprocess, in an empty folder (so no
    developer's .env is read)."""
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run(
            riemann_command(*arguments),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=folder,
            env=cli_environment(**environment),
            stdin=subprocess.DEVNULL,
        )


def database_name(dsn: str) -> str:
    return parse_dsn(dsn)["dbname"]


def wait_until(condition, timeout: float = 60, interval: float = 0.1, what: str = ""):
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_stray_processes() -> Iterator[None]:
    """Kill what a test started in the background and left running (it failed)."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)


def start_riemann(*arguments: str, **environment: str) -> subprocess.Popen[str]:
    """Start the command line in the background, in a session of its own (so a
    signal can go to it and its worker processes, as a terminal's Ctrl-C does)."""
    process = subprocess.Popen(
        riemann_command(*arguments),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
        env=cli_environment(**environment),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _started.append(process)
    return process
