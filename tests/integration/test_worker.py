"""The worker loop in this process, with the block computation injected."""

import threading
import time

from riemann.jobs.retry import RetryPolicy
from riemann.jobs.worker import Worker, WorkerSettings
from riemann.store import Store
from riemann.strategies import strategy_named
from tests.integration.conftest import SERVER_DSN as SERVER_DSN_FOR_ADMIN
from tests.integration.conftest import database_name, sql, wait_until

EXHAUSTIVE = strategy_named("exhaustive")


def enqueue(store, count=1, size=50):
    store.ensure_search("exhaustive", 5041, None, "1.767")
    store.enqueue_blocks(
        "exhaustive",
        lambda search: EXHAUSTIVE.next_blocks(search.next_ordinal, size, count),
    )


def idle_worker(store, process=None, **settings):
    settings = WorkerSettings(exit_when_idle=True, lease_seconds=30, **settings)
    return Worker(store, settings, threading.Event(), process=process, worker_id="test")


def test_a_worker_finishes_every_block_then_exits_when_idle(store, dsn):
    enqueue(store, count=4)
    worker = idle_worker(store)
    assert worker.run() == 0
    assert worker.blocks_finished == 4
    assert sql(dsn, "SELECT state::text, count(*) FROM search_blocks GROUP BY 1") == [
        ("FINISHED", 4)
    ]


def test_a_block_whose_processing_always_raises_ends_dead_with_its_error(store, dsn):
    enqueue(store)

    def broken(strategy, block, threshold):
        raise ArithmeticError("kernel overflow at " + block.start)

    retry = RetryPolicy(max_attempts=3, base_delay_seconds=0)
    for _ in range(3):
        idle_worker(store, process=broken, retry=retry).run()
    assert sql(dsn, "SELECT state::text, attempts, last_error FROM search_blocks") == [
        ("DEAD", 3, "ArithmeticError: kernel overflow at 5041")
    ]


def test_a_malformed_row_becomes_a_dead_block_with_the_reason(store, dsn):
    enqueue(store, count=2)
    sql(dsn, "UPDATE search_blocks SET start_index = 'twelve' WHERE block_id = 1")
    assert idle_worker(store).run() == 0
    rows = sql(
        dsn, "SELECT block_id, state::text, last_error FROM search_blocks ORDER BY 1"
    )
    assert rows[0][:2] == (1, "DEAD")
    assert "'twelve' is not an integer" in rows[0][2]
    assert rows[1][1] == "FINISHED"


def test_a_row_whose_ordinals_disagree_with_its_indexes_becomes_dead(store, dsn):
    enqueue(store, count=2)
    sql(dsn, "UPDATE search_blocks SET end_index = '5061' WHERE block_id = 1")
    assert idle_worker(store).run() == 0
    state, error = sql(
        dsn, "SELECT state::text, last_error FROM search_blocks WHERE block_id = 1"
    )[0]
    assert state == "DEAD"
    assert "5041..5061 spans ordinals 5041..5061, but the row says 5041..5091" in error


def test_a_block_whose_records_another_block_stored_becomes_dead(store, dsn):
    store.ensure_search("exhaustive", 3, None, "1.767")
    store.enqueue_blocks(
        "exhaustive", lambda search: EXHAUSTIVE.next_blocks(3, 5038, 2)
    )
    # The second row is made to overlap the first one, ordinals and all.
    sql(
        dsn,
        "UPDATE search_blocks SET start_index = '4', end_index = '5041', "
        "start_ordinal = 4, end_ordinal = 5041 WHERE block_id = 2",
    )
    assert idle_worker(store).run() == 0
    rows = sql(
        dsn, "SELECT block_id, state::text, last_error FROM search_blocks ORDER BY 1"
    )
    assert rows[0] == (1, "FINISHED", None)
    assert rows[1][:2] == (2, "DEAD")
    assert "refused the block's result" in rows[1][2]


def test_a_block_longer_than_its_lease_finishes_on_its_first_attempt(store, dsn):
    enqueue(store)

    def slow(strategy, block, threshold):
        time.sleep(2.0)
        return strategy.process_exact(block, threshold)

    worker = Worker(
        store,
        WorkerSettings(lease_seconds=0.6, exit_when_idle=True),
        threading.Event(),
        process=slow,
        worker_id="w",
    )
    assert worker.run() == 0
    assert sql(dsn, "SELECT state::text, attempts FROM search_blocks") == [
        ("FINISHED", 1)
    ]


def test_a_stop_during_a_block_releases_it_unprocessed(store, dsn):
    enqueue(store)
    started = threading.Event()
    never = threading.Event()

    def slow(strategy, block, threshold):
        started.set()
        never.wait(30)
        return strategy.process_exact(block, threshold)

    stop = threading.Event()
    worker = Worker(
        store, WorkerSettings(lease_seconds=30), stop, process=slow, worker_id="w"
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    stop.set()
    thread.join(10)
    never.set()
    assert not thread.is_alive()
    assert sql(dsn, "SELECT state::text, attempts FROM search_blocks") == [
        ("NOT_STARTED", 0)
    ]
    assert sql(dsn, "SELECT stopped_at IS NOT NULL FROM workers") == [(True,)]


def test_a_worker_reconnects_after_losing_the_database(store, dsn):
    enqueue(store, count=1)
    stop = threading.Event()
    worker = Worker(
        store,
        WorkerSettings(lease_seconds=30, idle_poll_seconds=0.1),
        stop,
        worker_id="reconnecting",
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: worker.blocks_finished == 1, what="the first block")

    terminated = sql(
        SERVER_DSN_FOR_ADMIN,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(name)s AND pid <> pg_backend_pid()",
        {"name": database_name(dsn)},
    )
    assert terminated
    with Store(dsn) as other:
        enqueue(other, count=2)
    wait_until(lambda: worker.blocks_finished == 3, what="the blocks after the outage")
    stop.set()
    thread.join(10)
    assert sql(dsn, "SELECT count(*) FROM search_blocks WHERE state = 'FINISHED'") == [
        (3,)
    ]


class WaitingStore(Store):
    """A store that says when a job first waits on it for a notice."""

    def __init__(self, dsn):
        super().__init__(dsn)
        self.waiting = threading.Event()

    def wait_for_notice(self, seconds):
        self.waiting.set()
        return super().wait_for_notice(seconds)


def test_an_idle_worker_claims_new_blocks_at_once_not_at_its_next_poll(store, dsn):
    store.ensure_search("exhaustive", 5041, None, "1.767")
    stop = threading.Event()
    with WaitingStore(dsn) as worker_store:
        worker = Worker(
            worker_store,
            WorkerSettings(lease_seconds=30, idle_poll_seconds=600),
            stop,
            worker_id="listening",
        )
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            assert worker_store.waiting.wait(30), "the worker never went idle"
            enqueue(store, count=2)

            wait_until(lambda: worker.blocks_finished == 2, timeout=60,
                       what="the worker to be woken by the new blocks")  # fmt: skip
        finally:
            stop.set()
            thread.join(10)
