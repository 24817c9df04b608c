#!/usr/bin/env python3
"""Deploys the search to its hosts over ssh, in dependency order.

Run from a laptop in a checkout of the project:

    python3 deploy/deploy.py [--env-file .env] [--ref REF] [--only ROLE] [--dry-run]

The hosts and their roles come from the .env file (see .env.template, section
Deploy): one database host, one host for the generator and the janitor, and any
number of worker hosts. Every host needs git, Docker and the Compose plugin, and a
way to fetch DEPLOY_REPO_URL (a deploy key of its own).

First every host in scope is reached over ssh, with host keys checked against
DEPLOY_KNOWN_HOSTS and never accepted blindly; if any host fails that check nothing
is changed anywhere. Then, database first, the generator and janitor next, workers
last, each host fetches the code at the ref, rebuilds the image, restarts its
containers gracefully and is waited for until healthy before the next one starts.
The database is backed up with pg_dump on its own host before its container is
touched and before any schema migration, also when only the generator host is
deployed; whether there is a database to back up is decided by its data volume,
and Postgres is started on that volume for the dump when its container is missing
or stopped; the volume is never removed. Every host also runs the alert monitor
(alerts/monitor.py) with the SMTP settings of the .env file; the generator host's
monitor alone watches for stalls and counterexamples, every host's for exits.
The first failure stops the deploy with the host and step that failed, the steps
already done on that host and the services it left stopped, and what was already
updated; running the same command again finishes the job, since every step is safe
to repeat. A container that keeps restarting fails the wait for health at once.

Only the Python standard library and the ssh client are used.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import ipaddress
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROLES = ("database", "generator", "worker")
ROLE_SERVICES = {
    "database": ("db",),
    "generator": ("generator", "janitor"),
    "worker": ("worker",),
}
# Started on every host after the services of its role; never stopped by the deploy
# (`up` replaces it when its image or settings changed).
MONITOR_SERVICE = "monitor"
# The compose project (`name:` in docker/compose.yaml) and its volume of the database's
# data: whether that volume exists, not whether a container does, says whether there
# is a database to back up.
COMPOSE_PROJECT = "riemann"
DATABASE_VOLUME = "db-data"
# The steps between which a host's services are down.
STOP_STEP = "stop old containers"
START_STEP = "start containers"
# Settings of the search and of the monitor passed through to the hosts' compose
# files when set. RIEMANN_SMTP_CA_FILE is not among them: it names a file on the
# laptop, and the image trusts the usual certificate authorities.
PASSED_THROUGH = (
    "RIEMANN_STRATEGY",
    "RIEMANN_SEARCH_BOUNDS",
    "RIEMANN_WORKERS",
    "RIEMANN_LOG_LEVEL",
    "RIEMANN_LOG_FORMAT",
    "RIEMANN_SMTP_HOST",
    "RIEMANN_SMTP_PORT",
    "RIEMANN_SMTP_SECURITY",
    "RIEMANN_SMTP_USER",
    "RIEMANN_SMTP_PASSWORD",
    "RIEMANN_SMTP_FROM",
    "RIEMANN_SMTP_TO",
    "RIEMANN_SMTP_TIMEOUT",
    "RIEMANN_ALERT_INTERVAL",
    "RIEMANN_ALERT_STALL_AFTER",
    "RIEMANN_ALERT_ENGINE_UNREADABLE_AFTER",
    "RIEMANN_ALERT_NAME_PREFIX",
    "RIEMANN_ALERT_CLEAN_EXITS",
    "RIEMANN_ALERT_REPEAT_AFTER",
    "RIEMANN_ALERT_LOG_LINES",
    "RIEMANN_ALERT_COMMAND_TIMEOUT",
)
# What the generator host's monitor checks unless RIEMANN_ALERT_CHECKS says; the
# other hosts check exits only, so a stall or a finding is emailed once, not once
# per host.
ALL_CHECKS = "exits,stall,counterexamples"
HOST_CHECKS = "exits"
EXIT_FAILED = 1
EXIT_NOTHING_CHANGED = 2


class ConfigurationError(Exception):
    """A setting is missing or malformed; nothing was contacted."""


class StepError(Exception):
    """One step on one host failed; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    role: str
    host: str

    def __str__(self) -> str:
        return f"{self.role} host {self.host}"


