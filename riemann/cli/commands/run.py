"""`riemann run`: the whole search on this machine, with live progress.

The generator and the janitor run as threads of this process (they mostly wait on
the database); the workers run as processes, one per core by default. Without a
configured database the search lives in the embedded PostgreSQL, which is started
for the run and stopped after it. Stopping (Ctrl-C) makes every worker release or
finish its block, so running the same command again resumes where it stopped.
"""

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from riemann.cli import output
from riemann.cli.commands.generate import generator_settings
from riemann.cli.commands.process import child_log_setup, worker_count, worker_settings
from riemann.cli.database import database_dsn
from riemann.cli.progress import ProgressDisplay, RateMeter, take_snapshot
from riemann.jobs.generator import Generator, GeneratorSettings
from riemann.jobs.janitor import Janitor
from riemann.jobs.retry import RetryPolicy
from riemann.jobs.stopping import install_stop_handlers
from riemann.jobs.worker import WorkerPool
from riemann.store import Store, StrategyProgress
from riemann.strategies import Strategy, strategy_named

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 0.2
"""How often the progress is redrawn and the end of the bound looked for."""
JANITOR_INTERVAL_SECONDS = 5.0
LOCAL_POLL_SECONDS = 0.25
"""On one machine the database is close: the queue is topped up and polled often."""
LOCAL_SETTLE_SECONDS = 0.02
"""A handful of local workers make no burst of claims worth waiting for."""


class JobThread:
    """A job (generator or janitor) in a daemon thread with a store of its own.

    A job that ends by itself has done its work (the generator, once the bound is
    queued); one that raised is `failed`, and the run cannot go on without it.
    """

    def __init__(self, name: str, dsn: str, job: Callable[[Store], int]) -> None:
        self.name = name
        self.failed = threading.Event()
        self._thread = threading.Thread(
            target=self._body, args=(dsn, job), name=name, daemon=True
        )
        self._thread.start()

    def _body(self, dsn: str, job: Callable[[Store], int]) -> None:
        try:
            with Store(dsn) as store:
                job(store)
        except Exception:
            self.failed.set()
            logger.exception("job thread failed", extra={"job": self.name})


def run(args: argparse.Namespace) -> int:
    strategy = strategy_named(args.strategy)
    settings = generator_settings(
        args, poll_seconds=LOCAL_POLL_SECONDS, settle_seconds=LOCAL_SETTLE_SECONDS
    )
    workers = worker_count(args, default=os.cpu_count() or 1)
    draw_bars = not args.no_progress and sys.stderr.isatty()
    if draw_bars:
        # The bars say what INFO lines would; only problems are logged above them.
        args.log_level = max_level(args.log_level, "WARNING")
        output.configure_logging(args.log_level, args.log_format)
    worker_log_setup = child_log_setup(args.log_level, args.log_format)

    stop = threading.Event()
    install_stop_handlers(stop)
    # The workers load their kernels while the database gets ready, and connect
    # once the schema is in place.
    pool = WorkerPool(
        workers,
        None,
        worker_settings(
            args,
            exit_when_idle=False,
            idle_poll_seconds=LOCAL_POLL_SECONDS,
            strategy=strategy.name,
        ),
        worker_log_setup,
    )
    try:
        with database_dsn(args) as dsn, Store(dsn) as store:
            try:
                store.upgrade()
                Generator(store, strategy, settings, stop).prepare()
                jobs = _start_jobs(args, dsn, strategy, settings, stop)
                pool.connect(dsn)
                logger.info(
                    "search running",
                    extra={"strategy": strategy.name, "workers": workers},
                )
                bound = settings.end_ordinal
                return _watch(store, strategy, bound, stop, pool, jobs, draw_bars)
            finally:
                # The workers release their blocks before the server may stop.
                stop.set()
                pool.stop()
    finally:
        # Also when the database never became ready (stopping twice is harmless).
        stop.set()
        pool.stop()


