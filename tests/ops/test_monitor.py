"""The alert monitor as a process, against a real SMTP server and a real Docker engine.

The monitor's contract with the search is the command line (`status --json`,
`export`), not the database: most tests stand the search in with a fake `riemann` on
PATH printing what the test puts in its folder, and one runs the real command line
on a database of its own on the local PostgreSQL server.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .hosts import wait_until

pytestmark = pytest.mark.ops

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITOR = REPO_ROOT / "alerts" / "monitor.py"
STAND_IN_IMAGE = "python:3.11-slim"
SMTP_USER = "alerts@example.org"
SMTP_PASSWORD = "right-password"
COUNTEREXAMPLE_N = "10080"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(
            envelope.content, policy=email.policy.default
        )
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted"

    def wait_for(
        self, count: int, timeout: float = 30
    ) -> list[email.message.EmailMessage]:
        with self._arrived:
            arrived = self._arrived.wait_for(
                lambda: len(self.messages) >= count, timeout
            )
        assert arrived, f"{count} email(s) expected, {len(self.messages)} arrived"
        return list(self.messages)


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    security: str
    ca_file: Path | None = None
    login: bool = False

    def environment(self, password: str = SMTP_PASSWORD) -> dict[str, str]:
        environment = {
            "RIEMANN_SMTP_HOST": "127.0.0.1",
            "RIEMANN_SMTP_PORT": str(self.port),
            "RIEMANN_SMTP_SECURITY": self.security,
            "RIEMANN_SMTP_FROM": "monitor@example.org",
            "RIEMANN_SMTP_TO": "ops@example.org",
        }
        if self.ca_file is not None:
            environment["RIEMANN_SMTP_CA_FILE"] = str(self.ca_file)
        if self.login:
            environment["RIEMANN_SMTP_USER"] = SMTP_USER
            environment["RIEMANN_SMTP_PASSWORD"] = password
        return environment


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def accept_only_the_right_login(server, session, envelope, mechanism, auth_data):
    right = isinstance(auth_data, LoginPassword) and (
        auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=right, handled=False)


@pytest.fixture
def plain_smtp() -> Iterator[SmtpServer]:
    """Plain SMTP on loopback, without login."""
    server = SmtpServer(free_port(), Mailbox(), "plain")
    controller = Controller(server.mailbox, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def starttls_smtp(certificate) -> Iterator[SmtpServer]:
    """STARTTLS required, then a login required, as a mail provider would."""
    server = SmtpServer(
        free_port(), Mailbox(), "starttls", ca_file=certificate[0], login=True
    )
    controller = Controller(
        server.mailbox,
        hostname="127.0.0.1",
        port=server.port,
        tls_context=server_tls_context(certificate),
        require_starttls=True,
        authenticator=accept_only_the_right_login,
        auth_required=True,
    )
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def implicit_tls_smtp(certificate) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), Mailbox(), "tls", ca_file=certificate[0])
    controller = Controller(
        server.mailbox,
        hostname="127.0.0.1",
        port=server.port,
        ssl_context=server_tls_context(certificate),
    )
    controller.start()
    yield server
    controller.stop()


@dataclass
class FakeRiemann:
    """A `riemann` executable printing the status and export the test sets."""

    folder: Path

    def set_status(self, last_finished_at: str | None) -> None:
        status = {
            "last_finished_at": last_finished_at,
            "strategies": [
                {
                    "strategy": "superabundant",
                    "blocks": {"FINISHED": 40, "IN_PROGRESS": 2, "NOT_STARTED": 8},
                    "candidates_checked": 12000,
                }
            ],
        }
        (self.folder / "status.json").write_text(json.dumps(status))

    def set_export(self, rows: list[str]) -> None:
        header = "n,divisor_sum,witness_value,log_n,strategy,level,exponents,block_id"
        (self.folder / "export.csv").write_text("\n".join([header, *rows]) + "\n")

    def calls(self) -> list[str]:
        calls_file = self.folder / "calls.log"
        return calls_file.read_text().splitlines() if calls_file.exists() else []


FAKE_RIEMANN = """#!{python}
import sys
from pathlib import Path