@dataclass(frozen=True)
class Settings:
    database_host: str
    generator_host: str
    worker_hosts: tuple[str, ...]
    ssh_user: str
    ssh_port: int
    ssh_key: str
    known_hosts: str
    connect_timeout: int
    repo_url: str
    remote_dir: str
    git_ref: str
    backup_dir: str
    health_timeout: int
    database_address: str
    database_listen: str
    postgres_port: str
    postgres_user: str
    postgres_db: str
    postgres_password: str
    pip_index_url: str
    search: dict[str, str]
    alert_checks: str

    def alert_checks_of(self, host: str) -> str:
        return self.alert_checks if host == self.generator_host else HOST_CHECKS

    def targets(self, only: Sequence[str]) -> list[Target]:
        everything = [
            Target("database", self.database_host),
            Target("generator", self.generator_host),
            *(Target("worker", host) for host in self.worker_hosts),
        ]
        return [target for target in everything if not only or target.role in only]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines with # comments and optional quotes, as compose reads them."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, separator, value = line.partition("=")
        if not separator or not key.strip().isidentifier():
            raise ConfigurationError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def load_settings(env_file: Path, ref: str | None) -> Settings:
    """Settings from the .env file, the process environment taking precedence."""
    if env_file.exists():
        values = {**read_env_file(env_file), **os.environ}
    elif env_file != Path(".env"):
        raise ConfigurationError(f"{env_file} does not exist")
    else:
        values = dict(os.environ)

    def setting(name: str, default: str | None = None) -> str:
        value = values.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigurationError(f"{name} is not set; see .env.template")
        return default

    def number(name: str, default: str) -> int:
        text = setting(name, default)
        if not text.isdigit():
            raise ConfigurationError(f"{name} must be a whole number, not {text!r}")
        return int(text)

    password = setting("POSTGRES_PASSWORD")
    # The monitor runs on every host: without these it would only restart forever.
    for name in ("RIEMANN_SMTP_HOST", "RIEMANN_SMTP_TO"):
        setting(name)
    search = {name: values[name] for name in PASSED_THROUGH if values.get(name)}
    alert_checks = setting("RIEMANN_ALERT_CHECKS", ALL_CHECKS)
    written = {"POSTGRES_PASSWORD": password, "RIEMANN_ALERT_CHECKS": alert_checks}
    for name, value in {**written, **search}.items():
        if any(character in value for character in "'\n\\"):
            raise ConfigurationError(
                f"{name} must not contain quotes, backslashes or new lines"
            )
    database_host = setting("DEPLOY_DB_HOST")
    database_address = setting("DEPLOY_DB_ADDRESS", database_host)
    listen_default = database_address if _is_ip_address(database_address) else None
    known_hosts = setting("DEPLOY_KNOWN_HOSTS", "~/.ssh/known_hosts")
    ssh_key = values.get("DEPLOY_SSH_KEY", "").strip()
    remote_dir = setting("DEPLOY_REMOTE_DIR", "/opt/riemann")
    return Settings(
        database_host=database_host,
        generator_host=setting("DEPLOY_GENERATOR_HOST"),
        worker_hosts=tuple(
            setting("DEPLOY_WORKER_HOSTS", "").replace(",", " ").split()
        ),
        ssh_user=setting("DEPLOY_SSH_USER", getpass.getuser()),
        ssh_port=number("DEPLOY_SSH_PORT", "22"),
        ssh_key=str(Path(ssh_key).expanduser()) if ssh_key else "",
        known_hosts=str(Path(known_hosts).expanduser()),
        connect_timeout=number("DEPLOY_CONNECT_TIMEOUT", "10"),
        repo_url=setting("DEPLOY_REPO_URL"),
        remote_dir=remote_dir,
        git_ref=ref or setting("DEPLOY_GIT_REF", "main"),
        backup_dir=setting("DEPLOY_BACKUP_DIR", "/var/backups/riemann"),
        health_timeout=number("DEPLOY_HEALTH_TIMEOUT", "300"),
        database_address=database_address,
        database_listen=setting("DEPLOY_DB_LISTEN", listen_default),
        postgres_port=setting("POSTGRES_PORT", "5432"),
        postgres_user=setting("POSTGRES_USER", "riemann"),
        postgres_db=setting("POSTGRES_DB", "riemann"),
        postgres_password=password,
        pip_index_url=values.get("RIEMANN_PIP_INDEX_URL", "").strip(),
        search=search,
        alert_checks=alert_checks,
    )


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Output:
    """Everything the deploy prints goes through here."""

    def step(self, target: Target, step: str) -> float:
        print(f"  {target}: {step} ...", flush=True)
        return time.monotonic()

    def done(self, target: Target, step: str, started: float, detail: str = "") -> None:
        suffix = f": {detail}" if detail else ""
        seconds = time.monotonic() - started
        print(f"  {target}: {step} done ({seconds:.0f} s){suffix}", flush=True)

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def error(self, text: str) -> None:
        print(f"deploy: {text}", file=sys.stderr, flush=True)


