import itertools
import math

import pytest
from gmpy2 import mpfr
from hypothesis import given
from hypothesis import strategies as st

from riemann.partitions import partition_count
from riemann.strategies import (
    InvalidIndexError,
    UnknownStrategyError,
    strategy_named,
    strategy_names,
)
from riemann.strategies.base import BlockResult, BlockScan, SearchBlock, WitnessRecord
from riemann.witness import e_gamma, precise, to_mpfr, violates_robin, witness_value
from tests.naive import (
    divisor_sum_of_exponents,
    divisor_sums_by_enumeration,
    number_from_exponents,
    partitions_descending,
    witness_value_mpmath,
)

SUPERABUNDANT = strategy_named("superabundant")
EXHAUSTIVE = strategy_named("exhaustive")

# The 26 n >= 3 known to violate Robin's inequality (Robin, 1984); n = 2 is the 27th.
KNOWN_VIOLATIONS = [
    3, 4, 5, 6, 8, 9, 10, 12, 16, 18, 20, 24, 30, 36, 48, 60, 72, 84, 120, 180,
    240, 360, 720, 840, 2520, 5040,
]  # fmt: skip


def test_both_strategies_are_found_by_name():
    assert strategy_names() == ["exhaustive", "superabundant"]


def test_an_unknown_strategy_name_lists_the_known_ones():
    with pytest.raises(UnknownStrategyError, match="exhaustive, superabundant"):
        strategy_named("colossal")


@pytest.mark.parametrize(
    ("strategy", "text"),
    [
        (EXHAUSTIVE, "12x"),
        (EXHAUSTIVE, "2"),
        (EXHAUSTIVE, ""),
        (SUPERABUNDANT, "7"),
        (SUPERABUNDANT, "7:"),
        (SUPERABUNDANT, "a:3"),
        (SUPERABUNDANT, "-3:0"),
        (SUPERABUNDANT, "1:0"),
        (SUPERABUNDANT, "5:7"),
    ],
)
def test_a_malformed_index_is_refused_naming_the_bad_value(strategy, text):
    with pytest.raises(InvalidIndexError, match=repr(text).replace("[", r"\[")):
        strategy.parse_index(text)


@pytest.mark.parametrize(
    ("strategy", "text"), [(EXHAUSTIVE, "5041"), (SUPERABUNDANT, "90:12345678")]
)
def test_indexes_round_trip_through_text(strategy, text):
    index = strategy.parse_index(text)
    assert strategy.format_index(index) == text
    assert strategy.index_at(strategy.ordinal(index)) == index


def test_default_starts_parse():
    assert EXHAUSTIVE.parse_index(EXHAUSTIVE.default_start_text) == 5041
    assert SUPERABUNDANT.parse_index(SUPERABUNDANT.default_start_text) == (2, 0)


# The candidates of levels 0 to 17 in search order, by plain recursion: the
# candidate at ordinal k is NAIVE_ORDER[k] (levels 0 and 1 hold one each).
NAIVE_ORDER = [
    (level, partition)
    for level in range(18)
    for partition in partitions_descending(level)
]
NAIVE_ORDINAL = {candidate: k for k, candidate in enumerate(NAIVE_ORDER)}


def naive_index(ordinal):
    """(level, index_in_level) of the candidate at `ordinal`, from NAIVE_ORDER."""
    level, _ = NAIVE_ORDER[ordinal]
    first = next(k for k, (other, _) in enumerate(NAIVE_ORDER) if other == level)
    return level, ordinal - first


@given(
    start=st.integers(min_value=2, max_value=300),
    length=st.integers(min_value=1, max_value=800),
    requests=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=150),
            st.integers(min_value=1, max_value=4),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_superabundant_blocks_tile_the_enumeration(start, length, requests):
    # Blocks asked for in turns of varying size and count, each turn going on from
    # where the last ended, as the generator does, up to a search end.
    end = start + length
    blocks = []
    position = start
    for size, count in requests:
        turn = SUPERABUNDANT.next_blocks(position, size, count, end)
        if not turn:
            break
        assert turn[0].start_ordinal == position
        blocks.extend(turn)
        position = turn[-1].end_ordinal

    covered = min(end, start + sum(size * count for size, count in requests))
    visited = []
    for block in blocks:
        assert SUPERABUNDANT.parse_index(block.start) == naive_index(
            block.start_ordinal
        )
        assert SUPERABUNDANT.block_from_text(block.start, block.end) == block
        # Every candidate is a record at threshold 0 (witness values are positive),
        # so the records are the block's candidates; they come sorted by n, so
        # order is compared block by block.
        result = SUPERABUNDANT.process_exact(block, "0")
        assert result.candidates_checked == len(result.records)
        visited.extend(
            sorted(NAIVE_ORDINAL[(r.level, r.exponents)] for r in result.records)
        )
    assert visited == list(range(start, covered))