folder = Path(__file__).parent
with open(folder / "calls.log", "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["status", "--json"]:
    sys.stdout.write((folder / "status.json").read_text())
elif sys.argv[1:2] == ["export"]:
    sys.stdout.write((folder / "export.csv").read_text())
else:
    sys.exit("fake riemann: unexpected arguments")
"""


@pytest.fixture
def fake_riemann(tmp_path) -> FakeRiemann:
    folder = tmp_path / "bin"
    folder.mkdir()
    executable = folder / "riemann"
    executable.write_text(FAKE_RIEMANN.format(python=sys.executable))
    executable.chmod(0o755)
    fake = FakeRiemann(folder)
    fake.set_status("2026-01-01T00:00:00Z")
    fake.set_export([])
    return fake


def monitor_environment(tmp_path: Path, *settings: dict[str, str]) -> dict[str, str]:
    """A clean environment: only PATH (the fake riemann first) and the settings."""
    environment = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "RIEMANN_LOG_LEVEL": "DEBUG",
        "RIEMANN_ALERT_STATE_FILE": str(tmp_path / "state" / "monitor.json"),
    }
    for each in settings:
        environment.update(each)
    return environment


def run_once(
    environment: dict[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MONITOR), "--once", *arguments],
        env=environment,
        cwd=environment["HOME"],  # no .env of the repository is read
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class RunningMonitor:
    """The monitor in its loop, its log lines collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _logged: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, environment: dict[str, str], *arguments: str) -> RunningMonitor:
        process = subprocess.Popen(
            [sys.executable, str(MONITOR), *arguments],
            env=environment,
            cwd=environment["HOME"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = cls(process)
        threading.Thread(target=running._collect, daemon=True).start()
        return running

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._logged:
                self.lines.append(line)
                self._logged.notify_all()

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines)

    def wait_for_log(self, fragment: str, count: int = 1, timeout: float = 30) -> None:
        with self._logged:
            logged = self._logged.wait_for(
                lambda: (
                    self.count(fragment) >= count or self.process.poll() is not None
                ),
                timeout,
            )
        assert logged, f"{fragment!r} not logged {count} times:\n{self.log()}"
        assert self.count(fragment) >= count, f"monitor exited:\n{self.log()}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def running_monitors() -> Iterator[list[RunningMonitor]]:
    monitors: list[RunningMonitor] = []
    yield monitors
    for running in monitors:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(timeout=30)


# --- Exited containers ----------------------------------------------------------------


@pytest.fixture
def compose_project(docker_engine) -> Iterator[str]:
    """A compose project name of the test's own; its containers go afterwards."""
    project = f"monitortest{uuid.uuid4().hex[:8]}"
    yield project
    listed = docker_engine.docker(
        "ps",
        "--all",
        "--quiet",
        "--filter",
        f"label=com.docker.compose.project={project}",
    )
    if listed.stdout.split():
        docker_engine.docker("rm", "--force", *listed.stdout.split())


def exits_settings(docker_engine, project: str) -> dict[str, str]:
    return {
        "DOCKER_HOST": docker_engine.docker_host,
        "RIEMANN_ALERT_CHECKS": "exits",
        "RIEMANN_ALERT_COMPOSE_PROJECT": project,
        "RIEMANN_ALERT_INTERVAL": "0.2",
    }


def test_exited_container_is_emailed_once_across_rounds_and_restarts(
    tmp_path, docker_engine, compose_project, plain_smtp, running_monitors
):
    container = f"{compose_project}-worker-1"
    exited = docker_engine.docker(
        "run", "--name", container, "--network", "none",
        "--label", f"com.docker.compose.project={compose_project}",
        STAND_IN_IMAGE, "sh", "-c", "echo boom; exit 3",
        check=False,
    )  # fmt: skip
    assert exited.returncode == 3, exited.stderr
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        exits_settings(docker_engine, compose_project),
    )

    running = RunningMonitor.start(environment)
    running_monitors.append(running)
    (message,) = plain_smtp.mailbox.wait_for(1)
    running.wait_for_log("round of checks finished", count=5)
    assert running.stop() == 0
    restarted = run_once(environment)

    assert restarted.returncode == 0, restarted.stderr
    assert len(plain_smtp.mailbox.messages) == 1
    assert container in message["Subject"]
    assert "exited with code 3" in message["Subject"]
    body = message.get_content()
    assert body.startswith(f"Container {container} on host ")
    assert "boom" in body


