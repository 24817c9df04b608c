"""The queue protocol of the store, against a real PostgreSQL."""

import itertools
import threading
import time

import psycopg2.errors
import pytest

from riemann.jobs.generator import Generator, GeneratorSettings
from riemann.jobs.janitor import Janitor
from riemann.jobs.retry import DEAD, FAILED
from riemann.store import (
    BlockRejectedError,
    DatabaseUnavailableError,
    SearchConflictError,
    Store,
)
from riemann.strategies import strategy_named
from tests.integration.conftest import sql, wait_until

SUPERABUNDANT = strategy_named("superabundant")
EXHAUSTIVE = strategy_named("exhaustive")
THRESHOLD = "1.767"


def enqueue(store, strategy=EXHAUSTIVE, start=5041, size=100, count=5, end=None):
    store.ensure_search(strategy.name, start, end, THRESHOLD)
    return store.enqueue_blocks(
        strategy.name,
        lambda search: strategy.next_blocks(search.next_ordinal, size, count, end),
    )


def finish(store, claim, worker="w"):
    strategy = strategy_named(claim.strategy)
    block = strategy.block_from_text(claim.start_index, claim.end_index)
    return store.finish_block(
        claim, strategy.process_exact(block, claim.store_threshold), 0.1, worker
    )


def block_state(dsn, block_id):
    return sql(
        dsn,
        "SELECT state::text, attempts FROM search_blocks WHERE block_id = %(b)s",
        {"b": block_id},
    )[0]


def test_a_claim_takes_the_oldest_block_under_a_lease(store):
    enqueue(store, count=3)
    claim = store.claim_block("w", lease_seconds=60)
    assert (claim.start_index, claim.end_index, claim.attempts) == ("5041", "5141", 1)
    assert claim.store_threshold == THRESHOLD


def test_no_block_is_claimed_twice(store):
    enqueue(store, count=3)
    claims = [store.claim_block(f"w{i}", 60) for i in range(4)]
    assert [c.block_id for c in claims[:3]] == sorted({c.block_id for c in claims[:3]})
    assert claims[3] is None


def test_finishing_stores_the_result_and_the_records_in_one_go(store, dsn):
    enqueue(store, strategy=EXHAUSTIVE, start=3, size=5038, count=1)
    claim = store.claim_block("w", 60)
    assert finish(store, claim)
    assert block_state(dsn, claim.block_id) == ("FINISHED", 1)
    stored = [int(row[0]) for row in sql(dsn, "SELECT n FROM witnesses ORDER BY n")]
    assert 5040 in stored
    assert sql(dsn, "SELECT DISTINCT block_id FROM witnesses") == [(claim.block_id,)]


def test_finishing_again_under_the_same_lease_is_a_harmless_success(store, dsn):
    # As when the reply to the first commit was lost and the worker retries.
    enqueue(store, strategy=EXHAUSTIVE, start=3, size=5038, count=1)
    claim = store.claim_block("w", 60)
    assert finish(store, claim)
    records = sql(dsn, "SELECT count(*) FROM witnesses")

    assert finish(store, claim)
    assert sql(dsn, "SELECT count(*) FROM witnesses") == records
    assert block_state(dsn, claim.block_id) == ("FINISHED", 1)


def test_a_worker_whose_lease_expired_cannot_finish(store, dsn):
    enqueue(store, count=1)
    claim = store.claim_block("w", lease_seconds=0.2)
    time.sleep(0.4)
    assert not store.renew_lease(claim, 60)
    assert not finish(store, claim)
    assert block_state(dsn, claim.block_id) == ("IN_PROGRESS", 1)
    assert sql(dsn, "SELECT count(*) FROM witnesses") == [(0,)]


def expire_lease(dsn, claim):
    """Move the lease's expiry into the past, as if the worker had been paused."""
    sql(
        dsn,
        "UPDATE search_blocks SET lease_expires_at = now() - interval '1 second' "
        "WHERE block_id = %(b)s",
        {"b": claim.block_id},
    )


def test_a_worker_whose_lease_expired_can_neither_fail_nor_release(store, dsn):
    enqueue(store, count=1)
    claim = store.claim_block("w", lease_seconds=60)
    expire_lease(dsn, claim)
    assert not store.fail_block(claim, "too late", FAILED, 0)
    assert not store.release_block(claim)
    assert block_state(dsn, claim.block_id) == ("IN_PROGRESS", 1)
    expired = Janitor(store, threading.Event(), stale_after_seconds=0).run_once()
    assert [lease.block_id for lease in expired] == [claim.block_id]


