"""Simulated hosts for the operations tests: network namespaces on a private bridge.

Each host is a network namespace with its own address in 198.18.N.0/24 (a benchmark
range, never a real network), its own Docker engine and, when asked, its own sshd that
sees a private /root and /srv (a mount namespace), so hosts do not share a checkout.
The namespaces have no default route: they reach each other and the bridge address of
this machine, nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CACHE_DIR = Path(os.environ.get("RIEMANN_OPS_CACHE", "/var/cache/riemann-tests"))
RUN_DIR = Path("/run/riemann-tests")


class HostSetupError(RuntimeError):
    """A part of the simulated machinery could not be started."""


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Runs a command, capturing its output; on failure the error shows that output."""
    completed = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=timeout,
        check=False,
    )
    if check and completed.returncode != 0:
        raise HostSetupError(
            f"{' '.join(str(arg) for arg in args)} exited {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed


def wait_until(
    condition: Callable[[], T], *, timeout: float, interval: float = 0.2, what: str
) -> T:
    """Polls condition() until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def exclusive_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Holds an flock on path; yields whether it was obtained."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock_file:
        flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(lock_file, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def stop_process(pid: int, *, timeout: float = 30) -> None:
    """Sends SIGTERM to one process we started and waits for it, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = pid if not Path(f"/proc/{pid}").exists() else 0
        if finished == pid:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_orphans(marker: str) -> None:
    """Stops daemons of an earlier, killed test run whose command line has marker.

    Only called while holding the lock of what marker names (a data root, a network
    number), so any process that still uses it belongs to a run that is gone.
    """
    for process_dir in Path("/proc").iterdir():
        if not process_dir.name.isdigit() or int(process_dir.name) == os.getpid():
            continue
        try:
            command_line = (process_dir / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in command_line and command_line.split()[0].endswith(
            (b"dockerd", b"sshd")
        ):
            stop_process(int(process_dir.name), timeout=30)


@dataclass
class DockerEngine:
    """A dockerd of the tests' own, reached through a private unix socket."""

    name: str
    socket: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    gateway: str  # the address of this machine as seen from the engine's containers

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def environment(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host}

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run(
            ["docker", *args],
            check=check,
            env=self.environment(),
            timeout=timeout,
            input=input,
        )

    def stop(self) -> None:
        stop_process(self.process.pid, timeout=60)


@dataclass
class SimulatedHost:
    """One network namespace with an address on the test bridge."""

    network: TestNetwork
    name: str
    index: int
    engine: DockerEngine | None = None
    sshd: subprocess.Popen[bytes] | None = None
    state_dir: Path = field(init=False)
    data_root_lock: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        self.state_dir = self.network.state_dir / self.name
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def namespace(self) -> str:
        return f"rmt{self.network.number}-{self.name}"

    @property
    def address(self) -> str:
        return f"198.18.{self.network.number}.{10 + self.index}"

    @property
    def host_veth(self) -> str:
        return f"rmt{self.network.number}v{self.index}"

    def nsenter(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.namespace}", "--", *args]

    def create(self) -> None:
        peer = f"rmt{self.network.number}p{self.index}"
        run(["ip", "netns", "add", self.namespace])
        run(["ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", self.namespace])
        run(["ip", "link", "set", self.host_veth, "master", self.network.bridge, "up"])
        inside = ["ip", "netns", "exec", self.namespace]
        run([*inside, "ip", "link", "set", peer, "name", "eth0"])
        run([*inside, "ip", "addr", "add", f"{self.address}/24", "dev", "eth0"])
        run([*inside, "ip", "link", "set", "eth0", "up"])
        run([*inside, "ip", "link", "set", "lo", "up"])

    def start_docker(self, *, persistent_name: str | None = None) -> DockerEngine:
        """Starts this host's dockerd; a persistent name keeps images across runs."""
        data_root = self._data_root(persistent_name)
        exec_root = self.state_dir / "exec"
        socket = self.state_dir / "docker.sock"
        log_path = self.state_dir / "dockerd.log"
        pool = 32 * (self.index % 8)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                self.nsenter(
                    "dockerd",
                    "--data-root",
                    str(data_root),
                    "--exec-root",
                    str(exec_root),
                    "--host",
                    f"unix://{socket}",
                    "--pidfile",
                    str(self.state_dir / "dockerd.pid"),
                    "--bip",
                    f"198.19.{pool}.1/24",
                    "--default-address-pool",
                    f"base=198.19.{pool + 16}.0/20,size=24",
                    "--shutdown-timeout",
                    "10",
                    "--log-level",
                    "warn",
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        engine = DockerEngine(
            self.name, socket, process, log_path, self.network.gateway
        )
        self.engine = engine

        def answers() -> bool:
            if process.poll() is not None:
                raise HostSetupError(
                    f"dockerd of {self.name} exited: {log_path.read_text()[-2000:]}"
                )
            return engine.docker("version", check=False, timeout=10).returncode == 0

        wait_until(answers, timeout=60, what=f"dockerd of {self.name}")
        return engine

    def _data_root(self, persistent_name: str | None) -> Path:
        """A data root kept in the cache when no other test run is using it."""
        if persistent_name is not None:
            lock_path = CACHE_DIR / "engines" / f"{persistent_name}.lock"
            if self.data_root_lock.enter_context(
                exclusive_lock(lock_path, blocking=False)
            ):
                return CACHE_DIR / "engines" / persistent_name
        (CACHE_DIR / "engines").mkdir(parents=True, exist_ok=True)
        data_root = Path(
            tempfile.mkdtemp(prefix=f"{self.name}-", dir=CACHE_DIR / "engines")
        )
        self.data_root_lock.callback(shutil.rmtree, data_root, ignore_errors=True)
        return data_root

    def start_sshd(self, *, authorized_keys: Path, root_home: Path, srv: Path) -> Path:
        """Starts sshd on this host's address; returns the public host key path."""
        if shutil.which("sshd", path="/usr/sbin:/usr/bin") is None:
            raise HostSetupError("sshd is not installed")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        host_key = self.state_dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    host_key,
                    "-C",
                    self.name,
                ]
            )
        config = self.state_dir / "sshd_config"
        lines = [
            f"ListenAddress {self.address}",
            "Port 22",
            f"HostKey {host_key}",
            f"PidFile {self.state_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 50",
            "MaxSessions 50",
        ]
        if self.engine is not None:
            lines.append(f"SetEnv DOCKER_HOST={self.engine.docker_host}")
        config.write_text("\n".join(lines) + "\n")
        for folder in (root_home, srv):
            folder.mkdir(parents=True, exist_ok=True)
        # The mount namespace gives this host's ssh sessions their own /root and /srv.
        script = (
            f"mount --bind {root_home} /root && mount --bind {srv} /srv && "
            f"exec /usr/sbin/sshd -D -e -f {config}"
        )
        log = open(self.state_dir / "sshd.log", "wb")  # noqa: SIM115 - closed with the host
        self.sshd = subprocess.Popen(
            self.nsenter(
                "unshare", "--mount", "--propagation", "private", "sh", "-c", script
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def listening() -> bool:
            if self.sshd is not None and self.sshd.poll() is not None:
                log_text = (self.state_dir / "sshd.log").read_text()
                raise HostSetupError(f"sshd of {self.name} exited: {log_text}")
            return _port_open(self, 22)

        wait_until(listening, timeout=20, what=f"sshd of {self.name}")
        return host_key.with_name(host_key.name + ".pub")

    def stop_sshd(self) -> None:
        if self.sshd is not None:
            stop_process(self.sshd.pid, timeout=10)
            self.sshd = None

    def close(self) -> None:
        self.stop_sshd()
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self.data_root_lock.close()
        run(["ip", "netns", "del", self.namespace], check=False)
        run(["ip", "link", "del", self.host_veth], check=False)


def _port_open(host: SimulatedHost, port: int) -> bool:
    probe = run(
        host.nsenter(
            "python3",
            "-c",
            f"import socket; socket.create_connection(('{host.address}', {port}), 1)",
        ),
        check=False,
        timeout=10,
    )
    return probe.returncode == 0


@dataclass
class TestNetwork:
    """A bridge in 198.18.N.0/24 with N free among concurrent test runs."""

    __test__ = False  # not a pytest test class

    number: int
    lock: contextlib.ExitStack
    hosts: list[SimulatedHost] = field(default_factory=list)

    @classmethod
    def create(cls) -> TestNetwork:
        for number in range(1, 250):
            stack = contextlib.ExitStack()
            lock_path = RUN_DIR / f"net-{number}.lock"
            if stack.enter_context(exclusive_lock(lock_path, blocking=False)):
                network = cls(number, stack)
                network._bring_up()
                return network
            stack.close()
        raise HostSetupError("no free test network number")

    @property
    def bridge(self) -> str:
        return f"rmtbr{self.number}"

    @property
    def gateway(self) -> str:
        return f"198.18.{self.number}.1"

    @property
    def state_dir(self) -> Path:
        return RUN_DIR / str(self.number)

    def _bring_up(self) -> None:
        self._remove_leftovers()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run(["ip", "link", "add", "name", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        # Once any dockerd has run, bridged traffic meets FORWARD policy DROP.
        run(
            [
                "iptables",
                "-I",
                "FORWARD",
                "1",
                "-i",
                self.bridge,
                "-o",
                self.bridge,
                "-j",
                "ACCEPT",
            ]
        )

    def _remove_leftovers(self) -> None:
        """Removes what a killed earlier run with the same number left behind."""
        stop_orphans(f"{self.state_dir}/")
        namespaces = run(["ip", "netns", "list"], check=False).stdout.split("\n")
        for line in namespaces:
            name = line.split(" ")[0]
            if name.startswith(f"rmt{self.number}-"):
                run(["ip", "netns", "del", name], check=False)
        if run(["ip", "link", "show", self.bridge], check=False).returncode == 0:
            run(["ip", "link", "del", self.bridge], check=False)
        while (
            run(
                [
                    "iptables",
                    "-D",
                    "FORWARD",
                    "-i",
                    self.bridge,
                    "-o",
                    self.bridge,
                    "-j",
                    "ACCEPT",
                ],
                check=False,
            ).returncode
            == 0
        ):
            pass
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def add_host(self, name: str) -> SimulatedHost:
        host = SimulatedHost(self, name, len(self.hosts) + 1)
        self.hosts.append(host)
        host.create()
        return host

    def close(self) -> None:
        for host in reversed(self.hosts):
            host.close()
        self.hosts.clear()
        run(["ip", "link", "del", self.bridge], check=False)
        run(
            [
                "iptables",
                "-D",
                "FORWARD",
                "-i",
                self.bridge,
                "-o",
                self.bridge,
                "-j",
                "ACCEPT",
            ],
            check=False,
        )
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.lock.close()