@given(
    start=st.integers(min_value=3, max_value=10**15),
    size=st.integers(min_value=1, max_value=10**6),
    count=st.integers(min_value=1, max_value=10),
    length=st.integers(min_value=1, max_value=10**7),
)
def test_blocks_never_pass_the_end_of_the_search(start, size, count, length):
    blocks = EXHAUSTIVE.next_blocks(start, size, count, start + length)
    assert blocks[0].start_ordinal == start
    assert all(
        before.end_ordinal == after.start_ordinal
        for before, after in itertools.pairwise(blocks)
    )
    assert blocks[-1].end_ordinal <= start + length
    assert sum(b.candidate_count for b in blocks) == min(size * count, length)
    assert all(EXHAUSTIVE.block_from_text(b.start, b.end) == b for b in blocks), (
        "each block reads back from its stored texts"
    )


@given(size=st.integers(min_value=1, max_value=400))
def test_candidates_per_level_sum_to_the_partition_count(size):
    end = SUPERABUNDANT.end_after_level(14)
    start = SUPERABUNDANT.ordinal((2, 0))
    checked_by_level = {}
    for block in SUPERABUNDANT.next_blocks(start, size, 10**6, end):
        result = SUPERABUNDANT.process_exact(block, "0")
        assert result.candidates_checked == block.candidate_count
        for record in result.records:
            checked_by_level[record.level] = checked_by_level.get(record.level, 0) + 1
    assert checked_by_level == {level: partition_count(level) for level in range(2, 15)}


