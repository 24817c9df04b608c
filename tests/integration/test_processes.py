"""Whole worker, janitor and run processes, stopped, killed and paused for real."""

import os
import signal

from riemann.partitions import partition_count
from riemann.store import Store
from riemann.strategies import strategy_named
from tests.integration.conftest import run_riemann, sql, start_riemann, wait_until

EXHAUSTIVE = strategy_named("exhaustive")
SUPERABUNDANT = strategy_named("superabundant")
THRESHOLD = "1.767"


def enqueue(dsn, start, size, count):
    with Store(dsn) as store:
        store.upgrade()
        store.ensure_search("exhaustive", start, None, THRESHOLD)
        store.enqueue_blocks(
            "exhaustive",
            lambda search: EXHAUSTIVE.next_blocks(search.next_ordinal, size, count),
        )


def expected_records(start, end):
    result = EXHAUSTIVE.process_exact(EXHAUSTIVE.block_between(start, end), THRESHOLD)
    return sorted((record.n, record.divisor_sum) for record in result.records)


def stored_records(dsn, strategy="exhaustive"):
    rows = sql(
        dsn,
        "SELECT n, divisor_sum FROM witnesses WHERE strategy = %(s)s ORDER BY n",
        {"s": strategy},
    )
    return [(int(n), int(sigma)) for n, sigma in rows]


def in_progress(dsn):
    return sql(dsn, "SELECT block_id FROM search_blocks WHERE state = 'IN_PROGRESS'")


def test_eight_worker_processes_finish_every_block_exactly_once(dsn):
    enqueue(dsn, start=3, size=40, count=300)

    result = run_riemann(
        "process", "--dsn", dsn, "--workers", "8", "--exit-when-idle", "--exact"
    )

    assert result.returncode == 0, result.stderr
    states = sql(
        dsn, "SELECT state::text, attempts, count(*) FROM search_blocks GROUP BY 1, 2"
    )
    assert states == [("FINISHED", 1, 300)]
    assert stored_records(dsn) == expected_records(3, 3 + 40 * 300)
    workers = sql(dsn, "SELECT count(DISTINCT worker_id) FROM search_blocks")[0][0]
    assert workers > 1


def test_a_block_of_a_killed_worker_is_failed_by_the_janitor_and_finished_by_another(
    dsn,
):
    enqueue(dsn, start=10**6, size=60_000, count=1)
    victim = start_riemann("process", "--dsn", dsn, "--exact", "--lease-seconds", "1.5")
    wait_until(lambda: in_progress(dsn), what="the block to be claimed")
    victim.kill()
    victim.wait(10)

    wait_until(
        lambda: run_riemann(
            "cleanup",
            "--dsn",
            dsn,
            "--once",
            "--stale-after",
            "0",
            "--retry-delay",
            "0",
        ).stdout.startswith("1 "),
        timeout=30,
        interval=0.5,
        what="the janitor to fail the expired lease",
    )
    assert sql(dsn, "SELECT state::text, attempts FROM search_blocks") == [
        ("FAILED", 1)
    ]

    result = run_riemann("process", "--dsn", dsn, "--exit-when-idle", "--exact")
    assert result.returncode == 0, result.stderr
    assert sql(dsn, "SELECT state::text, attempts FROM search_blocks") == [
        ("FINISHED", 2)
    ]
    assert stored_records(dsn) == expected_records(10**6, 10**6 + 60_000)


def test_a_worker_paused_past_its_lease_cannot_finish_its_stale_block(dsn):
    enqueue(dsn, start=10**6, size=60_000, count=1)
    paused = start_riemann("process", "--dsn", dsn, "--exact", "--lease-seconds", "1.5")
    wait_until(lambda: in_progress(dsn), what="the block to be claimed")
    paused.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: run_riemann(
                "cleanup",
                "--dsn",
                dsn,
                "--once",
                "--stale-after",
                "0",
                "--retry-delay",
                "0",
            ).stdout.startswith("1 "),
            timeout=30,
            interval=0.5,
            what="the janitor to fail the paused worker's lease",
        )
        rescuer = run_riemann("process", "--dsn", dsn, "--exit-when-idle", "--exact")
        assert rescuer.returncode == 0, rescuer.stderr
    finally:
        paused.send_signal(signal.SIGCONT)
    wait_until(
        lambda: (
            sql(
                dsn,
                "SELECT current_block_id IS NULL FROM workers WHERE pid = %(pid)s",
                {"pid": paused.pid},
            )
            == [(True,)]
        ),
        timeout=60,
        what="the paused worker to be done with its stale block",
    )
    paused.send_signal(signal.SIGTERM)
    _, stderr = paused.communicate(timeout=30)

    assert "lease lost, result discarded" in stderr
    assert sql(dsn, "SELECT state::text, attempts FROM search_blocks") == [
        ("FINISHED", 2)
    ]
    assert stored_records(dsn) == expected_records(10**6, 10**6 + 60_000)


def test_ctrl_c_during_run_loses_nothing_and_the_next_run_completes(dsn):
    arguments = (
        "run",
        "--dsn",
        dsn,
        "--until-level",
        "36",
        "--exact",
        "--workers",
        "2",
        "--block-size",
        "4000",
        "--no-progress",
    )
    first = start_riemann(*arguments)
    wait_until(
        lambda: (
            sql(dsn, "SELECT count(*) FROM search_blocks WHERE state = 'FINISHED'")[0][
                0
            ]
            >= 3
            if sql(dsn, "SELECT to_regclass('search_blocks') IS NOT NULL")[0][0]
            else False
        ),
        timeout=120,
        interval=0.3,
        what="a few blocks to finish",
    )
    os.killpg(first.pid, signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "run the same command again" in stderr
    assert in_progress(dsn) == []
    total = sum(partition_count(level) for level in range(2, 37))
    checked_first = sql(
        dsn, "SELECT coalesce(sum(candidates_checked), 0) FROM search_blocks"
    )
    assert 0 < checked_first[0][0] < total

    second = run_riemann(*arguments, timeout=300)

    assert second.returncode == 0, second.stderr
    assert "every candidate through level 36 checked" in second.stdout
    checked = sql(
        dsn,
        "SELECT sum(candidates_checked), count(*) FILTER (WHERE state <> 'FINISHED') "
        "FROM search_blocks",
    )[0]
    assert (int(checked[0]), checked[1]) == (total, 0)
    end = SUPERABUNDANT.end_after_level(36)
    exact = SUPERABUNDANT.process_exact(SUPERABUNDANT.block_between(2, end), THRESHOLD)
    assert stored_records(dsn, "superabundant") == [
        (r.n, r.divisor_sum) for r in exact.records
    ]