def test_a_claim_carries_the_ordinals_of_its_row(store):
    blocks = enqueue(store, start=5041, size=100, count=2)
    claim = store.claim_block("w", 60)
    assert (claim.start_ordinal, claim.end_ordinal) == (
        blocks[0].start_ordinal,
        blocks[0].end_ordinal,
    )


def test_renewing_a_lease_is_also_the_workers_heartbeat(store, dsn):
    enqueue(store, count=1)
    store.register_worker("w", "host", 1)
    claim = store.claim_block("w", 60)
    sql(dsn, "UPDATE workers SET last_seen_at = now() - interval '1 hour'")
    assert store.live_workers(seen_within_seconds=60) == []
    assert store.renew_lease(claim, 60)
    assert [worker.worker_id for worker in store.live_workers(60)] == ["w"]


def test_a_result_the_database_refuses_is_rejected_with_nothing_written(store, dsn):
    enqueue(store, start=5000, size=50, count=2)
    first = store.claim_block("w", 60)
    assert finish(store, first)
    # A second row over the same candidates, as a hand-edited table could have.
    sql(
        dsn,
        "UPDATE search_blocks SET start_index = '5000', end_index = '5050' "
        "WHERE block_id <> %(b)s",
        {"b": first.block_id},
    )
    second = store.claim_block("w", 60)
    with pytest.raises(BlockRejectedError, match="refused the block's result"):
        finish(store, second)
    assert block_state(dsn, second.block_id) == ("IN_PROGRESS", 1)
    assert sql(
        dsn,
        "SELECT count(*) FROM witnesses WHERE block_id = %(b)s",
        {"b": second.block_id},
    ) == [(0,)]


def test_the_janitor_fails_expired_leases_counting_the_attempt(store, dsn):
    enqueue(store, count=2)
    stale = store.claim_block("w1", lease_seconds=0.2)
    fresh = store.claim_block("w2", lease_seconds=60)
    time.sleep(0.4)
    expired = Janitor(store, threading.Event(), stale_after_seconds=0).run_once()
    assert [lease.block_id for lease in expired] == [stale.block_id]
    assert block_state(dsn, stale.block_id) == ("FAILED", 1)
    assert block_state(dsn, fresh.block_id) == ("IN_PROGRESS", 1)
    assert not finish(store, stale)


def test_a_failed_block_is_claimable_again_after_its_delay(store, dsn):
    enqueue(store, count=1)
    claim = store.claim_block("w", 60)
    assert store.fail_block(claim, "boom", FAILED, retry_after_seconds=0.3)
    assert store.claim_block("w", 60) is None
    time.sleep(0.5)
    retry = store.claim_block("w", 60)
    assert retry.block_id == claim.block_id
    assert retry.attempts == 2


def test_a_released_block_goes_back_without_counting_the_attempt(store, dsn):
    enqueue(store, count=1)
    claim = store.claim_block("w", 60)
    assert store.release_block(claim)
    assert block_state(dsn, claim.block_id) == ("NOT_STARTED", 0)
    assert not store.release_block(claim)


def test_dead_blocks_stay_dead_until_requeued(store, dsn):
    enqueue(store, count=2)
    claim = store.claim_block("w", 60)
    assert store.fail_block(claim, "always broken", DEAD, 0)
    other = store.claim_block("w", 60)
    assert other.block_id != claim.block_id
    assert store.claim_block("w", 60) is None
    assert [b.last_error for b in store.dead_blocks()] == ["always broken"]
    assert store.requeue_dead([claim.block_id]) == [claim.block_id]
    assert block_state(dsn, claim.block_id) == ("NOT_STARTED", 0)


