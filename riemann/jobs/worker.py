"""The worker: claims blocks, computes them while it renews its lease, stores results.

The computation runs in a thread of its own so that the main thread stays free to
renew the lease every third of its length, and to react at once to a stop request:
the block is then released unprocessed (the attempt is not counted), and the process
exits without waiting for the computation.
"""

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from riemann.jobs.connection import StoppedError, with_reconnect
from riemann.jobs.notices import STOP_CHECK_SECONDS, wait_for_notice
from riemann.jobs.retry import DEAD, RetryPolicy
from riemann.jobs.stopping import install_stop_handlers
from riemann.store import BlockRejectedError, ClaimedBlock, Store
from riemann.strategies import (
    BlockResult,
    InvalidIndexError,
    SearchBlock,
    Strategy,
    UnknownStrategyError,
    strategy_named,
)

logger = logging.getLogger(__name__)

MAX_WORKER_RESTARTS = 5
STOP_GRACE_SECONDS = 30.0
"""How long a stopping worker may take to release or finish its block."""

ProcessBlock = Callable[[Strategy[Any], SearchBlock, str], BlockResult]


def process_with_kernels(
    strategy: Strategy[Any], block: SearchBlock, threshold: str
) -> BlockResult:
    return strategy.process(block, threshold)


def process_exactly(
    strategy: Strategy[Any], block: SearchBlock, threshold: str
) -> BlockResult:
    return strategy.process_exact(block, threshold)


@dataclass(frozen=True)
class WorkerSettings:
    lease_seconds: float = 60.0
    idle_poll_seconds: float = 2.0
    """How long an idle worker waits before it looks for a block again, unless a
    notice of claimable blocks wakes it first."""
    exit_when_idle: bool = False
    exact: bool = False
    strategy: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def renew_every_seconds(self) -> float:
        return self.lease_seconds / 3


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _Computation:
    """One block's computation, in a daemon thread."""

    def __init__(
        self,
        process: ProcessBlock,
        strategy: Strategy[Any],
        block: SearchBlock,
        threshold: str,
    ) -> None:
        self.done = threading.Event()
        self.result: BlockResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(process, strategy, block, threshold),
            name=f"block-{block.start}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def _run(
        self,
        process: ProcessBlock,
        strategy: Strategy[Any],
        block: SearchBlock,
        threshold: str,
    ) -> None:
        try:
            self.result = process(strategy, block, threshold)
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()