def test_superabundant_visits_every_partition_through_level_30_once():
    end = SUPERABUNDANT.end_after_level(30)
    block = SUPERABUNDANT.block_between(SUPERABUNDANT.ordinal((2, 0)), end)
    # Every witness value is positive, so threshold 0 records every candidate.
    result = SUPERABUNDANT.process_exact(block, "0")
    visited = [(r.level, r.exponents) for r in result.records]
    expected = [
        (level, partition)
        for level in range(2, 31)
        for partition in partitions_descending(level)
    ]
    assert sorted(visited) == sorted(expected)
    assert len(visited) == len(expected) == result.candidates_checked
    for record in result.records[:: len(result.records) // 50]:
        assert record.n == number_from_exponents(record.exponents)
        assert record.divisor_sum == divisor_sum_of_exponents(record.exponents)


def test_exhaustive_search_to_ten_to_the_five_finds_the_brute_force_violations():
    limit = 100_000
    sums = divisor_sums_by_enumeration(limit)
    brute_force = [
        n
        for n in range(3, limit + 1)
        if witness_value_mpmath(n, sums[n], digits=30) >= float(e_gamma())
    ]
    block = EXHAUSTIVE.block_between(3, EXHAUSTIVE.end_after(limit))
    result = EXHAUSTIVE.process_exact(block, "1.78")

    found = [r.n for r in result.records if r.witness_value >= e_gamma()]
    assert found == brute_force == KNOWN_VIOLATIONS
    assert result.candidates_checked == limit - 2
    assert result.best is not None
    assert result.best.n == 3


def test_the_best_above_5040_is_found_beside_the_larger_values_of_small_n():
    limit = 20_000
    sums = divisor_sums_by_enumeration(limit)
    above = range(5041, limit + 1)
    brute_force = max(above, key=lambda n: witness_value_mpmath(n, sums[n], 40))
    block = EXHAUSTIVE.block_between(3, EXHAUSTIVE.end_after(limit))

    for result in (EXHAUSTIVE.process_exact(block, "1.767"),
                   EXHAUSTIVE.process(block, "1.767")):  # fmt: skip
        assert result.best is not None
        assert result.best.n == 3
        assert result.best_above_5040 is not None
        assert result.best_above_5040.n == brute_force == 10080


def test_the_superabundant_best_above_5040_through_level_30_is_the_brute_force_one():
    divisor_sums = {
        number_from_exponents(partition): divisor_sum_of_exponents(partition)
        for level in range(2, 31)
        for partition in partitions_descending(level)
    }
    brute_force = max(
        (n for n in divisor_sums if n > 5040),
        key=lambda n: witness_value_mpmath(n, divisor_sums[n], 40),
    )
    block = SUPERABUNDANT.block_between(
        SUPERABUNDANT.ordinal((2, 0)), SUPERABUNDANT.end_after_level(30)
    )

    for result in (SUPERABUNDANT.process_exact(block, "1.767"),
                   SUPERABUNDANT.process(block, "1.767")):  # fmt: skip
        assert result.best is not None
        assert result.best.n == 4
        assert result.best_above_5040 is not None
        assert result.best_above_5040.n == brute_force == 10080


def test_a_block_without_n_above_5040_has_no_best_above_it():
    result = EXHAUSTIVE.process(EXHAUSTIVE.block_between(3, 5041), "1.767")
    assert result.best is not None
    assert result.best_above_5040 is None


def test_a_counterexample_is_a_record_whatever_the_threshold():
    block = EXHAUSTIVE.block_between(10**6, 10**6 + 1)
    n = 10**6
    # An invented divisor sum: W(n) = 2 > e^gamma, as a counterexample would have.
    divisor_sum = int(2 * n * math.log(math.log(n))) + 1
    scan = BlockScan(block, "1000")
    scan.consider(n, divisor_sum)
    scan.consider(n + 1, 1)

    (record,) = scan.result().records
    assert record.n == n
    assert violates_robin(n, record.witness_value)


def test_records_exceed_the_threshold_strictly():
    value = witness_value(5040, 19344)
    threshold = format(value, ".90g")  # 90 digits read back as the same 256-bit value
    assert to_mpfr(threshold) == value
    block = EXHAUSTIVE.block_between(5040, 5041)
    assert EXHAUSTIVE.process_exact(block, threshold).records == ()
    assert len(EXHAUSTIVE.process_exact(block, "1.79").records) == 1


def test_the_same_block_always_gives_the_same_digest():
    block = SUPERABUNDANT.block_between(10_000, 12_000)
    first = SUPERABUNDANT.process_exact(block, "1.767")
    second = SUPERABUNDANT.process_exact(block, "1.767")
    assert first == second
    assert first.digest == second.digest
    assert len(first.digest) == 64


def test_the_digest_depends_on_exact_quantities_only():
    block = SearchBlock("exhaustive", "10", "11", 10, 11)
    exact = WitnessRecord(10, 18, to_mpfr("1.0"), to_mpfr("2.3"))
    rounded = WitnessRecord(10, 18, to_mpfr("1.0000001"), to_mpfr("2.31"))
    other_sigma = WitnessRecord(10, 19, to_mpfr("1.0"), to_mpfr("2.3"))
    digest = BlockResult(block, "1", 1, exact, (exact,), None).digest
    assert BlockResult(block, "1", 1, rounded, (rounded,), None).digest == digest
    assert (
        BlockResult(block, "1", 1, other_sigma, (other_sigma,), None).digest != digest
    )
    assert BlockResult(block, "1.5", 1, exact, (exact,), None).digest != digest
    assert BlockResult(block, "1", 1, exact, (exact,), exact).digest != digest


def _digest_at(threshold):
    block = SearchBlock("exhaustive", "10", "11", 10, 11)
    record = WitnessRecord(10, 18, to_mpfr("1.0"), to_mpfr("2.3"))
    return BlockResult(block, threshold, 1, record, (record,), None).digest


@pytest.mark.parametrize(
    "spellings",
    [
        ["1.767", "1.7670", "+1.767e0", "17.67e-1", " 1.767", "1.767" + "0" * 90 + "1"],
        ["0", "-0", "0.000", "0e5"],
        ["inf", "Infinity", "1e1000000000000"],
    ],
)
def test_thresholds_of_equal_value_give_equal_digests(spellings):
    # At 256 bits, 1.767 followed by 90 zeros and a 1 is the same value as 1.767,
    # and 1e1000000000000 overflows MPFR's exponent range to infinity.
    assert all(to_mpfr(text) == to_mpfr(spellings[0]) for text in spellings)
    assert len({_digest_at(text) for text in spellings}) == 1


def test_thresholds_of_different_value_give_different_digests():
    with precise():
        value = to_mpfr("1.767")
        # The next 256-bit value up: between 1 and 2 the values are 2^-255 apart.
        next_value = value + mpfr(2) ** -255
    assert to_mpfr(format(next_value, ".100e")) == next_value != value
    thresholds = ["1.767", format(next_value, ".100e"), "1.7671", "-1.767", "0", "inf"]
    assert len({_digest_at(text) for text in thresholds}) == len(thresholds)


def test_end_after_level_refuses_levels_without_candidates():
    with pytest.raises(InvalidIndexError, match="at least 2"):
        SUPERABUNDANT.end_after_level(1)


def test_an_exhaustive_block_below_3_is_refused():
    with pytest.raises(InvalidIndexError, match="first candidate is 3, ordinal 3"):
        EXHAUSTIVE.block_between(2, 10)
    assert EXHAUSTIVE.block_between(3, 10).start == "3"


def test_a_block_whose_end_precedes_its_start_is_refused():
    with pytest.raises(InvalidIndexError, match="does not come after"):
        SUPERABUNDANT.block_from_text("9:3", "9:1")


def test_progress_is_described_by_the_last_complete_level():
    assert SUPERABUNDANT.describe_progress(SUPERABUNDANT.ordinal((31, 0))) == "level 30"
    assert "of level 31" in SUPERABUNDANT.describe_progress(
        SUPERABUNDANT.ordinal((31, 3000))
    )
    assert EXHAUSTIVE.describe_progress(6000) == "n = 5999"
