"""Pure decisions of the jobs: block sizes, retries, backoff."""

import pytest

from riemann.jobs.generator import (
    GROWTH_LIMIT,
    MIN_BLOCK_SIZE,
    choose_block_size,
    tail_block_size,
)
from riemann.jobs.retry import DEAD, FAILED, Backoff, RetryPolicy


def test_without_a_throughput_the_block_size_stays():
    assert choose_block_size(None, 60, 12_345) == 12_345
    assert choose_block_size(0.0, 60, 12_345) == 12_345


def test_a_block_is_sized_to_take_the_target_time():
    assert choose_block_size(1_000_000, 2.0, 1_000_000) == 2_000_000


def test_block_sizes_move_by_a_bounded_factor_per_step():
    assert choose_block_size(10**9, 60, 10_000) == 10_000 * GROWTH_LIMIT
    assert choose_block_size(1.0, 60, 10**8) == 10**8 // GROWTH_LIMIT


def test_blocks_never_shrink_below_the_minimum():
    assert choose_block_size(1.0, 1.0, MIN_BLOCK_SIZE) == MIN_BLOCK_SIZE


def test_far_from_the_bound_blocks_keep_their_size():
    assert tail_block_size(10**6, remaining=10**9, workers=2) == 10**6


def test_near_the_bound_no_block_takes_more_than_a_share_of_what_is_left():
    assert tail_block_size(10**6, remaining=2_000_001, workers=2) == 500_001
    sizes = []
    remaining = 10**7
    while remaining > 0:
        size = min(tail_block_size(4 * 10**6, remaining, workers=2), remaining)
        sizes.append(size)
        remaining -= size
    assert sizes[0] == 2_500_000
    assert sizes == sorted(sizes, reverse=True)
    assert all(size >= MIN_BLOCK_SIZE for size in sizes[:-1])


def test_the_retry_policy_doubles_the_delay_until_the_block_is_dead():
    policy = RetryPolicy(max_attempts=4, base_delay_seconds=10, max_delay_seconds=25)
    assert [policy.decide(attempts) for attempts in range(1, 5)] == [
        (FAILED, 10),
        (FAILED, 20),
        (FAILED, 25),
        (DEAD, 0),
    ]


@pytest.mark.parametrize(
    "settings",
    [{"max_attempts": 0}, {"base_delay_seconds": -1}, {"max_delay_seconds": -5}],
)
def test_a_retry_policy_refuses_impossible_settings(settings):
    with pytest.raises(ValueError, match=r"attempts|delays"):
        RetryPolicy(**settings)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(initial_seconds=1, max_seconds=5)
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next_delay() == 1
