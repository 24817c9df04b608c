"""The deploy script against three simulated hosts (database, generator and janitor,
worker), each a network namespace with its own sshd and Docker engine, the code served
over ssh from a bare git repository on a fourth host.

The tests run in file order: the refusals first, on hosts that have never been
deployed to, then a first deploy, then a second one of a new commit, a failed one,
and deploys of one role at a time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .base_images import load_stand_in_images
from .conftest import REPO_ROOT, remove_leftovers
from .hosts import SimulatedHost, TestNetwork, run, wait_until
from .package_index import PackageIndex

pytestmark = pytest.mark.ops

DEPLOY_SCRIPT = REPO_ROOT / "deploy" / "deploy.py"
REMOTE_DIR = "/srv/riemann"
BACKUP_DIR = "/srv/backups"
SEARCH_LEVEL = 20
SMTP_PASSWORD = "smtp-secret-4d2b"
# One block of the exhaustive strategy long enough (about a minute of one core)
# that a worker still holds it when a deploy stops that worker.
LONG_BLOCK_START = 10**10
LONG_BLOCK_SIZE = 2 * 10**9


@dataclass
class DeployLab:
    """The simulated hosts, the laptop's ssh files and the repository they deploy."""

    network: TestNetwork
    git: SimulatedHost
    database: SimulatedHost
    generator: SimulatedHost
    worker: SimulatedHost
    laptop_dir: Path
    work_tree: Path
    package_index: PackageIndex

    @property
    def app_hosts(self) -> list[SimulatedHost]:
        return [self.database, self.generator, self.worker]

    def srv(self, host: SimulatedHost) -> Path:
        return host.state_dir / "srv"

    def known_hosts_line(self, host: SimulatedHost) -> str:
        public_key = (host.state_dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{host.address} {public_key[0]} {public_key[1]}\n"

    def write_env(self, name: str, **overrides: str) -> Path:
        # The monitors' mail is refused at once: nothing listens on that port. Clean
        # exits are reported so that a deploy's graceful stops show in their logs.
        with socket.socket() as probe:
            probe.bind((self.network.gateway, 0))
            closed_port = probe.getsockname()[1]
        settings = {
            "DEPLOY_DB_HOST": self.database.address,
            "DEPLOY_GENERATOR_HOST": self.generator.address,
            "DEPLOY_WORKER_HOSTS": self.worker.address,
            "DEPLOY_SSH_USER": "root",
            "DEPLOY_SSH_KEY": str(self.laptop_dir / "id_ed25519"),
            "DEPLOY_KNOWN_HOSTS": str(self.laptop_dir / "known_hosts"),
            "DEPLOY_CONNECT_TIMEOUT": "5",
            "DEPLOY_REPO_URL": f"ssh://root@{self.git.address}{self.bare_repository}",
            "DEPLOY_REMOTE_DIR": REMOTE_DIR,
            "DEPLOY_BACKUP_DIR": BACKUP_DIR,
            "DEPLOY_HEALTH_TIMEOUT": "240",
            "RIEMANN_PIP_INDEX_URL": self.package_index.url,
            "POSTGRES_PASSWORD": "deploy-test-password",
            "RIEMANN_SEARCH_BOUNDS": f"--until-level {SEARCH_LEVEL}",
            "RIEMANN_WORKERS": "1",
            "RIEMANN_SMTP_HOST": self.network.gateway,
            "RIEMANN_SMTP_PORT": str(closed_port),
            "RIEMANN_SMTP_USER": "alerts@example.org",
            "RIEMANN_SMTP_PASSWORD": SMTP_PASSWORD,
            "RIEMANN_SMTP_TO": "ops@example.org",
            "RIEMANN_ALERT_CLEAN_EXITS": "true",
            "RIEMANN_ALERT_INTERVAL": "2",
            **overrides,
        }
        env_file = self.laptop_dir / f"{name}.env"
        env_file.write_text(
            "".join(f"{key}={value}\n" for key, value in settings.items())
        )
        return env_file

    @property
    def bare_repository(self) -> Path:
        return self.network.state_dir / "riemann.git"

    def deploy(self, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DEPLOY_", "POSTGRES_", "RIEMANN_"))
        }
        completed = subprocess.run(
            [sys.executable, str(DEPLOY_SCRIPT), "--env-file", str(env_file), *args],
            capture_output=True, text=True, env=environment, timeout=1500, check=False,
        )  # fmt: skip
        # Shown by pytest when a test fails, or with -rP.
        print(f"$ deploy.py {env_file.name} {' '.join(args)}\n{completed.stdout}")
        print(completed.stderr, file=sys.stderr)
        return completed

    def commit(self, message: str) -> str:
        git = ["git", "-C", str(self.work_tree)]
        run([*git, "add", "--all"])
        identity = [
            "-c",
            "user.name=Deploy Test",
            "-c",
            "user.email=deploy@test.invalid",
        ]
        run([*git, *identity, "commit", "--quiet", "--message", message])
        run(
            [*git, "push", "--quiet", "--force", str(self.bare_repository), "HEAD:main"]
        )
        return run([*git, "rev-parse", "HEAD"]).stdout.strip()

    def containers(self, host: SimulatedHost) -> list[str]:
        assert host.engine is not None
        listed = host.engine.docker("ps", "--all", "--format", "{{.Names}}").stdout
        return sorted(listed.split())

    def container_runs(self, host: SimulatedHost) -> dict[str, str]:
        """Each container's id and start time: unchanged means untouched."""
        assert host.engine is not None
        return {
            name: host.engine.docker(
                "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", name
            ).stdout.strip()
            for name in self.containers(host)
        }

    def host_settings(self, host: SimulatedHost) -> Path:
        return self.srv(host) / "riemann" / "docker" / ".env"

    def backups(self) -> dict[str, int]:
        folder = self.srv(self.database) / "backups"
        return {path.name: path.stat().st_size for path in folder.glob("riemann-*")}

    def sql(self, query: str) -> str:
        assert self.database.engine is not None
        return self.database.engine.docker(
            "exec", "riemann-db-1", "psql", "--username", "riemann",
            "--dbname", "riemann", "--tuples-only", "--no-align", "--command", query,
        ).stdout.strip()  # fmt: skip

    def riemann(self, *args: str) -> str:
        assert self.generator.engine is not None
        return self.generator.engine.docker(
            "exec", "riemann-janitor-1", "riemann", *args
        ).stdout

    def dumped_rows(self, backup_name: str, table: str) -> list[dict[str, str]]:
        """The rows of one table in a backup on the database host, by column."""
        assert self.database.engine is not None
        engine = self.database.engine
        engine.docker("cp", str(self.srv(self.database) / "backups" / backup_name),
                      "riemann-db-1:/tmp/backup.dump")  # fmt: skip
        restored = engine.docker(
            "exec", "riemann-db-1", "pg_restore", "--data-only", f"--table={table}",
            "--file=-", "/tmp/backup.dump",
        ).stdout.splitlines()  # fmt: skip
        # COPY public.TABLE (column, ...) FROM stdin; then a row a line up to \.
        start = next(i for i, line in enumerate(restored) if line.startswith("COPY "))
        columns = restored[start].split("(", 1)[1].split(")", 1)[0].split(", ")
        rows = restored[start + 1 : restored.index("\\.", start)]
        return [dict(zip(columns, row.split("\t"), strict=True)) for row in rows]

    def stored_records(self) -> list[tuple[str, ...]]:
        rows = csv.DictReader(io.StringIO(self.riemann("export")))
        return sorted(tuple(row.values()) for row in rows)

    def finished_blocks(self) -> int:
        status = json.loads(self.riemann("status", "--json"))
        return sum(
            strategy["blocks"].get("FINISHED", 0) for strategy in status["strategies"]
        )

    def search_finished(self) -> bool:
        status = json.loads(self.riemann("status", "--json"))
        pending = sum(
            strategy["blocks"].get(state, 0)
            for strategy in status["strategies"]
            for state in ("NOT_STARTED", "IN_PROGRESS", "FAILED")
        )
        return self.finished_blocks() > 0 and pending == 0


def copy_work_tree(destination: Path) -> None:
    """The project as it stands, committed or not, without ignored files."""
    listed = run(["git", "-C", str(REPO_ROOT), "ls-files", "--cached", "--others",
                  "--exclude-standard", "-z"]).stdout  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def ssh_keygen(path: Path, comment: str) -> str:
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path, "-C", comment])
    return path.with_name(path.name + ".pub").read_text()