def test_crash_looping_container_is_emailed_once_within_its_quiet_period(
    tmp_path, docker_engine, compose_project, plain_smtp, running_monitors
):
    container = f"{compose_project}-worker-1"
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        exits_settings(docker_engine, compose_project),
    )
    running = RunningMonitor.start(environment)
    running_monitors.append(running)
    running.wait_for_log("round of checks finished")

    docker_engine.docker(
        "run", "--detach", "--name", container, "--network", "none",
        "--restart", "unless-stopped",
        "--label", f"com.docker.compose.project={compose_project}",
        STAND_IN_IMAGE, "sh", "-c", "echo crashing; sleep 0.2; exit 4",
    )  # fmt: skip
    running.wait_for_log("logged, not emailed", count=2)
    assert running.stop() == 0

    (message,) = plain_smtp.mailbox.messages
    assert f"container {container} exited with code 4" in message["Subject"]
    assert "crashing" in message.get_content()


def test_monitor_runs_in_a_container_of_the_base_image_through_the_engine_socket(
    docker_engine, compose_project
):
    container = f"{compose_project}-worker-1"
    docker_engine.docker(
        "run", "--name", container, "--network", "none",
        "--label", f"com.docker.compose.project={compose_project}",
        STAND_IN_IMAGE, "sh", "-c", "exit 5",
        check=False,
    )  # fmt: skip

    # Only the standard library is there; nothing listens for mail in that network.
    result = docker_engine.docker(
        "run", "--rm", "--network", "none",
        "--volume", f"{docker_engine.socket}:/var/run/docker.sock",
        "--volume", f"{MONITOR}:/opt/riemann/alerts/monitor.py:ro",
        "--env", "RIEMANN_SMTP_HOST=127.0.0.1",
        "--env", "RIEMANN_SMTP_SECURITY=plain",
        "--env", "RIEMANN_SMTP_FROM=monitor@example.org",
        "--env", "RIEMANN_SMTP_TO=ops@example.org",
        "--env", "RIEMANN_ALERT_STATE_FILE=/tmp/monitor.json",
        STAND_IN_IMAGE,
        "python3", "/opt/riemann/alerts/monitor.py", "--once", "--checks", "exits",
        "--compose-project", compose_project,
        check=False,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    assert f"container exited container={container} exit_code=5" in result.stderr
    assert "the SMTP server is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def smtp_on_the_engines_network(tmp_path, docker_engine) -> Iterator[SmtpServer]:
    """STARTTLS and a login, on this machine's address as the engine's containers
    reach it, with a certificate for that address."""
    address = docker_engine.gateway
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={address}",
         "-addext", f"subjectAltName=IP:{address}"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = SmtpServer(free_port(), Mailbox(), "starttls", ca_file=cert, login=True)
    controller = Controller(
        server.mailbox,
        hostname=address,
        port=server.port,
        tls_context=server_tls_context((cert, key)),
        require_starttls=True,
        authenticator=accept_only_the_right_login,
        auth_required=True,
    )
    controller.start()
    yield server
    controller.stop()


def run_monitor_job(docker_engine, app_image, smtp, project, *options):
    """`docker run IMAGE monitor --once` as the image's user, the engine's socket
    mounted, the CA file too."""
    settings = {
        **smtp.environment(),
        "RIEMANN_SMTP_HOST": docker_engine.gateway,
        "RIEMANN_SMTP_CA_FILE": "/run/smtp-ca.pem",
    }
    environment = [f"--env={name}={value}" for name, value in settings.items()]
    return docker_engine.docker(
        "run", "--rm", *options,
        "--volume", f"{docker_engine.socket}:/var/run/docker.sock",
        "--volume", f"{smtp.ca_file}:/run/smtp-ca.pem:ro",
        *environment, app_image,
        "monitor", "--once", "--checks", "exits", "--compose-project", project,
        check=False,
    )  # fmt: skip


def test_monitor_job_of_the_app_image_emails_an_exit_as_its_non_root_user(
    docker_engine, app_image, compose_project, smtp_on_the_engines_network
):
    smtp = smtp_on_the_engines_network
    container = f"{compose_project}-worker-1"
    docker_engine.docker(
        "run", "--name", container, "--network", "none",
        "--label", f"com.docker.compose.project={compose_project}",
        STAND_IN_IMAGE, "sh", "-c", "echo last words; exit 6",
        check=False,
    )  # fmt: skip
    socket_group = str(os.stat(docker_engine.socket).st_gid)

    # The image's user (not root) may use the socket only in the socket's group.
    outside = run_monitor_job(docker_engine, app_image, smtp, compose_project)
    inside = run_monitor_job(
        docker_engine, app_image, smtp, compose_project, "--group-add", socket_group
    )

    assert outside.returncode == 1
    assert "no permission to use the Docker engine socket" in outside.stderr
    assert "RIEMANN_DOCKER_GID" in outside.stderr
    assert inside.returncode == 0, inside.stderr
    (message,) = smtp.mailbox.wait_for(1)
    assert (
        f"[riemann] container {container} exited with code 6 on "
        in (message["Subject"])
    )
    assert "last words" in message.get_content()
    assert SMTP_PASSWORD not in inside.stderr + outside.stderr


# --- Counterexamples and stalls -------------------------------------------------------


def test_counterexample_is_emailed_with_the_finding_at_the_top(
    tmp_path, fake_riemann, starttls_smtp
):
    fake_riemann.set_export(
        [
            # 5040 itself is the last n where Robin's inequality fails: no finding.
            "5040,19344,1.7909733665348811333,8.525,superabundant,6,4 2 1 1,1",
            # Below e^gamma, though equal to it as a float.
            "55440,232128,1.78107241799019798,10.92300,superabundant,8,4 2 1 1 1,2",
            f"{COUNTEREXAMPLE_N},39312,1.7810724179901979852365041031071795491697,"
            "9.218,superabundant,7,5 2 1 1,3",
        ]
    )
    environment = monitor_environment(
        tmp_path,
        starttls_smtp.environment(),
        {"RIEMANN_ALERT_CHECKS": "counterexamples"},
    )

    first = run_once(environment)
    again = run_once(environment)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    (message,) = starttls_smtp.mailbox.wait_for(1)
    assert len(starttls_smtp.mailbox.messages) == 1
    assert message["Subject"].startswith(
        f"[riemann] COUNTEREXAMPLE to Robin's inequality: n = {COUNTEREXAMPLE_N},"
    )
    first_line = message.get_content().splitlines()[0]
    assert first_line.startswith(
        f"COUNTEREXAMPLE TO ROBIN'S INEQUALITY: n = {COUNTEREXAMPLE_N} > 5040"
    )
    assert "55440" not in message.get_content()
    assert "export --min-witness 1.781" in fake_riemann.calls()


def test_stall_is_emailed_once(tmp_path, fake_riemann, plain_smtp):
    fake_riemann.set_status("2026-01-01T00:00:00Z")
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        {"RIEMANN_ALERT_CHECKS": "stall", "RIEMANN_ALERT_STALL_AFTER": "3600"},
    )

    results = [run_once(environment) for _ in range(3)]

    assert [result.returncode for result in results] == [0, 0, 0]
    (message,) = plain_smtp.mailbox.wait_for(1)
    assert len(plain_smtp.mailbox.messages) == 1
    assert "the search has stalled" in message["Subject"]
    assert "since 2026-01-01T00:00:00+00:00" in message.get_content()


