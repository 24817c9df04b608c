"""The primes, computed by the sieve of Eratosthenes (never a hand-typed table)."""

import math
from functools import lru_cache


def primes_up_to(limit: int) -> list[int]:
    """Every prime p <= limit, in increasing order."""
    if limit < 2:
        return []
    is_composite = bytearray(limit + 1)
    for p in range(2, math.isqrt(limit) + 1):
        if not is_composite[p]:
            is_composite[p * p :: p] = b"\x01" * len(range(p * p, limit + 1, p))
    return [p for p in range(2, limit + 1) if not is_composite[p]]


def prime_count_upper_bound(count: int) -> int:
    """A number at least as large as the count-th prime.

    For k >= 6 the k-th prime is below k (ln k + ln ln k) (Rosser, 1941).
    """
    if count < 6:
        return 13
    return math.ceil(count * (math.log(count) + math.log(math.log(count))))


@lru_cache(maxsize=8)
def _first_primes(count: int) -> tuple[int, ...]:
    return tuple(primes_up_to(prime_count_upper_bound(count))[:count])


def first_primes(count: int) -> tuple[int, ...]:
    """The first `count` primes: 2, 3, 5, ..."""
    if count < 0:
        raise ValueError(f"a prime count must not be negative, got {count}")
    # Round up to a power of two so callers asking for nearby counts share one sieve.
    cached_count = 1 << max(count - 1, 1).bit_length()
    return _first_primes(cached_count)[:count]