@pytest.fixture(scope="module")
def lab(
    stand_in_images: Path, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployLab]:
    network = TestNetwork.create()
    try:
        yield _build_lab(network, stand_in_images, wheelhouse, tmp_path_factory)
    finally:
        network.close()


def _build_lab(
    network: TestNetwork,
    stand_in_images: Path,
    wheelhouse: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> DeployLab:
    laptop_dir = tmp_path_factory.mktemp("laptop")
    laptop_key = ssh_keygen(laptop_dir / "id_ed25519", "laptop")
    hosts_key_dir = network.state_dir / "host-git-key"
    hosts_key_dir.mkdir()
    hosts_key = ssh_keygen(hosts_key_dir / "id_ed25519", "deploy-key")
    authorized_keys = network.state_dir / "authorized_keys"
    authorized_keys.write_text(laptop_key + hosts_key)

    git = network.add_host("git")
    database = network.add_host("db")
    generator = network.add_host("app")
    worker = network.add_host("worker")
    python, postgres = ("python:3.11-slim",), ("postgres:16",)
    # The database host builds the application image too: its monitor runs from it.
    hosts = ((database, python + postgres), (generator, python), (worker, python))
    for host, images in hosts:
        engine = host.start_docker(persistent_name=f"deploy-{host.name}")
        remove_leftovers(engine)
        load_stand_in_images(engine, stand_in_images, images)
    package_index = PackageIndex(wheelhouse, network.gateway)

    lab = DeployLab(network, git, database, generator, worker, laptop_dir,
                    tmp_path_factory.mktemp("work-tree"), package_index)  # fmt: skip
    for host in (git, database, generator, worker):
        home = host.state_dir / "root"
        host.start_sshd(
            authorized_keys=authorized_keys, root_home=home, srv=lab.srv(host)
        )
    git_known_host = lab.known_hosts_line(git)
    for host in lab.app_hosts:
        ssh_dir = host.state_dir / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True)
        shutil.copy(hosts_key_dir / "id_ed25519", ssh_dir / "id_ed25519")
        (ssh_dir / "known_hosts").write_text(git_known_host)
    (laptop_dir / "known_hosts").write_text(
        "".join(lab.known_hosts_line(host) for host in lab.app_hosts)
    )

    run(["git", "init", "--quiet", "--bare", str(lab.bare_repository)])
    copy_work_tree(lab.work_tree)
    run(["git", "init", "--quiet", "--initial-branch", "main", str(lab.work_tree)])
    lab.commit("The project as tested")
    return lab


