"""Exact divisor sums sigma(n), for single integers, exponent vectors and ranges."""

import functools
import itertools
import math
from collections.abc import Sequence

import gmpy2

from riemann.primes import first_primes, primes_up_to


def prime_power_divisor_sum(p: int, exponent: int) -> int:
    """sigma(p^a) = 1 + p + ... + p^a = (p^(a+1) - 1) / (p - 1)."""
    return int((p ** (exponent + 1) - 1) // (p - 1))


TRIAL_DIVISION_BOUND = 10_000
"""Primes below this are divided out by trial; Pollard's rho splits what is left."""


def factorize(n: int) -> dict[int, int]:
    """The prime factorisation of n >= 1 as {prime: exponent}.

    Small primes by trial division, then Pollard's rho in Brent's form on what is
    left, which takes about sqrt(p) steps to find a prime factor p: here an n whose
    second largest prime factor has 12 digits factors in under a second, 14 digits
    in a few seconds. A number with two prime factors of 30 digits would take
    years; no strategy here needs one, as both know their candidates' factors.
    Parts are taken as prime by gmpy2's is_prime (a Baillie-PSW test, exact below
    2^64 and without any known counterexample above).
    """
    if n < 1:
        raise ValueError(f"only positive integers have a factorisation, got {n}")
    factors: dict[int, int] = {}
    remaining = gmpy2.mpz(n)
    for p in _small_primes():
        if p * p > remaining:
            break
        while remaining % p == 0:
            factors[p] = factors.get(p, 0) + 1
            remaining //= p
    pending = [remaining] if remaining > 1 else []
    while pending:
        part = pending.pop()
        if gmpy2.is_prime(part):
            factors[int(part)] = factors.get(int(part), 0) + 1
            continue
        factor = _proper_factor(part)
        pending += [factor, part // factor]
    return dict(sorted(factors.items()))


@functools.cache
def _small_primes() -> tuple[int, ...]:
    return tuple(primes_up_to(TRIAL_DIVISION_BOUND))


def _proper_factor(n: gmpy2.mpz) -> gmpy2.mpz:
    """A factor 1 < d < n of a composite n with no prime factor below the trial
    bound: the root of a perfect power, else one found by Pollard's rho."""
    for exponent in range(2, n.bit_length() + 1):
        root, exact = gmpy2.iroot(n, exponent)
        if exact:
            return gmpy2.mpz(root)
        if root < TRIAL_DIVISION_BOUND:
            break
    for increment in itertools.count(1):
        factor = _pollard_brent(n, increment)
        if factor is not None:
            return factor
    raise AssertionError("unreachable")  # pragma: no cover


def _pollard_brent(n: gmpy2.mpz, c: int, batch: int = 128) -> gmpy2.mpz | None:
    """A proper factor of n from the walk x -> x^2 + c mod n, or None if the walk
    closed its cycle without one (the caller tries another c).

    R. P. Brent, "An improved Monte Carlo factorization algorithm", BIT 20 (1980)
    176-184: cycle detection by doubling, with the differences multiplied together
    `batch` at a time so that one gcd serves many steps.
    """
    y, r, product, found = gmpy2.mpz(2), 1, gmpy2.mpz(1), gmpy2.mpz(1)
    x = saved_y = y
    while found == 1:
        x = y
        for _ in range(r):
            y = (y * y + c) % n
        steps = 0
        while steps < r and found == 1:
            saved_y = y
            for _ in range(min(batch, r - steps)):
                y = (y * y + c) % n
                product = product * abs(x - y) % n
            found = gmpy2.gcd(product, n)
            steps += batch
        r *= 2
    if found == n:
        # The batch overshot: redo its steps one gcd at a time.
        found = gmpy2.mpz(1)
        while found == 1:
            saved_y = (saved_y * saved_y + c) % n
            found = gmpy2.gcd(abs(x - saved_y), n)
    return None if found == n else found


def divisor_sum(n: int) -> int:
    """sigma(n), the sum of the positive divisors of n >= 1."""
    return math.prod(prime_power_divisor_sum(p, a) for p, a in factorize(n).items())


def number_from_exponents(exponents: Sequence[int]) -> int:
    """n = 2^a1 3^a2 5^a3 ... for the exponent vector (a1, a2, a3, ...)."""
    primes = first_primes(len(exponents))
    n = gmpy2.mpz(1)
    for p, a in zip(primes, exponents, strict=True):
        n *= gmpy2.mpz(p) ** a
    return int(n)


def divisor_sum_of_exponents(exponents: Sequence[int]) -> int:
    """sigma(2^a1 3^a2 5^a3 ...), multiplicative over the prime powers."""
    primes = first_primes(len(exponents))
    total = gmpy2.mpz(1)
    for p, a in zip(primes, exponents, strict=True):
        total *= (gmpy2.mpz(p) ** (a + 1) - 1) // (p - 1)
    return int(total)


def divisor_sums_of_range(start: int, stop: int) -> list[int]:
    """[sigma(n) for n in range(start, stop)], by a segmented sieve over the range.

    Each prime p <= sqrt(stop) visits its multiples in the range and divides its full
    power out; what is left of n afterwards is 1 or a single prime above sqrt(stop).
    """
    if start < 1:
        raise ValueError(f"a divisor-sum range starts at 1 or above, got {start}")
    if stop <= start:
        return []
    unfactored = list(range(start, stop))
    sums = [1] * (stop - start)
    for p in primes_up_to(math.isqrt(stop - 1)):
        first_multiple = -(-start // p) * p
        for n in range(first_multiple, stop, p):
            i = n - start
            exponent = 0
            while unfactored[i] % p == 0:
                unfactored[i] //= p
                exponent += 1
            sums[i] *= prime_power_divisor_sum(p, exponent)
    for i, rest in enumerate(unfactored):
        if rest > 1:
            sums[i] *= rest + 1
    return sums
