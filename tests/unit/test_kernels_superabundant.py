"""The superabundant kernel gives every block the exact path's result, bit for bit."""

import functools
import itertools
import random

import gmpy2
import pytest

from riemann.kernels.superabundant import (
    FOUND_CAPACITY,
    best_cut_below,
    last_level_of,
    log_witness_estimates,
    screen_partitions,
)
from riemann.partitions import partition_count, partitions_from, rank
from riemann.strategies import InvalidIndexError, SearchBlock, strategy_named
from riemann.witness import e_gamma, precise, witness_value
from tests.naive import (
    divisor_sum_of_exponents,
    number_from_exponents,
    superabundant_block_by_brute_force,
)

SUPERABUNDANT = strategy_named("superabundant")


def block_at(level, index_in_level, size):
    start = SUPERABUNDANT.ordinal((level, index_in_level))
    return SUPERABUNDANT.block_between(start, start + size)


def assert_kernel_matches_exact(block, threshold="1.767"):
    exact = SUPERABUNDANT.process_exact(block, threshold)
    fast = SUPERABUNDANT.process(block, threshold)
    assert fast.candidates_checked == exact.candidates_checked
    assert fast.best == exact.best
    assert fast.records == exact.records
    assert fast.digest == exact.digest
    assert fast == exact
    return exact


def _levels_up_to_45():
    # From level 35 on a whole level takes the exact path a second or more.
    return [
        pytest.param(level, marks=pytest.mark.slow) if level >= 35 else level
        for level in range(2, 46)
    ]


@pytest.mark.parametrize("level", _levels_up_to_45())
def test_every_level_up_to_45_matches_the_exact_path(level):
    whole_level = block_at(level, 0, partition_count(level))
    exact = assert_kernel_matches_exact(whole_level)
    assert exact.candidates_checked == partition_count(level)


def test_whole_levels_in_one_block_match_with_records():
    start = SUPERABUNDANT.ordinal((30, 0))
    block = SUPERABUNDANT.block_between(start, SUPERABUNDANT.end_after_level(34))
    exact = assert_kernel_matches_exact(block, "1.72")
    assert len(exact.records) > 10


def test_a_block_across_many_levels_matches():
    block = SUPERABUNDANT.block_between(
        SUPERABUNDANT.ordinal((2, 0)), SUPERABUNDANT.end_after_level(20)
    )
    assert_kernel_matches_exact(block, "1.6")


def _random_blocks(count, seed=4):
    chooser = random.Random(seed)
    blocks = []
    for _ in range(count):
        level = chooser.randint(46, 120)
        size = chooser.randint(50, 250)
        index = chooser.randrange(partition_count(level))
        blocks.append((level, index, size))
    return blocks


@pytest.mark.parametrize(("level", "index", "size"), _random_blocks(60))
def test_random_blocks_up_to_level_120_match(level, index, size):
    assert_kernel_matches_exact(block_at(level, index, size), "1.75")


@pytest.mark.parametrize("level", [60, 80])
def test_blocks_around_the_best_of_a_high_level_match(level):
    # The kernel finds the level's best; the block around it holds the candidates
    # nearest e^gamma, and a threshold just under the best makes several records.
    whole_level = block_at(level, 0, partition_count(level))
    best = SUPERABUNDANT.process(whole_level, "1.767").best
    assert best is not None
    around = max(0, rank(best.exponents) - 100)
    threshold = format(best.witness_value * (1 - 1e-3), ".30g")
    exact = assert_kernel_matches_exact(block_at(level, around, 200), threshold)
    assert exact.best == best
    assert len(exact.records) > 1


def _block_and_values(level=26, index=700, size=600):
    block = block_at(level, index, size)
    values = sorted(
        r.witness_value for r in SUPERABUNDANT.process_exact(block, "0").records
    )
    return block, values


@pytest.mark.parametrize("position", [0, 0.5, 0.9, 1.0])
def test_a_threshold_exactly_on_a_candidate_excludes_it(position):
    block, values = _block_and_values()
    value = values[min(len(values) - 1, int(position * len(values)))]
    threshold = format(value, ".90g")  # 90 digits read back as the same 256-bit value
    exact = assert_kernel_matches_exact(block, threshold)
    assert all(r.witness_value > value for r in exact.records)


@pytest.mark.parametrize("position", [0, 0.5, 0.9, 1.0])
def test_a_threshold_at_a_candidates_float_rounding_matches(position):
    block, values = _block_and_values()
    value = values[min(len(values) - 1, int(position * len(values)))]
    assert_kernel_matches_exact(block, repr(float(value)))