def nothing_deployed(lab: DeployLab) -> bool:
    return all(
        not (lab.srv(host) / "riemann").exists() and not lab.containers(host)
        for host in lab.app_hosts
    )


def test_dry_run_prints_the_plan_and_changes_nothing(lab: DeployLab) -> None:
    dry_run = lab.deploy(lab.write_env("dry-run"), "--dry-run")
    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert "back up database" in dry_run.stdout
    assert "dry run: nothing was changed" in dry_run.stdout
    assert nothing_deployed(lab)


def test_only_limits_the_plan_to_one_role(lab: DeployLab) -> None:
    dry_run = lab.deploy(lab.write_env("only-worker"), "--only", "worker", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert f"worker host {lab.worker.address}" in dry_run.stdout
    assert "database host" not in dry_run.stdout
    assert "generator host" not in dry_run.stdout


def test_a_missing_setting_is_one_clear_line(lab: DeployLab) -> None:
    refused = lab.deploy(lab.write_env("no-password", POSTGRES_PASSWORD=""))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "deploy: POSTGRES_PASSWORD is not set; see .env.template"
    ]


def test_unknown_host_key_is_refused_before_anything_changes(lab: DeployLab) -> None:
    known_hosts = lab.laptop_dir / "known-without-worker"
    known_hosts.write_text(
        lab.known_hosts_line(lab.database) + lab.known_hosts_line(lab.generator)
    )
    refused = lab.deploy(
        lab.write_env("unknown-key", DEPLOY_KNOWN_HOSTS=str(known_hosts))
    )
    assert refused.returncode == 2
    assert f"host key of {lab.worker.address} is not in" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert nothing_deployed(lab)


