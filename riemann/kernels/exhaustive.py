"""The exhaustive kernel: a segmented divisor-sum sieve with a float witness screen.

Divisor sums. For a segment [lo, hi) of n, every prime p <= sqrt(hi - 1) visits its
multiples; sigma is multiplicative, so sigma(n) is the product of sigma(p^e) =
1 + p + ... + p^e over the prime powers p^e exactly dividing n, and what is left of n
after the small primes is 1 or one prime r > sqrt(hi - 1), contributing r + 1. The
cofactor n / p of each multiple is known from its position, and a counter of it
modulo p finds the multiples of p^2 with no division; only those (one in p) divide
further. Everything is exact int64 arithmetic: by Robin's unconditional bound
sigma(n)/n < e^gamma ln ln n + 0.6483 / ln ln n for n >= 3 (Robin, J. Math. Pures
Appl. 63, 1984), sigma(n) < 2^56 for n <= 2^53, and every partial product, prime
power and divisor sum along the way is at most sigma(n). The kernel takes n up to
`LARGEST_N` = 2^53 - 1, where n is also exact in float64; the strategy uses the exact
path above it.

Screen. W(n) = sigma(n) / (n ln ln n). The range is cut into chunks short enough that
ln ln n barely moves across one (one n a chunk below 256, then 2^-8 of n up to 4,096
numbers, then 2^-16 of n from 2^28 on: ln ln n changes by a relative 2e-4 at most
across a chunk, and by 3e-7 from 2^28 on); for each chunk the wrapper computes with
MPFR a float lower bound low_c and upper bound high_c of ln ln n on it (ln ln n
increases). Then for n in chunk c,

    (sigma/n) / high_c <= W(n) <= (sigma/n) / low_c.

The float quotient r̂ = fl(fl(sigma) / n) is within 2u of sigma/n (u = 2^-53: one
rounding converting sigma, one dividing; n is exact), the products and quotients below
add at most three more roundings, and the exact path's 256-bit witness value is within
a relative 2^-240 of W(n) (`riemann.witness`). All of that is far below the relative
slack s = 2^-40 applied to every comparison, so:
- n is flagged when r̂ >= fl(w low_c) (1 - s), w = min(T, e^gamma, best lower bound):
  otherwise W(n) < w, so n is no record (W > T), no counterexample and strictly worse
  than an earlier flagged candidate;
- a flagged n sets the best lower bound to at least fl(r̂ / high_c) (1 - s) <= W(n).
Every candidate not flagged is only counted.
"""

import math
from collections.abc import Iterator
from functools import lru_cache

import gmpy2
import numpy as np
import numpy.typing as npt

from riemann.kernels.jit import compiled
from riemann.primes import primes_up_to
from riemann.witness import e_gamma, to_mpfr

LARGEST_N = 2**53 - 1
"""The largest n the kernel takes: n exact in float64, sigma(n) far inside int64."""

SEGMENT = 1 << 15
"""Numbers sieved at once: the segment's arrays stay in the core's cache."""

CHUNK_SHIFT = 8
"""A chunk starting at b holds max(1, min(b >> 8, max(2^12, b >> 16))) numbers."""

SMALL_CHUNK_LIMIT = 1 << 12

LARGE_CHUNK_SHIFT = 16

SLACK = 2.0**-40
"""Relative slack s of every screen comparison, far above the rounding it covers."""

_NEXT_START, _BEST = 0, 1


@lru_cache(maxsize=4)
def _sieving_primes(limit: int) -> npt.NDArray[np.int64]:
    return np.array(primes_up_to(limit), dtype=np.int64)


def sieving_primes(largest_n: int) -> npt.NDArray[np.int64]:
    """Every prime up to sqrt(largest_n) at least, shared by nearby ranges."""
    limit = math.isqrt(largest_n)
    return _sieving_primes(1 << max(limit, 1).bit_length())


