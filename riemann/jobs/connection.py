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
    operation: Callable[[], T],
    stop: threading.Event,
    backoff: Backoff | None = None,
    wait_out_refusals: bool = True,
) -> T:
    """Run `operation`, retrying with backoff while the database is unreachable.

    The store reconnects on its next transaction, so retrying the operation is all
    it takes. A running job also waits out a refused login (a password being
    rotated, say), logging each try; a job that has not yet started, with
    `wait_out_refusals` False, raises it at once, because a configuration mistake
    is not an outage and should end in one clear error instead of a silent wait.
    Raises StoppedError if `stop` is set during a wait.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            outcome = operation()
        except DatabaseUnavailableError as error:
            if error.permanent and not wait_out_refusals:
                raise
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
