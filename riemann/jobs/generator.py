"""The generator: keeps enough claimable blocks queued for the workers.

Block sizes follow the workers' measured throughput so a block takes about a target
time: long enough that the queue's overhead is negligible, short enough that a lost
block costs little and progress is visible.
"""

import logging
import threading
from dataclasses import dataclass
from typing import Any

from riemann.jobs.connection import StoppedError, with_reconnect
from riemann.jobs.notices import wait_for_notice
from riemann.store import Search, Store
from riemann.strategies import SearchBlock, Strategy

logger = logging.getLogger(__name__)

INITIAL_BLOCK_SIZE = 10_000
MIN_BLOCK_SIZE = 1_000
GROWTH_LIMIT = 8
"""A block is at most this many times larger or smaller than the one before."""


def choose_block_size(
    candidates_per_second: float | None, target_seconds: float, previous: int
) -> int:
    """How many candidates a block gets so it takes about `target_seconds`.

    Without a throughput yet, the previous size; otherwise the throughput times the
    target, moving at most a factor GROWTH_LIMIT from the previous size so that one
    odd measurement cannot produce a block of hours.
    """
    if not candidates_per_second or candidates_per_second <= 0:
        return previous
    wanted = int(candidates_per_second * target_seconds)
    bounded = max(previous // GROWTH_LIMIT, min(previous * GROWTH_LIMIT, wanted))
    return max(MIN_BLOCK_SIZE, bounded)


def tail_block_size(size: int, remaining: int, workers: int) -> int:
    """`size`, or less near the bound, so the workers finish the last blocks together.

    No block takes more than a (2 x workers)-th of what is left to enqueue: the
    last blocks shrink geometrically instead of leaving all but one worker idle
    while it computes a whole block of the target length.
    """
    share = -(-remaining // (2 * max(workers, 1)))
    return max(MIN_BLOCK_SIZE, min(size, share))


@dataclass(frozen=True)
class GeneratorSettings:
    start_ordinal: int
    end_ordinal: int | None
    store_threshold: str
    block_size: int | None = None
    target_seconds: float = 60.0
    min_queue_depth: int = 4
    poll_seconds: float = 5.0
    """The longest wait between two looks at the queue; a claim wakes it sooner."""
    settle_seconds: float = 0.5
    """How long a generator woken by a claim waits before it looks, so that a burst
    of claims from a large farm makes one top-up, not one each."""
    worker_seen_within_seconds: float = 180.0


class Generator:
    def __init__(
        self,
        store: Store,
        strategy: Strategy[Any],
        settings: GeneratorSettings,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.strategy = strategy
        self.settings = settings
        self.stop = stop
        self._block_size = settings.block_size or INITIAL_BLOCK_SIZE

    def prepare(self) -> Search:
        """Create the search, or check that the stored one agrees with the settings."""
        return self.store.ensure_search(
            self.strategy.name,
            self.settings.start_ordinal,
            self.settings.end_ordinal,
            self.settings.store_threshold,
        )

    def _end_ordinal(self, search: Search) -> int | None:
        ends = [
            e for e in (search.end_ordinal, self.settings.end_ordinal) if e is not None
        ]
        return min(ends) if ends else None

    def _fully_enqueued(self, search: Search) -> bool:
        end = self._end_ordinal(search)
        return end is not None and search.next_ordinal >= end

    def enqueue(self, count: int, workers: int = 1) -> tuple[list[SearchBlock], bool]:
        """Enqueue up to `count` blocks for `workers` live workers; also whether the
        bound is now reached."""
        sized = self.settings.block_size is None
        if sized:
            throughput = self.store.recent_throughput(self.strategy.name)
            self._block_size = choose_block_size(
                throughput, self.settings.target_seconds, self._block_size
            )
        reached = False

        def cut(search: Search) -> list[SearchBlock]:
            nonlocal reached
            end = self._end_ordinal(search)
            size = self._block_size
            if sized and end is not None:
                size = tail_block_size(size, end - search.next_ordinal, workers)
            blocks = self.strategy.next_blocks(search.next_ordinal, size, count, end)
            next_ordinal = blocks[-1].end_ordinal if blocks else search.next_ordinal
            reached = end is not None and next_ordinal >= end
            return blocks

        blocks = self.store.enqueue_blocks(self.strategy.name, cut)
        if blocks:
            logger.info(
                "blocks enqueued",
                extra={
                    "strategy": self.strategy.name,
                    "blocks": len(blocks),
                    "block_size": self._block_size,
                    "first": blocks[0].start,
                    "last": blocks[-1].end,
                },
            )
        return blocks, reached

    def queue_shortfall(self) -> tuple[int, int]:
        """How many blocks to add so the queue holds two per live worker (or more),
        and how many workers are live."""
        workers = len(self.store.live_workers(self.settings.worker_seen_within_seconds))
        depth = max(self.settings.min_queue_depth, 2 * workers)
        return depth - self.store.claimable_count(self.strategy.name), workers

    def run_once(self, to_the_bound: bool) -> bool:
        """Fill the queue once (or, with `to_the_bound`, enqueue every block up to
        the bound); True when the bound has been reached."""
        search = self.prepare()
        if self._fully_enqueued(search):
            return True
        if to_the_bound:
            while True:
                _, reached = self.enqueue(1000)
                if reached:
                    return True
        shortfall, workers = self.queue_shortfall()
        if shortfall <= 0:
            return False
        _, reached = self.enqueue(shortfall, workers)
        return reached

    def run(self) -> int:
        """Keep the queue filled until stopped, or until the bound is fully queued.

        Each claim notifies the generator, which then tops the queue up at once:
        workers that finish blocks quickly (the first, small blocks of a search) do
        not wait for the next look at the queue.
        """
        settings = self.settings
        try:
            with_reconnect(self.store.listen_for_claims, self.stop)
            while not self.stop.is_set():
                reached = with_reconnect(lambda: self.run_once(False), self.stop)
                if reached:
                    logger.info(
                        "search fully enqueued", extra={"strategy": self.strategy.name}
                    )
                    return 0
                woken = with_reconnect(
                    lambda: wait_for_notice(
                        self.store, settings.poll_seconds, self.stop
                    ),
                    self.stop,
                )
                if woken:
                    self.stop.wait(settings.settle_seconds)
        except StoppedError:
            pass
        return 0
