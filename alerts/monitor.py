#!/usr/bin/env python3
"""Email alerts for one host of the riemann search: exited containers, stalls, findings.

The monitor runs beside the search on every host, as a process on the host or as a job
of the application image, and checks in a loop:

- exits: a container of the search has exited, restricted to the search's compose
  project or name prefix: what `docker ps -a --filter status=exited` lists, and the
  engine's die events, which alone show a container that its restart policy started
  again; one email per failure, naming the host, the container, its exit code and
  its last log lines, and at most one an hour for a container in a crash loop;
- stall: no block has finished for a configurable time; one email per stall;
- counterexamples: a stored candidate n > 5040 has a witness value of at least
  e^gamma; an email at once, the finding in its subject and first line;
- blindness: the Docker engine or the search status could not be read for a while
  (a wrong socket, no permission on it, an unreachable database); one email each
  until they can be read again.

It reads Docker through the Engine API (standard library HTTP over the socket named by
DOCKER_HOST) and the search through the `riemann` command line (`status --json`,
`export`), so it depends neither on the package nor on the database schema and runs
as a single file with the standard library (python-dotenv is used when present).

What was reported is remembered in a small state file, so neither another loop nor a
restart of the monitor sends the same alert twice. An alert that could not be sent is
not remembered and is tried again on the next loop. When the monitor itself fails it
emails why before it exits, and the same failure again only after the repeat period,
so a monitor that fails the same way at every start of its restart policy sends one
email a period, not one a start.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import decimal
import email.message
import email.utils
import enum
import http.client
import io
import ipaddress
import json
import logging
import os
import re
import select
import shlex
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

LOG = logging.getLogger("riemann.alerts")

# e^gamma to 40 decimals. Robin (1984): the Riemann Hypothesis holds exactly when
# sigma(n) < e^gamma n ln ln n, that is W(n) < e^gamma, for every n > 5040.
E_GAMMA = Decimal("1.7810724179901979852365041031071795491696")
ROBIN_BOUND = 5040

# The export is asked for everything above this lower bound of e^gamma, so however the
# store compares, no candidate at or above e^gamma is left out before the exact test.
EXPORT_MIN_WITNESS = "1.781"
EXPORT_COLUMNS = (
    "n",
    "divisor_sum",
    "witness_value",
    "log_n",
    "strategy",
    "level",
    "exponents",
    "block_id",
)

# Digits of the monitor's own recomputation of W(n) from n and its divisor sum.
RECOMPUTE_DIGITS = 50

# How many findings one counterexample email lists in full.
LISTED_FINDINGS = 20

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_MISCONFIGURED = 2
EXIT_FAILED = 70

DEFAULT_STATE_FILE = "~/.local/state/riemann/monitor-state.json"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# Variables that stay with the monitor: the `riemann` commands it runs never see them.
PRIVATE_VARIABLES = frozenset({"RIEMANN_SMTP_USER", "RIEMANN_SMTP_PASSWORD"})


class ConfigurationError(Exception):
    """A setting is missing or wrong; the message says which and what to do."""


class CheckError(Exception):
    """A check could not read what it needs this time (engine, command, output)."""


# --- Settings -------------------------------------------------------------------------


class Check(enum.Enum):
    EXITS = "exits"
    STALL = "stall"
    COUNTEREXAMPLES = "counterexamples"


class SmtpSecurity(enum.Enum):
    STARTTLS = "starttls"
    TLS = "tls"
    PLAIN = "plain"


@dataclasses.dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: SmtpSecurity
    sender: str
    recipients: tuple[str, ...]
    user: str
    password: str = dataclasses.field(repr=False)
    ca_file: str | None
    timeout: float


@dataclasses.dataclass(frozen=True)
class ContainerSelection:
    """Which exited containers belong to the search, and which exits are failures."""

    compose_project: str
    name_prefix: str
    include_clean_exits: bool


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    once: bool
    interval: float
    checks: frozenset[Check]
    stall_after: dt.timedelta
    engine_unreadable_after: dt.timedelta
    selection: ContainerSelection
    repeat_after: dt.timedelta
    log_lines: int
    state_file: Path
    host_name: str
    riemann_command: tuple[str, ...]
    command_timeout: float
    docker_host: str
    mail: MailSettings


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a `.env` file sets; none when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        from dotenv import dotenv_values
    except ImportError:
        return parse_env_lines(path.read_text(encoding="utf-8"))
    return {
        name: value for name, value in dotenv_values(path).items() if value is not None
    }


def parse_env_lines(text: str) -> dict[str, str]:
    """`NAME=value` lines, read as python-dotenv reads the simple cases."""
    variables: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        variables[name.strip()] = value
    return variables


def merged_environment(
    file_variables: Mapping[str, str], process_environ: Mapping[str, str]
) -> dict[str, str]:
    """The process environment over the `.env` file's non-empty values."""
    merged = {name: value for name, value in file_variables.items() if value != ""}
    merged.update(process_environ)
    return merged


