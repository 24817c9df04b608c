"""The bounds of a search, from the strategy-specific command-line options."""

import argparse
from typing import Any

from riemann.cli.errors import UsageError
from riemann.strategies import Strategy
from riemann.strategies.exhaustive import ExhaustiveStrategy
from riemann.strategies.superabundant import SuperabundantStrategy


def search_bounds(
    args: argparse.Namespace, strategy: Strategy[Any]
) -> tuple[int, int | None]:
    """(start ordinal, end ordinal or None) of the search the options describe."""
    if isinstance(strategy, SuperabundantStrategy):
        if args.start is not None or args.until is not None:
            raise UsageError(
                "--start and --until belong to the exhaustive strategy; "
                "the superabundant one is bounded with --until-level"
            )
        start = strategy.ordinal(strategy.parse_index(strategy.default_start_text))
        if args.until_level is None:
            return start, None
        return start, strategy.end_after_level(args.until_level)
    if isinstance(strategy, ExhaustiveStrategy):
        if args.until_level is not None:
            raise UsageError(
                "--until-level belongs to the superabundant strategy; "
                "the exhaustive one is bounded with --start and --until"
            )
        start_text = (
            strategy.default_start_text if args.start is None else str(args.start)
        )
        start = strategy.ordinal(strategy.parse_index(start_text))
        if args.until is None:
            return start, None
        if args.until < start:
            raise UsageError(f"--until {args.until} comes before the start {start}")
        return start, strategy.end_after(args.until)
    if args.until_level is not None or args.start is not None or args.until is not None:
        raise UsageError(f"the {strategy.name} strategy takes no bounds")
    return strategy.ordinal(strategy.parse_index(strategy.default_start_text)), None
