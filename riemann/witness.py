"""Witness values W(n) = sigma(n) / (n ln ln n) in exact-enough arithmetic.

Robin (J. Math. Pures Appl. 63, 1984) showed that the Riemann Hypothesis holds if and
only if W(n) < e^gamma for every n > 5040. Values here are computed from exact integers
with MPFR at `PRECISION` bits. MPFR rounds every operation correctly, so a value at a
fixed precision is the same bit for bit on every machine: two workers always take the
same decisions, and those decisions are what "exact" means in this project.
"""

from functools import lru_cache

import gmpy2
from gmpy2 import mpfr

PRECISION = 256
"""Bits of every witness computation: a relative error near 1e-77."""

ROBIN_BOUND = 5040
"""The largest n known to violate Robin's inequality; counterexamples lie above it."""


def precise() -> gmpy2.context:
    """A context manager for arithmetic at the project's precision."""
    return gmpy2.context(precision=PRECISION)


@lru_cache(maxsize=1)
def e_gamma() -> mpfr:
    """e^gamma = 1.7810724179901979852..., gamma being Euler's constant."""
    with precise():
        return gmpy2.exp(gmpy2.const_euler())


def to_mpfr(value: str | int | float) -> mpfr:
    """A number (decimal text, integer or float) at the project's precision."""
    with precise():
        return mpfr(value)


def witness_value(n: int, divisor_sum: int) -> mpfr:
    """W(n) = sigma(n) / (n ln ln n) for n >= 3, given sigma(n).

    ln ln 2 < 0 and ln ln n > 0 from n = 3 on, so W is defined and positive exactly
    for n >= 3.
    """
    if n < 3:
        raise ValueError(f"the witness value needs n >= 3, got n = {n}")
    with precise():
        n_exact = gmpy2.mpz(n)
        log_log_n = gmpy2.log(gmpy2.log(n_exact))
        return mpfr(gmpy2.mpz(divisor_sum)) / (mpfr(n_exact) * log_log_n)


def log_of(n: int) -> mpfr:
    """ln n at the project's precision, for n >= 1 of any size."""
    with precise():
        return gmpy2.log(gmpy2.mpz(n))


def integer_text(n: int) -> str:
    """n in decimal, of any length (str() refuses integers over 4,300 digits)."""
    return gmpy2.mpz(n).digits()


def decimal_text(value: mpfr, digits: int = 30) -> str:
    """`value` as plain decimal text with `digits` significant digits."""
    return format(value, f".{digits}g")


def violates_robin(n: int, value: mpfr) -> bool:
    """True when n > 5040 and W(n) >= e^gamma: a counterexample to Robin's criterion."""
    return n > ROBIN_BOUND and value >= e_gamma()