@functools.cache
def _sharpest_candidates_below_the_running_best(level, index, size):
    """The block, and its candidates whose witness value is at least 1e-6 below that
    of an earlier candidate of the block, by increasing slack d̂ - ln W.

    Being far below the running best, only the threshold can make the screen flag
    them; with the least slack (the float estimate hardly above the exact value),
    the threshold cut has no room to spare.
    """
    block = block_at(level, index, size)
    in_order = sorted(
        SUPERABUNDANT.process_exact(block, "0").records,
        key=lambda record: (record.level, rank(record.exponents)),
    )
    first = SUPERABUNDANT.index_at(block.start_ordinal)
    estimates = log_witness_estimates(*first, size).estimates.tolist()
    running_best = in_order[0].witness_value
    overshadowed = []
    for record, estimate in zip(in_order[1:], estimates[1:], strict=True):
        if record.witness_value < running_best * (1 - 1e-6):
            with precise():
                slack = estimate - gmpy2.log(record.witness_value)
            overshadowed.append((slack, record))
        running_best = max(running_best, record.witness_value)
    overshadowed.sort(key=lambda pair: pair[0])
    return block, [record for _, record in overshadowed]


def _threshold_off(value, relative):
    """Decimal text of value * (1 + relative), computed at the project's precision."""
    with precise():
        return format(value * (1 + gmpy2.mpfr(relative)), ".80g")


@pytest.mark.parametrize(
    ("level", "index", "size"),
    [(26, 700, 600), (60, 123_456, 400), (100, 10**8, 300), (140, 7 * 10**11, 300)],
)
@pytest.mark.parametrize("sharpest", [0, 1, 2])
@pytest.mark.parametrize("relative", ["-1e-15", "-1e-17", "1e-15"])
def test_a_threshold_within_the_margin_of_a_candidate_matches(
    level, index, size, sharpest, relative
):
    # The candidate lies 1e-15 above or below the threshold in relative terms, far
    # inside the screen's margin mu, and is not the running best of its block, so
    # the threshold cut alone decides whether the screen hands it to the exact path.
    # At 1e-17 above, some of these estimates fall below ln T: only mu saves them.
    block, overshadowed = _sharpest_candidates_below_the_running_best(
        level, index, size
    )
    candidate = overshadowed[sharpest]
    first = SUPERABUNDANT.index_at(block.start_ordinal)
    assert log_witness_estimates(*first, block.candidate_count).margin > 1e-15

    exact = assert_kernel_matches_exact(
        block, _threshold_off(candidate.witness_value, relative)
    )
    assert (candidate in exact.records) == relative.startswith("-")


@pytest.mark.parametrize("threshold", ["0", "-1", "1e-30"])
def test_a_threshold_below_every_value_records_every_candidate(threshold):
    block = block_at(24, 100, 900)
    exact = assert_kernel_matches_exact(block, threshold)
    assert len(exact.records) == 900


@pytest.mark.parametrize("threshold", ["2", "1.7810724179901979852", "inf", "nan"])
def test_a_threshold_above_every_value_records_none_but_keeps_the_best(threshold):
    exact = assert_kernel_matches_exact(block_at(40, 5_000, 700), threshold)
    assert exact.records == ()
    assert exact.best is not None


def test_known_violations_among_small_levels_are_settled_exactly():
    block = SUPERABUNDANT.block_between(
        SUPERABUNDANT.ordinal((2, 0)), SUPERABUNDANT.end_after_level(12)
    )
    exact = assert_kernel_matches_exact(block, "1.78")
    violations = [r.n for r in exact.records if r.witness_value >= e_gamma()]
    assert 5040 in violations


def test_the_kernel_finds_what_brute_force_finds_on_small_levels():
    block = SUPERABUNDANT.block_between(
        SUPERABUNDANT.ordinal((2, 0)), SUPERABUNDANT.end_after_level(16)
    )
    fast = SUPERABUNDANT.process(block, "1.7")
    count, best, above = superabundant_block_by_brute_force(range(2, 17), 1.7)
    assert fast.candidates_checked == count
    assert fast.best is not None
    assert fast.best.exponents == best
    assert sorted(r.exponents for r in fast.records) == sorted(above)


def test_more_flagged_candidates_than_one_call_holds_are_all_returned():
    level = 21
    count = 3 * FOUND_CAPACITY
    flagged = list(screen_partitions(level, 0, count, "0"))
    assert len(flagged) == count
    assert len(set(flagged)) == count
    assert flagged[0] == (21, (21,))


def test_the_screen_settles_few_candidates_of_a_large_block():
    count = 200_000
    flagged = list(screen_partitions(95, 1_000_000, count, "1.767"))
    assert 0 < len(flagged) < count // 1_000


