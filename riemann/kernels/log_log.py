"""Certified bounds on f(x) = ln ln x from a table: no logarithm in a kernel's loop.

The witness value W(n) = sigma(n) / (n ln ln n) has ln W = ln(sigma(n)/n) - f(ln n),
so a kernel that tracks x = ln n needs f(x), a lower bound for an upper bound on W
and an upper bound for a lower bound on W.

The table cuts every binade [2^e, 2^(e+1)) into 2^BIN_BITS bins of width h = 2^(e -
BIN_BITS), so the bin of a float64 x is its exponent and top BIN_BITS mantissa bits,
read from its bit pattern, and theta = (x - x_j) / h is the rest of the mantissa,
exactly. Bin j holds the Taylor coefficients of f at its start x_j:

    F_j = f(x_j),  D1_j = f'(x_j) h,  D2_j = f''(x_j) h^2 / 2,  G_j >= f'''(x_j) h^3 / 6

with, by differentiation, f'(x) = 1 / (x ln x), f''(x) = -(1 + ln x) / (x ln x)^2,
f'''(x) = (2 ln^2 x + 3 ln x + 2) / (x ln x)^3 > 0 and
f''''(x) = -(6 ln^3 x + 11 ln^2 x + 12 ln x + 6) / (x ln x)^4 < 0 for x > 1.
Taylor's theorem with Lagrange's remainder gives, for x = x_j + theta h in bin j,
f(x) = F_j + theta (D1_j + theta D2_j) + f'''(xi) (theta h)^3 / 6 for some xi in
[x_j, x), and f''' is positive and decreasing, so

    P_j(theta) <= f(x) <= P_j(theta) + G_j,
    P_j(theta) = F_j + theta (D1_j + theta D2_j).

F_j, D1_j and D2_j are computed with MPFR at `WORKING_PRECISION` bits and rounded to
the nearest float64 (u = 2^-53). D1_j and D2_j, products and quotients, are within a
relative 2u of the exact coefficients: u from the final rounding, far less from the
working precision. F_j = ln(ln x_j) is within u |F_j| + 2^-62 of the exact value: the
relative error 2^-64 of the inner logarithm becomes an absolute error in the outer
one. Near x = e, where ln ln x changes sign, F_j is tiny and that absolute term is
not small relative to it. Horner's rule in float64 is within gamma_4 (|F_j| + |D1_j|
+ |D2_j|) of P_j(theta) for theta in [0, 1) (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., 2002, eq. (5.3)), where gamma_k = k u / (1 - k u).
The evaluated ĝ therefore obeys

    ĝ - E <= f(x) <= ĝ + G_j + E,   E = gamma_6 max_j (|F_j| + |D1_j| + |D2_j|),

E being `evaluation_error`, about 1.4e-15. The absolute term is covered: where
|F_j| >= 2^-9 it is at most u |F_j|, the half of a 2u allowance F_j does not use;
where |F_j| < 2^-9 (x within about 0.005 of e) the bin's coefficients sum to under
0.01, while the maximum that E takes is above 2, so E exceeds the bin's own gamma_6
sum by far more than 2^-62. With 2^BIN_BITS = 1,024 bins a binade, G_j
is below 6e-9 at x = 1.375 (n = 4), below 2e-10 from x = 16 (n near 10^7) on, and the
table up to x = 2^11 (levels beyond 300) is 10,880 bins of four floats, built once per
process in about 0.2 s.
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import gmpy2
import numpy as np
import numpy.typing as npt

from riemann.kernels.jit import compiled

BIN_BITS = 10
"""Bins per binade, as a power of two: 1,024 bins between 2^e and 2^(e+1)."""

MANTISSA_BITS = 52
BIN_SHIFT = MANTISSA_BITS - BIN_BITS
THETA_MASK = (1 << BIN_SHIFT) - 1
THETA_SCALE = 2.0**-BIN_SHIFT

LOWEST_X = 1.375
"""Start of the first bin: below ln 4 = 1.386, the log of the smallest candidate."""

WORKING_PRECISION = 64
"""Bits of the MPFR arithmetic the coefficients are computed with."""

UNIT_ROUNDOFF = 2.0**-53


def gamma(k: int) -> float:
    """gamma_k = k u / (1 - k u), Higham's constant for k roundings, rounded up."""
    value = k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)
    return math.nextafter(value, math.inf)


def _bin_index(x: float) -> int:
    return int(np.float64(x).view(np.int64)) >> BIN_SHIFT


@dataclass(frozen=True)
class LogLogTable:
    """Taylor coefficients of ln ln x on bins, from `LOWEST_X` to `upper_x`.

    `coefficients[j]` is (F_j, D1_j, D2_j, G_j) for the bin whose index, the float's
    bits shifted right by `BIN_SHIFT`, is `base_index + j`.
    """

    coefficients: npt.NDArray[np.float64]
    base_index: int
    upper_x: float
    evaluation_error: float


@lru_cache(maxsize=4)
def _table_up_to_binade(top_exponent: int) -> LogLogTable:
    base_index = _bin_index(LOWEST_X)
    end_index = _bin_index(2.0**top_exponent)
    rows = []
    with gmpy2.context(precision=WORKING_PRECISION):
        for index in range(base_index, end_index):
            x_j = gmpy2.mpfr(float(np.int64(index << BIN_SHIFT).view(np.float64)))
            h = gmpy2.mpfr(2.0 ** (math.frexp(float(x_j))[1] - 1 - BIN_BITS))
            log_x = gmpy2.log(x_j)
            x_log_x = x_j * log_x
            value = gmpy2.log(log_x)
            first = h / x_log_x
            second = -(1 + log_x) * h * h / (2 * x_log_x * x_log_x)
            third = (
                (2 * log_x * log_x + 3 * log_x + 2)
                * h
                * h
                * h
                / (6 * x_log_x * x_log_x * x_log_x)
            )
            rows.append((float(value), float(first), float(second), float(third)))
    coefficients = np.array(rows, dtype=np.float64)
    # float() rounds to nearest; a relative nudge of 2^-40 makes G_j an upper bound.
    coefficients[:, 3] *= 1.0 + 2.0**-40
    largest_sum = float(np.max(np.sum(np.abs(coefficients[:, :3]), axis=1)))
    return LogLogTable(
        coefficients=coefficients,
        base_index=base_index,
        upper_x=2.0**top_exponent,
        evaluation_error=gamma(6) * largest_sum,
    )


def log_log_table(largest_x: float) -> LogLogTable:
    """A table covering [`LOWEST_X`, at least `largest_x`), shared by the process."""
    top_exponent = max(math.frexp(largest_x)[1], 11)
    return _table_up_to_binade(top_exponent)


def _log_log_lower_bound(
    x: float, coefficients: npt.NDArray[np.float64], base_index: int
) -> tuple[float, float]:
    """(ĝ, G_j) for x: ĝ - E <= ln ln x <= ĝ + G_j + E; (-inf, inf) off the table."""
    bits = np.float64(x).view(np.int64)
    j = (bits >> BIN_SHIFT) - base_index
    if j < 0 or j >= coefficients.shape[0]:
        return -math.inf, math.inf
    theta = (bits & THETA_MASK) * THETA_SCALE
    row = coefficients[j]
    return row[0] + theta * (row[1] + theta * row[2]), row[3]


log_log_lower_bound = compiled(_log_log_lower_bound)
"""Compiled `_log_log_lower_bound`, for use inside other kernels and in tests."""