def test_wrong_host_key_is_refused_before_anything_changes(lab: DeployLab) -> None:
    known_hosts = lab.laptop_dir / "known-with-wrong-worker-key"
    impostor_line = lab.known_hosts_line(lab.git).split(" ", 1)[1]
    known_hosts.write_text(
        lab.known_hosts_line(lab.database)
        + lab.known_hosts_line(lab.generator)
        + f"{lab.worker.address} {impostor_line}"
    )
    refused = lab.deploy(
        lab.write_env("wrong-key", DEPLOY_KNOWN_HOSTS=str(known_hosts))
    )
    assert refused.returncode == 2
    assert f"host key of {lab.worker.address} does not match" in refused.stderr
    assert nothing_deployed(lab)


def test_unreachable_host_is_reported_before_anything_changes(lab: DeployLab) -> None:
    absent = f"198.18.{lab.network.number}.99"
    env_file = lab.write_env(
        "unreachable", DEPLOY_WORKER_HOSTS=f"{lab.worker.address},{absent}"
    )
    refused = lab.deploy(env_file)
    assert refused.returncode == 2
    assert f"{absent} is unreachable" in refused.stderr
    assert "nothing was changed on any host" in refused.stderr
    assert nothing_deployed(lab)


def test_first_deploy_brings_every_service_up_in_order(lab: DeployLab) -> None:
    deployed = lab.deploy(lab.write_env("deploy"))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    healthy_lines = [
        line.split(":")[0].strip()
        for line in deployed.stdout.splitlines()
        if "wait until healthy done" in line
    ]
    assert healthy_lines == [
        f"database host {lab.database.address}",
        f"generator host {lab.generator.address}",
        f"worker host {lab.worker.address}",
    ]
    assert lab.containers(lab.database) == ["riemann-db-1", "riemann-monitor-1"]
    assert lab.containers(lab.generator) == [
        "riemann-generator-1", "riemann-janitor-1", "riemann-monitor-1",
    ]  # fmt: skip
    assert lab.containers(lab.worker) == ["riemann-monitor-1", "riemann-worker-1"]
    wait_until(lab.search_finished, timeout=300, interval=3, what="the deployed search")


def test_deploy_carries_the_monitor_settings_in_a_file_for_the_owner_only(
    lab: DeployLab,
) -> None:
    # The first deploy wrote them; a dry run shows the plan without a secret.
    dry_run = lab.deploy(lab.write_env("deploy"), "--dry-run")

    assert SMTP_PASSWORD not in dry_run.stdout + dry_run.stderr
    for host in lab.app_hosts:
        settings_file = lab.host_settings(host)
        assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600, host.name
        settings = settings_file.read_text()
        assert f"RIEMANN_SMTP_PASSWORD='{SMTP_PASSWORD}'" in settings
        checks = "exits,stall,counterexamples" if host is lab.generator else "exits"
        assert f"RIEMANN_ALERT_CHECKS='{checks}'" in settings, host.name
        assert host.engine is not None
        logs = host.engine.docker("logs", "riemann-monitor-1").stderr
        assert "monitor started" in logs, host.name
        assert "Docker engine unreadable" not in logs, host.name


def test_second_deploy_runs_the_new_commit_and_keeps_every_record(
    lab: DeployLab,
) -> None:
    records_before = lab.stored_records()
    finished_before = lab.finished_blocks()
    assert records_before, "the first deploy stored no record to keep"

    init_file = lab.work_tree / "riemann" / "__init__.py"
    init_file.write_text(
        init_file.read_text() + '\nDEPLOY_TEST_MARK = "second commit"\n'
    )
    commit = lab.commit("Mark the second deploy")
    deployed = lab.deploy(lab.write_env("deploy"))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert SMTP_PASSWORD not in deployed.stdout + deployed.stderr

    assert lab.worker.engine is not None
    mark = lab.worker.engine.docker(
        "exec", "riemann-worker-1", "python", "-c",
        "import riemann; print(riemann.DEPLOY_TEST_MARK)",
    ).stdout.strip()  # fmt: skip
    assert mark == "second commit"
    revision = lab.worker.engine.docker(
        "exec", "riemann-worker-1", "printenv", "RIEMANN_REVISION"
    ).stdout.strip()
    assert revision == commit
    assert lab.stored_records() == records_before
    assert lab.finished_blocks() == finished_before


