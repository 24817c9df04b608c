"""The ln ln table's bounds enclose ln ln x: the screens' error bound rests on it."""

import math
import random

import numpy as np
import pytest

from riemann.kernels.log_log import (
    LOWEST_X,
    gamma,
    log_log_lower_bound,
    log_log_table,
)
from tests.naive import log_log_mpmath

TABLE = log_log_table(2_000)


def bounds(x):
    estimate, gap = log_log_lower_bound(x, TABLE.coefficients, TABLE.base_index)
    error = TABLE.evaluation_error
    return estimate - error, estimate + gap + error


def _points(count=3_000, seed=11):
    chooser = random.Random(seed)
    points = [math.log(4), LOWEST_X, 2.0, 64.0, math.nextafter(64.0, 0), 1_000.0]
    points += [chooser.uniform(LOWEST_X, 2_000) for _ in range(count)]
    points += [math.exp(chooser.uniform(math.log(LOWEST_X), 3)) for _ in range(count)]
    return points


def test_every_point_lies_between_its_bounds():
    for x in _points():
        lower, upper = bounds(x)
        assert lower <= log_log_mpmath(x) <= upper, x


def test_the_bounds_are_tight():
    for x in _points(300):
        lower, upper = bounds(x)
        assert upper - lower < 1e-8


@pytest.mark.parametrize("x", [1.0, 1.3, TABLE.upper_x, 1e6])
def test_points_off_the_table_get_no_bound(x):
    estimate, gap = log_log_lower_bound(x, TABLE.coefficients, TABLE.base_index)
    assert (estimate, gap) == (-math.inf, math.inf)


def test_the_table_grows_with_what_it_must_cover():
    assert log_log_table(10.0).upper_x >= 2_048
    assert log_log_table(5_000.0).upper_x >= 5_000


def test_gamma_exceeds_k_unit_roundoffs():
    assert gamma(1) > 2.0**-53
    assert gamma(10) > 10 * 2.0**-53
    assert np.isclose(gamma(10), 10 * 2.0**-53, rtol=1e-10)
