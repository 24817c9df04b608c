"""The command line as a user meets it: clear errors, the contract's outputs."""

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from psycopg2.extensions import make_dsn, parse_dsn

from riemann.strategies import strategy_named
from tests.integration.conftest import (
    cli_environment,
    riemann_command,
    run_riemann,
    sql,
    start_riemann,
    wait_until,
)
from tests.unit.test_strategies import KNOWN_VIOLATIONS

EXHAUSTIVE = strategy_named("exhaustive")
EXPORT_COLUMNS = "n,divisor_sum,witness_value,log_n,strategy,level,exponents,block_id"


def assert_one_clear_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def password_server():
    """A private PostgreSQL that asks for a password (the machine's trusts everyone)."""
    binaries = Path(
        subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True
        ).stdout.strip()
    )
    if not (binaries / "initdb").exists():
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        binaries = versions[-1]
    folder = Path(tempfile.mkdtemp(prefix="riemann-password-", dir="/tmp"))
    folder.chmod(0o777)
    password_file = folder / "password"
    password_file.write_text("right-password\n")
    data = folder / "data"
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *as_postgres,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "riemann",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
        ],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            *as_postgres,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={folder}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield port
    server.terminate()
    server.wait(30)
    shutil.rmtree(folder, ignore_errors=True)


def test_an_unreachable_database_gives_one_clear_error():
    result = run_riemann(
        "status", "--dsn", f"host=127.0.0.1 port={free_port()} connect_timeout=3"
    )
    assert_one_clear_error(
        result, "cannot connect to the database", "Connection refused"
    )


def test_a_misspelled_database_gives_one_clear_error(dsn):
    misspelled = make_dsn(dsn, dbname=parse_dsn(dsn)["dbname"] + "_misspelled")
    result = run_riemann("db", "upgrade", "--dsn", misspelled)
    assert_one_clear_error(result, "cannot connect", "does not exist")


def test_a_wrong_password_gives_one_clear_error(password_server):
    result = run_riemann(
        "process",
        "--exit-when-idle",
        "--dsn",
        f"host=127.0.0.1 port={password_server} user=riemann password=wrong "
        "dbname=postgres",
    )
    assert_one_clear_error(result, "password authentication failed")
    assert "wrong" not in result.stderr
    assert "FATAL" not in result.stderr


def test_the_right_password_from_the_environment_works(password_server):
    result = run_riemann(
        "db",
        "upgrade",
        PGHOST="127.0.0.1",
        PGPORT=str(password_server),
        PGUSER="riemann",
        PGPASSWORD="right-password",
        PGDATABASE="postgres",
    )
    assert result.returncode == 0, result.stderr
    assert "schema migrated from version 0" in result.stdout


def test_an_unknown_strategy_lists_the_known_ones(dsn):
    result = run_riemann("generate", "--dsn", dsn, "--strategy", "colossal")
    assert_one_clear_error(
        result, "invalid choice: 'colossal'", "exhaustive", "superabundant"
    )


def test_a_negative_level_is_refused(dsn):
    result = run_riemann(
        "generate", "--dsn", dsn, "--strategy", "superabundant", "--until-level", "-3"
    )
    assert_one_clear_error(result, "--until-level", "must not be negative")


def test_a_level_without_candidates_is_refused(dsn):
    run_riemann("db", "upgrade", "--dsn", dsn)
    result = run_riemann(
        "generate",
        "--dsn",
        dsn,
        "--strategy",
        "superabundant",
        "--until-level",
        "1",
        "--once",
    )
    assert_one_clear_error(result, "at least 2")


def test_bounds_of_the_other_strategy_are_refused(dsn):
    run_riemann("db", "upgrade", "--dsn", dsn)
    result = run_riemann(
        "generate", "--dsn", dsn, "--strategy", "exhaustive", "--until-level", "9"
    )
    assert_one_clear_error(
        result, "--until-level belongs to the superabundant strategy"
    )


def test_commands_on_a_database_without_schema_ask_for_an_upgrade(dsn):
    result = run_riemann("status", "--dsn", dsn)
    assert_one_clear_error(result, "riemann db upgrade")
    assert run_riemann("db", "check", "--dsn", dsn).returncode == 1


def test_upgrading_twice_then_checking_reports_the_current_schema(dsn):
    assert (
        "migrated from version 0" in run_riemann("db", "upgrade", "--dsn", dsn).stdout
    )
    assert "up to date" in run_riemann("db", "upgrade", "--dsn", dsn).stdout

    checked = run_riemann("db", "check", "--dsn", dsn)

    assert checked.returncode == 0
    assert "database reachable, schema at version" in checked.stdout


