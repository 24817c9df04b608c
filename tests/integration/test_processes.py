"""Whole worker, janitor and run processes, stopped, killed and paused for real."""

import contextlib
import os
import signal
import socket
import threading

import pytest
from psycopg2.extensions import make_dsn, parse_dsn

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


class DatabaseDoor:
    """A TCP port in front of the database that hangs up on every connection until
    it is opened, then forwards each one: a database server that is down, then up.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.turned_away = 0
        self._open = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._closed = True
        self._listener.close()

    def open(self) -> None:
        self._open.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                self.turned_away += 1
                client.close()
                continue
            server = socket.create_connection(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pipe, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            return
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


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
    assert stderr.count("lease lost while computing") <= 1, "said once, if at all"
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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_to_riemann_process_releases_the_blocks_it_holds(dsn, workers):
    """`docker stop` sends SIGTERM to the container's first process only."""
    enqueue(dsn, start=10**9, size=2_000_000, count=2)
    worker = start_riemann(
        "process", "--dsn", dsn, "--exact", "--workers", workers, "--exit-when-idle"
    )
    wait_until(
        lambda: len(in_progress(dsn)) == int(workers), what="every worker to claim"
    )

    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 0, stderr
    assert "block released" in stderr
    assert sql(
        dsn, "SELECT state::text, attempts, count(*) FROM search_blocks GROUP BY 1, 2"
    ) == [("NOT_STARTED", 0, 2)]


def test_a_worker_process_that_dies_is_replaced(dsn):
    enqueue(dsn, start=3, size=2000, count=40)
    pool = start_riemann("process", "--dsn", dsn, "--exact", "--workers", "2")
    pids = wait_until(
        lambda: [row[0] for row in sql(dsn, "SELECT pid FROM workers")],
        what="the workers to register",
    )
    os.kill(pids[0], signal.SIGKILL)
    wait_until(
        lambda: sql(dsn, "SELECT count(*) FROM workers")[0][0] == 3,
        what="a replacement worker",
    )
    wait_until(
        lambda: not sql(dsn, "SELECT 1 FROM search_blocks WHERE state = 'NOT_STARTED'"),
        timeout=120,
        what="the queue to be worked off",
    )
    pool.send_signal(signal.SIGTERM)
    _, stderr = pool.communicate(timeout=60)

    assert pool.returncode == 0, stderr
    assert "worker process died" in stderr
    # Only the killed worker's block is left, for the janitor.
    assert (
        sql(dsn, "SELECT count(*) FROM search_blocks WHERE state <> 'FINISHED'")[0][0]
        <= 1
    )


def test_a_worker_started_before_its_database_waits_for_it(dsn):
    enqueue(dsn, start=3, size=500, count=4)
    server_port = int(parse_dsn(dsn).get("port", 5432))
    with DatabaseDoor(("127.0.0.1", server_port)) as door:
        late_dsn = make_dsn(dsn, host="127.0.0.1", port=str(door.port))
        worker = start_riemann(
            "process", "--dsn", late_dsn, "--exact", "--exit-when-idle"
        )
        wait_until(
            lambda: door.turned_away >= 2, what="the worker to find the database down"
        )
        assert worker.poll() is None
        door.open()
        _, stderr = worker.communicate(timeout=120)

    assert worker.returncode == 0, stderr
    assert "database unavailable, retrying" in stderr
    assert sql(dsn, "SELECT state::text, count(*) FROM search_blocks GROUP BY 1") == [
        ("FINISHED", 4)
    ]


def test_a_job_refused_by_the_database_does_not_wait(dsn):
    misspelled = make_dsn(dsn, dbname=parse_dsn(dsn)["dbname"] + "_misspelled")
    for job in (["process"], ["cleanup"], ["generate", "--strategy", "exhaustive"]):
        result = run_riemann(*job, "--dsn", misspelled, timeout=30)
        assert result.returncode == 1, result.stderr
        assert "does not exist" in result.stderr
        assert "Traceback" not in result.stderr
