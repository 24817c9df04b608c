"""Slow, obviously correct reference implementations the fast code is tested against."""

import math

import mpmath


def divisor_sums_by_enumeration(limit: int) -> list[int]:
    """[sigma(n) for n in 0..limit]: every d adds itself to each of its multiples."""
    sums = [0] * (limit + 1)
    for d in range(1, limit + 1):
        for multiple in range(d, limit + 1, d):
            sums[multiple] += d
    return sums


def is_prime_by_trial_division(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def partitions_descending(
    total: int, largest: int | None = None
) -> list[tuple[int, ...]]:
    """Every partition of `total` into parts <= `largest`, first part largest first."""
    if largest is None:
        largest = total
    if total == 0:
        return [()]
    found = []
    for first in range(min(total, largest), 0, -1):
        for rest in partitions_descending(total - first, first):
            found.append((first, *rest))
    return found


def witness_value_mpmath(n: int, divisor_sum: int, digits: int = 60) -> mpmath.mpf:
    """W(n) = sigma(n) / (n ln ln n) with mpmath at `digits` decimal digits."""
    with mpmath.workdps(digits):
        return mpmath.mpf(divisor_sum) / (mpmath.mpf(n) * mpmath.log(mpmath.log(n)))


def number_from_exponents(exponents: tuple[int, ...]) -> int:
    primes = [
        p for p in range(2, 10 * len(exponents) + 10) if is_prime_by_trial_division(p)
    ]
    return math.prod(p**a for p, a in zip(primes, exponents, strict=False))


def divisor_sum_of_exponents(exponents: tuple[int, ...]) -> int:
    primes = [
        p for p in range(2, 10 * len(exponents) + 10) if is_prime_by_trial_division(p)
    ]
    return math.prod(
        sum(p**k for k in range(a + 1)) for p, a in zip(primes, exponents, strict=False)
    )


def log_log_mpmath(x: float, digits: int = 40) -> mpmath.mpf:
    """ln ln x with mpmath at `digits` decimal digits, for x > 1."""
    with mpmath.workdps(digits):
        return mpmath.log(mpmath.log(mpmath.mpf(x)))


def superabundant_block_by_brute_force(
    levels: range, threshold: float
) -> tuple[int, tuple[int, ...], list[tuple[int, ...]]]:
    """(count, exponents of the best, exponents above `threshold`) over whole levels,
    every candidate's witness value computed with mpmath at 60 digits."""
    best_value, best_n, best = None, 0, ()
    above = []
    count = 0
    for level in levels:
        for exponents in partitions_descending(level):
            count += 1
            n = number_from_exponents(exponents)
            value = witness_value_mpmath(n, divisor_sum_of_exponents(exponents))
            if (
                best_value is None
                or value > best_value
                or (value == best_value and n < best_n)
            ):
                best_value, best_n, best = value, n, exponents
            if value > threshold:
                above.append(exponents)
    return count, best, above
