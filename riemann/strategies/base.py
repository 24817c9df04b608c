"""What every search strategy provides: blocks, their exact results and their digests.

A strategy enumerates candidates in a fixed order. Every candidate has an ordinal, its
position in that order, and an index, the strategy's own readable name for that
position (an integer n, or a level and an index within the level). A block is a
half-open range of ordinals [start, end); blocks cut from consecutive ordinals tile
the enumeration with no gap and no overlap.
"""

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gmpy2 import mpfr

from riemann.witness import (
    ROBIN_BOUND,
    e_gamma,
    integer_text,
    log_of,
    to_mpfr,
    witness_value,
)

IndexT = TypeVar("IndexT")

DIGEST_FORMAT = "riemann block result 3"
"""First line of the text a digest is taken of; change it whenever that text changes."""


class InvalidIndexError(ValueError):
    """A search index, from a user or a stored row, malformed or out of range."""


@dataclass(frozen=True)
class SearchBlock:
    """The candidates with ordinals in [start_ordinal, end_ordinal) of one strategy."""

    strategy: str
    start: str
    end: str
    start_ordinal: int
    end_ordinal: int

    @property
    def candidate_count(self) -> int:
        return self.end_ordinal - self.start_ordinal


@dataclass(frozen=True)
class WitnessRecord:
    """One candidate with its exact divisor sum and its witness value."""

    n: int
    divisor_sum: int
    witness_value: mpfr
    log_n: mpfr
    level: int | None = None
    exponents: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BlockResult:
    """The exact outcome of processing one block.

    `best` is the candidate with the largest witness value (the smaller n on a tie),
    and `best_above_5040` the same among the candidates n > 5040, where a
    counterexample would be: the two differ only in blocks that hold n <= 5040, whose
    small n have the largest witness values of all. `records` holds every candidate
    whose witness value exceeds `threshold`, and every counterexample whatever the
    threshold, by n.
    """

    block: SearchBlock
    threshold: str
    candidates_checked: int
    best: WitnessRecord | None
    records: tuple[WitnessRecord, ...]
    best_above_5040: WitnessRecord | None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", result_digest(self))


THRESHOLD_DIGITS = 80
"""Significant digits of the threshold in a digest: one decimal per 256-bit value.

Two different 256-bit values differ by at least 2^-256 (about 8.6e-78) of the larger,
far more than a unit in the 80th significant digit (at most 1e-79 of the value), so
their correctly rounded 80-digit texts differ.
"""


def threshold_text(threshold: str) -> str:
    """The threshold's value at the project's precision, in one spelling.

    Every decision compares with that value, so texts that parse to it ("1.767",
    "1.7670", "+1.767e0") give the same result and must give the same digest, and
    texts of different values must not: 80 significant digits in scientific
    notation, "0" for zero of either sign, "inf", "-inf" or "nan".
    """
    value = to_mpfr(threshold)
    if value >= 0 and value <= 0:  # zero of either sign; NaN fails both
        return "0"
    return format(value, f".{THRESHOLD_DIGITS - 1}e")