@pytest.fixture
def search_database(tmp_path) -> Iterator[str]:
    """A database of the test's own on the local server, migrated by `riemann`."""
    name = f"monitor_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    dsn = f"host=127.0.0.1 dbname={name}"
    try:
        upgrade = subprocess.run(
            [sys.executable, "-m", "riemann", "db", "upgrade"],
            env={**os.environ, "RIEMANN_DSN": dsn},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert upgrade.returncode == 0, upgrade.stderr
        yield dsn
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def plant_finished_block_with_witness(dsn: str, witness_value: str) -> None:
    """What a worker leaves after a block two days ago: its result and a witness.

    Written in SQL of the schema: the point is what `riemann status` and `riemann
    export` print from real rows, which the monitor must understand.
    """
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO searches (strategy, store_threshold, start_ordinal,"
            " next_ordinal) VALUES ('superabundant', '1.767', 0, 10)"
        )
        cursor.execute(
            "INSERT INTO search_blocks (strategy, start_index, end_index,"
            " start_ordinal, end_ordinal, state, finished_at, candidates_checked)"
            " VALUES ('superabundant', '1:0', '3:0', 0, 10, 'FINISHED',"
            " now() - interval '2 days', 10) RETURNING block_id"
        )
        (block_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO witnesses (strategy, n, divisor_sum, witness_value, log_n,"
            " level, exponents, block_id) VALUES ('superabundant', %s, 39312,"
            " %s::numeric, 9.218, 7, '{5,2,1,1}', %s)",
            (COUNTEREXAMPLE_N, witness_value, block_id),
        )
    connection.close()


def test_monitor_understands_the_real_search_command_line(
    tmp_path, search_database, plain_smtp
):
    plant_finished_block_with_witness(
        search_database, "1.7810724179901979852365041031071795491697"
    )
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        {
            "RIEMANN_DSN": search_database,
            "RIEMANN_ALERT_CHECKS": "counterexamples,stall",
            "RIEMANN_ALERT_RIEMANN_COMMAND": f"{sys.executable} -m riemann",
        },
    )

    result = run_once(environment)

    assert result.returncode == 0, result.stderr
    finding, stall = plain_smtp.mailbox.wait_for(2)
    assert finding["Subject"].startswith(
        f"[riemann] COUNTEREXAMPLE to Robin's inequality: n = {COUNTEREXAMPLE_N},"
    )
    assert "the search has stalled: no block finished for 48 h" in stall["Subject"]
    assert "FINISHED 1" in stall.get_content()


def test_unreadable_status_is_emailed_once_across_runs_from_cron(
    tmp_path, fake_riemann, plain_smtp
):
    (fake_riemann.folder / "status.json").write_text("not json")
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        {"RIEMANN_ALERT_CHECKS": "stall", "RIEMANN_ALERT_STALL_AFTER": "0.5"},
    )

    first = run_once(environment)
    assert first.returncode == 1
    assert plain_smtp.mailbox.messages == []
    # Each run is a new process: only the state file carries the time across.
    wait_until(
        lambda: run_once(environment) and plain_smtp.mailbox.messages,
        timeout=30,
        what="the status unreadable email",
    )
    again = run_once(environment)

    assert again.returncode == 1
    (message,) = plain_smtp.mailbox.messages
    assert "search status unreadable" in message["Subject"]
    assert "not JSON" in message.get_content()