def chunk_bounds(
    start: int, end: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chunk starts in [start, end) and floats low_c <= ln ln n <= high_c on each."""
    starts = [start]
    while starts[-1] < end:
        b = starts[-1]
        size = min(b >> CHUNK_SHIFT, max(SMALL_CHUNK_LIMIT, b >> LARGE_CHUNK_SHIFT))
        starts.append(min(end, b + max(1, size)))
    with gmpy2.context(precision=64):
        log_logs = [gmpy2.log(gmpy2.log(gmpy2.mpz(b))) for b in starts]
    lower = np.array(
        [math.nextafter(float(v), -math.inf) for v in log_logs[:-1]], dtype=np.float64
    )
    # The last number of chunk c is starts[c + 1] - 1 < starts[c + 1].
    upper = np.array(
        [math.nextafter(float(v), math.inf) for v in log_logs[1:]], dtype=np.float64
    )
    return np.array(starts, dtype=np.int64), lower, upper


def _sieve_segment(
    lo: int,
    hi: int,
    primes: npt.NDArray[np.int64],
    divisor_sums: npt.NDArray[np.int64],
    smooth_parts: npt.NDArray[np.int64],
) -> None:
    """sigma(n) for n in [lo, hi) into divisor_sums[: hi - lo]."""
    size = hi - lo
    for i in range(size):
        divisor_sums[i] = 1
        smooth_parts[i] = 1
    for p in primes:
        if p * p >= hi:
            break
        first = (lo + p - 1) // p * p
        cofactor = first // p
        residue = cofactor % p
        for n in range(first, hi, p):
            i = n - lo
            if residue != 0:
                divisor_sums[i] *= p + 1
                smooth_parts[i] *= p
            else:
                power = p * p
                term = 1 + p + power
                rest = cofactor // p
                while rest % p == 0:
                    rest //= p
                    power *= p
                    term += power
                divisor_sums[i] *= term
                smooth_parts[i] *= power
            cofactor += 1
            residue += 1
            if residue == p:
                residue = 0
    for i in range(size):
        n = lo + i
        if smooth_parts[i] != n:
            # Exact: both are integers below 2^53 and the quotient is an integer.
            large_prime = np.int64(np.float64(n) / np.float64(smooth_parts[i]))
            divisor_sums[i] *= large_prime + 1


sieve_segment_kernel = compiled(_sieve_segment)


def _scan_range(
    state: npt.NDArray[np.float64],
    end: int,
    limit: float,
    primes: npt.NDArray[np.int64],
    chunk_starts: npt.NDArray[np.int64],
    chunk_lower: npt.NDArray[np.float64],
    chunk_upper: npt.NDArray[np.float64],
    divisor_sums: npt.NDArray[np.int64],
    smooth_parts: npt.NDArray[np.int64],
    found_n: npt.NDArray[np.int64],
    found_divisor_sum: npt.NDArray[np.int64],
) -> int:
    """Sieve and screen from state[0] on; the number of flagged n written to found.

    `state` is (next n, best lower bound); `limit` is min(T, e^gamma) rounded down.
    It returns once fewer than a segment's worth of slots is left in `found`.
    """
    n_start = int(state[_NEXT_START])
    best = state[_BEST]
    flagged = 0
    capacity = found_n.shape[0]
    chunk = np.searchsorted(chunk_starts, n_start, side="right") - 1
    floor_factor = 1.0 - SLACK
    cut = min(limit, best) * chunk_lower[chunk] * floor_factor
    lo = n_start
    while lo < end and capacity - flagged >= SEGMENT:
        hi = min(end, lo + SEGMENT)
        sieve_segment_kernel(lo, hi, primes, divisor_sums, smooth_parts)
        for i in range(hi - lo):
            n = lo + i
            if n >= chunk_starts[chunk + 1]:
                chunk += 1
                cut = min(limit, best) * chunk_lower[chunk] * floor_factor
            ratio = np.float64(divisor_sums[i]) / np.float64(n)
            if ratio < cut:
                continue
            found_n[flagged] = n
            found_divisor_sum[flagged] = divisor_sums[i]
            flagged += 1
            lower = ratio / chunk_upper[chunk] * floor_factor
            if lower > best:
                best = lower
                cut = min(limit, best) * chunk_lower[chunk] * floor_factor
        lo = hi
    state[_NEXT_START] = lo
    state[_BEST] = best
    return flagged


scan_range_kernel = compiled(_scan_range)


def limit_of(threshold: str) -> float:
    """min(T, e^gamma) as a float no larger; -inf when T <= 0 makes all records."""
    value = to_mpfr(threshold)
    if math.isnan(float(value)) or value > e_gamma():
        value = e_gamma()
    if value <= 0:
        return -math.inf
    return math.nextafter(float(value), -math.inf)


def screen_range(start: int, end: int, threshold: str) -> Iterator[tuple[int, int]]:
    """(n, sigma(n)) for every n in [start, end) the float screen cannot rule out.

    Every n that exceeds `threshold`, reaches e^gamma or is (or ties with) the best
    of the range is among them; see the module docstring.
    """
    if start < 3:
        raise ValueError(f"the witness value needs n >= 3, got a range from {start}")
    if end - 1 > LARGEST_N:
        raise ValueError(f"the kernel takes n up to {LARGEST_N}, got up to {end - 1}")
    if end <= start:
        return
    primes = sieving_primes(end - 1)
    chunk_starts, chunk_lower, chunk_upper = chunk_bounds(start, end)
    state = np.array([float(start), -math.inf])
    divisor_sums = np.zeros(SEGMENT, dtype=np.int64)
    smooth_parts = np.zeros(SEGMENT, dtype=np.int64)
    found_n = np.zeros(4 * SEGMENT, dtype=np.int64)
    found_divisor_sum = np.zeros(4 * SEGMENT, dtype=np.int64)
    limit = limit_of(threshold)
    while state[_NEXT_START] < end:
        flagged = scan_range_kernel(
            state,
            end,
            limit,
            primes,
            chunk_starts,
            chunk_lower,
            chunk_upper,
            divisor_sums,
            smooth_parts,
            found_n,
            found_divisor_sum,
        )
        for f in range(flagged):
            yield int(found_n[f]), int(found_divisor_sum[f])