class Remote:
    """Commands on one host over ssh, sharing one checked connection."""

    def __init__(self, settings: Settings, host: str, control_dir: Path) -> None:
        self.host = host
        self._control_path = control_dir / host.replace("/", "_")
        options = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": settings.known_hosts,
            "GlobalKnownHostsFile": "/dev/null",
            "UpdateHostKeys": "no",
            "ConnectTimeout": str(settings.connect_timeout),
            "ServerAliveInterval": "15",
            "ControlMaster": "auto",
            "ControlPath": str(self._control_path),
            "ControlPersist": "300",
            "LogLevel": "ERROR",
        }
        if settings.ssh_key:
            options |= {"IdentityFile": settings.ssh_key, "IdentitiesOnly": "yes"}
        self._ssh = ["ssh", "-F", "/dev/null", "-p", str(settings.ssh_port), "-T"]
        for name, value in options.items():
            self._ssh += ["-o", f"{name}={value}"]
        self._ssh.append(f"{settings.ssh_user}@{host}")

    def run(
        self, script: str, *, input: str | None = None, timeout: float = 3600
    ) -> subprocess.CompletedProcess[str]:
        """Runs a POSIX shell script on the host."""
        try:
            return subprocess.run(
                [*self._ssh, f"sh -c {shlex.quote(script)}"],
                input=input if input is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(
                expired.cmd, 124, "", f"no answer within {timeout:.0f} s"
            )

    def close(self) -> None:
        if self._control_path.exists():
            subprocess.run(
                [*self._ssh[:-1], "-O", "exit", self._ssh[-1]],
                capture_output=True,
                check=False,
                timeout=30,
            )


CONNECTION_SYMPTOMS = (
    "Connection refused",
    "Connection timed out",
    "timed out",
    "No route to host",
    "Could not resolve",
    "Network is unreachable",
    "no answer within",
)


def connection_problem(
    completed: subprocess.CompletedProcess[str], host: str, settings: Settings
) -> str:
    """One sentence saying why ssh to a host failed."""
    text = completed.stderr
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"the host key of {host} does not match the one in {settings.known_hosts}; "
            "refusing to connect (if the host was rebuilt, check its new key out of "
            "band and replace the line)"
        )
    if "Host key verification failed" in text:
        return (
            f"the host key of {host} is not in {settings.known_hosts}; refusing to "
            "connect (check its fingerprint out of band, then add it)"
        )
    if "Permission denied" in text:
        return f"{host} refused the ssh key for user {settings.ssh_user}"
    for symptom in CONNECTION_SYMPTOMS:
        if symptom in text:
            return f"{host} is unreachable on port {settings.ssh_port} ({symptom})"
    last_line = (text.strip().splitlines() or ["ssh failed"])[-1]
    return f"{host}: {last_line}"