def test_unreadable_docker_engine_is_emailed_once_across_runs_from_cron(
    tmp_path, plain_smtp
):
    absent_socket = tmp_path / "no-engine" / "docker.sock"
    environment = monitor_environment(
        tmp_path,
        plain_smtp.environment(),
        {
            "RIEMANN_ALERT_CHECKS": "exits",
            "DOCKER_HOST": f"unix://{absent_socket}",
            "RIEMANN_ALERT_ENGINE_UNREADABLE_AFTER": "0.5",
        },
    )

    first = run_once(environment)
    assert first.returncode == 1
    assert "Docker engine unreadable" in first.stderr
    assert plain_smtp.mailbox.messages == []
    wait_until(
        lambda: run_once(environment) and plain_smtp.mailbox.messages,
        timeout=30,
        what="the engine unreadable email",
    )
    again = run_once(environment)

    assert again.returncode == 1
    (message,) = plain_smtp.mailbox.messages
    assert "Docker engine unreadable" in message["Subject"]
    assert str(absent_socket) in message.get_content()


# --- Mail failures --------------------------------------------------------------------


def test_wrong_smtp_password_is_one_clear_log_line_and_the_monitor_keeps_running(
    tmp_path, fake_riemann, starttls_smtp, running_monitors
):
    wrong_password = "wrong-password-e7f1"
    environment = monitor_environment(
        tmp_path,
        starttls_smtp.environment(password=wrong_password),
        {"RIEMANN_ALERT_CHECKS": "stall", "RIEMANN_ALERT_INTERVAL": "0.2"},
    )

    running = RunningMonitor.start(environment)
    running_monitors.append(running)
    running.wait_for_log("refused the login", count=2)
    still_running = running.process.poll() is None
    exit_code = running.stop()

    assert still_running
    assert exit_code == 0
    refusal = next(line for line in running.lines if "refused the login" in line)
    assert "RIEMANN_SMTP_PASSWORD" in refusal
    assert "535" in refusal
    assert wrong_password not in running.log()
    assert "Traceback" not in running.log()
    assert starttls_smtp.mailbox.messages == []