def test_the_last_level_of_a_scan_counts_across_levels():
    assert last_level_of(5, 0, partition_count(5)) == 5
    assert last_level_of(5, 0, partition_count(5) + 1) == 6
    assert last_level_of(5, 6, 1) == 5


@pytest.mark.parametrize(
    ("level", "index", "count", "message"),
    [(1, 0, 1, "levels 2 and above"), (5, 0, 0, "at least one")],
)
def test_bad_scans_are_refused(level, index, count, message):
    with pytest.raises(ValueError, match=message):
        list(screen_partitions(level, index, count, "1"))


@pytest.mark.parametrize("start", [0, 1])
def test_a_block_below_level_2_is_refused(start):
    with pytest.raises(InvalidIndexError, match=r"first candidate is 2:0, ordinal 2"):
        SUPERABUNDANT.block_between(start, 3)
    with pytest.raises(InvalidIndexError, match="cannot start at ordinal"):
        SUPERABUNDANT.next_blocks(start, 5, 2)
    assert SUPERABUNDANT.block_between(2, 3).start == "2:0"


def test_a_hand_made_block_below_level_2_is_refused_by_both_paths():
    block = SearchBlock("superabundant", "0:0", "2:1", 0, 3)
    with pytest.raises(InvalidIndexError, match="cannot start at ordinal 0"):
        SUPERABUNDANT.process_exact(block, "1.767")
    with pytest.raises(InvalidIndexError, match="cannot start at ordinal 0"):
        SUPERABUNDANT.process(block, "1.767")


def _candidates_from(level, index_in_level, count):
    """`count` exponent vectors in search order from (level, index_in_level), crossing
    into the next levels, by the plain partition walk."""
    walks = itertools.chain.from_iterable(
        partitions_from(later, index_in_level if later == level else 0)
        for later in itertools.count(level)
    )
    return list(itertools.islice(walks, count))


def _exact_log_witness_values(level, index_in_level, count):
    values = []
    for exponents in _candidates_from(level, index_in_level, count):
        n = number_from_exponents(exponents)
        value = witness_value(n, divisor_sum_of_exponents(exponents))
        with precise():
            values.append(gmpy2.log(value))
    return values


def _random_scans(count, seed):
    chooser = random.Random(seed)
    scans = []
    for _ in range(count):
        level = chooser.randint(2, 150)
        size = chooser.randint(1, 40)
        # Half of the scans start near the end of a level and run into the next.
        if chooser.random() < 0.5:
            index = max(0, partition_count(level) - chooser.randint(1, size))
        else:
            index = chooser.randrange(partition_count(level))
        scans.append((level, index, size))
    return scans


@pytest.mark.parametrize(("level", "index", "size"), _random_scans(80, seed=11))
def test_the_float_estimate_brackets_the_exact_witness_value(level, index, size):
    # The documented bound: d̂ - mu - G_j <= ln W_mpfr(n) <= d̂ + mu, checked in
    # MPFR so the comparison itself rounds nothing.
    screened = log_witness_estimates(level, index, size)
    exact = _exact_log_witness_values(level, index, size)
    with precise():
        margin = gmpy2.mpfr(screened.margin)
        for estimate, gap, value in zip(
            screened.estimates.tolist(),
            screened.taylor_gaps.tolist(),
            exact,
            strict=True,
        ):
            assert estimate - margin - gmpy2.mpfr(gap) <= value <= estimate + margin


@pytest.mark.parametrize(("level", "index", "size"), _random_scans(40, seed=12))
def test_the_best_cut_of_a_candidate_is_a_margin_below_its_exact_value(
    level, index, size
):
    # A candidate n left unflagged because d̂_n < cut_c has ln W(n) <= d̂_n + mu <
    # cut_c + mu, so it is worse than c only if cut_c + mu <= ln W(c).
    screened = log_witness_estimates(level, index, size)
    exact = _exact_log_witness_values(level, index, size)
    with precise():
        margin = gmpy2.mpfr(screened.margin)
        for estimate, gap, value in zip(
            screened.estimates.tolist(),
            screened.taylor_gaps.tolist(),
            exact,
            strict=True,
        ):
            cut = best_cut_below(estimate, gap, screened.margin)
            assert gmpy2.mpfr(cut) + margin <= value


def test_estimates_cover_every_candidate_of_a_scan_once():
    screened = log_witness_estimates(20, partition_count(20) - 5, 30)
    assert screened.estimates.shape == screened.taylor_gaps.shape == (30,)
    assert len(set(screened.estimates.tolist())) == 30
    assert (screened.taylor_gaps > 0).all()