class Worker:
    """One worker process's loop over the queue."""

    def __init__(
        self,
        store: Store,
        settings: WorkerSettings,
        stop: threading.Event,
        process: ProcessBlock | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.stop = stop
        self.process = process or (
            process_exactly if settings.exact else process_with_kernels
        )
        self.worker_id = worker_id or new_worker_id()
        self.blocks_finished = 0

    def run(self) -> int:
        """Work until stopped (or idle, if asked to); the exit code."""
        try:
            self._reconnecting(
                lambda: self.store.register_worker(
                    self.worker_id, socket.gethostname(), os.getpid()
                )
            )
            self._reconnecting(self.store.listen_for_claimable_blocks)
            logger.info("worker started", extra={"worker": self.worker_id})
            while not self.stop.is_set():
                claim = self._reconnecting(
                    lambda: self.store.claim_block(
                        self.worker_id,
                        self.settings.lease_seconds,
                        self.settings.strategy,
                    )
                )
                if claim is not None:
                    self.work_on(claim)
                elif self.settings.exit_when_idle:
                    break
                else:
                    self._reconnecting(
                        lambda: wait_for_notice(
                            self.store, self.settings.idle_poll_seconds, self.stop
                        )
                    )
                # Also the heartbeat of an idle worker, so it is listed as live.
                self._reconnecting(lambda: self.store.worker_seen(self.worker_id, None))
        except StoppedError:
            pass
        finally:
            self._say_goodbye()
        return 0

    def _reconnecting(self, operation: Callable[[], Any]) -> Any:
        return with_reconnect(operation, self.stop)

    def _say_goodbye(self) -> None:
        try:
            self.store.worker_stopped(self.worker_id)
        except Exception:
            logger.debug("could not record the worker's stop")
        logger.info(
            "worker stopped",
            extra={"worker": self.worker_id, "blocks_finished": self.blocks_finished},
        )

    def work_on(self, claim: ClaimedBlock) -> None:
        """Compute one claimed block and record how it ended."""
        fields = {
            "block_id": claim.block_id,
            "strategy": claim.strategy,
            "start": claim.start_index,
            "end": claim.end_index,
            "attempt": claim.attempts,
        }
        logger.info("block claimed", extra=fields)
        try:
            strategy = strategy_named(claim.strategy)
            block = strategy.block_from_text(claim.start_index, claim.end_index)
            _check_ordinals(claim, block)
        except (InvalidIndexError, UnknownStrategyError) as error:
            # The row itself is wrong: no retry can help, so it goes straight to DEAD.
            self._bury(claim, f"malformed block: {error}", fields)
            return

        started = time.monotonic()
        computation = _Computation(self.process, strategy, block, claim.store_threshold)
        computation.start()
        next_renewal: float | None = started + self.settings.renew_every_seconds
        while not computation.done.wait(STOP_CHECK_SECONDS):
            if self.stop.is_set():
                break
            if next_renewal is None or time.monotonic() < next_renewal:
                continue
            renewed = self._reconnecting(
                lambda: self.store.renew_lease(claim, self.settings.lease_seconds)
            )
            # From now, not from when the renewal was due: a worker that was paused
            # (SIGSTOP, a suspended laptop) renews once, not once per missed turn.
            next_renewal = time.monotonic() + self.settings.renew_every_seconds
            if not renewed:
                # The block is someone else's now; the computation cannot be
                # interrupted, and its result will be refused.
                logger.warning("lease lost while computing", extra=fields)
                next_renewal = None
        if self.stop.is_set() and not computation.done.is_set():
            released = self._reconnecting(lambda: self.store.release_block(claim))
            logger.info("block released", extra={**fields, "released": released})
            return

        duration = time.monotonic() - started
        if computation.error is not None or computation.result is None:
            self._record_failure(claim, computation.error, fields)
            return
        result = computation.result
        try:
            finished = self._reconnecting(
                lambda: self.store.finish_block(claim, result, duration, self.worker_id)
            )
        except BlockRejectedError as error:
            self._bury(claim, str(error), fields)
            return
        if not finished:
            logger.warning("lease lost, result discarded", extra=fields)
            return
        self.blocks_finished += 1
        logger.info(
            "block finished",
            extra={
                **fields,
                "candidates": result.candidates_checked,
                "records": len(result.records),
                "duration_seconds": round(duration, 3),
                "candidates_per_second": round(result.candidates_checked / duration)
                if duration > 0
                else None,
            },
        )

    def _bury(self, claim: ClaimedBlock, reason: str, fields: dict[str, Any]) -> None:
        """Send a block that no retry can fix straight to DEAD, with the reason."""
        logger.error("block is DEAD", extra={**fields, "error": reason})
        buried = self._reconnecting(
            lambda: self.store.fail_block(claim, reason, DEAD, 0)
        )
        if not buried:
            logger.warning("lease lost before the block was marked DEAD", extra=fields)

    def _record_failure(
        self, claim: ClaimedBlock, error: BaseException | None, fields: dict[str, Any]
    ) -> None:
        message = f"{type(error).__name__}: {error}" if error else "no result"
        new_state, retry_after = self.settings.retry.decide(claim.attempts)
        logger.error(
            "block failed",
            extra={**fields, "error": message, "new_state": new_state},
            exc_info=error,
        )
        failed = self._reconnecting(
            lambda: self.store.fail_block(claim, message, new_state, retry_after)
        )
        if not failed:
            logger.warning("lease lost before the failure was recorded", extra=fields)


def _check_ordinals(claim: ClaimedBlock, block: SearchBlock) -> None:
    """Refuse a row whose index text and ordinals name different ranges.

    Progress ("complete through") is reckoned from the ordinals while the work is
    done from the text, so a row edited in one and not the other would report
    candidates as checked that never were.
    """
    if (block.start_ordinal, block.end_ordinal) != (
        claim.start_ordinal,
        claim.end_ordinal,
    ):
        raise InvalidIndexError(
            f"{claim.start_index}..{claim.end_index} spans ordinals "
            f"{block.start_ordinal}..{block.end_ordinal}, but the row says "
            f"{claim.start_ordinal}..{claim.end_ordinal}"
        )


def run_worker(
    dsn: str | None, settings: WorkerSettings, dsn_source: Connection | None = None
) -> int:
    """A worker process's whole life: handlers, kernels, a store, the loop.

    Without a `dsn`, the worker loads its kernels first and then waits for the DSN
    on `dsn_source`, so that loading overlaps whatever readies the database.
    """
    stop = threading.Event()
    install_stop_handlers(stop)
    if not settings.exact:
        # Loaded before the first claim, so that second is not spent under a lease.
        from riemann.kernels.warm_up import warm_up

        warm_up()
    if dsn is None:
        dsn = _await_dsn(dsn_source, stop)
        if dsn is None:
            return 0
    with Store(dsn) as store:
        return Worker(store, settings, stop).run()


def _await_dsn(source: Connection | None, stop: threading.Event) -> str | None:
    """The DSN sent on `source`; None if stopped or the sender went away first."""
    if source is None:
        raise ValueError("a worker needs a DSN or a connection that sends one")
    while not stop.is_set():
        if source.poll(STOP_CHECK_SECONDS):
            try:
                dsn: str = source.recv()
            except EOFError:
                return None
            return dsn
    return None


def _worker_process_main(
    dsn: str | None,
    dsn_source: Connection | None,
    settings: WorkerSettings,
    log_setup: Callable[[], None],
) -> None:
    log_setup()
    raise SystemExit(run_worker(dsn, settings, dsn_source))


def _spawn_worker(
    number: int,
    dsn: str | None,
    dsn_source: Connection | None,
    settings: WorkerSettings,
    log_setup: Callable[[], None],
) -> BaseProcess:
    """Start one worker process (spawned, so it has a clean interpreter)."""
    process = multiprocessing.get_context("spawn").Process(
        target=_worker_process_main,
        args=(dsn, dsn_source, settings, log_setup),
        name=f"riemann-worker-{number}",
    )
    process.start()
    return process


class WorkerPool:
    """Worker processes, each replaced when it dies unexpectedly.

    A worker that dies (killed, out of memory, a bug) is started again, up to
    `max_restarts` times over the pool's life; past that something is wrong with
    every worker alike, and restarting would only hide it.

    A pool started without a DSN has its workers load their kernels at once and
    wait for `connect(dsn)`: `riemann run` readies its database meanwhile.
    """

    def __init__(
        self,
        count: int,
        dsn: str | None,
        settings: WorkerSettings,
        log_setup: Callable[[], None],
        max_restarts: int = MAX_WORKER_RESTARTS,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._log_setup = log_setup
        self._max_restarts = max_restarts
        self._dsn_senders: list[Connection] = []
        self.restarts = 0
        self.processes = [self._start(number) for number in range(count)]

    def _start(self, number: int) -> BaseProcess:
        if self._dsn is not None:
            return _spawn_worker(
                number, self._dsn, None, self._settings, self._log_setup
            )
        source, sender = multiprocessing.Pipe(duplex=False)
        self._dsn_senders.append(sender)
        process = _spawn_worker(number, None, source, self._settings, self._log_setup)
        source.close()  # the child has its own copy
        return process

    def connect(self, dsn: str) -> None:
        """Send the database's DSN to workers started without one."""
        self._dsn = dsn
        for sender in self._dsn_senders:
            try:
                sender.send(dsn)
            except OSError:
                logger.debug("a waiting worker was already gone")
            sender.close()
        self._dsn_senders = []

    def replace_dead(self) -> bool:
        """Start a replacement for each worker that died; False past the limit.

        A worker that exits 0 on its own (`exit_when_idle`) is done, not dead.
        """
        for index, process in enumerate(self.processes):
            if process.is_alive() or process.exitcode == 0:
                continue
            logger.error(
                "worker process died",
                extra={"worker_process": process.name, "exit_code": process.exitcode},
            )
            self.restarts += 1
            if self.restarts > self._max_restarts:
                return False
            self.processes[index] = self._start(index)
        return True

    def any_alive(self) -> bool:
        return any(process.is_alive() for process in self.processes)

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Ask every worker to stop (each releases or finishes its block), and wait;
        a worker still there after the grace period is killed."""
        for sender in self._dsn_senders:
            sender.close()  # a worker still waiting for its DSN reads the end
        self._dsn_senders = []
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(grace_seconds)
            if process.is_alive():
                logger.error(
                    "worker did not stop, killing it",
                    extra={"worker_process": process.name},
                )
                process.kill()
                process.join()


def run_worker_processes(
    count: int, dsn: str, settings: WorkerSettings, log_setup: Callable[[], None]
) -> int:
    """Run `count` workers as processes until they are done; the exit code.

    A stop signal to this process reaches every worker as SIGTERM. A worker that
    dies is replaced (see WorkerPool); 1 once they die too often.
    """
    stop = threading.Event()
    install_stop_handlers(stop)
    pool = WorkerPool(count, dsn, settings, log_setup)
    try:
        while not stop.wait(0.5):
            if not pool.replace_dead():
                logger.error(
                    "worker processes keep dying", extra={"restarts": pool.restarts}
                )
                return 1
            if not pool.any_alive():
                break
    finally:
        pool.stop()
    # Workers told to stop exit 0, or die of the signal if it came before their
    # handlers were installed.
    stopped_by_signal = {-signal.SIGTERM, -signal.SIGINT} if stop.is_set() else set()
    failed = [
        process.name
        for process in pool.processes
        if process.exitcode != 0 and process.exitcode not in stopped_by_signal
    ]
    if failed:
        logger.error("worker processes failed", extra={"worker_processes": failed})
        return 1
    return 0
