"""Keeping a job going while the database is away."""

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from riemann.jobs.retry import Backoff
from riemann.store import DatabaseUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoppedError(Exception):
    """The job was asked to stop while it waited for the database."""


def with_reconnect(
    operation: Callable[[], T], stop: threading.Event, backoff: Backoff | None = None
) -> T:
    """Run `operation`, retrying with backoff while the database is unreachable.

    The store reconnects on its next transaction, so retrying the operation is all
    it takes. Raises StoppedError if `stop` is set during a wait.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            outcome = operation()
        except DatabaseUnavailableError as error:
            delay = backoff.next_delay()
            logger.warning(
                "database unavailable, retrying",
                extra={"error": str(error), "retry_in_seconds": delay},
            )
            if stop.wait(delay):
                raise StoppedError from None
        else:
            backoff.reset()
            return outcome