PREFLIGHT = """
docker version --format '{{.Server.Version}}' >/dev/null || exit 3
docker compose version >/dev/null 2>&1 || {
    echo 'the docker compose plugin is missing' >&2
    exit 3
}
git --version >/dev/null || exit 3
"""


@dataclass(frozen=True)
class ContainerState:
    """One container of a service as `docker inspect` shows it while waiting."""

    service: str
    container: str
    status: str
    health: str
    exit_code: str
    restarts: int

    @classmethod
    def parse(cls, line: str) -> ContainerState:
        service, container, status, health, exit_code, restarts = line.split()
        return cls(service, container, status, health, exit_code, int(restarts))


class Deployment:
    """The steps of one deploy, host by host."""

    def __init__(self, settings: Settings, output: Output, control_dir: Path) -> None:
        self.settings = settings
        self.output = output
        self.control_dir = control_dir
        self.remotes: dict[str, Remote] = {}
        self.commit = ""
        self.backed_up = ""

    def remote(self, host: str) -> Remote:
        if host not in self.remotes:
            self.remotes[host] = Remote(self.settings, host, self.control_dir)
        return self.remotes[host]

    def close(self) -> None:
        for remote in self.remotes.values():
            remote.close()

    def hosts_reached(self, targets: Sequence[Target]) -> list[str]:
        """The hosts of the targets, and the database host when a migration will
        back it up first."""
        hosts = [target.host for target in targets]
        if any(target.role == "generator" for target in targets):
            hosts.append(self.settings.database_host)
        return list(dict.fromkeys(hosts))

    def check_connections(self, targets: Sequence[Target]) -> list[str]:
        """Reaches every host once; returns one problem line per failing host."""
        problems = []
        for host in self.hosts_reached(targets):
            remote = self.remote(host)
            completed = remote.run(
                PREFLIGHT, timeout=self.settings.connect_timeout + 60
            )
            if completed.returncode == 255:
                problems.append(connection_problem(completed, host, self.settings))
            elif completed.returncode != 0:
                reason = (completed.stderr.strip().splitlines() or ["check failed"])[-1]
                problems.append(f"{host} lacks what a deploy needs: {reason}")
        return problems

    def steps(self, target: Target) -> list[tuple[str, Callable[[Target], str]]]:
        common = [
            ("fetch code", self.fetch_code),
            ("write settings", self.write_settings),
        ]
        if target.role == "database":
            # The image too: the host's monitor runs from it.
            return [
                *common,
                ("build image", self.build_image),
                ("back up database", self.back_up_database),
                ("start containers", self.start_containers),
                ("wait until healthy", self.wait_until_healthy),
            ]
        role_steps = [("build image", self.build_image)]
        if target.role == "generator":
            role_steps += [
                ("back up database", self.back_up_before_migration),
                ("migrate schema", self.migrate_schema),
            ]
        return [
            *common,
            *role_steps,
            ("stop old containers", self.stop_containers),
            ("start containers", self.start_containers),
            ("wait until healthy", self.wait_until_healthy),
        ]

    def _run(
        self,
        target: Target,
        script: str,
        *,
        input: str | None = None,
        timeout: float = 3600,
    ) -> str:
        completed = self.remote(target.host).run(script, input=input, timeout=timeout)
        if completed.returncode != 0:
            if completed.returncode == 255:
                raise StepError(
                    connection_problem(completed, target.host, self.settings)
                )
            lines = (completed.stderr.strip() or completed.stdout.strip()).splitlines()
            raise StepError(" / ".join(lines[-3:]) or f"exit {completed.returncode}")
        return completed.stdout.strip()

    def _in_checkout(self, script: str) -> str:
        return f"set -eu\ncd {shlex.quote(self.settings.remote_dir)}/docker\n{script}"

    def fetch_code(self, target: Target) -> str:
        """Checks out the ref; every later host gets the commit the first one found,
        so a push during the deploy cannot leave hosts on different code."""
        directory = shlex.quote(self.settings.remote_dir)
        url = shlex.quote(self.settings.repo_url)
        ref = shlex.quote(self.commit or self.settings.git_ref)
        script = f"""
set -eu
if [ ! -d {directory}/.git ]; then
    mkdir -p {directory}
    git clone --quiet --no-checkout {url} {directory}
fi
cd {directory}
git remote set-url origin {url}
git fetch --quiet --force --tags origin '+refs/heads/*:refs/remotes/origin/*'
commit=$(git rev-parse --verify --quiet "origin/"{ref}"^{{commit}}" \\
    || git rev-parse --verify --quiet {ref}"^{{commit}}") \\
    || {{ echo "git ref "{ref}" not found in "{url} >&2; exit 1; }}
git checkout --quiet --force --detach "$commit"
echo "$commit"
"""
        self.commit = self._run(target, script, timeout=600).splitlines()[-1]
        return f"at {self.commit[:12]}"

    def write_settings(self, target: Target) -> str:
        """The compose .env of this host, readable by its owner only.

        It holds the database and SMTP passwords: they go through ssh's standard
        input, never on a command line or into the deploy's output.
        """
        settings = self.settings
        values = {
            "POSTGRES_USER": settings.postgres_user,
            "POSTGRES_DB": settings.postgres_db,
            "POSTGRES_PASSWORD": settings.postgres_password,
            "POSTGRES_PORT": settings.postgres_port,
            "POSTGRES_BIND": settings.database_listen,
            "RIEMANN_DB_HOST": settings.database_address,
            "RIEMANN_DB_PORT": settings.postgres_port,
            "RIEMANN_IMAGE": f"riemann:{self.commit[:12]}",
            **settings.search,
            "RIEMANN_ALERT_CHECKS": settings.alert_checks_of(target.host),
        }
        lines = [
            "# Written by deploy/deploy.py at every deploy: edit .env on the laptop."
        ]
        lines += [f"{name}='{value}'" for name, value in values.items()]
        # The monitor's container mounts this host's engine socket and joins its
        # group, whatever DOCKER_HOST names on the host.
        script = self._in_checkout("""
umask 077
cat > .env.new
socket=/var/run/docker.sock
case "${DOCKER_HOST:-}" in
unix://*) socket=${DOCKER_HOST#unix://} ;;
esac
[ -S "$socket" ] || { echo "no Docker socket at $socket for the monitor" >&2; exit 1; }
printf "RIEMANN_DOCKER_SOCKET='%s'\\nRIEMANN_DOCKER_GID='%s'\\n" \\
    "$socket" "$(stat -c %g "$socket")" >> .env.new
mv .env.new .env
""")
        self._run(target, script, input="\n".join(lines) + "\n")
        return ""

    def back_up_before_migration(self, target: Target) -> str:
        """The database host's backup, unless this deploy dumped it already."""
        if self.backed_up:
            return f"taken earlier in this deploy: {self.backed_up}"
        return self.back_up_database(Target("database", self.settings.database_host))

    def back_up_database(self, target: Target) -> str:
        """pg_dump of the database into a timestamped file on the database host.

        Whether there is a database to back up is decided by the compose project's
        data volume: after `docker compose down`, or with the container removed, the
        volume still holds every result, so Postgres is started on it (from the
        host's compose file) and waited for before the dump. Only a dump counts as
        this deploy's backup; without a volume there is nothing to dump yet, and a
        later step asks again.
        """
        backup_dir = shlex.quote(self.settings.backup_dir)
        checkout = shlex.quote(f"{self.settings.remote_dir}/docker")
        tries = max(1, self.settings.health_timeout // 2)
        script = f"""
set -eu
volume=$(docker volume ls --quiet \\
    --filter label=com.docker.compose.project={COMPOSE_PROJECT} \\
    --filter label=com.docker.compose.volume={DATABASE_VOLUME})
if [ -z "$volume" ]; then
    echo "nothing to back up: no database volume yet"
    exit 0
fi
if [ ! -f {checkout}/compose.yaml ]; then
    echo "the database volume $volume exists but there is no {checkout}/compose.yaml \\
to start Postgres on it for the backup: deploy the database host first" >&2
    exit 1
fi
cd {checkout}
container=$(docker compose ps --all --quiet db)
if [ -z "$container" ]; then
    docker compose up --detach --no-deps --no-build db
else
    running=$(docker inspect --format '{{{{.State.Running}}}}' "$container")
    [ "$running" = true ] || docker compose start db
fi
tries=0
until docker compose exec -T db pg_isready --quiet --host=127.0.0.1 >/dev/null 2>&1
do
    tries=$((tries + 1))
    if [ "$tries" -ge {tries} ]; then
        echo "the database on volume $volume did not answer within \\
{self.settings.health_timeout} s, so it was not backed up" >&2
        exit 1
    fi
    sleep 2
done
mkdir -p {backup_dir}
chmod 700 {backup_dir}
file={backup_dir}/riemann-$(date -u +%Y%m%dT%H%M%SZ).dump
docker compose exec -T db sh -c \\
    'pg_dump --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --format=custom' \\
    > "$file.partial"
mv "$file.partial" "$file"
echo "dumped $file ($(wc -c < "$file") bytes)"
"""
        result = self._run(target, script).splitlines()[-1]
        if result.startswith("dumped "):
            self.backed_up = result.removeprefix("dumped ")
        return f"on {target.host}: {result}"

    def build_image(self, target: Target) -> str:
        tag = f"riemann:{self.commit[:12]}"
        arguments = [
            "--file", "docker/Dockerfile", "--tag", tag,
            "--build-arg", f"RIEMANN_REVISION={self.commit}",
        ]  # fmt: skip
        index = self.settings.pip_index_url
        if index:
            arguments += ["--build-arg", f"PIP_INDEX_URL={index}"]
            if index.startswith("http://"):
                host = index.split("/")[2].split(":")[0]
                arguments += ["--build-arg", f"PIP_TRUSTED_HOST={host}"]
        command = " ".join(shlex.quote(argument) for argument in arguments)
        script = f"set -eu\ncd {shlex.quote(self.settings.remote_dir)}\n"
        script += f"docker build --quiet {command} . >/dev/null\n"
        self._run(target, script)
        return tag

    def migrate_schema(self, target: Target) -> str:
        self._run(
            target, self._in_checkout("docker compose run --rm --no-deps -T migrate")
        )
        return ""

    def _services(self, target: Target) -> str:
        """The role's services and the monitor."""
        return " ".join((*ROLE_SERVICES[target.role], MONITOR_SERVICE))

    def stop_containers(self, target: Target) -> str:
        """compose stop sends SIGTERM and waits the service's stop_grace_period."""
        services = " ".join(ROLE_SERVICES[target.role])
        self._run(target, self._in_checkout(f"docker compose stop {services}"))
        return ""

    def start_containers(self, target: Target) -> str:
        """Containers whose image or settings changed are recreated, others kept."""
        script = (
            f"docker compose up --detach --no-deps --no-build {self._services(target)}"
        )
        self._run(target, self._in_checkout(script))
        return ""

    def wait_until_healthy(self, target: Target) -> str:
        """Until every container of the host's services runs and is healthy.

        A container in a crash loop can look running whenever it is polled, between
        two restarts by its policy: its RestartCount growing from one poll to the
        next fails the wait at once, as does a container found restarting, exited
        or unhealthy.
        """
        services = self._services(target)
        health = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
        script = self._in_checkout(f"""
format='{{{{.State.Status}}}} {health} {{{{.State.ExitCode}}}} {{{{.RestartCount}}}}'
for service in {services}; do
    containers=$(docker compose ps --all --quiet "$service")
    [ -n "$containers" ] || echo "$service - missing - - 0"
    for container in $containers; do
        docker inspect --format "$service $container $format" "$container"
    done
done
""")
        restarts_seen: dict[str, int] = {}
        deadline = time.monotonic() + self.settings.health_timeout
        while True:
            states = [
                ContainerState.parse(line)
                for line in self._run(target, script).splitlines()
            ]
            # A generator with a bound exits 0 once it has enqueued everything.
            running = [
                s for s in states if not (s.status == "exited" and s.exit_code == "0")
            ]
            # Restarting: it exited since it was started, and its policy restarts it.
            crash_looping = [
                s
                for s in running
                if s.status == "restarting"
                or s.restarts > restarts_seen.get(s.container, s.restarts)
            ]
            if crash_looping:
                state = crash_looping[0]
                # A container running again shows exit code 0, not its last one.
                exit_code = (
                    f", last exit code {state.exit_code}"
                    if state.status != "running"
                    else ""
                )
                raise StepError(
                    f"{state.service} keeps restarting (restarted {state.restarts} "
                    f"times{exit_code}): " + self._last_log_lines(target, state.service)
                )
            restarts_seen = {s.container: s.restarts for s in states}
            broken = [
                s
                for s in running
                if s.status in ("exited", "dead", "missing") or s.health == "unhealthy"
            ]
            if broken:
                state = broken[0]
                raise StepError(
                    f"{state.service} {state.status} (exit {state.exit_code}, "
                    f"{state.health}): " + self._last_log_lines(target, state.service)
                )
            if all(
                s.status == "running" and s.health in ("healthy", "none")
                for s in running
            ):
                done = len(states) - len(running)
                return f"{len(running)} running and healthy, {done} finished"
            if time.monotonic() > deadline:
                waiting = ", ".join(
                    f"{s.service} {s.status}/{s.health}" for s in running
                )
                timeout = self.settings.health_timeout
                raise StepError(f"not healthy within {timeout} s: {waiting}")
            time.sleep(2)

    def _last_log_lines(self, target: Target, service: str) -> str:
        """The service's last three log lines, each once: a container in a crash
        loop logs the same line at every start."""
        logs_script = f"docker compose logs --no-color --tail 10 {service} 2>&1"
        logs = self._run(target, self._in_checkout(f"{logs_script} || true"))
        distinct = list(dict.fromkeys(reversed(logs.splitlines())))[:3]
        return " / ".join(reversed(distinct))

    def services_stopped(self, target: Target) -> list[str] | None:
        """The role's services with no running container on the host; None when
        the host cannot tell."""
        script = self._in_checkout("docker compose ps --services --status running")
        try:
            running = self._run(target, script, timeout=60).split()
        except StepError:
            return None
        return [
            service for service in ROLE_SERVICES[target.role] if service not in running
        ]


def print_plan(
    output: Output, deployment: Deployment, targets: Sequence[Target]
) -> None:
    settings = deployment.settings
    output.line(
        f"deploy {settings.repo_url} at {settings.git_ref} to "
        f"{settings.remote_dir} on {len(targets)} host(s), in this order:"
    )
    for target in targets:
        names = ", ".join(name for name, _ in deployment.steps(target))
        services = ", ".join((*ROLE_SERVICES[target.role], MONITOR_SERVICE))
        output.line(f"  {target} ({services}): {names}")
    if any(target.role == "generator" for target in targets):
        output.line(
            f"  the backup before the migration is taken on database host "
            f"{settings.database_host}"
        )


@dataclass(frozen=True)
class Failure:
    """Where a deploy stopped: the host, its failed step and the steps done before.

    `stopped` names the role's services the deploy stopped and did not start again,
    None when the host could not tell which.
    """

    target: Target
    step: str
    reason: str
    completed: tuple[str, ...]
    stopped: list[str] | None


def deploy(
    settings: Settings, only: Sequence[str], dry_run: bool, output: Output
) -> int:
    targets = settings.targets(only)
    if not targets:
        output.error("no host has the role asked for")
        return EXIT_NOTHING_CHANGED
    with tempfile.TemporaryDirectory(prefix="riemann-deploy-") as control_dir:
        deployment = Deployment(settings, output, Path(control_dir))
        try:
            return _deploy(deployment, targets, dry_run, output)
        finally:
            deployment.close()


def _deploy(
    deployment: Deployment, targets: Sequence[Target], dry_run: bool, output: Output
) -> int:
    print_plan(output, deployment, targets)
    problems = deployment.check_connections(targets)
    for problem in problems:
        output.error(problem)
    if problems:
        output.error("nothing was changed on any host")
        return EXIT_NOTHING_CHANGED
    checked = len(deployment.hosts_reached(targets))
    output.line(f"every host answered with its known host key ({checked} checked)")
    if dry_run:
        output.line("dry run: nothing was changed")
        return 0

    updated: list[Target] = []
    for target in targets:
        completed: list[str] = []
        for step, action in deployment.steps(target):
            started = output.step(target, step)
            try:
                detail = action(target)
            except StepError as failure:
                stopped: list[str] | None = []
                if STOP_STEP in (*completed, step) and START_STEP not in completed:
                    stopped = deployment.services_stopped(target)
                _report_failure(
                    output,
                    Failure(target, step, failure.reason, tuple(completed), stopped),
                    updated,
                    targets,
                )
                return EXIT_FAILED
            output.done(target, step, started, detail)
            completed.append(step)
        updated.append(target)
    output.line(f"deployed {deployment.commit[:12]} to {len(updated)} host(s)")
    return 0


def _report_failure(
    output: Output, failure: Failure, updated: list[Target], targets: Sequence[Target]
) -> None:
    target = failure.target
    output.error(f"failed on {target} at step '{failure.step}': {failure.reason}")
    output.error(f"already updated: {', '.join(map(str, updated)) or 'none'}")
    if failure.completed:
        output.error(f"partly updated: {target} (done: {', '.join(failure.completed)})")
    if failure.stopped is None:
        services = ", ".join(ROLE_SERVICES[target.role])
        output.error(
            f"{services} on {target} may be stopped until the deploy is run again "
            "(their state could not be read)"
        )
    elif failure.stopped:
        output.error(
            f"stopped on {target} until the deploy is run again: "
            + ", ".join(failure.stopped)
        )
    partly = [target] if failure.completed else []
    left = [t for t in targets if t not in updated and t not in partly]
    output.error(f"not updated: {', '.join(map(str, left)) or 'none'}")
    output.error("fix the cause and run the same command again to finish")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy.py",
        description="Deploy the riemann search to its hosts over ssh.",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="settings file (default: .env)",
    )
    parser.add_argument(
        "--ref", help="git ref to deploy (default: DEPLOY_GIT_REF or main)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ROLES,
        default=[],
        help="deploy only hosts of this role (repeatable)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every host and print the plan; change nothing",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    output = Output()
    try:
        settings = load_settings(arguments.env_file, arguments.ref)
    except ConfigurationError as problem:
        output.error(str(problem))
        return EXIT_NOTHING_CHANGED
    with contextlib.suppress(KeyboardInterrupt):
        return deploy(settings, arguments.only, arguments.dry_run, output)
    output.error("interrupted; run the same command again to finish")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