def test_concurrent_generators_never_overlap_or_leave_gaps(dsn):
    with Store(dsn) as setup:
        setup.upgrade()
    settings = GeneratorSettings(
        start_ordinal=SUPERABUNDANT.ordinal((2, 0)),
        end_ordinal=SUPERABUNDANT.end_after_level(40),
        store_threshold=THRESHOLD,
        block_size=977,
        min_queue_depth=10**6,
    )

    def generate():
        with Store(dsn) as own:
            generator = Generator(own, SUPERABUNDANT, settings, threading.Event())
            while not generator.run_once(to_the_bound=False):
                pass

    threads = [threading.Thread(target=generate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = sql(
        dsn,
        "SELECT start_ordinal, end_ordinal FROM search_blocks ORDER BY start_ordinal",
    )
    assert rows[0][0] == settings.start_ordinal
    assert rows[-1][1] == settings.end_ordinal
    assert all(before[1] == after[0] for before, after in itertools.pairwise(rows))


def test_a_search_keeps_its_start_and_threshold(store):
    store.ensure_search("exhaustive", 5041, None, THRESHOLD)
    with pytest.raises(SearchConflictError, match="started at ordinal 5041"):
        store.ensure_search("exhaustive", 100, None, THRESHOLD)
    with pytest.raises(SearchConflictError, match=r"above 1\.767, not 1\.5"):
        store.ensure_search("exhaustive", 5041, None, "1.5")
    assert (
        store.ensure_search("exhaustive", 5041, None, "1.7670").store_threshold
        == THRESHOLD
    )


def test_a_bounded_search_is_extended_by_a_later_bound(store):
    store.ensure_search("exhaustive", 5041, 6000, THRESHOLD)
    assert store.ensure_search("exhaustive", 5041, 9000, THRESHOLD).end_ordinal == 9000
    assert store.ensure_search("exhaustive", 5041, 7000, THRESHOLD).end_ordinal == 9000


def test_enqueued_blocks_notify_a_store_listening_for_claimable_blocks(store, dsn):
    with Store(dsn) as listener:
        listener.listen_for_claimable_blocks()
        assert not listener.wait_for_notice(0)

        enqueue(store, count=2)

        assert listener.wait_for_notice(30)
        assert not listener.wait_for_notice(0), "every pending notice is consumed"


def test_released_and_requeued_blocks_notify_listening_stores(store, dsn):
    enqueue(store, count=2)
    with Store(dsn) as listener:
        listener.listen_for_claimable_blocks()
        released = store.claim_block("w", 60)
        assert store.release_block(released)
        assert listener.wait_for_notice(30)

        buried = store.claim_block("w", 60)
        assert store.fail_block(buried, "broken", DEAD, 0)
        assert not listener.wait_for_notice(0), "a DEAD block is not claimable"
        assert store.requeue_dead() == [buried.block_id]
        assert listener.wait_for_notice(30)


def test_a_claim_notifies_a_store_listening_for_claims(store, dsn):
    enqueue(store, count=2)
    with Store(dsn) as listener:
        listener.listen_for_claims()
        enqueue(store, count=1)
        assert not listener.wait_for_notice(0), "enqueueing is not a claim"

        store.claim_block("w", 60)

        assert listener.wait_for_notice(30)


def test_a_listening_store_listens_again_after_losing_its_connection(dsn):
    with Store(dsn) as listener:
        listener.upgrade()
        listener.listen_for_claimable_blocks()
        terminated = sql(
            dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert terminated == [(True,)]
        with pytest.raises(DatabaseUnavailableError):  # noqa: PT012 - the loop waits
            # The server's goodbye may come as a message first, and the end of the
            # connection at the next read.
            for _ in range(100):
                listener.wait_for_notice(0.3)

        assert not listener.wait_for_notice(0)  # reconnected, and listening again
        with Store(dsn) as other:
            enqueue(other, count=1)

        assert listener.wait_for_notice(30)


def test_a_claim_wakes_the_generator_to_top_the_queue_up(store, dsn):
    settings = GeneratorSettings(
        start_ordinal=5041,
        end_ordinal=None,
        store_threshold=THRESHOLD,
        block_size=100,
        min_queue_depth=3,
        poll_seconds=600,
        settle_seconds=0,
    )
    stop = threading.Event()

    def generate():
        with Store(dsn) as own:
            Generator(own, EXHAUSTIVE, settings, stop).run()

    thread = threading.Thread(target=generate)
    thread.start()
    try:
        wait_until(lambda: store.claimable_count("exhaustive") == 3,
                   what="the first blocks")  # fmt: skip
        store.claim_block("w", 60)

        wait_until(lambda: store.claimable_count("exhaustive") == 3, timeout=60,
                   what="the generator to replace the claimed block")  # fmt: skip
        assert sql(dsn, "SELECT count(*) FROM search_blocks") == [(4,)]
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.parametrize("bad_ordinal", ["NaN", "2.5", "-1", "1e1000"])
def test_an_ordinal_that_is_not_a_whole_number_cannot_be_stored(
    store, dsn, bad_ordinal
):
    (block,) = enqueue(store, count=1)
    with pytest.raises(psycopg2.errors.CheckViolation):
        sql(
            dsn,
            "UPDATE search_blocks SET end_ordinal = %(bad)s::numeric",
            {"bad": bad_ordinal},
        )
    assert sql(dsn, "SELECT end_ordinal FROM search_blocks") == [(block.end_ordinal,)]
