"""The superabundant kernel: walks partitions in search order, screens witness values.

A candidate n = p_1^a_1 ... p_k^a_k (a_1 >= ... >= a_k >= 1, m parts of 2 or more,
then q = k - m ones) has

    lambda = ln n = sum_i a_i ln p_i,
    s = ln(sigma(n)/n) = sum_i ln(sigma(p_i^a_i) / p_i^a_i),
    ln W(n) = s - f(lambda),  f(x) = ln ln x,

since sigma is multiplicative. The kernel walks the partitions of a block in the order
of `riemann.partitions` (reverse lexicographic; the next partition lowers the last part
above 1 and regroups what follows, algorithm ZS1 of Zoghbi and Stojmenovic, Int. J.
Comput. Math. 70, 1998, constant amortised time) and keeps, for each position i <= m,
the prefix sums P_i = fl(P_(i-1) + A[i, a_i]) and S_i of the tables

    A[i, a] = RN(a ln p_i),  B[i, a] = RN(ln(sigma(p_i^a) / p_i^a))    (a >= 2),
    C[k] = RN(sum_(i<k) ln p_i),  D[k] = RN(sum_(i<k) ln(1 + 1/p_i))   (the ones),

all computed with MPFR and rounded to nearest float64 (RN). A step changes only the
positions from the lowered part on, and those prefix sums are recomputed from the
unchanged ones before them, so P_m is always exactly the left-to-right float sum of m
table entries, never a running chain of additions and subtractions. Then

    λ̂ = fl(P_m + fl(C[k] - C[m])),  ŝ = fl(S_m + fl(D[k] - D[m])),
    d̂ = fl(ŝ - ĝ),  ĝ from the table of `riemann.kernels.log_log` at λ̂.

Error bound (u = 2^-53, gamma_j = j u / (1 - j u), L the block's last level):

1. Each entry is within u of its exact value. Recursive summation of m entries is
   within gamma_(m-1) of their sum (Higham, Accuracy and Stability of Numerical
   Algorithms, 2nd ed., 2002, eq. (4.4)); with the entries' own rounding, P_m is
   within gamma_m P of the exact P = sum A (all terms are positive). The difference of
   the ones is within 3u(1 + u) C[k] of the exact one, and the last addition adds u of
   the total. With Lambda = L ln p_L >= lambda and >= C[k] (every exponent sum is at
   most L and every prime at most p_L), |λ̂ - lambda| <= gamma_(L+5) Lambda = δ_λ.
   Likewise |ŝ - s| <= gamma_(L+5) Sigma = δ_s, Sigma = sum_(i<L) ln(p_i / (p_i - 1)),
   which bounds every sum of B and D terms since sigma(p^a)/p^a < p/(p - 1).
2. By the mean value theorem, |f(lambda) - f(λ̂)| <= δ_λ f'(x_lo), f'(x) = 1/(x ln x)
   decreasing, x_lo below every λ and λ̂ of the block (its first level times ln 2,
   less δ_λ).
3. The table gives ĝ - E <= f(λ̂) <= ĝ + G_j + E (`riemann.kernels.log_log`).
4. fl(ŝ - ĝ) is within u (|ŝ| + |ĝ|) <= u (Sigma + M_f) of ŝ - ĝ, M_f bounding |f|.
5. The exact path's 256-bit MPFR witness value differs from the real W(n) by a
   relative error below 2^-240 (`riemann.witness`), so by less than eta = 2^-200 in
   logarithm.

So with mu = 2 (δ_s + δ_λ f'(x_lo) + E + 2u (Sigma + M_f) + eta), the factor 2 covering
the rounding of mu itself, every candidate satisfies

    d̂ - mu - G_j <= ln W_mpfr(n) <= d̂ + mu.

For level 100, mu is about 1.1e-13: W is known to a relative 1e-13, and to 3e-10
when the Taylor gap G_j counts.

Decisions. A candidate is flagged for exact settling when d̂ >= min(c_T, c_best):
- c_T = RD(ln min(T, e^gamma) - mu), T the store threshold: below it, W < T, so the
  candidate is no record (records are W > T) and no counterexample;
- c_best = max over flagged candidates c of fl(d̂_c - 2 (2 mu + G_(j_c))): below it,
  ln W(n) <= d̂ + mu < d̂_c - mu - G_(j_c) <= ln W(c), so n is strictly worse than an
  already flagged candidate, hence neither the block's best nor tied with it. The
  extra 2 mu + G covers the rounding of that subtraction.
A candidate whose λ̂ falls outside the table is always flagged. Every candidate not
flagged is only counted, and the flagged ones decide the block exactly.

`log_witness_estimates` returns d̂, G_j and mu for a run of candidates, computed by the
same compiled steps as the scan, so tests can hold the bound above against MPFR.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpfr

from riemann.kernels.jit import compiled
from riemann.kernels.log_log import (
    UNIT_ROUNDOFF,
    LogLogTable,
    gamma,
    log_log_lower_bound,
    log_log_table,
)
from riemann.partitions import Partition, partition_count, unrank
from riemann.primes import first_primes
from riemann.witness import e_gamma, precise, to_mpfr

FOUND_CAPACITY = 4096
"""Flagged candidates a kernel call returns at most before the wrapper resumes it."""

TABLE_PRECISION = 96
"""Bits of the MPFR arithmetic the per-prime tables are computed with."""

MPFR_LOG_DISCREPANCY = 2.0**-200
"""eta: bound on |ln W_mpfr - ln W| for the exact path's 256-bit witness values."""

