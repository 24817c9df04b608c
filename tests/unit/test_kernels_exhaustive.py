"""The exhaustive kernel gives every block the exact path's result, bit for bit."""

import pytest

import riemann.kernels.exhaustive as exhaustive_kernel
from riemann.kernels.exhaustive import (
    LARGEST_N,
    SEGMENT,
    chunk_bounds,
    screen_range,
)
from riemann.strategies import strategy_named
from riemann.witness import e_gamma, witness_value
from tests.naive import divisor_sums_by_enumeration, log_log_mpmath

EXHAUSTIVE = strategy_named("exhaustive")

KNOWN_VIOLATIONS = [
    3, 4, 5, 6, 8, 9, 10, 12, 16, 18, 20, 24, 30, 36, 48, 60, 72, 84, 120, 180,
    240, 360, 720, 840, 2520, 5040,
]  # fmt: skip


def assert_kernel_matches_exact(start, size, threshold="1.767"):
    block = EXHAUSTIVE.block_between(start, start + size)
    exact = EXHAUSTIVE.process_exact(block, threshold)
    fast = EXHAUSTIVE.process(block, threshold)
    assert fast.candidates_checked == exact.candidates_checked == size
    assert fast.best == exact.best
    assert fast.records == exact.records
    assert fast.digest == exact.digest
    return exact


@pytest.mark.parametrize("threshold", ["1.767", "1.5", "1.3"])
@pytest.mark.parametrize(
    ("start", "size"),
    [
        (10**6 - 5_000, 10_000),
        (10**9 - 3_000, 6_000),
        (10**9 + 123_457, 2_000),
        (10**12 - 2_000, 4_000),
        (10**12 + 77_777, 1_000),
    ],
)
def test_blocks_near_powers_of_ten_match_the_exact_path(start, size, threshold):
    assert_kernel_matches_exact(start, size, threshold)


def test_a_block_of_several_segments_matches():
    assert_kernel_matches_exact(10**6 - SEGMENT, 2 * SEGMENT + 1_001, "1.6")


def test_the_known_violations_are_found_from_three_on():
    exact = assert_kernel_matches_exact(3, 20_000, "1.78")
    assert [r.n for r in exact.records if r.witness_value >= e_gamma()] == (
        KNOWN_VIOLATIONS
    )


def test_the_sieve_gives_every_divisor_sum_exactly():
    # Threshold 0 flags every n: more than one kernel call's worth of segments.
    limit = 5 * SEGMENT
    sums = divisor_sums_by_enumeration(limit)
    flagged = list(screen_range(3, limit + 1, "0"))
    assert flagged == [(n, sums[n]) for n in range(3, limit + 1)]


@pytest.mark.parametrize("threshold", ["0", "-5"])
def test_a_threshold_below_every_value_records_every_candidate(threshold):
    exact = assert_kernel_matches_exact(10**9, 3_000, threshold)
    assert len(exact.records) == 3_000


def _values(start, size):
    return sorted(
        witness_value(n, s) for n, s in screen_range(start, start + size, "0")
    )


@pytest.mark.parametrize("position", [0, 0.5, 0.99, 1.0])
def test_a_threshold_exactly_on_a_candidate_excludes_it(position):
    values = _values(10**9, 2_000)
    value = values[min(len(values) - 1, int(position * len(values)))]
    exact = assert_kernel_matches_exact(10**9, 2_000, format(value, ".90g"))
    assert all(r.witness_value > value for r in exact.records)


@pytest.mark.parametrize("position", [0, 0.5, 0.99, 1.0])
def test_a_threshold_at_a_candidates_float_rounding_matches(position):
    values = _values(10**9, 2_000)
    value = values[min(len(values) - 1, int(position * len(values)))]
    assert_kernel_matches_exact(10**9, 2_000, repr(float(value)))


@pytest.mark.parametrize("threshold", ["2", "inf", "nan"])
def test_a_threshold_above_every_value_records_none_but_keeps_the_best(threshold):
    exact = assert_kernel_matches_exact(5_041, 3_000, threshold)
    assert exact.records == ()
    assert exact.best is not None


def test_chunk_bounds_enclose_ln_ln_n():
    starts, lower, upper = chunk_bounds(3, 2_000_000)
    assert starts[0] == 3
    assert starts[-1] == 2_000_000
    for c in range(0, len(lower), 97):
        last = int(starts[c + 1]) - 1
        assert lower[c] <= log_log_mpmath(int(starts[c]))
        assert log_log_mpmath(last) <= upper[c]


def test_blocks_above_the_kernels_range_take_the_exact_path(monkeypatch):
    def refuse(*args):
        raise AssertionError("the kernel must not run above its range")

    monkeypatch.setattr(exhaustive_kernel, "LARGEST_N", 10**6)
    monkeypatch.setattr(exhaustive_kernel, "screen_range", refuse)
    block = EXHAUSTIVE.block_between(10**6 - 10, 10**6 + 10)
    assert EXHAUSTIVE.process(block, "1.5") == EXHAUSTIVE.process_exact(block, "1.5")


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [(2, 10, "n >= 3"), (10, LARGEST_N + 2, "up to")],
)
def test_bad_ranges_are_refused(start, end, message):
    with pytest.raises(ValueError, match=message):
        list(screen_range(start, end, "1"))


def test_an_empty_range_flags_nothing():
    assert list(screen_range(100, 100, "0")) == []
