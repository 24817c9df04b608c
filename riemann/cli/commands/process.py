"""`riemann process`: claim and compute blocks, in one or several processes."""

import argparse
import functools
import os
import threading

from riemann.cli import output
from riemann.cli.database import check_database, database_dsn
from riemann.cli.errors import UsageError
from riemann.jobs.retry import RetryPolicy
from riemann.jobs.stopping import install_stop_handlers
from riemann.jobs.worker import WorkerSettings, run_worker, run_worker_processes
from riemann.store import Store


def worker_count(args: argparse.Namespace, default: int) -> int:
    if args.workers is not None:
        return int(args.workers)
    configured = os.environ.get("RIEMANN_WORKERS", "").strip()
    if not configured:
        return default
    if not configured.isdigit() or int(configured) < 1:
        raise UsageError(
            f"RIEMANN_WORKERS must be a whole number >= 1, got {configured!r}"
        )
    return int(configured)


def worker_settings(
    args: argparse.Namespace,
    exit_when_idle: bool,
    idle_poll_seconds: float = 2.0,
    strategy: str | None = None,
) -> WorkerSettings:
    """The workers' settings; `strategy` limits them to that strategy's blocks."""
    return WorkerSettings(
        lease_seconds=args.lease_seconds,
        idle_poll_seconds=idle_poll_seconds,
        exit_when_idle=exit_when_idle,
        exact=args.exact,
        strategy=strategy,
        retry=RetryPolicy(
            max_attempts=args.max_attempts, base_delay_seconds=args.retry_delay
        ),
    )


def child_log_setup(level: str, log_format: str) -> functools.partial[None]:
    """How a spawned worker process sets up its logging, as a picklable call."""
    return functools.partial(output.configure_logging, level, log_format)


def process(args: argparse.Namespace) -> int:
    count = worker_count(args, default=1)
    settings = worker_settings(
        args, exit_when_idle=args.exit_when_idle, strategy=args.strategy
    )
    stop = threading.Event()
    install_stop_handlers(stop)
    with database_dsn(args) as dsn:
        with Store(dsn) as store:
            check_database(store, check_schema=True, stop=stop)
        if count == 1:
            return run_worker(dsn, settings)
        return run_worker_processes(
            count, dsn, settings, child_log_setup(args.log_level, args.log_format)
        )