# State vector slots shared by the kernel and its wrapper.
_LEVEL, _LONG_PARTS, _ONES, _ADVANCE = range(4)
# Screen vector slots.
_THRESHOLD_CUT, _BEST_CUT, _MARGIN = range(3)


@dataclass(frozen=True)
class PrimeTables:
    """The per-prime tables A, B, C, D for candidates up to `last_level`."""

    last_level: int
    row_start: npt.NDArray[np.int64]
    log_n_terms: npt.NDArray[np.float64]
    log_ratio_terms: npt.NDArray[np.float64]
    ones_log_n: npt.NDArray[np.float64]
    ones_log_ratio: npt.NDArray[np.float64]
    largest_log_n: float
    """Lambda = L ln p_L, above ln n of every candidate and every C[k]."""
    ratio_sum_bound: float
    """Sigma = sum ln(p/(p-1)) over the first L primes, above every s and D[k]."""


@lru_cache(maxsize=8)
def prime_tables(last_level: int) -> PrimeTables:
    """A, B (rows i < L/2 + 1, exponents a <= L/(i+1)), C and D for levels <= L.

    A part at position i of a partition of L is at most L / (i + 1), as the parts
    before it are no smaller, which keeps the rows short.
    """
    primes = first_primes(last_level)
    rows = last_level // 2 + 1
    row_start = np.zeros(rows + 1, dtype=np.int64)
    for i in range(rows):
        row_start[i + 1] = row_start[i] + last_level // (i + 1) + 1
    log_n_terms = np.zeros(int(row_start[-1]), dtype=np.float64)
    log_ratio_terms = np.zeros(int(row_start[-1]), dtype=np.float64)
    ones_log_n = np.zeros(last_level + 1, dtype=np.float64)
    ones_log_ratio = np.zeros(last_level + 1, dtype=np.float64)
    with gmpy2.context(precision=TABLE_PRECISION):
        for i in range(rows):
            prime = gmpy2.mpz(primes[i])
            log_p = gmpy2.log(prime)
            for a in range(last_level // (i + 1) + 1):
                power = prime**a
                ratio = gmpy2.mpfr(power * prime - 1) / (power * (prime - 1))
                log_n_terms[row_start[i] + a] = float(a * log_p)
                log_ratio_terms[row_start[i] + a] = float(gmpy2.log(ratio))
        log_n_sum = gmpy2.mpfr(0)
        ratio_sum = gmpy2.mpfr(0)
        ratio_bound = gmpy2.mpfr(0)
        for k, p in enumerate(primes, start=1):
            log_n_sum += gmpy2.log(p)
            ratio_sum += gmpy2.log(1 + 1 / gmpy2.mpfr(p))
            ratio_bound += gmpy2.log(gmpy2.mpfr(p) / (p - 1))
            ones_log_n[k] = float(log_n_sum)
            ones_log_ratio[k] = float(ratio_sum)
        largest_log_n = float(last_level * gmpy2.log(primes[-1])) * (1 + 2.0**-40)
    return PrimeTables(
        last_level=last_level,
        row_start=row_start,
        log_n_terms=log_n_terms,
        log_ratio_terms=log_ratio_terms,
        ones_log_n=ones_log_n,
        ones_log_ratio=ones_log_ratio,
        largest_log_n=largest_log_n,
        ratio_sum_bound=float(ratio_bound) * (1 + 2.0**-40),
    )


def screen_margin(first_level: int, tables: PrimeTables, log_log: LogLogTable) -> float:
    """mu for a block from `first_level` on: |ln W - d̂| <= mu (+ G_j below).

    Each term is named after the step of the module docstring's error bound.
    """
    rounding = gamma(tables.last_level + 5)
    log_n_error = rounding * tables.largest_log_n
    ratio_error = rounding * tables.ratio_sum_bound
    lowest_log_n = first_level * math.log(2) * (1 - 2.0**-30) - log_n_error
    slope_bound = 1 / (lowest_log_n * math.log(lowest_log_n)) * (1 + 2.0**-30)
    log_log_bound = max(abs(math.log(math.log(1.375))), math.log(math.log(2048)))
    log_log_bound = max(log_log_bound, math.log(math.log(log_log.upper_x))) + 1
    difference_error = 2 * UNIT_ROUNDOFF * (tables.ratio_sum_bound + log_log_bound)
    return 2 * (
        ratio_error
        + log_n_error * slope_bound
        + log_log.evaluation_error
        + difference_error
        + MPFR_LOG_DISCREPANCY
    )


def float_below(value: mpfr) -> float:
    """A float64 no larger than `value`: one step below the nearest float.

    The nearest float is within half a unit in the last place of `value`, so the
    next float down is below it (a 256-bit `value` is itself within 2^-255 of the
    quantity it stands for, far less than that step).
    """
    return math.nextafter(float(value), -math.inf)


def threshold_cut(threshold: str, margin: float) -> float:
    """c_T = RD(ln min(T, e^gamma) - mu); -inf when T <= 0 makes everything a record."""
    value = to_mpfr(threshold)
    if math.isnan(float(value)) or value > e_gamma():
        value = e_gamma()
    if value <= 0:
        return -math.inf
    with precise():
        return float_below(gmpy2.log(value) - margin)


def _next_partition(
    level: int,
    m: int,
    q: int,
    parts: npt.NDArray[np.int64],
    prefix_log_n: npt.NDArray[np.float64],
    prefix_log_ratio: npt.NDArray[np.float64],
    row_start: npt.NDArray[np.int64],
    log_n_terms: npt.NDArray[np.float64],
    log_ratio_terms: npt.NDArray[np.float64],
) -> tuple[int, int, int]:
    """(level, m, q) of the partition after parts[:m] and q ones, in search order.

    Rewrites `parts` and the prefix sums from the lowered part on; those before it
    are unchanged (ZS1, see the module docstring).
    """
    if m == 0:
        # (1, ..., 1) is the last partition of its level; (L + 1) comes next.
        level += 1
        parts[0] = level
        prefix_log_n[1] = log_n_terms[level]
        prefix_log_ratio[1] = log_ratio_terms[level]
        return level, 1, 0
    if parts[m - 1] == 2:
        return level, m - 1, q + 2
    lowered = parts[m - 1] - 1
    to_place = q + 1
    position = m - 1
    whole_parts = to_place // lowered
    remainder = to_place - whole_parts * lowered
    for _ in range(whole_parts + 1):
        parts[position] = lowered
        term = row_start[position] + lowered
        prefix_log_n[position + 1] = prefix_log_n[position] + log_n_terms[term]
        prefix_log_ratio[position + 1] = (
            prefix_log_ratio[position] + log_ratio_terms[term]
        )
        position += 1
    if remainder >= 2:
        parts[position] = remainder
        term = row_start[position] + remainder
        prefix_log_n[position + 1] = prefix_log_n[position] + log_n_terms[term]
        prefix_log_ratio[position + 1] = (
            prefix_log_ratio[position] + log_ratio_terms[term]
        )
        return level, position + 1, 0
    return level, position, remainder


next_partition_step = compiled(_next_partition, inline=True)


def _log_witness_estimate(
    m: int,
    q: int,
    prefix_log_n: npt.NDArray[np.float64],
    prefix_log_ratio: npt.NDArray[np.float64],
    ones_log_n: npt.NDArray[np.float64],
    ones_log_ratio: npt.NDArray[np.float64],
    log_log_coefficients: npt.NDArray[np.float64],
    log_log_base: int,
) -> tuple[float, float]:
    """(d̂, G_j) for the partition parts[:m] and q ones whose prefix sums are given:
    d̂ - mu - G_j <= ln W(n) <= d̂ + mu (module docstring); (inf, inf) off the table."""
    k = m + q
    log_n = prefix_log_n[m] + (ones_log_n[k] - ones_log_n[m])
    log_ratio = prefix_log_ratio[m] + (ones_log_ratio[k] - ones_log_ratio[m])
    log_log_n, gap = log_log_lower_bound(log_n, log_log_coefficients, log_log_base)
    return log_ratio - log_log_n, gap


log_witness_estimate = compiled(_log_witness_estimate, inline=True)


def _best_cut_below(estimate: float, gap: float, margin: float) -> float:
    """fl(d̂_c - 2 (2 mu + G_c)): a candidate whose d̂ is below it is worse than c.

    From ln W(n) <= d̂ + mu < d̂_c - mu - G_c <= ln W(c); the doubled terms cover
    the rounding of this subtraction (module docstring, "Decisions").
    """
    return estimate - 2.0 * (2.0 * margin + gap)


best_cut_below = compiled(_best_cut_below, inline=True)


def _scan_partitions(
    state: npt.NDArray[np.int64],
    parts: npt.NDArray[np.int64],
    prefix_log_n: npt.NDArray[np.float64],
    prefix_log_ratio: npt.NDArray[np.float64],
    row_start: npt.NDArray[np.int64],
    log_n_terms: npt.NDArray[np.float64],
    log_ratio_terms: npt.NDArray[np.float64],
    ones_log_n: npt.NDArray[np.float64],
    ones_log_ratio: npt.NDArray[np.float64],
    log_log_coefficients: npt.NDArray[np.float64],
    log_log_base: int,
    screen: npt.NDArray[np.float64],
    count: int,
    found_level: npt.NDArray[np.int64],
    found_ones: npt.NDArray[np.int64],
    found_long_parts: npt.NDArray[np.int64],
    found_parts: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Scan up to `count` partitions; (scanned, flagged). Updates state and screen.

    `state` is (level, m, q, advance): the current partition is parts[:m] followed by
    q ones, and advance says whether it was already scanned. `screen` is (c_T,
    c_best, mu); the kernel raises c_best. It stops early when the found arrays are
    full, and a second call resumes where the first stopped.
    """
    level = state[_LEVEL]
    m = state[_LONG_PARTS]
    q = state[_ONES]
    advance = state[_ADVANCE] != 0
    cut_threshold = screen[_THRESHOLD_CUT]
    cut_best = screen[_BEST_CUT]
    margin = screen[_MARGIN]
    cut = min(cut_threshold, cut_best)
    capacity = found_level.shape[0]

    for i in range(m):
        term = row_start[i] + parts[i]
        prefix_log_n[i + 1] = prefix_log_n[i] + log_n_terms[term]
        prefix_log_ratio[i + 1] = prefix_log_ratio[i] + log_ratio_terms[term]

    scanned = 0
    flagged = 0
    while scanned < count and flagged < capacity:
        if advance:
            level, m, q = next_partition_step(
                level,
                m,
                q,
                parts,
                prefix_log_n,
                prefix_log_ratio,
                row_start,
                log_n_terms,
                log_ratio_terms,
            )
        advance = True
        scanned += 1

        estimate, gap = log_witness_estimate(
            m,
            q,
            prefix_log_n,
            prefix_log_ratio,
            ones_log_n,
            ones_log_ratio,
            log_log_coefficients,
            log_log_base,
        )
        if estimate < cut:
            continue
        # Off the table the bound is (-inf, inf): flagged, but no best to learn from.
        lower = best_cut_below(estimate, gap, margin)
        if lower > cut_best:
            cut_best = lower
            cut = min(cut_threshold, cut_best)

        found_level[flagged] = level
        found_ones[flagged] = q
        found_long_parts[flagged] = m
        for i in range(m):
            found_parts[flagged, i] = parts[i]
        flagged += 1

    state[_LEVEL] = level
    state[_LONG_PARTS] = m
    state[_ONES] = q
    state[_ADVANCE] = 1 if advance else 0
    screen[_BEST_CUT] = cut_best
    return scanned, flagged


scan_partitions_kernel = compiled(_scan_partitions)


def _estimate_partitions(
    state: npt.NDArray[np.int64],
    parts: npt.NDArray[np.int64],
    prefix_log_n: npt.NDArray[np.float64],
    prefix_log_ratio: npt.NDArray[np.float64],
    row_start: npt.NDArray[np.int64],
    log_n_terms: npt.NDArray[np.float64],
    log_ratio_terms: npt.NDArray[np.float64],
    ones_log_n: npt.NDArray[np.float64],
    ones_log_ratio: npt.NDArray[np.float64],
    log_log_coefficients: npt.NDArray[np.float64],
    log_log_base: int,
    estimates: npt.NDArray[np.float64],
    gaps: npt.NDArray[np.float64],
) -> None:
    """(d̂, G_j) of each partition from the fresh `state` on, as `_scan_partitions`
    computes them, into `estimates` and `gaps` (one partition per entry)."""
    level = state[_LEVEL]
    m = state[_LONG_PARTS]
    q = state[_ONES]
    for i in range(m):
        term = row_start[i] + parts[i]
        prefix_log_n[i + 1] = prefix_log_n[i] + log_n_terms[term]
        prefix_log_ratio[i + 1] = prefix_log_ratio[i] + log_ratio_terms[term]
    for position in range(estimates.shape[0]):
        if position > 0:
            level, m, q = next_partition_step(
                level,
                m,
                q,
                parts,
                prefix_log_n,
                prefix_log_ratio,
                row_start,
                log_n_terms,
                log_ratio_terms,
            )
        estimates[position], gaps[position] = log_witness_estimate(
            m,
            q,
            prefix_log_n,
            prefix_log_ratio,
            ones_log_n,
            ones_log_ratio,
            log_log_coefficients,
            log_log_base,
        )


estimate_partitions_kernel = compiled(_estimate_partitions)


def last_level_of(level: int, index_in_level: int, count: int) -> int:
    """The level of the last of `count` partitions from (level, index_in_level)."""
    remaining = count - (partition_count(level) - index_in_level)
    while remaining > 0:
        level += 1
        remaining -= partition_count(level)
    return level


@dataclass
class _ScanStart:
    """What a kernel call needs to walk `count` partitions from a given one."""

    tables: PrimeTables
    log_log: LogLogTable
    margin: float
    state: npt.NDArray[np.int64]
    parts: npt.NDArray[np.int64]
    prefix_log_n: npt.NDArray[np.float64]
    prefix_log_ratio: npt.NDArray[np.float64]


def _scan_start(level: int, index_in_level: int, count: int) -> _ScanStart:
    if level < 2:
        raise ValueError(f"the kernel scans levels 2 and above, got level {level}")
    if count < 1:
        raise ValueError(f"a scan covers at least one partition, got {count}")
    first = unrank(level, index_in_level)
    last_level = last_level_of(level, index_in_level, count)
    tables = prime_tables(last_level)
    log_log = log_log_table(tables.largest_log_n)

    long_parts = [part for part in first if part >= 2]
    width = last_level // 2 + 2
    parts = np.zeros(width, dtype=np.int64)
    parts[: len(long_parts)] = long_parts
    state = np.array(
        [level, len(long_parts), len(first) - len(long_parts), 0], dtype=np.int64
    )
    return _ScanStart(
        tables=tables,
        log_log=log_log,
        margin=screen_margin(level, tables, log_log),
        state=state,
        parts=parts,
        prefix_log_n=np.zeros(width + 1, dtype=np.float64),
        prefix_log_ratio=np.zeros(width + 1, dtype=np.float64),
    )


@dataclass(frozen=True)
class WitnessEstimates:
    """The kernel's float view of consecutive candidates, with its error bound.

    For the i-th candidate, d̂ = `estimates[i]` and G_j = `taylor_gaps[i]` satisfy
    d̂ - mu - G_j <= ln W_mpfr(n) <= d̂ + mu, mu = `margin` (module docstring).
    """

    estimates: npt.NDArray[np.float64]
    taylor_gaps: npt.NDArray[np.float64]
    margin: float


def log_witness_estimates(
    level: int, index_in_level: int, count: int
) -> WitnessEstimates:
    """d̂ and G_j for `count` partitions from (level, index_in_level), computed by the
    same compiled steps, tables and margin as a scan of exactly these partitions."""
    start = _scan_start(level, index_in_level, count)
    estimates = np.zeros(count, dtype=np.float64)
    gaps = np.zeros(count, dtype=np.float64)
    estimate_partitions_kernel(
        start.state,
        start.parts,
        start.prefix_log_n,
        start.prefix_log_ratio,
        start.tables.row_start,
        start.tables.log_n_terms,
        start.tables.log_ratio_terms,
        start.tables.ones_log_n,
        start.tables.ones_log_ratio,
        start.log_log.coefficients,
        start.log_log.base_index,
        estimates,
        gaps,
    )
    return WitnessEstimates(estimates, gaps, start.margin)


def screen_partitions(
    level: int, index_in_level: int, count: int, threshold: str
) -> Iterator[tuple[int, Partition]]:
    """The partitions, among `count` from (level, index_in_level) in the search order,
    whose witness value the float screen cannot rule out: (level, exponents) each.

    Every candidate that exceeds `threshold`, reaches e^gamma or is (or ties with)
    the best of these `count` partitions is among them; see the module docstring.
    """
    start = _scan_start(level, index_in_level, count)
    tables = start.tables
    screen = np.array([threshold_cut(threshold, start.margin), -math.inf, start.margin])
    width = start.parts.shape[0]
    found_level = np.zeros(FOUND_CAPACITY, dtype=np.int64)
    found_ones = np.zeros(FOUND_CAPACITY, dtype=np.int64)
    found_long_parts = np.zeros(FOUND_CAPACITY, dtype=np.int64)
    found_parts = np.zeros((FOUND_CAPACITY, width), dtype=np.int64)

    remaining = count
    while remaining > 0:
        scanned, flagged = scan_partitions_kernel(
            start.state,
            start.parts,
            start.prefix_log_n,
            start.prefix_log_ratio,
            tables.row_start,
            tables.log_n_terms,
            tables.log_ratio_terms,
            tables.ones_log_n,
            tables.ones_log_ratio,
            start.log_log.coefficients,
            start.log_log.base_index,
            screen,
            remaining,
            found_level,
            found_ones,
            found_long_parts,
            found_parts,
        )
        remaining -= scanned
        for f in range(flagged):
            long = found_parts[f, : found_long_parts[f]].tolist()
            yield int(found_level[f]), (*long, *(1,) * int(found_ones[f]))