def test_non_ascii_smtp_password_is_one_clear_log_line_and_the_monitor_keeps_running(
    tmp_path, fake_riemann, starttls_smtp, running_monitors
):
    # smtplib logs in with ASCII only: its UnicodeEncodeError names the character.
    password = "mot-de-passe-\u00e9t\u00e9-41c2"
    environment = monitor_environment(
        tmp_path,
        starttls_smtp.environment(password=password),
        {"RIEMANN_ALERT_CHECKS": "stall", "RIEMANN_ALERT_INTERVAL": "0.2"},
    )

    running = RunningMonitor.start(environment)
    running_monitors.append(running)
    running.wait_for_log("SMTP login could not be sent", count=2)
    still_running = running.process.poll() is None
    exit_code = running.stop()

    assert still_running
    assert exit_code == 0
    refusal = next(
        line for line in running.lines if "SMTP login could not be sent" in line
    )
    assert "RIEMANN_SMTP_PASSWORD" in refusal
    assert "\u00e9" not in running.log()
    assert "Traceback" not in running.log()
    assert starttls_smtp.mailbox.messages == []


def test_unreachable_smtp_server_is_one_clear_log_line(tmp_path, fake_riemann):
    nobody_listens = SmtpServer(free_port(), Mailbox(), "plain")
    environment = monitor_environment(
        tmp_path, nobody_listens.environment(), {"RIEMANN_ALERT_CHECKS": "stall"}
    )

    result = run_once(environment)

    assert result.returncode == 1
    assert "the SMTP server is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_untrusted_smtp_certificate_is_refused_with_a_clear_log_line(
    tmp_path, fake_riemann, starttls_smtp
):
    settings = starttls_smtp.environment()
    del settings["RIEMANN_SMTP_CA_FILE"]
    environment = monitor_environment(
        tmp_path, settings, {"RIEMANN_ALERT_CHECKS": "stall"}
    )

    result = run_once(environment)

    assert result.returncode == 1
    assert "certificate is not trusted" in result.stderr
    assert "Traceback" not in result.stderr
    assert starttls_smtp.mailbox.messages == []