def _setting(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip()
    return value if value else default


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Every option, its default taken from the environment (or `.env`)."""
    parser = argparse.ArgumentParser(
        prog="monitor.py",
        description=(
            "Email alerts for one host of the riemann search: a container of the "
            "search exited, no block finished for a while, or a counterexample to "
            "Robin's inequality was stored. Each option's default comes from the "
            "environment variable named in its help, or from the .env file."
        ),
        epilog=(
            "Mail credentials are read only from the environment or the .env file, "
            "never from the command line: RIEMANN_SMTP_USER and RIEMANN_SMTP_PASSWORD "
            "(no login when the user is empty). The `riemann` commands read the "
            "database connection as usual (RIEMANN_DSN or PG* variables). "
            f"Exit status: {EXIT_OK} all checks ran and every alert was sent; "
            f"{EXIT_INCOMPLETE} (with --once) a check could not run or an alert could "
            f"not be sent; {EXIT_MISCONFIGURED} a setting is wrong; {EXIT_FAILED} the "
            "monitor failed unexpectedly (after trying to email why)."
        ),
    )
    parser.add_argument(
        "--env-file",
        default=".env",
        help="file of NAME=value settings read first; the environment wins "
        "(default: .env in the working directory)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run every check once and exit (for tests and cron)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=_setting(environ, "RIEMANN_ALERT_INTERVAL", "60"),
        metavar="SECONDS",
        help="seconds between two rounds of checks "
        "(RIEMANN_ALERT_INTERVAL, default %(default)s)",
    )
    parser.add_argument(
        "--checks",
        default=_setting(
            environ, "RIEMANN_ALERT_CHECKS", ",".join(check.value for check in Check)
        ),
        help="comma-separated checks to run, of "
        + ", ".join(check.value for check in Check)
        + " (RIEMANN_ALERT_CHECKS, default %(default)s); run stall and "
        "counterexamples on one host only, or every host sends them",
    )
    parser.add_argument(
        "--stall-after",
        type=float,
        default=_setting(environ, "RIEMANN_ALERT_STALL_AFTER", "3600"),
        metavar="SECONDS",
        help="alert when no block has finished for this long "
        "(RIEMANN_ALERT_STALL_AFTER, default %(default)s)",
    )
    parser.add_argument(
        "--engine-unreadable-after",
        type=float,
        default=_setting(environ, "RIEMANN_ALERT_ENGINE_UNREADABLE_AFTER", "600"),
        metavar="SECONDS",
        help="alert when the Docker engine could not be read for this long, since "
        "no exit can be seen meanwhile (RIEMANN_ALERT_ENGINE_UNREADABLE_AFTER, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--compose-project",
        default=_setting(environ, "RIEMANN_ALERT_COMPOSE_PROJECT", "riemann"),
        help="watch the containers of this compose project, by their "
        "com.docker.compose.project label; empty to not select by project "
        "(RIEMANN_ALERT_COMPOSE_PROJECT, default %(default)s)",
    )
    parser.add_argument(
        "--name-prefix",
        default=_setting(environ, "RIEMANN_ALERT_NAME_PREFIX", ""),
        help="also watch the containers whose name starts with this prefix; with "
        "neither a project nor a prefix every container is watched "
        "(RIEMANN_ALERT_NAME_PREFIX, default none)",
    )
    parser.add_argument(
        "--include-clean-exits",
        action="store_true",
        default=_setting(environ, "RIEMANN_ALERT_CLEAN_EXITS", "false").lower()
        in {"1", "true", "yes", "on"},
        help="also report containers that exited with code 0, such as the one-shot "
        "migration (RIEMANN_ALERT_CLEAN_EXITS, default false)",
    )
    parser.add_argument(
        "--repeat-after",
        type=float,
        default=_setting(environ, "RIEMANN_ALERT_REPEAT_AFTER", "3600"),
        metavar="SECONDS",
        help="after an email about a container, its further exits are only logged "
        "for this long, so a crash loop under a restart policy sends one email an "
        "hour, not one a crash; the same holds for the email about the monitor's own "
        "failure (RIEMANN_ALERT_REPEAT_AFTER, default %(default)s)",
    )
    parser.add_argument(
        "--log-lines",
        type=int,
        default=_setting(environ, "RIEMANN_ALERT_LOG_LINES", "50"),
        metavar="N",
        help="last log lines of an exited container put in its email "
        "(RIEMANN_ALERT_LOG_LINES, default %(default)s)",
    )
    parser.add_argument(
        "--state-file",
        default=_setting(environ, "RIEMANN_ALERT_STATE_FILE", DEFAULT_STATE_FILE),
        help="where the monitor remembers what it reported, so a restart sends "
        "nothing twice (RIEMANN_ALERT_STATE_FILE, default %(default)s)",
    )
    parser.add_argument(
        "--host-name",
        default=_setting(environ, "RIEMANN_ALERT_HOST_NAME", ""),
        help="host name put in the emails (RIEMANN_ALERT_HOST_NAME, default: the "
        "Docker engine's host name, else this machine's)",
    )
    parser.add_argument(
        "--riemann-command",
        default=_setting(environ, "RIEMANN_ALERT_RIEMANN_COMMAND", "riemann"),
        help="command that runs the riemann command line, split like a shell "
        "would, e.g. 'docker exec riemann-generator-1 riemann' "
        "(RIEMANN_ALERT_RIEMANN_COMMAND, default %(default)s)",
    )
    parser.add_argument(
        "--command-timeout",
        type=float,
        default=_setting(environ, "RIEMANN_ALERT_COMMAND_TIMEOUT", "120"),
        metavar="SECONDS",
        help="longest wait for one riemann command or Docker request "
        "(RIEMANN_ALERT_COMMAND_TIMEOUT, default %(default)s)",
    )
    parser.add_argument(
        "--docker-host",
        default=_setting(environ, "DOCKER_HOST", DEFAULT_DOCKER_HOST),
        help="Docker engine address, unix:///PATH or tcp://HOST:PORT without TLS "
        "(DOCKER_HOST, default %(default)s)",
    )
    parser.add_argument(
        "--smtp-host",
        default=_setting(environ, "RIEMANN_SMTP_HOST", ""),
        help="SMTP server that sends the alerts (RIEMANN_SMTP_HOST, required)",
    )
    parser.add_argument(
        "--smtp-security",
        default=_setting(environ, "RIEMANN_SMTP_SECURITY", ""),
        help="starttls, tls (implicit TLS) or plain; plain is accepted only for a "
        "server on this machine's loopback, for tests (RIEMANN_SMTP_SECURITY, "
        "default tls on port 465, starttls otherwise)",
    )
    parser.add_argument(
        "--smtp-port",
        type=int,
        default=_setting(environ, "RIEMANN_SMTP_PORT", "0"),
        help="SMTP port (RIEMANN_SMTP_PORT, default 465 for tls, 25 for plain, "
        "587 otherwise)",
    )
    parser.add_argument(
        "--smtp-from",
        default=_setting(environ, "RIEMANN_SMTP_FROM", ""),
        help="sender address (RIEMANN_SMTP_FROM, default RIEMANN_SMTP_USER)",
    )
    parser.add_argument(
        "--smtp-to",
        default=_setting(environ, "RIEMANN_SMTP_TO", ""),
        help="comma-separated recipients (RIEMANN_SMTP_TO, required)",
    )
    parser.add_argument(
        "--smtp-ca-file",
        default=_setting(environ, "RIEMANN_SMTP_CA_FILE", ""),
        help="PEM file of the certificate authorities trusted for the SMTP server "
        "(RIEMANN_SMTP_CA_FILE, default the system's)",
    )
    parser.add_argument(
        "--smtp-timeout",
        type=float,
        default=_setting(environ, "RIEMANN_SMTP_TIMEOUT", "30"),
        metavar="SECONDS",
        help="longest wait for the SMTP server (RIEMANN_SMTP_TIMEOUT, "
        "default %(default)s)",
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mail_settings(
    options: argparse.Namespace, environ: Mapping[str, str]
) -> MailSettings:
    """SMTP settings from the options and the environment's credentials."""
    host = options.smtp_host.strip()
    if not host:
        raise ConfigurationError(
            "no SMTP server is set: set RIEMANN_SMTP_HOST (or --smtp-host)"
        )
    recipients = tuple(
        address.strip() for address in options.smtp_to.split(",") if address.strip()
    )
    if not recipients:
        raise ConfigurationError(
            "no recipient is set: set RIEMANN_SMTP_TO to one or more addresses, "
            "separated by commas"
        )

    user = environ.get("RIEMANN_SMTP_USER", "")
    password = environ.get("RIEMANN_SMTP_PASSWORD", "")
    if user and not password:
        raise ConfigurationError(
            "RIEMANN_SMTP_USER is set but RIEMANN_SMTP_PASSWORD is empty: set both, "
            "or neither for a server that takes mail without a login"
        )
    sender = options.smtp_from.strip() or user
    if not sender:
        raise ConfigurationError(
            "no sender address is set: set RIEMANN_SMTP_FROM (or RIEMANN_SMTP_USER)"
        )

    port = options.smtp_port
    modes = {mode.value: mode for mode in SmtpSecurity}
    if options.smtp_security:
        if options.smtp_security not in modes:
            raise ConfigurationError(
                f"RIEMANN_SMTP_SECURITY {options.smtp_security!r} is not one of "
                + ", ".join(modes)
            )
        security = modes[options.smtp_security]
    else:
        security = SmtpSecurity.TLS if port == 465 else SmtpSecurity.STARTTLS
    if security is SmtpSecurity.PLAIN and not _is_loopback(host):
        raise ConfigurationError(
            f"plain SMTP is only for a test server on loopback, not {host}: use "
            "RIEMANN_SMTP_SECURITY=starttls or tls"
        )
    if port == 0:
        port = {SmtpSecurity.TLS: 465, SmtpSecurity.PLAIN: 25}.get(security, 587)
    if not 0 < port < 65536:
        raise ConfigurationError(f"the SMTP port {port} is not a TCP port number")

    ca_file = options.smtp_ca_file.strip() or None
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigurationError(
            f"the SMTP CA file {ca_file} does not exist: fix RIEMANN_SMTP_CA_FILE"
        )
    return MailSettings(
        host=host,
        port=port,
        security=security,
        sender=sender,
        recipients=recipients,
        user=user,
        password=password,
        ca_file=ca_file,
        timeout=options.smtp_timeout,
    )


def parse_checks(text: str) -> frozenset[Check]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {check.value: check for check in Check}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown or empty checks {text!r}: name some of "
            + ", ".join(known)
            + " in RIEMANN_ALERT_CHECKS (or --checks)"
        )
    return frozenset(known[name] for name in names)


