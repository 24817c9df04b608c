"""`riemann generate`: keep claimable blocks queued (or enqueue once and exit)."""

import argparse
import threading

from riemann.cli import output
from riemann.cli.bounds import search_bounds
from riemann.cli.database import opened_store
from riemann.jobs.generator import Generator, GeneratorSettings
from riemann.jobs.stopping import install_stop_handlers
from riemann.strategies import strategy_named


def generator_settings(
    args: argparse.Namespace, poll_seconds: float = 5.0, settle_seconds: float = 0.5
) -> GeneratorSettings:
    start, end = search_bounds(args, strategy_named(args.strategy))
    return GeneratorSettings(
        start_ordinal=start,
        end_ordinal=end,
        store_threshold=args.store_threshold,
        block_size=args.block_size,
        target_seconds=args.target_seconds,
        min_queue_depth=getattr(args, "queue_depth", 4),
        poll_seconds=poll_seconds,
        settle_seconds=settle_seconds,
    )


def generate(args: argparse.Namespace) -> int:
    strategy = strategy_named(args.strategy)
    settings = generator_settings(args)
    stop = threading.Event()
    if not args.once:
        install_stop_handlers(stop)
    with opened_store(args, stop=None if args.once else stop) as store:
        generator = Generator(store, strategy, settings, stop)
        generator.prepare()
        if args.once:
            reached = generator.run_once(to_the_bound=settings.end_ordinal is not None)
            search = store.get_search(strategy.name)
            assert search is not None
            output.say(
                f"{strategy.name}: blocks enqueued up to "
                f"{strategy.format_index(strategy.index_at(search.next_ordinal))}"
                + (" (the whole bound)" if reached else "")
            )
            return output.EXIT_OK
        return generator.run()
