"""Search strategies, looked up by name.

Each module of this package that defines a module-level `STRATEGY` adds that strategy:
a new strategy is a new module, and nothing else changes.
"""

import importlib
import pkgutil
from functools import cache
from typing import Any

from riemann.strategies.base import (
    BlockResult,
    InvalidIndexError,
    SearchBlock,
    Strategy,
    WitnessRecord,
)

__all__ = [
    "BlockResult",
    "InvalidIndexError",
    "SearchBlock",
    "Strategy",
    "UnknownStrategyError",
    "WitnessRecord",
    "strategy_named",
    "strategy_names",
]


class UnknownStrategyError(ValueError):
    """A strategy name that no module of this package defines."""


@cache
def _strategies() -> dict[str, Strategy[Any]]:
    found: dict[str, Strategy[Any]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        strategy = getattr(module, "STRATEGY", None)
        if isinstance(strategy, Strategy):
            found[strategy.name] = strategy
    return found


def strategy_names() -> list[str]:
    """The names of every known strategy, sorted."""
    return sorted(_strategies())


def strategy_named(name: str) -> Strategy[Any]:
    """The strategy called `name`; UnknownStrategyError lists the known ones."""
    try:
        return _strategies()[name]
    except KeyError:
        known = ", ".join(strategy_names())
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known strategies: {known}"
        ) from None