def test_backup_of_the_second_deploy_is_a_restorable_dump(lab: DeployLab) -> None:
    backups = sorted(lab.backups().items())
    assert backups, "no database backup on the database host"
    name, size = backups[-1]
    assert name.endswith(".dump")
    assert size > 0
    assert lab.database.engine is not None
    engine = lab.database.engine
    engine.docker("cp", str(lab.srv(lab.database) / "backups" / name),
                  "riemann-db-1:/tmp/backup.dump")  # fmt: skip

    listed = engine.docker(
        "exec", "riemann-db-1", "pg_restore", "--list", "/tmp/backup.dump"
    ).stdout

    assert "TABLE DATA public witnesses" in listed
    assert "TABLE DATA public search_blocks" in listed


def test_new_monitor_reports_the_exits_of_the_deploy_it_replaced(
    lab: DeployLab,
) -> None:
    # The second deploy stopped the janitor, then recreated the monitor: the new one
    # reads the engine's events from where the old one stopped (its state volume).
    assert lab.generator.engine is not None
    engine = lab.generator.engine

    def janitor_exit_logged() -> bool:
        logs = engine.docker("logs", "riemann-monitor-1").stderr
        return "container exited container=riemann-janitor-1 exit_code=0" in logs

    wait_until(janitor_exit_logged, timeout=60, interval=1,
               what="the monitor to log the janitor's stop")  # fmt: skip


def test_a_failed_step_is_reported_and_running_again_finishes(lab: DeployLab) -> None:
    # A directory where the worker host's settings file goes makes that step fail.
    blocker = lab.srv(lab.worker) / "riemann" / "docker" / ".env.new"
    blocker.mkdir()
    failed = lab.deploy(lab.write_env("deploy"))
    assert failed.returncode == 1
    assert (
        f"failed on worker host {lab.worker.address} at step 'write settings'"
        in failed.stderr
    )
    assert (
        f"already updated: database host {lab.database.address}, "
        f"generator host {lab.generator.address}" in failed.stderr
    )
    assert (
        f"partly updated: worker host {lab.worker.address} (done: fetch code)"
        in failed.stderr
    )
    assert "not updated: none" in failed.stderr
    assert "until the deploy is run again" not in failed.stderr
    assert "Traceback" not in failed.stderr

    blocker.rmdir()
    finished = lab.deploy(lab.write_env("deploy"))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert lab.containers(lab.worker) == ["riemann-monitor-1", "riemann-worker-1"]


def test_only_generator_backs_the_database_up_before_migrating(lab: DeployLab) -> None:
    backups_before = lab.backups()

    deployed = lab.deploy(lab.write_env("deploy"), "--only", "generator")

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    steps = [line for line in deployed.stdout.splitlines() if " done (" in line]
    backed_up = next(i for i, line in enumerate(steps) if "back up database" in line)
    migrated = next(i for i, line in enumerate(steps) if "migrate schema" in line)
    assert backed_up < migrated
    assert f"on {lab.database.address}: " in steps[backed_up]
    new_backups = set(lab.backups()) - set(backups_before)
    assert len(new_backups) == 1
    assert lab.backups()[new_backups.pop()] > 0


def test_only_worker_releases_the_block_in_progress_and_leaves_others_untouched(
    lab: DeployLab,
) -> None:
    lab.riemann(
        "generate", "--strategy", "exhaustive", "--start", str(LONG_BLOCK_START),
        "--until", str(LONG_BLOCK_START + LONG_BLOCK_SIZE - 1),
        "--block-size", str(LONG_BLOCK_SIZE), "--once",
    )  # fmt: skip
    in_progress = (
        "SELECT worker_id FROM search_blocks"
        " WHERE strategy = 'exhaustive' AND state = 'IN_PROGRESS'"
    )
    holder = wait_until(lambda: lab.sql(in_progress), timeout=120, interval=1,
                        what="the worker to claim the long block")  # fmt: skip
    untouched = {host.name: lab.container_runs(host) for host in lab.app_hosts[:2]}
    backups_before = lab.backups()

    deployed = lab.deploy(lab.write_env("deploy"), "--only", "worker")

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # Released: not failed, and no longer held by the worker that was stopped.
    state, worker_id = lab.sql(
        "SELECT state, coalesce(worker_id, '') FROM search_blocks"
        " WHERE strategy = 'exhaustive'"
    ).split("|")
    assert state in ("NOT_STARTED", "IN_PROGRESS")
    assert worker_id != holder
    assert lab.sql(
        "SELECT count(*) FROM search_blocks WHERE state IN ('FAILED', 'DEAD')"
    ) == "0"  # fmt: skip
    for host in lab.app_hosts[:2]:
        assert lab.container_runs(host) == untouched[host.name], host.name
    assert lab.backups() == backups_before


