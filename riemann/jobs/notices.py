"""Waiting for the database to say something changed, for a stop, or for a timeout."""

import threading
import time

from riemann.store import Store

STOP_CHECK_SECONDS = 0.2
"""How long a wait may go without looking at the stop request."""


def wait_for_notice(store: Store, seconds: float, stop: threading.Event) -> bool:
    """Wait until a notice comes on a channel `store` listens on (True), `stop` is
    set or `seconds` have passed (False).

    The store's wait is cut into short slices, because a signal handler that sets
    `stop` does not interrupt a wait on the database's socket.
    """
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if store.wait_for_notice(min(remaining, STOP_CHECK_SECONDS)):
            return True
    return False
