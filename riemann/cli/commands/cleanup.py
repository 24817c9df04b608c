"""`riemann cleanup`: the janitor, failing blocks whose lease expired."""

import argparse
import threading

from riemann.cli import output
from riemann.cli.database import opened_store
from riemann.jobs.janitor import Janitor
from riemann.jobs.retry import RetryPolicy
from riemann.jobs.stopping import install_stop_handlers


def cleanup(args: argparse.Namespace) -> int:
    stop = threading.Event()
    retry = RetryPolicy(
        max_attempts=args.max_attempts, base_delay_seconds=args.retry_delay
    )
    if not args.once:
        install_stop_handlers(stop)
    with opened_store(args, stop=None if args.once else stop) as store:
        janitor = Janitor(store, stop, args.stale_after, args.interval, retry)
        if args.once:
            expired = janitor.run_once()
            output.say(f"{len(expired)} expired lease(s) failed")
            return output.EXIT_OK
        return janitor.run()
