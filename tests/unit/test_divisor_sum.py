import math

import pytest

from riemann.divisor_sum import (
    divisor_sum,
    divisor_sum_of_exponents,
    divisor_sums_of_range,
    factorize,
    number_from_exponents,
)
from tests.naive import divisor_sums_by_enumeration

LIMIT = 100_000


@pytest.fixture(scope="module")
def expected_sums():
    return divisor_sums_by_enumeration(LIMIT)


def test_divisor_sum_matches_divisor_enumeration_up_to_ten_to_the_five(expected_sums):
    mismatches = [n for n in range(1, LIMIT + 1) if divisor_sum(n) != expected_sums[n]]
    assert mismatches == []


def test_range_sieve_matches_divisor_enumeration_up_to_ten_to_the_five(expected_sums):
    assert divisor_sums_of_range(1, LIMIT + 1) == expected_sums[1:]


@pytest.mark.parametrize(("start", "stop"), [(2, 3), (97, 98), (99_990, 100_001)])
def test_range_sieve_handles_short_ranges_anywhere(expected_sums, start, stop):
    assert divisor_sums_of_range(start, stop) == expected_sums[start:stop]


def test_range_sieve_near_ten_to_the_twelve_agrees_with_factorisation():
    start = 10**12 - 50
    assert divisor_sums_of_range(start, start + 100) == [
        divisor_sum(n) for n in range(start, start + 100)
    ]


def test_an_empty_range_has_no_sums():
    assert divisor_sums_of_range(10, 10) == []


@pytest.mark.parametrize("n", [0, -7])
def test_non_positive_numbers_have_no_divisor_sum(n):
    with pytest.raises(ValueError, match="positive"):
        divisor_sum(n)


def test_factorisation_multiplies_back_to_n():
    for n in [1, 2, 720, 5040, 2**61 - 1, 3**20 * 7, 999_999_000_001 * 2]:
        assert math.prod(p**a for p, a in factorize(n).items()) == n


@pytest.mark.parametrize(
    "factors",
    [
        {1_000_000_000_039: 1, 1_000_000_000_000_037: 1},  # far past trial division
        {2_147_483_647: 3, 2_305_843_009_213_693_951: 1},  # a cube of a large prime
        {3: 5, 1_000_000_007: 2},
        {10_007: 2, 10_009: 1},  # just above the trial division bound
        {2: 64},
        {2**89 - 1: 1},  # a 27-digit prime
    ],
)
def test_numbers_with_large_prime_factors_are_factorised(factors):
    n = math.prod(p**a for p, a in factors.items())
    assert factorize(n) == factors
    assert divisor_sum(n) == math.prod(
        (p ** (a + 1) - 1) // (p - 1) for p, a in factors.items()
    )


def test_exponent_vectors_give_the_number_and_its_divisor_sum():
    exponents = (4, 2, 1, 1)  # 2^4 3^2 5 7 = 5040
    assert number_from_exponents(exponents) == 5040
    assert divisor_sum_of_exponents(exponents) == divisor_sum(5040)