def settings_environment(
    argv: Sequence[str], process_environ: Mapping[str, str]
) -> dict[str, str]:
    """The environment over the `.env` file that `--env-file` names."""
    env_file_parser = argparse.ArgumentParser(add_help=False)
    env_file_parser.add_argument("--env-file", default=".env")
    known, _ = env_file_parser.parse_known_args(argv)
    return merged_environment(read_env_file(Path(known.env_file)), process_environ)


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> MonitorSettings:
    """The settings from the options, over the environment's values."""
    options = build_parser(environ).parse_args(argv)
    if (
        options.interval <= 0
        or options.stall_after <= 0
        or options.repeat_after < 0
        or options.engine_unreadable_after < 0
    ):
        raise ConfigurationError(
            "the interval and the stall time must be positive numbers of seconds, "
            "the repeat time and the engine unreadable time zero or more"
        )
    if options.log_lines < 0:
        raise ConfigurationError("--log-lines must be zero or more")
    riemann_command = tuple(shlex.split(options.riemann_command))
    if not riemann_command:
        raise ConfigurationError(
            "RIEMANN_ALERT_RIEMANN_COMMAND is empty: name the riemann command"
        )

    return MonitorSettings(
        once=options.once,
        interval=options.interval,
        checks=parse_checks(options.checks),
        stall_after=dt.timedelta(seconds=options.stall_after),
        engine_unreadable_after=dt.timedelta(seconds=options.engine_unreadable_after),
        selection=ContainerSelection(
            compose_project=options.compose_project.strip(),
            name_prefix=options.name_prefix.strip(),
            include_clean_exits=options.include_clean_exits,
        ),
        repeat_after=dt.timedelta(seconds=options.repeat_after),
        log_lines=options.log_lines,
        state_file=Path(options.state_file).expanduser(),
        host_name=options.host_name.strip(),
        riemann_command=riemann_command,
        command_timeout=options.command_timeout,
        docker_host=options.docker_host.strip(),
        mail=mail_settings(options, environ),
    )


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the `riemann` commands run with: all but the mail credentials."""
    return {
        name: value for name, value in environ.items() if name not in PRIVATE_VARIABLES
    }


# --- What to report: pure rules -------------------------------------------------------


class AlertKind(enum.Enum):
    EXIT = "exit"
    STALL = "stall"
    STATUS_UNREADABLE = "status_unreadable"
    ENGINE_UNREADABLE = "engine_unreadable"
    COUNTEREXAMPLE = "counterexample"
    MONITOR_FAILED = "monitor_failed"


@dataclasses.dataclass(frozen=True)
class Alert:
    """One email, and what it settles in the state once it was sent."""

    kind: AlertKind
    subject: str
    body: str
    keys: tuple[str, ...] = ()
    container: str = ""


@dataclasses.dataclass(frozen=True)
class ContainerExit:
    """One exit of a container, seen in the engine's events or in its exited list."""

    container_id: str
    name: str
    labels: Mapping[str, str]
    exit_code: int
    finished_at: str
    finished_ns: int
    oom_killed: bool
    tty: bool
    # Keys naming this exit: container id @ time of the die event and, when known,
    # @ the FinishedAt the engine shows, so either way of seeing it settles both.
    keys: tuple[str, ...]
    # Logs up to this engine time (seconds.nanoseconds): a container restarted by its
    # restart policy has logged more since. None: up to now.
    log_until: str | None = None


@dataclasses.dataclass(frozen=True)
class MonitorState:
    """What was already reported; saved between loops and restarts."""

    reported_exits: frozenset[str] = frozenset()
    # By container name: when its last exit was emailed, and how many exits were only
    # logged since, within the quiet period that keeps a crash loop from flooding mail.
    exit_emailed_at: Mapping[str, dt.datetime] = dataclasses.field(default_factory=dict)
    exits_logged_since_email: Mapping[str, int] = dataclasses.field(
        default_factory=dict
    )
    # Engine time (nanoseconds) up to which the container die events were handled.
    events_until_ns: int | None = None
    reported_counterexamples: frozenset[str] = frozenset()
    reported_stall: str | None = None
    # When the monitor first watched this search: a stall before any block finished
    # counts from here, also across restarts and `--once` runs from cron.
    watching_since: dt.datetime | None = None
    # Since when the search status, or the Docker engine, could not be read, and
    # whether that was emailed; kept here so that `--once` runs from cron count the
    # time across runs as one long-running monitor does.
    status_unreadable_since: dt.datetime | None = None
    status_unreadable_reported: bool = False
    engine_unreadable_since: dt.datetime | None = None
    engine_unreadable_reported: bool = False
    # The last failure of the monitor itself that was emailed ("Type: message") and
    # when: under a restart policy a monitor failing the same way at every start
    # sends one email per repeat period, not one per start.
    monitor_failure_emailed: str | None = None
    monitor_failure_emailed_at: dt.datetime | None = None

    def settled(self, alert: Alert, now: dt.datetime) -> MonitorState:
        """The state once `alert` was sent at `now`."""
        if alert.kind is AlertKind.EXIT:
            logged = dict(self.exits_logged_since_email)
            logged.pop(alert.container, None)
            return dataclasses.replace(
                self,
                reported_exits=self.reported_exits | set(alert.keys),
                exit_emailed_at={**self.exit_emailed_at, alert.container: now},
                exits_logged_since_email=logged,
            )
        if alert.kind is AlertKind.COUNTEREXAMPLE:
            return dataclasses.replace(
                self,
                reported_counterexamples=self.reported_counterexamples
                | set(alert.keys),
            )
        if alert.kind is AlertKind.STALL:
            return dataclasses.replace(self, reported_stall=alert.keys[0])
        if alert.kind is AlertKind.STATUS_UNREADABLE:
            return dataclasses.replace(self, status_unreadable_reported=True)
        if alert.kind is AlertKind.ENGINE_UNREADABLE:
            return dataclasses.replace(self, engine_unreadable_reported=True)
        if alert.kind is AlertKind.MONITOR_FAILED:
            return dataclasses.replace(
                self,
                monitor_failure_emailed=alert.keys[0],
                monitor_failure_emailed_at=now,
            )
        return self

    def with_exits_logged(self, exits: Sequence[ContainerExit]) -> MonitorState:
        """The state once `exits` were logged instead of emailed."""
        logged = dict(self.exits_logged_since_email)
        keys = set(self.reported_exits)
        for container_exit in exits:
            logged[container_exit.name] = logged.get(container_exit.name, 0) + 1
            keys.update(container_exit.keys)
        return dataclasses.replace(
            self, reported_exits=frozenset(keys), exits_logged_since_email=logged
        )

    def forget_removed_containers(self, existing_ids: frozenset[str]) -> MonitorState:
        """Drop the exits of removed containers: they cannot be seen again."""
        return dataclasses.replace(
            self,
            reported_exits=frozenset(
                key
                for key in self.reported_exits
                if key.partition("@")[0] in existing_ids
            ),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "reported_exits": sorted(self.reported_exits),
                "exit_emailed_at": {
                    name: moment.isoformat()
                    for name, moment in sorted(self.exit_emailed_at.items())
                },
                "exits_logged_since_email": dict(
                    sorted(self.exits_logged_since_email.items())
                ),
                "events_until_ns": self.events_until_ns,
                "reported_counterexamples": sorted(self.reported_counterexamples),
                "reported_stall": self.reported_stall,
                "watching_since": _time_text(self.watching_since),
                "status_unreadable_since": _time_text(self.status_unreadable_since),
                "status_unreadable_reported": self.status_unreadable_reported,
                "engine_unreadable_since": _time_text(self.engine_unreadable_since),
                "engine_unreadable_reported": self.engine_unreadable_reported,
                "monitor_failure_emailed": self.monitor_failure_emailed,
                "monitor_failure_emailed_at": _time_text(
                    self.monitor_failure_emailed_at
                ),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> MonitorState:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("the monitor state is not a JSON object")
        emailed = document.get("exit_emailed_at") or {}
        logged = document.get("exits_logged_since_email") or {}
        events_until_ns = document.get("events_until_ns")
        stall = document.get("reported_stall")
        monitor_failure = document.get("monitor_failure_emailed")
        if not isinstance(emailed, dict) or not isinstance(logged, dict):
            raise ValueError("the monitor state's exit records are not objects")
        return cls(
            reported_exits=frozenset(_strings(document.get("reported_exits", []))),
            exit_emailed_at={
                str(name): dt.datetime.fromisoformat(str(moment))
                for name, moment in emailed.items()
            },
            exits_logged_since_email={
                str(name): int(count) for name, count in logged.items()
            },
            events_until_ns=(
                events_until_ns if isinstance(events_until_ns, int) else None
            ),
            reported_counterexamples=frozenset(
                _strings(document.get("reported_counterexamples", []))
            ),
            reported_stall=stall if isinstance(stall, str) else None,
            watching_since=_time_field(document, "watching_since"),
            status_unreadable_since=_time_field(document, "status_unreadable_since"),
            status_unreadable_reported=bool(
                document.get("status_unreadable_reported", False)
            ),
            engine_unreadable_since=_time_field(document, "engine_unreadable_since"),
            engine_unreadable_reported=bool(
                document.get("engine_unreadable_reported", False)
            ),
            monitor_failure_emailed=(
                monitor_failure if isinstance(monitor_failure, str) else None
            ),
            monitor_failure_emailed_at=_time_field(
                document, "monitor_failure_emailed_at"
            ),
        )


def _time_text(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time_field(document: Mapping[str, object], name: str) -> dt.datetime | None:
    value = document.get(name)
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings in the monitor state")
    return list(value)


_ENGINE_TIME = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)"
)


