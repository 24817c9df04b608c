"""The janitor: fails blocks whose worker vanished, so another worker retries them."""

import logging
import threading

from riemann.jobs.connection import StoppedError, with_reconnect
from riemann.jobs.retry import RetryPolicy
from riemann.store import ExpiredLease, Store

logger = logging.getLogger(__name__)


class Janitor:
    def __init__(
        self,
        store: Store,
        stop: threading.Event,
        stale_after_seconds: float = 30.0,
        interval_seconds: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.stop = stop
        self.stale_after_seconds = stale_after_seconds
        self.interval_seconds = interval_seconds
        self.retry = retry or RetryPolicy()

    def run_once(self) -> list[ExpiredLease]:
        """Fail every block whose lease has been expired for `stale_after_seconds`."""
        expired = self.store.expire_leases(self.stale_after_seconds, self.retry.decide)
        for lease in expired:
            logger.warning(
                "lease expired",
                extra={
                    "block_id": lease.block_id,
                    "strategy": lease.strategy,
                    "worker": lease.worker_id,
                    "attempt": lease.attempts,
                    "new_state": lease.new_state,
                },
            )
        return expired

    def run(self) -> int:
        try:
            while not self.stop.is_set():
                with_reconnect(self.run_once, self.stop)
                self.stop.wait(self.interval_seconds)
        except StoppedError:
            pass
        return 0