def result_digest(result: BlockResult) -> str:
    """SHA-256 of the result's exact quantities, in hexadecimal.

    Only integers, the strings that name the block and the threshold's value at
    the project's precision enter it, never a value rounded by a computation, so
    any two correct implementations agree on it.
    """
    lines = [
        DIGEST_FORMAT,
        f"strategy {result.block.strategy}",
        f"start {result.block.start}",
        f"end {result.block.end}",
        f"threshold {threshold_text(result.threshold)}",
        f"candidates {result.candidates_checked}",
    ]
    for label, best in (
        ("best", result.best),
        ("best above 5040", result.best_above_5040),
    ):
        if best is not None:
            n, divisor_sum = integer_text(best.n), integer_text(best.divisor_sum)
            lines.append(f"{label} {n} {divisor_sum}")
    lines.extend(
        f"record {integer_text(r.n)} {integer_text(r.divisor_sum)}"
        for r in result.records
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class BlockScan:
    """Accumulates a block's result candidate by candidate, in exact arithmetic.

    The exact path feeds every candidate to `consider`; a fast kernel feeds only the
    candidates its floating-point screen could not rule out and reports the rest
    through `count_screened`, and both end with the same result.
    """

    def __init__(self, block: SearchBlock, threshold: str) -> None:
        self.block = block
        self.threshold = threshold
        self._threshold_value = to_mpfr(threshold)
        self._e_gamma = e_gamma()
        self._checked = 0
        self._best: _Candidate | None = None
        self._best_above_5040: _Candidate | None = None
        self._records: dict[int, WitnessRecord] = {}

    def consider(
        self,
        n: int,
        divisor_sum: int,
        level: int | None = None,
        exponents: tuple[int, ...] | None = None,
    ) -> None:
        """Count one candidate and settle it against the threshold and the best."""
        self._checked += 1
        self.settle(n, divisor_sum, level, exponents)

    def count_screened(self, candidates: int) -> None:
        """Count candidates ruled out, for the threshold and the best, by a screen."""
        self._checked += candidates

    def settle(
        self,
        n: int,
        divisor_sum: int,
        level: int | None = None,
        exponents: tuple[int, ...] | None = None,
    ) -> None:
        """Compare an already counted candidate with the threshold and the bests.

        A counterexample (n > 5040, W(n) >= e^gamma) is a record whatever the
        threshold, so no setting can keep one from being stored and reported.
        """
        value = witness_value(n, divisor_sum)
        candidate = (value, n, divisor_sum, level, exponents)
        if _beats(candidate, self._best):
            self._best = candidate
        above_bound = n > ROBIN_BOUND
        if above_bound and _beats(candidate, self._best_above_5040):
            self._best_above_5040 = candidate
        is_record = value > self._threshold_value or (
            above_bound and value >= self._e_gamma
        )
        if is_record and n not in self._records:
            self._records[n] = WitnessRecord(
                n, divisor_sum, value, log_of(n), level, exponents
            )

    def result(self) -> BlockResult:
        records = tuple(self._records[n] for n in sorted(self._records))
        return BlockResult(
            self.block,
            self.threshold,
            self._checked,
            _record_of(self._best),
            records,
            _record_of(self._best_above_5040),
        )


_Candidate = tuple[mpfr, int, int, int | None, tuple[int, ...] | None]
"""(witness value, n, sigma(n), level, exponents) of a candidate being compared."""


def _beats(candidate: _Candidate, best: _Candidate | None) -> bool:
    """A larger witness value wins; of two equal ones, the smaller n."""
    return (
        best is None
        or candidate[0] > best[0]
        or (candidate[0] == best[0] and candidate[1] < best[1])
    )


def _record_of(candidate: _Candidate | None) -> WitnessRecord | None:
    if candidate is None:
        return None
    value, n, divisor_sum, level, exponents = candidate
    return WitnessRecord(n, divisor_sum, value, log_of(n), level, exponents)


class Strategy(ABC, Generic[IndexT]):
    """How candidates are enumerated, cut into blocks and processed."""

    name: str
    default_start_text: str
    first_ordinal: int
    """The ordinal of the first candidate; no block starts before it."""

    @abstractmethod
    def parse_index(self, text: str) -> IndexT:
        """The index written as `text`; InvalidIndexError naming the bad value."""

    @abstractmethod
    def format_index(self, index: IndexT) -> str:
        """The text form of `index`, which `parse_index` reads back."""

    @abstractmethod
    def ordinal(self, index: IndexT) -> int:
        """The position of `index` in the enumeration."""

    @abstractmethod
    def index_at(self, ordinal: int) -> IndexT:
        """The index at position `ordinal`; inverse of `ordinal`."""

    @abstractmethod
    def process_exact(self, block: SearchBlock, threshold: str) -> BlockResult:
        """The block's result by exact arithmetic on every candidate: the reference."""

    @abstractmethod
    def describe_progress(self, first_unfinished: int) -> str:
        """Where the search stands when everything before ordinal `first_unfinished`
        is finished, for people (for example "level 41" or "n = 123456")."""

    def progress_segments(self, start: int, end: int) -> list[tuple[str, int, int]]:
        """Named parts of the ordinals [start, end) worth a progress bar each, such
        as levels; none by default."""
        return []

    def process(self, block: SearchBlock, threshold: str) -> BlockResult:
        """The block's result by the fastest available path (equal to the exact one)."""
        return self.process_exact(block, threshold)

    def refuse_start_before_first(self, start_ordinal: int) -> None:
        """InvalidIndexError if a block from `start_ordinal` would start before the
        first candidate."""
        if start_ordinal < self.first_ordinal:
            first_text = self.format_index(self.index_at(self.first_ordinal))
            raise InvalidIndexError(
                f"a {self.name} block cannot start at ordinal {start_ordinal}: "
                f"the first candidate is {first_text}, ordinal {self.first_ordinal}"
            )

    def block_between(self, start_ordinal: int, end_ordinal: int) -> SearchBlock:
        """The block of the ordinals [start_ordinal, end_ordinal).

        InvalidIndexError when it would start before the first candidate, where
        the index texts could not be read back and no witness value exists.
        """
        self.refuse_start_before_first(start_ordinal)
        if end_ordinal <= start_ordinal:
            raise ValueError(f"an empty block [{start_ordinal}, {end_ordinal})")
        return SearchBlock(
            self.name,
            self.format_index(self.index_at(start_ordinal)),
            self.format_index(self.index_at(end_ordinal)),
            start_ordinal,
            end_ordinal,
        )

    def next_blocks(
        self,
        start_ordinal: int,
        block_size: int,
        count: int,
        end_ordinal: int | None = None,
    ) -> list[SearchBlock]:
        """Up to `count` consecutive blocks of `block_size` candidates from
        `start_ordinal`, the last one shortened so none passes `end_ordinal`."""
        if block_size < 1:
            raise ValueError(f"a block holds at least one candidate, got {block_size}")
        blocks: list[SearchBlock] = []
        start = start_ordinal
        while len(blocks) < count and (end_ordinal is None or start < end_ordinal):
            end = start + block_size
            if end_ordinal is not None:
                end = min(end, end_ordinal)
            blocks.append(self.block_between(start, end))
            start = end
        return blocks

    def block_from_text(self, start: str, end: str) -> SearchBlock:
        """The block named by stored index texts, validated."""
        start_ordinal = self.ordinal(self.parse_index(start))
        end_ordinal = self.ordinal(self.parse_index(end))
        if end_ordinal <= start_ordinal:
            raise InvalidIndexError(
                f"block end {end!r} does not come after its start {start!r}"
            )
        return self.block_between(start_ordinal, end_ordinal)
