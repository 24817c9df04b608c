import pytest
from hypothesis import given
from hypothesis import strategies as st

from riemann.partitions import (
    bounded_partition_count,
    next_partition,
    partition_count,
    partitions_from,
    rank,
    unrank,
)
from tests.naive import partitions_descending


@pytest.mark.parametrize("level", range(31))
def test_each_level_visits_the_plain_recursive_enumeration_in_order(level):
    assert list(partitions_from(level, 0)) == partitions_descending(level)


def test_partition_counts_match_enumeration_for_small_levels():
    assert [partition_count(n) for n in range(25)] == [
        len(partitions_descending(n)) for n in range(25)
    ]


def test_partition_counts_match_published_values():
    # p(100) and p(200): Hardy and Ramanujan (1918), MacMahon's table.
    assert partition_count(100) == 190_569_292
    assert partition_count(200) == 3_972_999_029_388


def test_partition_count_is_exact_far_beyond_machine_integers():
    # p(1000) has 32 digits (OEIS A000041).
    assert partition_count(1000) == 24061467864032622473692149727991


def test_a_negative_level_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        partition_count(-1)


@pytest.mark.parametrize(
    ("total", "largest"), [(10, 3), (12, 12), (7, 20), (0, 0), (5, 0)]
)
def test_bounded_counts_match_enumeration(total, largest):
    expected = len(partitions_descending(total, largest)) if total or largest else 1
    assert bounded_partition_count(total, largest) == expected


@given(
    st.integers(min_value=1, max_value=120).flatmap(
        lambda level: st.tuples(
            st.just(level), st.integers(0, partition_count(level) - 1)
        )
    )
)
def test_rank_inverts_unrank(level_and_index):
    level, index = level_and_index
    assert rank(unrank(level, index)) == index


@given(st.lists(st.integers(1, 30), min_size=1, max_size=40))
def test_unrank_inverts_rank(parts):
    partition = tuple(sorted(parts, reverse=True))
    assert unrank(sum(partition), rank(partition)) == partition


@given(
    st.integers(min_value=2, max_value=60).flatmap(
        lambda level: st.tuples(
            st.just(level), st.integers(0, partition_count(level) - 2)
        )
    )
)
def test_next_partition_moves_to_the_next_rank(level_and_index):
    level, index = level_and_index
    assert next_partition(unrank(level, index)) == unrank(level, index + 1)


def test_the_last_partition_has_no_successor():
    assert next_partition((1, 1, 1)) is None


def test_unrank_refuses_an_index_outside_the_level():
    with pytest.raises(ValueError, match="indexes 0 to 6"):
        unrank(5, 7)


@pytest.mark.parametrize("bad", [(1, 2), (3, 0), (2, -1, 3)])
def test_rank_refuses_what_is_not_a_non_increasing_partition(bad):
    with pytest.raises(ValueError, match=r"partition|non-increasing"):
        rank(bad)