def test_db_psql_runs_psql_on_the_configured_database(dsn):
    run_riemann("db", "upgrade", "--dsn", dsn)
    # The server trusts every connection, so the password only has to reach psql's
    # environment without upsetting the DSN.
    result = run_riemann(
        "db", "psql", "--dsn", f"{dsn} password=not-needed", "--",
        "--tuples-only", "--no-align", "--command", "SELECT count(*) FROM searches",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_db_psql_passes_on_the_libpq_variables(dsn):
    parameters = parse_dsn(dsn)
    result = run_riemann(
        "db", "psql", "--", "--tuples-only", "--no-align", "--command",
        "SELECT current_database()",
        PGHOST=parameters["host"], PGPORT=parameters["port"],
        PGUSER=parameters["user"], PGDATABASE=parameters["dbname"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == parameters["dbname"]


def test_db_psql_with_a_malformed_dsn_or_without_psql_is_one_clear_error(dsn):
    assert_one_clear_error(
        run_riemann("db", "psql", "--dsn", "no-equals-sign"), "DSN is malformed"
    )
    assert_one_clear_error(
        run_riemann("db", "psql", "--dsn", dsn, PATH="/nonexistent"),
        "psql is not installed",
    )


def test_a_malformed_row_ends_as_a_dead_block_and_the_worker_goes_on(dsn):
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    generated = run_riemann(
        "generate",
        "--dsn",
        dsn,
        "--strategy",
        "exhaustive",
        "--until",
        "5240",
        "--block-size",
        "50",
        "--once",
    )
    assert generated.returncode == 0, generated.stderr
    sql(dsn, "UPDATE search_blocks SET end_index = '5000:3' WHERE block_id = 2")

    result = run_riemann("process", "--dsn", dsn, "--exit-when-idle", "--exact")

    assert result.returncode == 0, result.stderr
    assert sql(dsn, "SELECT block_id, state::text FROM search_blocks ORDER BY 1") == [
        (1, "FINISHED"),
        (2, "DEAD"),
        (3, "FINISHED"),
        (4, "FINISHED"),
    ]
    dead = run_riemann("blocks", "dead", "--dsn", dsn)
    assert "malformed block" in dead.stdout
    assert "'5000:3' is not an integer" in dead.stdout
    requeue = run_riemann("blocks", "requeue", "--dsn", dsn, "2")
    assert requeue.returncode == 0
    assert sql(dsn, "SELECT state::text FROM search_blocks WHERE block_id = 2") == [
        ("NOT_STARTED",)
    ]
    again = run_riemann("blocks", "requeue", "--dsn", dsn, "2")
    assert_one_clear_error(again, "not DEAD", "block 2")


def test_status_and_export_report_a_finished_search(dsn, tmp_path):
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    assert (
        run_riemann(
            "generate",
            "--dsn",
            dsn,
            "--strategy",
            "exhaustive",
            "--start",
            "3",
            "--until",
            "20000",
            "--block-size",
            "5000",
            "--once",
        ).returncode
        == 0
    )
    assert (
        run_riemann("process", "--dsn", dsn, "--exit-when-idle", "--exact").returncode
        == 0
    )

    report = json.loads(run_riemann("status", "--dsn", dsn, "--json").stdout)
    (entry,) = report["strategies"]
    assert entry["complete"] is True
    assert entry["completed_through"] == "n = 20000"
    assert entry["blocks"] == {
        "NOT_STARTED": 0,
        "IN_PROGRESS": 0,
        "FINISHED": 4,
        "FAILED": 0,
        "DEAD": 0,
    }
    assert entry["candidates_checked"] == 19998
    assert int(entry["best"]["n"]) > 5040
    assert report["last_finished_at"].startswith("20")

    text = run_riemann("status", "--dsn", dsn).stdout
    assert "complete through  n = 20000" in text

    target = tmp_path / "witnesses.csv"
    exported = run_riemann(
        "export", "--dsn", dsn, "--csv", str(target), "--min-witness", "1.7810724"
    )
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert ",".join(rows[0]) == EXPORT_COLUMNS
    violations = [int(row[0]) for row in rows[1:]]
    assert violations == KNOWN_VIOLATIONS
    assert rows[1][5:7] == ["", ""]


def test_export_writes_csv_to_standard_output(dsn):
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    assert (
        run_riemann(
            "generate",
            "--dsn",
            dsn,
            "--strategy",
            "exhaustive",
            "--start",
            "3",
            "--until",
            "100",
            "--once",
        ).returncode
        == 0
    )
    assert (
        run_riemann("process", "--dsn", dsn, "--exit-when-idle", "--exact").returncode
        == 0
    )
    result = run_riemann("export", "--dsn", dsn)
    lines = result.stdout.splitlines()
    assert lines[0] == EXPORT_COLUMNS
    assert [int(line.split(",")[0]) for line in lines[1:5]] == [3, 4, 5, 6]


def test_export_to_a_missing_folder_is_a_clear_error(dsn):
    run_riemann("db", "upgrade", "--dsn", dsn)
    result = run_riemann("export", "--dsn", dsn, "--csv", "/nonexistent/folder/out.csv")
    assert_one_clear_error(result, "cannot write /nonexistent/folder/out.csv")


def test_export_to_a_full_disk_is_a_clear_error(dsn):
    run_riemann("db", "upgrade", "--dsn", dsn)
    with open("/dev/full", "w") as full_disk:
        result = subprocess.run(
            riemann_command("export", "--dsn", dsn),
            stdout=full_disk,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_environment(),
            timeout=120,
        )
    assert_one_clear_error(result, "cannot write to standard output: No space left")


def test_a_dotenv_file_configures_the_database(dsn, tmp_path):
    (tmp_path / ".env").write_text(f"RIEMANN_DSN={dsn}\n")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PG")
    }
    environment.pop("RIEMANN_DSN", None)
    result = subprocess.run(
        [sys.executable, "-m", "riemann", "db", "upgrade"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sql(dsn, "SELECT count(*) > 0 FROM schema_migrations") == [(True,)]


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("RIEMANN_MAX_ATTEMPTS", "abc", "'abc' is not a whole number"),
        ("RIEMANN_MAX_ATTEMPTS", "0", "must be at least 1"),
        ("RIEMANN_LOG_LEVEL", "verbose", "RIEMANN_LOG_LEVEL must be one of"),
        ("RIEMANN_LOG_FORMAT", "xml", "RIEMANN_LOG_FORMAT must be one of"),
    ],
)
def test_a_bad_setting_in_the_environment_is_one_clear_error(
    dsn, variable, value, fragment
):
    result = run_riemann("cleanup", "--dsn", dsn, "--once", **{variable: value})
    assert result.returncode == 2
    assert_one_clear_error(result, fragment)


def test_export_onto_a_folder_is_a_clear_error(dsn, tmp_path):
    run_riemann("db", "upgrade", "--dsn", dsn)
    result = run_riemann("export", "--dsn", dsn, "--csv", str(tmp_path))
    assert_one_clear_error(result, f"cannot write {tmp_path}", "Is a directory")
    assert list(tmp_path.iterdir()) == []


def test_a_schema_newer_than_the_code_is_refused(dsn):
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    sql(dsn, "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    for command in (["db", "upgrade"], ["status"], ["process", "--exit-when-idle"]):
        result = run_riemann(*command, "--dsn", dsn)
        assert_one_clear_error(result, "version 999, newer than", "upgrade riemann")


def test_a_run_to_a_level_stops_there_though_more_is_queued(dsn):
    """An earlier unbounded generator queued blocks past the level asked for."""
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    generated = run_riemann(
        "generate",
        "--dsn",
        dsn,
        "--strategy",
        "superabundant",
        "--block-size",
        "400",
        "--once",
    )
    assert generated.returncode == 0, generated.stderr

    result = run_riemann(
        "run",
        "--dsn",
        dsn,
        "--until-level",
        "8",
        "--workers",
        "1",
        "--exact",
        "--no-progress",
        timeout=180,
    )

    assert result.returncode == 0, result.stderr
    through = re.search(r"every candidate through level (\d+)", result.stdout)
    assert through is not None, result.stdout
    assert int(through[1]) >= 8


def test_status_shows_live_workers_and_the_recent_throughput(dsn):
    assert run_riemann("db", "upgrade", "--dsn", dsn).returncode == 0
    generated = run_riemann(
        "generate",
        "--dsn",
        dsn,
        "--strategy",
        "exhaustive",
        "--start",
        "3",
        "--until",
        "30000",
        "--block-size",
        "1000",
        "--once",
    )
    assert generated.returncode == 0, generated.stderr
    worker = start_riemann("process", "--dsn", dsn, "--exact")

    def report_once_done():
        report = json.loads(run_riemann("status", "--dsn", dsn, "--json").stdout)
        return report if report["strategies"][0]["complete"] else None

    report = wait_until(report_once_done, timeout=120, what="the search to finish")
    text = run_riemann("status", "--dsn", dsn).stdout
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)

    (entry,) = report["strategies"]
    assert entry["candidates_checked"] == 29998
    # Every candidate was checked within the window, so the rate is at least
    # their number over the seconds since the first block started.
    assert entry["candidates_per_second"] > 29998 / 300
    (live,) = report["workers"]
    assert live["pid"] == worker.pid
    assert live["blocks_finished"] == 30
    assert "live workers: 1" in text
    assert f":{worker.pid}:" in text