def _start_jobs(
    args: argparse.Namespace,
    dsn: str,
    strategy: Strategy[Any],
    settings: GeneratorSettings,
    stop: threading.Event,
) -> list[JobThread]:
    """The generator and the janitor, each in a thread with a store of its own."""
    retry = RetryPolicy(
        max_attempts=args.max_attempts, base_delay_seconds=args.retry_delay
    )
    generator = JobThread(
        "generator",
        dsn,
        lambda job_store: Generator(job_store, strategy, settings, stop).run(),
    )
    janitor = JobThread(
        "janitor",
        dsn,
        lambda job_store: Janitor(
            job_store,
            stop,
            stale_after_seconds=args.lease_seconds / 2,
            interval_seconds=JANITOR_INTERVAL_SECONDS,
            retry=retry,
        ).run(),
    )
    return [generator, janitor]


def _watch(
    store: Store,
    strategy: Strategy[Any],
    bound: int | None,
    stop: threading.Event,
    pool: WorkerPool,
    jobs: list[JobThread],
    draw_bars: bool,
) -> int:
    """Show progress until the bound is done, the search is stuck, or a stop.

    The run is done once everything before `bound` is finished: the search stored in
    the database may reach further (an earlier run went on to a higher level) or
    have no end at all (a generator without a bound), and either way this run's
    bound is what the user asked for.
    """
    meter = RateMeter()
    # The outcome is said once the live display is gone, below its last frame.
    with ProgressDisplay(strategy, draw_bars) as display:
        code, message = _outcome(
            store, strategy, bound, stop, pool, jobs, display, meter
        )
    if code == output.EXIT_OK:
        output.say(message)
    else:
        output.error(message)
    return code


def _outcome(
    store: Store,
    strategy: Strategy[Any],
    bound: int | None,
    stop: threading.Event,
    pool: WorkerPool,
    jobs: list[JobThread],
    display: ProgressDisplay,
    meter: RateMeter,
) -> tuple[int, str]:
    """Follow the search until it ends one way or another: the exit code and the
    sentence that says why."""
    while not stop.wait(REFRESH_SECONDS):
        failed = [job.name for job in jobs if job.failed.is_set()]
        if failed:
            return output.EXIT_FAILURE, (
                f"the {' and '.join(failed)} stopped on an error; see the log lines "
                "above, then run the same command again"
            )
        snapshot = take_snapshot(store, strategy, meter)
        if snapshot is None:
            continue
        display.show(snapshot)
        progress = snapshot.progress
        end = _earlier(progress.search.end_ordinal, bound)
        if end is not None and progress.first_unfinished >= end:
            return output.EXIT_OK, _completion_line(
                strategy, snapshot.completed_through, progress
            )
        dead = progress.blocks.get("DEAD", 0)
        if dead and _only_dead_left(progress, end):
            return output.EXIT_FAILURE, (
                f"{dead} block(s) are DEAD and nothing else is left to do; see "
                "`riemann blocks dead`, then `riemann blocks requeue --all`"
            )
        if not pool.replace_dead():
            return output.EXIT_FAILURE, (
                "worker processes keep dying; see the log lines above"
            )
    return output.EXIT_INTERRUPTED, (
        "stopped; run the same command again to resume where it stopped"
    )


def _earlier(first: int | None, second: int | None) -> int | None:
    ends = [end for end in (first, second) if end is not None]
    return min(ends) if ends else None


def _only_dead_left(progress: StrategyProgress, end: int | None) -> bool:
    if end is None or progress.search.next_ordinal < end:
        return False
    active = ("NOT_STARTED", "IN_PROGRESS", "FAILED")
    return not any(progress.blocks.get(state, 0) for state in active)


def _completion_line(
    strategy: Strategy[Any], through: str | None, progress: StrategyProgress
) -> str:
    best = (
        f"best above 5040: W = {progress.best_witness_value} at n = {progress.best_n}"
        if progress.best_n is not None
        else "no candidate above 5040"
    )
    return (
        f"{strategy.name}: every candidate through {through} checked "
        f"({progress.candidates_checked:,} candidates); {best}"
    )


def max_level(first: str, second: str) -> str:
    """The less verbose of two log level names."""
    return max(first, second, key=logging.getLevelName)
