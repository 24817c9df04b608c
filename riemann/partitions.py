"""Integer partitions in the search's fixed order: counting, ranking and unranking.

A superabundant candidate 2^a1 3^a2 5^a3 ... with a1 >= a2 >= ... >= 1 is an integer
partition (a1, a2, ...) of its level a1 + a2 + .... Within a level, partitions are
ordered reverse-lexicographically as non-increasing tuples: index 0 is (L) = 2^L, the
next is (L-1, 1), then (L-2, 2), (L-2, 1, 1), ..., and the last, index p(L) - 1, is
(1, 1, ..., 1), the product of the first L primes. `next_partition` walks that order
in amortised constant time; `rank` and `unrank` jump into it in O(L^2) big-integer
operations, so a block deep inside a level starts at its first candidate at once.
"""

import itertools
from collections.abc import Iterator

Partition = tuple[int, ...]

_partition_counts: list[int] = [1]
_bounded_counts: list[list[int]] = [[1]]


def partition_count(level: int) -> int:
    """p(L), the number of partitions of L, exactly.

    Euler's pentagonal number theorem: p(n) = sum over k >= 1 of
    (-1)^(k+1) (p(n - k(3k-1)/2) + p(n - k(3k+1)/2)).
    """
    if level < 0:
        raise ValueError(f"a level is a non-negative integer, got {level}")
    counts = _partition_counts
    for n in range(len(counts), level + 1):
        total = 0
        k = 1
        while True:
            smaller_pentagonal = k * (3 * k - 1) // 2
            if smaller_pentagonal > n:
                break
            sign = 1 if k % 2 else -1
            total += sign * counts[n - smaller_pentagonal]
            larger_pentagonal = smaller_pentagonal + k
            if larger_pentagonal <= n:
                total += sign * counts[n - larger_pentagonal]
            k += 1
        counts.append(total)
    return counts[level]


def bounded_partition_count(total: int, largest_part: int) -> int:
    """The number of partitions of `total` whose parts are all <= `largest_part`.

    Tabulated by Q(n, m) = Q(n, m - 1) + Q(n - m, m): a partition either has no part
    equal to m, or removing one part m leaves a partition of n - m.
    """
    largest_part = min(largest_part, total)
    if total < 0 or largest_part < 0:
        return 0
    table = _bounded_counts
    if total >= len(table):
        for n in range(len(table), total + 1):
            row = [1 if n == 0 else 0]
            for m in range(1, n + 1):
                row.append(row[m - 1] + table[n - m][min(m, n - m)])
            table.append(row)
    return table[total][largest_part]


def validate_partition(partition: Partition, level: int) -> None:
    """Raise ValueError unless `partition` is a non-increasing partition of `level`."""
    if sum(partition) != level or any(part < 1 for part in partition):
        raise ValueError(
            f"{partition} is not a partition of {level} into positive parts"
        )
    if any(a < b for a, b in itertools.pairwise(partition)):
        raise ValueError(f"{partition} does not have non-increasing parts")


def rank(partition: Partition) -> int:
    """The index of `partition` within its level, in the search order.

    Before a partition come those whose first differing part is larger. With r the
    sum still to place and M the previous part, the partitions of r with first part in
    (a, M] number Q(r, M) - Q(r, a).
    """
    level = sum(partition)
    validate_partition(partition, level)
    index = 0
    remaining = level
    previous_part = level
    for part in partition:
        index += bounded_partition_count(remaining, previous_part)
        index -= bounded_partition_count(remaining, part)
        remaining -= part
        previous_part = part
    return index


def unrank(level: int, index: int) -> Partition:
    """The partition of `level` at `index` in the search order; inverse of `rank`."""
    count = partition_count(level)
    if not 0 <= index < count:
        raise ValueError(f"level {level} has indexes 0 to {count - 1}, got {index}")
    parts: list[int] = []
    remaining = level
    previous_part = level
    while remaining > 0:
        # Counting from the end of this sub-order, find the part f whose block of
        # partitions Q(r, f - 1) <= from_end < Q(r, f) holds the index.
        from_end = bounded_partition_count(remaining, previous_part) - 1 - index
        part = 1
        while bounded_partition_count(remaining, part) <= from_end:
            part += 1
        index -= bounded_partition_count(remaining, previous_part)
        index += bounded_partition_count(remaining, part)
        parts.append(part)
        remaining -= part
        previous_part = part
    return tuple(parts)


def next_partition(partition: Partition) -> Partition | None:
    """The partition after `partition` in the search order, or None after the last.

    The rightmost part v > 1 drops to v - 1, and everything after it (the ones, plus
    the unit taken from v) is regrouped into parts of v - 1 and a remainder.
    """
    position = len(partition) - 1
    while position >= 0 and partition[position] == 1:
        position -= 1
    if position < 0:
        return None
    lowered = partition[position] - 1
    to_place = len(partition) - position
    whole_parts, remainder = divmod(to_place, lowered)
    tail = (lowered,) * (whole_parts + 1)
    if remainder:
        tail += (remainder,)
    return partition[:position] + tail


def partitions_from(level: int, index: int) -> Iterator[Partition]:
    """The partitions of `level` from `index` to the end of the level, in order."""
    partition: Partition | None = unrank(level, index)
    while partition is not None:
        yield partition
        partition = next_partition(partition)
