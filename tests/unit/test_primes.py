import pytest

from riemann.primes import first_primes, primes_up_to
from tests.naive import is_prime_by_trial_division


def test_primes_up_to_ten_thousand_are_exactly_the_trial_division_primes():
    expected = [n for n in range(10_001) if is_prime_by_trial_division(n)]
    assert primes_up_to(10_000) == expected


@pytest.mark.parametrize("limit", [-5, 0, 1])
def test_there_are_no_primes_below_two(limit):
    assert primes_up_to(limit) == []


@pytest.mark.parametrize("count", [0, 1, 2, 5, 6, 7, 100, 1000, 1001])
def test_first_primes_returns_that_many_consecutive_primes(count):
    primes = first_primes(count)
    assert len(primes) == count
    assert list(primes) == primes_up_to(primes[-1] if primes else 1)


def test_a_negative_prime_count_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        first_primes(-1)
