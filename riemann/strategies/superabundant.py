"""The superabundant strategy: every n = 2^a1 3^a2 5^a3 ... with a1 >= a2 >= ... >= 1.

Alaoglu and Erdos (Trans. AMS 56, 1944) showed that every superabundant number has
non-increasing exponents along the primes, and Akbary and Friggstad (Amer. Math.
Monthly 116, 2009) that the least counterexample to Robin's inequality, if there is
one, is superabundant. So walking these candidates level by level (the level is
a1 + a2 + ...) misses no least counterexample.

An index is (level, index_in_level), written "L:i", with the partitions of a level in
the order of `riemann.partitions`. Level 1 (n = 2) has no witness value, so the
enumeration starts at level 2; the ordinal of (L, i) counts every partition of the
levels 0 to L - 1, plus i.
"""

import bisect
import math

from gmpy2 import mpz

from riemann.partitions import Partition, partition_count, partitions_from
from riemann.primes import first_primes
from riemann.strategies.base import (
    BlockResult,
    BlockScan,
    InvalidIndexError,
    SearchBlock,
    Strategy,
)

FIRST_LEVEL = 2
FIRST_LEVEL_ABOVE_5040 = 13
"""Every candidate of level L is at least 2^L, and 2^12 = 4096 <= 5040 < 2^13."""

SuperabundantIndex = tuple[int, int]


class _LevelOffsets:
    """Ordinals of the first candidate of each level: sum of p(l) for l < L."""

    def __init__(self) -> None:
        self._starts = [0]

    def start_of(self, level: int) -> int:
        while len(self._starts) <= level:
            self._starts.append(
                self._starts[-1] + partition_count(len(self._starts) - 1)
            )
        return self._starts[level]

    def level_of(self, ordinal: int) -> int:
        while self._starts[-1] <= ordinal:
            self.start_of(len(self._starts))
        return bisect.bisect_right(self._starts, ordinal) - 1


class SuperabundantStrategy(Strategy[SuperabundantIndex]):
    name = "superabundant"
    default_start_text = f"{FIRST_LEVEL}:0"

    def __init__(self) -> None:
        self._levels = _LevelOffsets()
        self.first_ordinal = self._levels.start_of(FIRST_LEVEL)

    def parse_index(self, text: str) -> SuperabundantIndex:
        level_text, colon, index_text = text.strip().partition(":")
        try:
            level, index = int(level_text), int(index_text)
        except ValueError:
            level, index = -1, -1
        if not colon or level < 0 or index < 0:
            raise InvalidIndexError(
                f"superabundant index {text!r} is not of the form LEVEL:INDEX "
                "with non-negative integers"
            )
        if level < FIRST_LEVEL:
            raise InvalidIndexError(
                f"superabundant index {text!r} is below level {FIRST_LEVEL}, "
                "the first with a witness value"
            )
        if index >= partition_count(level):
            raise InvalidIndexError(
                f"superabundant index {text!r} is past the end of level {level}, "
                f"which has {partition_count(level)} candidates"
            )
        return level, index

    def format_index(self, index: SuperabundantIndex) -> str:
        level, index_in_level = index
        return f"{level}:{index_in_level}"

    def ordinal(self, index: SuperabundantIndex) -> int:
        level, index_in_level = index
        return self._levels.start_of(level) + index_in_level

    def index_at(self, ordinal: int) -> SuperabundantIndex:
        level = self._levels.level_of(ordinal)
        return level, ordinal - self._levels.start_of(level)

    def end_after_level(self, level: int) -> int:
        """The end ordinal of a search that checks every level up to `level`."""
        if level < FIRST_LEVEL:
            raise InvalidIndexError(
                f"the last level must be at least {FIRST_LEVEL}, got {level}"
            )
        return self._levels.start_of(level + 1)

    def process_exact(self, block: SearchBlock, threshold: str) -> BlockResult:
        self.refuse_start_before_first(block.start_ordinal)
        scan = BlockScan(block, threshold)
        self._consider_exactly(scan, block.start_ordinal, block.end_ordinal)
        return scan.result()

    def _consider_exactly(self, scan: BlockScan, start: int, end: int) -> None:
        """Feed every candidate with an ordinal in [start, end) to `scan`, exactly."""
        if end <= start:
            return
        remaining = end - start
        level, index_in_level = self.index_at(start)
        # A partition of L has at most L parts: the last level needs the most primes.
        primes = [mpz(p) for p in first_primes(self._levels.level_of(end - 1))]
        while remaining > 0:
            for exponents in partitions_from(level, index_in_level):
                n, divisor_sum = _number_and_divisor_sum(primes, exponents)
                scan.consider(n, divisor_sum, level, exponents)
                remaining -= 1
                if remaining == 0:
                    break
            level, index_in_level = level + 1, 0

    def process(self, block: SearchBlock, threshold: str) -> BlockResult:
        """The block's result by the compiled kernel's float screen, settling exactly
        only the candidates the screen cannot rule out; equal to `process_exact`.

        Levels below FIRST_LEVEL_ABOVE_5040 (a few hundred candidates) go to the
        exact path: the screen keeps only what might beat the best of its own
        range, and next to the large witness values of small n that would lose the
        best above 5040.
        """
        # Imported here: numba takes most of a second to load, which commands that
        # never compute (status, export) should not pay.
        from riemann.kernels.superabundant import screen_partitions

        self.refuse_start_before_first(block.start_ordinal)
        scan = BlockScan(block, threshold)
        start, end = block.start_ordinal, block.end_ordinal
        kernel_start = min(max(start, self.ordinal((FIRST_LEVEL_ABOVE_5040, 0))), end)
        self._consider_exactly(scan, start, kernel_start)
        if kernel_start == end:
            return scan.result()
        level, index_in_level = self.index_at(kernel_start)
        scan.count_screened(end - kernel_start)
        primes: list[mpz] = []
        for candidate_level, exponents in screen_partitions(
            level, index_in_level, end - kernel_start, threshold
        ):
            if len(primes) < len(exponents):
                primes = [mpz(p) for p in first_primes(2 * len(exponents))]
            n, divisor_sum = _number_and_divisor_sum(primes, exponents)
            scan.settle(n, divisor_sum, candidate_level, exponents)
        return scan.result()

    def progress_segments(self, start: int, end: int) -> list[tuple[str, int, int]]:
        """The levels that overlap the ordinals [start, end)."""
        if end <= start:
            return []
        first_level = self._levels.level_of(start)
        last_level = self._levels.level_of(end - 1)
        return [
            (
                f"level {level}",
                self._levels.start_of(level),
                self._levels.start_of(level + 1),
            )
            for level in range(first_level, last_level + 1)
        ]

    def describe_progress(self, first_unfinished: int) -> str:
        level, index_in_level = self.index_at(first_unfinished)
        if index_in_level == 0:
            return f"level {level - 1}"
        fraction = index_in_level / partition_count(level)
        return f"level {level - 1} ({fraction:.1%} of level {level})"


def _number_and_divisor_sum(primes: list[mpz], exponents: Partition) -> tuple[int, int]:
    """n = 2^a1 3^a2 ... and sigma(n), exactly; `primes` has len(exponents) or more."""
    n = math.prod(
        (p**a for p, a in zip(primes, exponents, strict=False)),
        start=mpz(1),
    )
    divisor_sum = math.prod(
        (
            (p ** (a + 1) - 1) // (p - 1)
            for p, a in zip(primes, exponents, strict=False)
        ),
        start=mpz(1),
    )
    return int(n), int(divisor_sum)


STRATEGY = SuperabundantStrategy()
