"""`riemann run` end to end on the embedded PostgreSQL, as a newcomer runs it."""

import csv
import io
import shutil
import tempfile
from pathlib import Path

import pytest

from riemann.embedded_postgres import EmbeddedPostgres
from riemann.partitions import partition_count
from riemann.strategies import strategy_named
from riemann.witness import decimal_text
from tests.integration.conftest import run_riemann

SUPERABUNDANT = strategy_named("superabundant")


@pytest.fixture
def data_dir():
    """A folder the embedded server's unprivileged user can reach (not under /root)."""
    folder = Path(tempfile.mkdtemp(prefix="riemann-run-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder / "postgres"
    EmbeddedPostgres(folder / "postgres").stop()  # if a failed test left it running
    shutil.rmtree(folder, ignore_errors=True)


def test_run_through_level_30_on_the_embedded_database_matches_the_exact_path(data_dir):
    result = run_riemann(
        "run", "--until-level", "30", "--data-dir", str(data_dir), timeout=600
    )

    assert result.returncode == 0, result.stderr
    assert "every candidate through level 30 checked" in result.stdout
    assert f"{sum(partition_count(level) for level in range(2, 31)):,} candidates" in (
        result.stdout
    )

    exported = run_riemann("export", "--data-dir", str(data_dir))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    exact = SUPERABUNDANT.process_exact(
        SUPERABUNDANT.block_between(
            SUPERABUNDANT.ordinal((2, 0)), SUPERABUNDANT.end_after_level(30)
        ),
        "1.767",
    )
    assert [
        (
            int(r["n"]),
            int(r["divisor_sum"]),
            r["witness_value"],
            int(r["level"]),
            r["exponents"],
        )
        for r in rows
    ] == [
        (
            record.n,
            record.divisor_sum,
            decimal_text(record.witness_value),
            record.level,
            " ".join(map(str, record.exponents)),
        )
        for record in exact.records
    ]

    status = run_riemann("status", "--data-dir", str(data_dir))
    assert "complete through  level 30  (whole bound)" in status.stdout
    best = exact.best_above_5040
    assert best is not None
    assert f"W = {decimal_text(best.witness_value)} at n = {best.n} " in status.stdout

    counted = run_riemann(
        "db", "psql", "--data-dir", str(data_dir), "--",
        "--tuples-only", "--no-align", "--command", "SELECT count(*) FROM witnesses",
    )  # fmt: skip
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == str(len(exact.records))
    # Each command started the server for itself, and stopped it when done.
    assert not EmbeddedPostgres(data_dir).is_running()


def test_reading_commands_refuse_a_data_folder_where_no_search_ran(data_dir):
    for command in (["status"], ["export"], ["blocks", "dead"], ["db", "psql"]):
        result = run_riemann(*command, "--data-dir", str(data_dir))

        assert result.returncode == 1, command
        assert result.stderr.startswith("riemann: error: No search has run here yet")
        assert "Traceback" not in result.stderr
    assert not (data_dir / "cluster").exists()
