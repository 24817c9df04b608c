"""Retry policy for failed blocks and backoff for lost connections, as pure values."""

from dataclasses import dataclass

FAILED = "FAILED"
DEAD = "DEAD"


@dataclass(frozen=True)
class RetryPolicy:
    """What becomes of a block whose attempt failed.

    The n-th failed attempt makes it claimable again after base * 2^(n-1) seconds,
    capped, until `max_attempts` attempts have failed: then it is DEAD, kept for a
    person to inspect and requeue.
    """

    max_attempts: int = 5
    base_delay_seconds: float = 10.0
    max_delay_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"max attempts must be at least 1, got {self.max_attempts}"
            )
        if self.base_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError("retry delays must not be negative")

    def decide(self, attempts: int) -> tuple[str, float]:
        """(new state, seconds until claimable) after `attempts` attempts failed."""
        if attempts >= self.max_attempts:
            return DEAD, 0.0
        delay = self.base_delay_seconds * 2.0 ** max(attempts - 1, 0)
        return FAILED, min(delay, self.max_delay_seconds)


@dataclass
class Backoff:
    """Exponentially growing waits between attempts to reach the database."""

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    _failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.initial_seconds * 2.0**self._failures, self.max_seconds)
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0