def test_mail_goes_over_implicit_tls_to_a_server_the_ca_file_vouches_for(
    tmp_path, fake_riemann, implicit_tls_smtp
):
    environment = monitor_environment(
        tmp_path, implicit_tls_smtp.environment(), {"RIEMANN_ALERT_CHECKS": "stall"}
    )

    result = run_once(environment)

    assert result.returncode == 0, result.stderr
    (message,) = implicit_tls_smtp.mailbox.wait_for(1)
    assert "stalled" in message["Subject"]


# --- The monitor's own failures -------------------------------------------------------


class BrokenEngine(http.server.BaseHTTPRequestHandler):
    """A Docker engine that breaks the API contract: its container list is what
    the test sets, by default containers without an Id."""

    def do_GET(self):
        answer = (
            {"Name": "broken-host"}
            if self.path == "/info"
            else self.server.containers_answer
        )
        content = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format, *args):
        pass


@dataclass
class BrokenEngineServer:
    server: http.server.ThreadingHTTPServer

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def answer_containers_with(self, answer: object) -> None:
        self.server.containers_answer = answer


@pytest.fixture
def broken_engine() -> Iterator[BrokenEngineServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BrokenEngine)
    server.containers_answer = [{"Names": ["/x"]}]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield BrokenEngineServer(server)
    server.shutdown()
    server.server_close()


def broken_engine_environment(
    tmp_path: Path, smtp: SmtpServer, engine: BrokenEngineServer
) -> dict[str, str]:
    # The state file is the same for every run of one test, as on a volume.
    return monitor_environment(
        tmp_path,
        smtp.environment(),
        {"RIEMANN_ALERT_CHECKS": "exits", "DOCKER_HOST": engine.docker_host},
    )


def test_unexpected_failure_is_emailed_before_the_monitor_exits(
    tmp_path, plain_smtp, broken_engine
):
    environment = broken_engine_environment(tmp_path, plain_smtp, broken_engine)

    result = run_once(environment)

    assert result.returncode == 70
    assert "monitor failed unexpectedly" in result.stderr
    (message,) = plain_smtp.mailbox.wait_for(1)
    assert message["Subject"] == (
        "[riemann] the alert monitor on broken-host stopped: KeyError"
    )
    assert "KeyError: 'Id'" in message.get_content()


def test_same_failure_at_the_next_start_is_logged_not_emailed_again(
    tmp_path, plain_smtp, broken_engine
):
    environment = broken_engine_environment(tmp_path, plain_smtp, broken_engine)
    first = run_once(environment)
    assert first.returncode == 70
    plain_smtp.mailbox.wait_for(1)

    # As the restart policy starts it again: the same failure, the same state file.
    again = run_once(environment)

    assert again.returncode == 70
    assert "monitor failed unexpectedly" in again.stderr
    (repeat_line,) = [
        line for line in again.stderr.splitlines() if "monitor failed as before" in line
    ]
    assert "not emailed again within the repeat period" in repeat_line
    assert "KeyError: 'Id'" in repeat_line
    # The monitor sends before it exits: a second email would be here by now.
    assert len(plain_smtp.mailbox.messages) == 1


def test_different_failure_at_the_next_start_is_emailed(
    tmp_path, plain_smtp, broken_engine
):
    environment = broken_engine_environment(tmp_path, plain_smtp, broken_engine)
    assert run_once(environment).returncode == 70
    plain_smtp.mailbox.wait_for(1)
    broken_engine.answer_containers_with({"not": "a list"})

    again = run_once(environment)

    assert again.returncode == 70
    first, second = plain_smtp.mailbox.wait_for(2)
    assert first["Subject"].endswith("stopped: KeyError")
    assert second["Subject"].endswith("stopped: TypeError")
    assert "monitor failed as before" not in again.stderr


def test_missing_smtp_server_setting_stops_the_monitor_with_one_line(tmp_path):
    result = run_once(monitor_environment(tmp_path, {"RIEMANN_SMTP_TO": "a@b"}))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "RIEMANN_SMTP_HOST" in result.stderr
