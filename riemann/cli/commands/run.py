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
from multiprocessing.process import BaseProcess
from typing import Any

from riemann.cli import config, output
from riemann.cli.commands.generate import generator_settings
from riemann.cli.commands.process import child_log_setup, worker_count, worker_settings
from riemann.cli.progress import ProgressDisplay, RateMeter, take_snapshot
from riemann.jobs.generator import Generator
from riemann.jobs.janitor import Janitor
from riemann.jobs.retry import RetryPolicy
from riemann.jobs.stopping import install_stop_handlers
from riemann.jobs.worker import WorkerSettings, start_worker_processes
from riemann.store import Store, StrategyProgress
from riemann.strategies import Strategy, strategy_named

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
MAX_WORKER_RESTARTS = 5
JANITOR_INTERVAL_SECONDS = 5.0
STOP_GRACE_SECONDS = 30.0
LOCAL_POLL_SECONDS = 0.25
"""On one machine the database is close: the queue is topped up and polled often."""


def _job_thread(name: str, dsn: str, job: Callable[[Store], int]) -> threading.Thread:
    """A daemon thread running `job` with a store connection of its own."""

    def body() -> None:
        try:
            with Store(dsn) as store:
                job(store)
        except Exception:
            logger.exception("job thread failed", extra={"job": name})

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


class WorkerPool:
    """The worker processes of a run, replaced when one dies unexpectedly."""

    def __init__(
        self,
        count: int,
        dsn: str,
        settings: WorkerSettings,
        log_setup: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._log_setup = log_setup
        self.restarts = 0
        self.processes: list[BaseProcess] = start_worker_processes(
            count, dsn, settings, log_setup
        )

    def replace_dead(self) -> bool:
        """Start a replacement for each worker that died; False past the limit."""
        for index, process in enumerate(self.processes):
            if process.is_alive():
                continue
            logger.error(
                "worker process died",
                extra={"process": process.name, "exit_code": process.exitcode},
            )
            self.restarts += 1
            if self.restarts > MAX_WORKER_RESTARTS:
                return False
            self.processes[index] = start_worker_processes(
                1, self._dsn, self._settings, self._log_setup
            )[0]
        return True

    def stop(self) -> None:
        """Ask every worker to stop (each releases or finishes its block), and wait;
        a worker still there after the grace period is killed."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(STOP_GRACE_SECONDS)
            if process.is_alive():
                logger.error(
                    "worker did not stop, killing it", extra={"process": process.name}
                )
                process.kill()
                process.join()


def run(args: argparse.Namespace) -> int:
    strategy = strategy_named(args.strategy)
    settings = generator_settings(args, poll_seconds=LOCAL_POLL_SECONDS)
    workers = worker_count(args, default=os.cpu_count() or 1)
    draw_bars = not args.no_progress and sys.stderr.isatty()
    if draw_bars:
        # The bars say what INFO lines would; only problems are logged above them.
        args.log_level = max_level(args.log_level, "WARNING")
        output.configure_logging(args.log_level, args.log_format)
    worker_log_setup = child_log_setup(args.log_level, args.log_format)

    server = None
    dsn = config.configured_dsn(args.dsn, os.environ)
    if dsn is None:
        embedded = config.embedded_server(args.data_dir)
        started_here = not embedded.is_running()
        dsn = embedded.start()
        if started_here:
            server = embedded  # stopped after the run; one started by others stays up
        logger.info(
            "embedded database ready", extra={"data_dir": str(embedded.data_dir)}
        )

    stop = threading.Event()
    install_stop_handlers(stop)
    retry = RetryPolicy(
        max_attempts=args.max_attempts, base_delay_seconds=args.retry_delay
    )
    pool: WorkerPool | None = None
    try:
        with Store(dsn) as store:
            store.upgrade()
            Generator(store, strategy, settings, stop).prepare()
            _job_thread(
                "generator",
                dsn,
                lambda job_store: Generator(job_store, strategy, settings, stop).run(),
            )
            _job_thread(
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
            pool = WorkerPool(
                workers,
                dsn,
                worker_settings(
                    args, exit_when_idle=False, idle_poll_seconds=LOCAL_POLL_SECONDS
                ),
                worker_log_setup,
            )
            logger.info(
                "search running",
                extra={"strategy": strategy.name, "workers": workers},
            )
            return _watch(store, strategy, stop, pool, draw_bars)
    finally:
        stop.set()
        if pool is not None:
            pool.stop()
        if server is not None:
            server.stop()


def _watch(
    store: Store,
    strategy: Strategy[Any],
    stop: threading.Event,
    pool: WorkerPool,
    draw_bars: bool,
) -> int:
    """Show progress until the bound is done, the search is stuck, or a stop."""
    meter = RateMeter()
    with ProgressDisplay(strategy, draw_bars) as display:
        while not stop.wait(REFRESH_SECONDS):
            snapshot = take_snapshot(store, strategy, meter)
            if snapshot is None:
                continue
            display.show(snapshot)
            progress = snapshot.progress
            end = progress.search.end_ordinal
            if end is not None and progress.first_unfinished >= end:
                output.say(
                    _completion_line(strategy, snapshot.completed_through, progress)
                )
                return output.EXIT_OK
            dead = progress.blocks.get("DEAD", 0)
            if dead and _only_dead_left(progress):
                output.error(
                    f"{dead} block(s) are DEAD and nothing else is left to do; see "
                    "`riemann blocks dead`, then `riemann blocks requeue --all`"
                )
                return output.EXIT_FAILURE
            if not pool.replace_dead():
                output.error("worker processes keep dying; see the log lines above")
                return output.EXIT_FAILURE
    output.error("stopped; run the same command again to resume where it stopped")
    return output.EXIT_INTERRUPTED


def _only_dead_left(progress: StrategyProgress) -> bool:
    search = progress.search
    if not search.fully_enqueued:
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