def engine_time_ns(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time as the engine writes it."""
    match = _ENGINE_TIME.fullmatch(stamp)
    if match is None:
        raise ValueError(f"not an engine time: {stamp!r}")
    offset = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(dt.datetime.fromisoformat(match[1] + offset).timestamp())
    return seconds * 10**9 + int((match[2] or "0").ljust(9, "0"))


def engine_time_text(nanoseconds: int) -> str:
    seconds, fraction = divmod(nanoseconds, 10**9)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def belongs_to_search(
    name: str, labels: Mapping[str, str], selection: ContainerSelection
) -> bool:
    """A container of the search: in its compose project, or named with its prefix."""
    if not selection.compose_project and not selection.name_prefix:
        return True
    in_project = bool(selection.compose_project) and (
        labels.get("com.docker.compose.project") == selection.compose_project
    )
    named = bool(selection.name_prefix) and name.startswith(selection.name_prefix)
    return in_project or named


@dataclasses.dataclass(frozen=True)
class ExitDecision:
    """New failures: emailed, one email per container, or only logged."""

    to_email: list[tuple[ContainerExit, ...]]
    to_log: list[ContainerExit]


def decide_exits(
    exits: Sequence[ContainerExit],
    selection: ContainerSelection,
    state: MonitorState,
    now: dt.datetime,
    repeat_after: dt.timedelta,
) -> ExitDecision:
    """Each failure once; a container emailed about less than `repeat_after` ago
    (a crash loop under a restart policy) has its further exits only logged.

    A clean exit (code 0) is a failure only when the selection says so.
    """
    by_container: dict[str, list[ContainerExit]] = {}
    for container_exit in sorted(exits, key=lambda exit_: exit_.finished_ns):
        if container_exit.exit_code == 0 and not selection.include_clean_exits:
            continue
        if any(key in state.reported_exits for key in container_exit.keys):
            continue
        by_container.setdefault(container_exit.name, []).append(container_exit)

    decision = ExitDecision(to_email=[], to_log=[])
    for name, container_exits in by_container.items():
        emailed_at = state.exit_emailed_at.get(name)
        if emailed_at is not None and now - emailed_at < repeat_after:
            decision.to_log.extend(container_exits)
        else:
            decision.to_email.append(tuple(container_exits))
    return decision


def describe_exit_code(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return f"{exit_code}, killed by the kernel for lack of memory"
    if exit_code == 137:
        return f"{exit_code}, killed (SIGKILL: out of memory, or a stop that timed out)"
    if exit_code == 143:
        return f"{exit_code}, terminated (SIGTERM)"
    if exit_code > 128:
        return f"{exit_code}, killed by signal {exit_code - 128}"
    return str(exit_code)


def exit_alert(
    container_exits: Sequence[ContainerExit],
    log_tail: str,
    host_name: str,
    exits_only_logged: int,
) -> Alert:
    """The last of a container's new exits, in full; the others counted."""
    latest = container_exits[-1]
    project = latest.labels.get("com.docker.compose.project", "")
    service = latest.labels.get("com.docker.compose.service", "")
    exit_code = describe_exit_code(latest.exit_code, latest.oom_killed)
    lines = [
        f"Container {latest.name} on host {host_name} exited with code {exit_code}.",
        "",
        f"host:        {host_name}",
        f"container:   {latest.name} (id {latest.container_id[:12]})",
    ]
    if service:
        lines.append(f"service:     {service} (compose project {project})")
    lines += [f"exit code:   {exit_code}", f"finished at: {latest.finished_at}"]
    earlier = len(container_exits) - 1 + exits_only_logged
    if earlier:
        codes = ", ".join(str(each.exit_code) for each in container_exits[:-1])
        lines.append(
            f"It exited {earlier} more times since the last email about it"
            + (f" (codes {codes})" if codes else "")
            + "; exits within the quiet period after an email are only logged."
        )
    lines += [
        "",
        "Last log lines:" if log_tail.strip() else "No log lines to show.",
        log_tail.rstrip("\n"),
    ]
    return Alert(
        kind=AlertKind.EXIT,
        subject=(
            f"[riemann] container {latest.name} exited with code "
            f"{latest.exit_code} on {host_name}"
        ),
        body="\n".join(lines).rstrip("\n") + "\n",
        keys=tuple(key for each in container_exits for key in each.keys),
        container=latest.name,
    )


@dataclasses.dataclass(frozen=True)
class StrategyProgress:
    strategy: str
    blocks: Mapping[str, int]
    candidates_checked: int


@dataclasses.dataclass(frozen=True)
class SearchStatus:
    last_finished_at: dt.datetime | None
    strategies: tuple[StrategyProgress, ...]


def parse_status(text: str) -> SearchStatus:
    """The fields of `riemann status --json` that the monitor relies on."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or "last_finished_at" not in document:
        raise ValueError("not an object with last_finished_at")

    last_finished_at: dt.datetime | None = None
    stamp = document["last_finished_at"]
    if stamp is not None:
        if not isinstance(stamp, str):
            raise ValueError("last_finished_at is neither text nor null")
        last_finished_at = dt.datetime.fromisoformat(stamp)
        if last_finished_at.tzinfo is None:
            last_finished_at = last_finished_at.replace(tzinfo=dt.UTC)

    entries = document.get("strategies") or []
    if not isinstance(entries, list):
        raise ValueError("strategies is not a list")
    strategies = []
    for entry in entries:
        blocks = entry.get("blocks") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(blocks, dict):
            raise ValueError("a strategies entry has no object of block counts")
        checked = entry.get("candidates_checked")
        strategies.append(
            StrategyProgress(
                strategy=str(entry.get("strategy", "?")),
                blocks={
                    str(state): count
                    for state, count in blocks.items()
                    if isinstance(count, int)
                },
                candidates_checked=checked if isinstance(checked, int) else 0,
            )
        )
    return SearchStatus(last_finished_at, tuple(strategies))


def _progress_lines(status: SearchStatus) -> list[str]:
    lines = []
    for progress in status.strategies:
        counts = ", ".join(
            f"{state} {count}" for state, count in sorted(progress.blocks.items())
        )
        lines.append(
            f"  {progress.strategy}: blocks {counts or 'none'}; "
            f"{progress.candidates_checked} candidates checked"
        )
    return lines or ["  no strategy has blocks yet"]


def stall_alert(
    status: SearchStatus,
    now: dt.datetime,
    stall_after: dt.timedelta,
    watching_since: dt.datetime,
    state: MonitorState,
    host_name: str,
) -> Alert | None:
    """One alert per stall: no block finished for `stall_after`.

    Before any block has finished, the time counts from when the monitor started
    watching. A stall ends when a block finishes; the next one is a new stall.
    """
    since = status.last_finished_at or watching_since
    if now - since < stall_after:
        return None
    stall_key = (
        status.last_finished_at.isoformat()
        if status.last_finished_at is not None
        else "never"
    )
    if state.reported_stall == stall_key:
        return None

    waited = _duration_text(now - since)
    if status.last_finished_at is None:
        first_line = f"No block of the search has finished in the {waited} watched."
    else:
        first_line = (
            f"No block of the search has finished for {waited}, since "
            f"{status.last_finished_at.isoformat()}."
        )
    body = [
        first_line,
        "",
        f"Seen from host {host_name} at {now.isoformat(timespec='seconds')}.",
        "Progress by strategy:",
        *_progress_lines(status),
        "",
        "Check that the workers are running and can reach the database, that the "
        "generator keeps blocks queued, and whether the search reached its bound.",
    ]
    return Alert(
        kind=AlertKind.STALL,
        subject=f"[riemann] the search has stalled: no block finished for {waited}",
        body="\n".join(body) + "\n",
        keys=(stall_key,),
    )


def status_unreadable_alert(
    failing_since: dt.datetime,
    now: dt.datetime,
    stall_after: dt.timedelta,
    reason: str,
    host_name: str,
) -> Alert | None:
    """When the search status could not be read for as long as a stall lasts."""
    if now - failing_since < stall_after:
        return None
    waited = _duration_text(now - failing_since)
    body = (
        f"The monitor on host {host_name} could not read the search status for "
        f"{waited}, so it cannot tell whether the search is progressing.\n\n"
        f"Last error: {reason}\n\n"
        "Check that the database is up and reachable from this host.\n"
    )
    return Alert(
        kind=AlertKind.STATUS_UNREADABLE,
        subject=f"[riemann] search status unreadable for {waited} from {host_name}",
        body=body,
    )


def engine_unreadable_alert(
    failing_since: dt.datetime,
    now: dt.datetime,
    unreadable_after: dt.timedelta,
    docker_host: str,
    reason: str,
    host_name: str,
) -> Alert | None:
    """When the Docker engine could not be read for `unreadable_after`: until it
    can, no exited container is seen."""
    if now - failing_since < unreadable_after:
        return None
    waited = _duration_text(now - failing_since)
    body = (
        f"The monitor on host {host_name} could not read the Docker engine at "
        f"{docker_host} for {waited}, so it cannot see containers of the search "
        "that exit.\n\n"
        f"Last error: {reason}\n\n"
        "Check that the engine runs, that DOCKER_HOST names its socket, and that "
        "the monitor may use that socket: in a container, the socket mounted and "
        "its group added (RIEMANN_DOCKER_GID for the compose service).\n"
    )
    return Alert(
        kind=AlertKind.ENGINE_UNREADABLE,
        subject=f"[riemann] Docker engine unreadable for {waited} on {host_name}",
        body=body,
    )


def _duration_text(duration: dt.timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


@dataclasses.dataclass(frozen=True)
class WitnessRecord:
    """One exported row; n and its divisor sum stay decimal text, exact."""

    n: str
    divisor_sum: str
    witness_value: Decimal
    strategy: str
    level: str
    exponents: str
    block_id: str


_DIGITS = re.compile(r"[0-9]+")


def parse_export(text: str) -> list[WitnessRecord]:
    """Rows of `riemann export`, checked to be exact decimal integers and values."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(column.strip() for column in header) != EXPORT_COLUMNS:
        raise ValueError(f"unexpected header {','.join(header)!r}")

    records = []
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(EXPORT_COLUMNS):
            raise ValueError(f"line {line_number} has {len(row)} fields")
        n, divisor_sum, witness_text, _log_n, strategy, level, exponents, block_id = (
            field.strip() for field in row
        )
        if not _DIGITS.fullmatch(n) or not _DIGITS.fullmatch(divisor_sum):
            raise ValueError(f"line {line_number}: n or divisor_sum is not an integer")
        try:
            witness_value = Decimal(witness_text)
        except decimal.InvalidOperation as exc:
            raise ValueError(
                f"line {line_number}: witness_value is not a number"
            ) from exc
        if not witness_value.is_finite():
            raise ValueError(f"line {line_number}: witness_value is not finite")
        records.append(
            WitnessRecord(
                n, divisor_sum, witness_value, strategy, level, exponents, block_id
            )
        )
    return records


def is_counterexample(record: WitnessRecord) -> bool:
    """n > 5040 with W(n) >= e^gamma contradicts Robin's criterion (Robin, 1984).

    Compared exactly, as decimals: a float would round values next to e^gamma.
    """
    return Decimal(record.n) > ROBIN_BOUND and record.witness_value >= E_GAMMA


def recomputed_witness_value(n: str, divisor_sum: str) -> Decimal:
    """W(n) = sigma(n) / (n ln ln n) to RECOMPUTE_DIGITS digits, from exact integers.

    An independent check of the stored value, put in the email beside it.
    """
    with decimal.localcontext() as context:
        context.prec = RECOMPUTE_DIGITS + 10
        exact_n = Decimal(n)
        value = Decimal(divisor_sum) / exact_n / exact_n.ln().ln()
        context.prec = RECOMPUTE_DIGITS
        return +value


def counterexamples_to_report(
    records: Sequence[WitnessRecord], state: MonitorState
) -> list[WitnessRecord]:
    """New counterexamples, smallest n first: the least one matters most."""
    found = [
        record
        for record in records
        if is_counterexample(record) and record.n not in state.reported_counterexamples
    ]
    unique = {record.n: record for record in found}
    return sorted(unique.values(), key=lambda record: Decimal(record.n))


def _short_number(n: str) -> str:
    if len(n) <= 40:
        return n
    return f"{n[:15]}...{n[-10:]} ({len(n)} digits)"


def _finding_lines(record: WitnessRecord) -> list[str]:
    recomputed = recomputed_witness_value(record.n, record.divisor_sum)
    verdict = "confirms" if recomputed >= E_GAMMA else "DOES NOT confirm"
    lines = [
        f"n             = {record.n}",
        f"divisor_sum   = {record.divisor_sum}",
        f"witness_value = {record.witness_value} (stored)",
        f"recomputed    = {recomputed} ({RECOMPUTE_DIGITS} digits from n and "
        f"divisor_sum: {verdict} W(n) >= e^gamma)",
        f"strategy      = {record.strategy}",
    ]
    if record.level:
        lines.append(f"level         = {record.level}")
    if record.exponents:
        lines.append(f"exponents     = {record.exponents} (of 2, 3, 5, 7, ...)")
    lines.append(f"block_id      = {record.block_id}")
    return lines


def counterexample_alert(findings: Sequence[WitnessRecord], host_name: str) -> Alert:
    """The finding first, in the subject and the first line of the body."""
    first = findings[0]
    more = f" and {len(findings) - 1} more" if len(findings) > 1 else ""
    body = [
        f"COUNTEREXAMPLE TO ROBIN'S INEQUALITY: n = {_short_number(first.n)} > 5040 "
        f"has witness value W(n) = {first.witness_value} >= e^gamma = {E_GAMMA}{more}.",
        "",
        "If it holds, the Riemann Hypothesis is false (Robin, 1984). Check it "
        "independently before telling anyone.",
        "",
    ]
    for record in findings[:LISTED_FINDINGS]:
        body += [*_finding_lines(record), ""]
    if len(findings) > LISTED_FINDINGS:
        body.append(
            f"{len(findings) - LISTED_FINDINGS} more are listed by "
            f"`riemann export --min-witness {EXPORT_MIN_WITNESS}`."
        )
    body.append(f"Found by the monitor on host {host_name}.")
    return Alert(
        kind=AlertKind.COUNTEREXAMPLE,
        subject=(
            f"[riemann] COUNTEREXAMPLE to Robin's inequality: "
            f"n = {_short_number(first.n)}, W(n) = {first.witness_value}{more}"
        ),
        body="\n".join(body) + "\n",
        keys=tuple(record.n for record in findings),
    )


def monitor_failure_key(error: BaseException) -> str:
    """What makes two failures of the monitor the same: their type and message."""
    return f"{type(error).__name__}: {error}"


def monitor_failed_alert(host_name: str, error: BaseException) -> Alert:
    report = "".join(traceback.format_exception(error))
    return Alert(
        kind=AlertKind.MONITOR_FAILED,
        subject=f"[riemann] the alert monitor on {host_name} stopped: "
        f"{type(error).__name__}",
        body=(
            f"The alert monitor on host {host_name} failed unexpectedly and exited; "
            "until it is restarted this host sends no alerts.\n\n"
            f"{report}"
        ),
        keys=(monitor_failure_key(error),),
    )


def monitor_failure_emailed_recently(
    state: MonitorState, failure: str, now: dt.datetime, repeat_after: dt.timedelta
) -> bool:
    """The same failure was emailed less than `repeat_after` ago: a monitor that
    fails at every start under a restart policy sends it once per period."""
    emailed_at = state.monitor_failure_emailed_at
    return (
        state.monitor_failure_emailed == failure
        and emailed_at is not None
        and now - emailed_at < repeat_after
    )


# --- Docker Engine API ----------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as the Docker engine serves its API."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        engine_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine_socket.settimeout(self.timeout)
        try:
            engine_socket.connect(self._socket_path)
        except OSError:
            engine_socket.close()
            raise
        self.sock = engine_socket


def demultiplex_log_stream(raw: bytes) -> bytes:
    """The text of a log stream the engine framed by stream (a container without TTY).

    Each frame is an 8-byte header (stream, three zero bytes, big-endian length)
    followed by that many bytes of output.
    """
    text = bytearray()
    offset = 0
    while offset + 8 <= len(raw):
        length = int.from_bytes(raw[offset + 4 : offset + 8], "big")
        text += raw[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return bytes(text)


@dataclasses.dataclass(frozen=True)
class ContainerSummary:
    container_id: str
    name: str
    labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class ContainerDetails:
    exit_code: int
    finished_at: str
    oom_killed: bool
    tty: bool


class DockerEngine:
    """The few Engine API calls the monitor needs."""

    def __init__(self, docker_host: str, timeout: float) -> None:
        address = urllib.parse.urlsplit(docker_host)
        if address.scheme == "unix" and address.path:
            self._socket_path: str | None = address.path
            self._netloc = ""
        elif address.scheme in {"tcp", "http"} and address.hostname:
            self._socket_path = None
            self._netloc = f"{address.hostname}:{address.port or 2375}"
        else:
            raise ConfigurationError(
                f"DOCKER_HOST {docker_host!r} is not unix:///PATH or tcp://HOST:PORT"
            )
        self._timeout = timeout

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> bytes:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        connection = (
            _UnixHTTPConnection(self._socket_path, self._timeout)
            if self._socket_path is not None
            else http.client.HTTPConnection(self._netloc, timeout=self._timeout)
        )
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            content = response.read()
        except PermissionError as exc:
            raise CheckError(
                f"no permission to use the Docker engine socket {self._socket_path}: "
                "run the monitor in the socket's group (RIEMANN_DOCKER_GID for the "
                f"compose service): {exc}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise CheckError(f"Docker engine unreachable: {exc}") from exc
        finally:
            connection.close()
        if response.status == 404:
            raise LookupError(path)
        if response.status != 200:
            message = content.decode("utf-8", "replace").strip()
            raise CheckError(f"Docker engine answered {response.status}: {message}")
        return content

    def _get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        try:
            return json.loads(self._get(path, query))
        except json.JSONDecodeError as exc:
            raise CheckError(f"Docker engine answered malformed JSON: {exc}") from exc

    def host_name(self) -> str:
        name = self._get_json("/info").get("Name")
        if not isinstance(name, str) or not name:
            raise CheckError("Docker engine did not tell its host name")
        return name

    def containers(self, statuses: Sequence[str] = ()) -> list[ContainerSummary]:
        """Every container (`docker ps -a`), or those in the given states."""
        query = {"all": "1"}
        if statuses:
            query["filters"] = json.dumps({"status": list(statuses)})
        return [
            ContainerSummary(
                container_id=str(entry["Id"]),
                name=str((entry.get("Names") or ["?"])[0]).lstrip("/"),
                labels=dict(entry.get("Labels") or {}),
            )
            for entry in self._get_json("/containers/json", query)
        ]

    def details(self, container_id: str) -> ContainerDetails | None:
        """How the container last exited; None when it was removed."""
        try:
            inspected = self._get_json(f"/containers/{container_id}/json")
        except LookupError:
            return None
        container_state = inspected.get("State") or {}
        return ContainerDetails(
            exit_code=int(container_state.get("ExitCode", -1)),
            finished_at=str(container_state.get("FinishedAt", "")),
            oom_killed=bool(container_state.get("OOMKilled", False)),
            tty=bool((inspected.get("Config") or {}).get("Tty", False)),
        )

    def deaths(self, since_ns: int, until_ns: int) -> list[ContainerDeath]:
        """The containers' die events between two engine times, oldest first.

        A container that a restart policy starts again is never seen exited, only
        in these events. The engine keeps its last few hundred events of all kinds.
        """
        raw = self._get(
            "/events",
            {
                "since": _engine_seconds(since_ns),
                "until": _engine_seconds(until_ns),
                "filters": json.dumps({"type": ["container"], "event": ["die"]}),
            },
        )
        deaths = []
        for line in raw.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                actor = event["Actor"]
                attributes = dict(actor.get("Attributes") or {})
                deaths.append(
                    ContainerDeath(
                        container_id=str(actor["ID"]),
                        name=str(attributes.get("name", "?")),
                        labels=attributes,
                        exit_code=int(attributes.get("exitCode", -1)),
                        time_ns=int(event["timeNano"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckError(
                    f"Docker engine sent a malformed event: {exc}"
                ) from exc
        return deaths

    def log_tail(
        self, container_id: str, tty: bool, lines: int, until: str | None
    ) -> str:
        if lines == 0:
            return ""
        query = {"stdout": "1", "stderr": "1", "tail": str(lines)}
        if until is not None:
            query["until"] = until
        try:
            raw = self._get(f"/containers/{container_id}/logs", query)
        except LookupError:
            return "(the container was removed with its logs)"
        text = raw if tty else demultiplex_log_stream(raw)
        return text.decode("utf-8", "replace")


def _engine_seconds(nanoseconds: int) -> str:
    seconds, fraction = divmod(nanoseconds, 10**9)
    return f"{seconds}.{fraction:09d}"


@dataclasses.dataclass(frozen=True)
class ContainerDeath:
    container_id: str
    name: str
    labels: Mapping[str, str]
    exit_code: int
    time_ns: int


def exits_from_deaths(
    deaths: Sequence[ContainerDeath],
    details: Mapping[str, ContainerDetails | None],
) -> list[ContainerExit]:
    """Exits seen as die events; the engine's details name the latest of each."""
    latest_death = {death.container_id: death for death in deaths}
    exits = []
    for death in deaths:
        container_details = details.get(death.container_id)
        keys = [f"{death.container_id}@{engine_time_text(death.time_ns)}"]
        finished_at = engine_time_text(death.time_ns)
        oom_killed = False
        if container_details is not None and latest_death[death.container_id] is death:
            # Until it exits again, the engine shows this exit's FinishedAt: the
            # key under which the exited list would name the same exit.
            keys.append(f"{death.container_id}@{container_details.finished_at}")
            finished_at = container_details.finished_at
            oom_killed = container_details.oom_killed
        exits.append(
            ContainerExit(
                container_id=death.container_id,
                name=death.name,
                labels=death.labels,
                exit_code=death.exit_code,
                finished_at=finished_at,
                finished_ns=death.time_ns,
                oom_killed=oom_killed,
                tty=container_details.tty if container_details else False,
                keys=tuple(keys),
                log_until=_engine_seconds(death.time_ns),
            )
        )
    return exits


def exit_of_exited_container(
    summary: ContainerSummary, container_details: ContainerDetails
) -> ContainerExit:
    """The exit of a container that stays exited, as `docker ps -a` lists it."""
    return ContainerExit(
        container_id=summary.container_id,
        name=summary.name,
        labels=summary.labels,
        exit_code=container_details.exit_code,
        finished_at=container_details.finished_at,
        finished_ns=engine_time_ns(container_details.finished_at),
        oom_killed=container_details.oom_killed,
        tty=container_details.tty,
        keys=(f"{summary.container_id}@{container_details.finished_at}",),
    )


# --- The riemann command line ---------------------------------------------------------


class RiemannCommand:
    """Runs `riemann` subcommands and returns what they print."""

    def __init__(
        self, command: Sequence[str], timeout: float, environ: Mapping[str, str]
    ) -> None:
        self._command = tuple(command)
        self._timeout = timeout
        self._environ = dict(environ)

    def output(self, *arguments: str) -> str:
        argv = [*self._command, *arguments]
        try:
            completed = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                env=self._environ,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise CheckError(
                f"{self._command[0]} not found: install riemann or set "
                "RIEMANN_ALERT_RIEMANN_COMMAND"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise CheckError(
                f"{shlex.join(argv)} ran longer than {exc.timeout} s"
            ) from exc
        if completed.returncode != 0:
            last_line = (completed.stderr.strip().splitlines() or ["no message"])[-1]
            raise CheckError(
                f"{shlex.join(argv)} exited with {completed.returncode}: {last_line}"
            )
        return completed.stdout


# --- Mail -----------------------------------------------------------------------------


class Mailer:
    """Sends alerts over SMTP; a failure is one log line and False, never a raise."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._settings.ca_file)

    def _message(self, alert: Alert) -> email.message.EmailMessage:
        message = email.message.EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = self._settings.sender
        message["To"] = ", ".join(self._settings.recipients)
        message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(domain="riemann.alerts")
        message.set_content(alert.body)
        return message

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        if settings.security is SmtpSecurity.TLS:
            return smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=self._tls_context(),
            )
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        if settings.security is SmtpSecurity.STARTTLS:
            try:
                client.starttls(context=self._tls_context())
            except BaseException:
                client.close()
                raise
        return client

    def send(self, alert: Alert) -> bool:
        settings = self._settings
        fields = {
            "alert": alert.kind.value,
            "smtp_host": settings.host,
            "smtp_port": settings.port,
        }
        try:
            with self._connect() as client:
                if settings.user:
                    _login(client, settings.user, settings.password)
                client.send_message(self._message(alert))
        except _LoginEncodingError:
            LOG.error(
                "alert not sent: the SMTP login could not be sent, "
                "RIEMANN_SMTP_USER or RIEMANN_SMTP_PASSWORD has characters other than "
                "ASCII, which smtplib cannot send; check them; retrying next round",
                extra=fields,
            )
        except smtplib.SMTPAuthenticationError as exc:
            LOG.error(
                "alert not sent: the SMTP server refused the login, check "
                "RIEMANN_SMTP_USER and RIEMANN_SMTP_PASSWORD; retrying next round",
                extra={**fields, "error": _smtp_reply(exc)},
            )
        except ssl.SSLCertVerificationError as exc:
            LOG.error(
                "alert not sent: the SMTP server's certificate is not trusted, "
                "check RIEMANN_SMTP_CA_FILE; retrying next round",
                extra={**fields, "error": exc.verify_message or str(exc)},
            )
        except smtplib.SMTPNotSupportedError as exc:
            LOG.error(
                "alert not sent: the SMTP server does not offer what "
                "RIEMANN_SMTP_SECURITY asks for; retrying next round",
                extra={**fields, "error": str(exc)},
            )
        except smtplib.SMTPException as exc:
            LOG.error(
                "alert not sent: the SMTP server refused it; retrying next round",
                extra={**fields, "error": _smtp_reply(exc)},
            )
        except OSError as exc:
            LOG.error(
                "alert not sent: the SMTP server is unreachable; retrying next round",
                extra={**fields, "error": str(exc) or type(exc).__name__},
            )
        else:
            LOG.info("alert sent", extra={**fields, "subject": alert.subject})
            return True
        return False


class _LoginEncodingError(Exception):
    """The user or password is not ASCII, the only encoding smtplib logs in with."""


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """Log in; smtplib encodes the credentials as ASCII and raises a
    UnicodeEncodeError naming the offending character, which must not reach a log
    line, so that error is replaced by one that carries nothing of the password."""
    try:
        client.login(user, password)
    except UnicodeEncodeError:
        raise _LoginEncodingError() from None


def _smtp_reply(error: smtplib.SMTPException) -> str:
    """The server's reply; smtplib's errors never carry the password."""
    code = getattr(error, "smtp_code", None)
    reply = getattr(error, "smtp_error", b"")
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return f"{code} {reply}".strip() if code is not None else str(error)


# --- State file -----------------------------------------------------------------------


def load_state(path: Path) -> MonitorState:
    """The saved state; empty when there is none or it cannot be read."""
    try:
        return MonitorState.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return MonitorState()
    except (OSError, ValueError) as exc:
        LOG.warning(
            "monitor state unreadable, starting afresh: alerts may repeat once",
            extra={"state_file": str(path), "error": str(exc)},
        )
        return MonitorState()


def save_state(path: Path, state: MonitorState) -> None:
    """Replace the state file at once, so a crash never leaves half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(state.to_json(), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        LOG.warning(
            "monitor state not saved: a restart may repeat alerts",
            extra={"state_file": str(path), "error": str(exc)},
        )


# --- The loop -------------------------------------------------------------------------


class Monitor:
    """One round of checks at a time; remembers what it reported."""

    def __init__(
        self,
        settings: MonitorSettings,
        engine: DockerEngine,
        riemann: RiemannCommand,
        mailer: Mailer,
        host_name: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._riemann = riemann
        self._mailer = mailer
        self._host_name = host_name
        self._clock = clock
        self._state = load_state(settings.state_file)
        if self._state.watching_since is None:
            self._state = dataclasses.replace(self._state, watching_since=clock())
            save_state(settings.state_file, self._state)
        self._watching_since: dt.datetime = self._state.watching_since or clock()

    def check_once(self) -> bool:
        """Run every check; True when each could run and every alert was sent."""
        checks = self._settings.checks
        complete = True
        if Check.COUNTEREXAMPLES in checks:
            complete &= self._check_counterexamples()
        if Check.EXITS in checks:
            complete &= self._check_exits()
        if Check.STALL in checks:
            complete &= self._check_stall()
        return complete

    def _send(self, alert: Alert) -> bool:
        if not self._mailer.send(alert):
            return False
        self._state = self._state.settled(alert, self._clock())
        save_state(self._settings.state_file, self._state)
        return True

    def _check_counterexamples(self) -> bool:
        try:
            exported = self._riemann.output(
                "export", "--min-witness", EXPORT_MIN_WITNESS
            )
            records = parse_export(exported)
        except (CheckError, ValueError) as exc:
            LOG.warning(
                "counterexample check skipped: export unreadable",
                extra={"error": str(exc)},
            )
            return False
        findings = counterexamples_to_report(records, self._state)
        if not findings:
            return True
        LOG.critical(
            "counterexample to Robin's inequality found",
            extra={"n": _short_number(findings[0].n), "count": len(findings)},
        )
        return self._send(counterexample_alert(findings, self._host_name))

    def _check_exits(self) -> bool:
        until_ns = time.time_ns()
        since_ns = self._state.events_until_ns
        try:
            exits = self._exits_seen(since_ns, until_ns)
            existing = frozenset(
                summary.container_id for summary in self._engine.containers()
            )
        except CheckError as exc:
            LOG.warning(
                "exit check skipped: Docker engine unreadable",
                extra={"docker_host": self._settings.docker_host, "error": str(exc)},
            )
            self._engine_unreadable(str(exc))
            return False

        if self._state.engine_unreadable_since is not None:
            LOG.info("Docker engine readable again")
            self._state = dataclasses.replace(
                self._state,
                engine_unreadable_since=None,
                engine_unreadable_reported=False,
            )
        self._state = self._state.forget_removed_containers(existing)
        decision = decide_exits(
            exits,
            self._settings.selection,
            self._state,
            self._clock(),
            self._settings.repeat_after,
        )
        for container_exit in decision.to_log:
            LOG.warning(
                "container exited again within its quiet period: logged, not emailed",
                extra={
                    "container": container_exit.name,
                    "exit_code": container_exit.exit_code,
                    "finished_at": container_exit.finished_at,
                },
            )
        self._state = self._state.with_exits_logged(decision.to_log)

        complete = True
        for container_exits in decision.to_email:
            latest = container_exits[-1]
            LOG.warning(
                "container exited",
                extra={"container": latest.name, "exit_code": latest.exit_code},
            )
            try:
                log_tail = self._engine.log_tail(
                    latest.container_id,
                    latest.tty,
                    self._settings.log_lines,
                    latest.log_until,
                )
            except CheckError as exc:
                log_tail = f"(logs unreadable: {exc})"
            only_logged = self._state.exits_logged_since_email.get(latest.name, 0)
            alert = exit_alert(container_exits, log_tail, self._host_name, only_logged)
            complete &= self._send(alert)

        # Until every exit among them was emailed the same events are read again;
        # the keys of those already sent keep them from being sent twice.
        if complete or since_ns is None:
            self._state = dataclasses.replace(self._state, events_until_ns=until_ns)
        save_state(self._settings.state_file, self._state)
        return complete

    def _exits_seen(self, since_ns: int | None, until_ns: int) -> list[ContainerExit]:
        """Exits in the die events since the last round, and exited containers.

        The first round has no events to read: it starts from the exited list.
        """
        selection = self._settings.selection
        deaths = []
        if since_ns is not None:
            deaths = [
                death
                for death in self._engine.deaths(since_ns, until_ns)
                if belongs_to_search(death.name, death.labels, selection)
            ]
        died = {death.container_id for death in deaths}
        exits = exits_from_deaths(
            deaths,
            {container_id: self._engine.details(container_id) for container_id in died},
        )

        seen = {key for container_exit in exits for key in container_exit.keys}
        for summary in self._engine.containers(("exited", "dead")):
            if not belongs_to_search(summary.name, summary.labels, selection):
                continue
            container_details = self._engine.details(summary.container_id)
            if container_details is None:
                continue
            try:
                listed = exit_of_exited_container(summary, container_details)
            except ValueError as exc:
                raise CheckError(f"Docker engine sent a malformed time: {exc}") from exc
            if seen.isdisjoint(listed.keys):
                exits.append(listed)
        return exits

    def _check_stall(self) -> bool:
        now = self._clock()
        try:
            status = parse_status(self._riemann.output("status", "--json"))
        except (CheckError, ValueError) as exc:
            LOG.warning(
                "stall check skipped: search status unreadable",
                extra={"error": str(exc)},
            )
            return self._status_unreadable(now, str(exc))

        if self._state.status_unreadable_since is not None:
            LOG.info("search status readable again")
            self._state = dataclasses.replace(
                self._state,
                status_unreadable_since=None,
                status_unreadable_reported=False,
            )
            save_state(self._settings.state_file, self._state)
        alert = stall_alert(
            status,
            now,
            self._settings.stall_after,
            self._watching_since,
            self._state,
            self._host_name,
        )
        if alert is None:
            return True
        LOG.warning("search stalled", extra={"stall": alert.keys[0]})
        return self._send(alert)

    def _status_unreadable(self, now: dt.datetime, reason: str) -> bool:
        since = self._state.status_unreadable_since
        if since is None:
            since = now
            self._state = dataclasses.replace(
                self._state, status_unreadable_since=since
            )
            save_state(self._settings.state_file, self._state)
        if self._state.status_unreadable_reported:
            return False
        alert = status_unreadable_alert(
            since, now, self._settings.stall_after, reason, self._host_name
        )
        if alert is not None:
            self._send(alert)
        return False

    def _engine_unreadable(self, reason: str) -> None:
        now = self._clock()
        since = self._state.engine_unreadable_since
        if since is None:
            since = now
            self._state = dataclasses.replace(
                self._state, engine_unreadable_since=since
            )
            save_state(self._settings.state_file, self._state)
        if self._state.engine_unreadable_reported:
            return
        alert = engine_unreadable_alert(
            since,
            now,
            self._settings.engine_unreadable_after,
            self._settings.docker_host,
            reason,
            self._host_name,
        )
        if alert is not None:
            LOG.error(
                "Docker engine unreadable too long: emailing",
                extra={"docker_host": self._settings.docker_host},
            )
            self._send(alert)


def resolve_host_name(settings: MonitorSettings, engine: DockerEngine) -> str:
    """The configured name, else the engine's (right inside a container), else ours."""
    if settings.host_name:
        return settings.host_name
    if Check.EXITS in settings.checks:
        try:
            return engine.host_name()
        except (CheckError, LookupError):
            pass
    return socket.gethostname()


# --- Logging --------------------------------------------------------------------------

_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None))
) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    """One event a line: the constant message, then the `extra` fields."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            name: value
            for name, value in vars(record).items()
            if name not in _RECORD_ATTRIBUTES
        }
        time = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        )
        if self._as_json:
            event: dict[str, object] = {
                "time": time,
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                **fields,
            }
            if record.exc_info:
                event["traceback"] = self.formatException(record.exc_info)
            return json.dumps(event, default=str)

        line = f"{time} {record.levelname} {record.name}: {record.getMessage()}"
        for name, value in fields.items():
            text = str(value)
            if not text or any(character.isspace() for character in text):
                text = json.dumps(text)
            line += f" {name}={text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(environ: Mapping[str, str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        FieldsFormatter(as_json=environ.get("RIEMANN_LOG_FORMAT", "").lower() == "json")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = environ.get("RIEMANN_LOG_LEVEL", "").upper() or "INFO"
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")


# --- Entry point ----------------------------------------------------------------------


class StopRequest:
    """Set by SIGTERM or SIGINT; a sleep on it ends at once when it is set.

    The handler only sets a flag, and Python writes to the wake-up pipe: taking a
    lock there (a threading.Event, a logging call) can deadlock with the code the
    signal interrupted.
    """

    def __init__(self) -> None:
        self.signal_name = ""
        self._wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(self._wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signal_number: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signal_number).name

    @property
    def requested(self) -> bool:
        return bool(self.signal_name)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            select.select([self._wakeup_read], [], [], left)
            with contextlib.suppress(BlockingIOError):
                os.read(self._wakeup_read, 512)


def run(monitor: Monitor, settings: MonitorSettings, stop: StopRequest) -> int:
    if settings.once:
        return EXIT_OK if monitor.check_once() else EXIT_INCOMPLETE
    LOG.info(
        "monitor started",
        extra={
            "interval": settings.interval,
            "checks": ",".join(sorted(check.value for check in settings.checks)),
        },
    )
    while not stop.requested:
        started = time.monotonic()
        complete = monitor.check_once()
        LOG.debug(
            "round of checks finished",
            extra={"complete": complete, "duration": time.monotonic() - started},
        )
        stop.sleep(settings.interval)
    LOG.info("monitor stopped", extra={"signal": stop.signal_name})
    return EXIT_OK


def report_monitor_failure(
    settings: MonitorSettings,
    mailer: Mailer,
    host_name: str,
    error: Exception,
    now: dt.datetime,
) -> None:
    """Emails why the monitor failed, unless that same failure was emailed within
    the repeat period; the state file remembers what was emailed across restarts."""
    state = load_state(settings.state_file)
    alert = monitor_failed_alert(host_name, error)
    failure = alert.keys[0]
    if monitor_failure_emailed_recently(state, failure, now, settings.repeat_after):
        LOG.error(
            "monitor failed as before: not emailed again within the repeat period",
            extra={
                "failure": failure,
                "emailed_at": _time_text(state.monitor_failure_emailed_at),
                "repeat_after": settings.repeat_after.total_seconds(),
            },
        )
        return
    if mailer.send(alert):
        save_state(settings.state_file, state.settled(alert, now))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    environ = settings_environment(arguments, os.environ)
    configure_logging(environ)
    try:
        settings = load_settings(arguments, environ)
        engine = DockerEngine(settings.docker_host, settings.command_timeout)
    except ConfigurationError as exc:
        LOG.error("monitor not started: a setting is wrong", extra={"reason": str(exc)})
        return EXIT_MISCONFIGURED

    stop = StopRequest()
    mailer = Mailer(settings.mail)
    host_name = settings.host_name or socket.gethostname()
    try:
        host_name = resolve_host_name(settings, engine)
        monitor = Monitor(
            settings,
            engine,
            RiemannCommand(
                settings.riemann_command,
                settings.command_timeout,
                command_environment(environ),
            ),
            mailer,
            host_name,
            clock=lambda: dt.datetime.now(dt.UTC),
        )
        return run(monitor, settings, stop)
    except Exception as exc:
        LOG.exception("monitor failed unexpectedly")
        try:
            now = dt.datetime.now(dt.UTC)
            report_monitor_failure(settings, mailer, host_name, exc, now)
        except Exception:
            LOG.exception("could not email that the monitor failed")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