def test_deploy_without_a_database_container_backs_up_its_volume_first(
    lab: DeployLab,
) -> None:
    # As after `docker compose down` on the database host: the volume keeps the data.
    records_before = lab.stored_records()
    assert records_before, "no record stored to back up"
    backups_before = lab.backups()
    assert lab.database.engine is not None
    lab.database.engine.docker("rm", "--force", "riemann-db-1")

    deployed = lab.deploy(lab.write_env("deploy"))

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    new_backups = sorted(set(lab.backups()) - set(backups_before))
    assert len(new_backups) == 1, new_backups
    backed_up = {row["n"] for row in lab.dumped_rows(new_backups[0], "witnesses")}
    assert {record[0] for record in records_before} <= backed_up
    assert lab.dumped_rows(new_backups[0], "search_blocks")
    assert set(records_before) <= set(lab.stored_records())


def test_a_worker_in_a_crash_loop_fails_the_wait_at_once_and_a_good_deploy_finishes(
    lab: DeployLab,
) -> None:
    # `riemann process` refuses a worker count that is not a number, at every start.
    crash_loop = lab.write_env(
        "crash-loop", RIEMANN_WORKERS="abc", DEPLOY_HEALTH_TIMEOUT="900"
    )
    started = time.monotonic()

    failed = lab.deploy(crash_loop, "--only", "worker")

    assert failed.returncode == 1
    assert time.monotonic() - started < 300, "the wait did not fail at once"
    failure_line = next(
        line for line in failed.stderr.splitlines() if "failed on" in line
    )
    assert failure_line.startswith(
        f"deploy: failed on worker host {lab.worker.address} at step "
        "'wait until healthy': worker keeps restarting"
    )
    assert "RIEMANN_WORKERS must be a whole number" in failure_line
    assert "Traceback" not in failed.stderr

    finished = lab.deploy(lab.write_env("deploy"), "--only", "worker")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert lab.worker.engine is not None
    status = lab.worker.engine.docker(
        "inspect", "--format", "{{.State.Status}}", "riemann-worker-1"
    ).stdout.strip()
    assert status == "running"


def test_services_a_failed_deploy_stopped_are_reported_stopped_until_the_next_one(
    lab: DeployLab,
) -> None:
    # A container of another owner holding the monitor's name makes `compose up`
    # fail after the worker was stopped.
    assert lab.worker.engine is not None
    engine = lab.worker.engine
    engine.docker("rm", "--force", "riemann-monitor-1")
    engine.docker("create", "--name", "riemann-monitor-1", "python:3.11-slim", "true")

    failed = lab.deploy(lab.write_env("deploy"), "--only", "worker")

    assert failed.returncode == 1
    worker = f"worker host {lab.worker.address}"
    assert f"failed on {worker} at step 'start containers'" in failed.stderr
    assert (
        f"partly updated: {worker} (done: fetch code, write settings, build image, "
        "stop old containers)" in failed.stderr
    )
    assert f"stopped on {worker} until the deploy is run again: worker" in failed.stderr
    assert "Traceback" not in failed.stderr
    status = engine.docker(
        "inspect", "--format", "{{.State.Status}}", "riemann-worker-1"
    ).stdout.strip()
    assert status == "exited"

    engine.docker("rm", "riemann-monitor-1")
    finished = lab.deploy(lab.write_env("deploy"), "--only", "worker")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert lab.containers(lab.worker) == ["riemann-monitor-1", "riemann-worker-1"]
