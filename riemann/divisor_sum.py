"""Exact divisor sums sigma(n), for single integers, exponent vectors and ranges."""

import math
from collections.abc import Sequence

import gmpy2

from riemann.primes import first_primes, primes_up_to


def prime_power_divisor_sum(p: int, exponent: int) -> int:
    """sigma(p^a) = 1 + p + ... + p^a = (p^(a+1) - 1) / (p - 1)."""
    return int((p ** (exponent + 1) - 1) // (p - 1))


def factorize(n: int) -> dict[int, int]:
    """The prime factorisation of n >= 1 as {prime: exponent}, by trial division.

    Trial division stops as soon as the unfactored part is prime (gmpy2's strong
    probable-prime test, exact for the sizes trial division can reach). That part
    changes only when a factor is divided out, so it is tested once at the start
    and then only after each prime found, not at every trial divisor.
    """
    if n < 1:
        raise ValueError(f"only positive integers have a factorisation, got {n}")
    factors: dict[int, int] = {}
    remaining = n
    candidate = 2
    unfactored_is_prime = gmpy2.is_prime(remaining)
    while not unfactored_is_prime and candidate * candidate <= remaining:
        if remaining % candidate == 0:
            while remaining % candidate == 0:
                factors[candidate] = factors.get(candidate, 0) + 1
                remaining //= candidate
            unfactored_is_prime = gmpy2.is_prime(remaining)
        candidate += 1 if candidate == 2 else 2
    if remaining > 1:
        factors[remaining] = factors.get(remaining, 0) + 1
    return factors


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
