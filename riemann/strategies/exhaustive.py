"""The exhaustive strategy: every integer n from a start, in increasing order.

The index of a candidate is n itself, and so is its ordinal. The default start is
5041, the first n for which Robin's inequality is claimed (G. Robin, 1984).
"""

from riemann.divisor_sum import divisor_sums_of_range
from riemann.strategies.base import (
    BlockResult,
    BlockScan,
    InvalidIndexError,
    SearchBlock,
    Strategy,
)
from riemann.witness import ROBIN_BOUND

SMALLEST_CANDIDATE = 3
"""The witness value n / (n ln ln n) needs ln ln n > 0, that is n >= 3."""


class ExhaustiveStrategy(Strategy[int]):
    name = "exhaustive"
    default_start_text = "5041"
    first_ordinal = SMALLEST_CANDIDATE

    def parse_index(self, text: str) -> int:
        try:
            n = int(text.strip())
        except ValueError:
            raise InvalidIndexError(
                f"exhaustive index {text!r} is not an integer"
            ) from None
        if n < SMALLEST_CANDIDATE:
            raise InvalidIndexError(
                f"exhaustive index {text!r} is below {SMALLEST_CANDIDATE}, "
                "the smallest n with a witness value"
            )
        return n

    def format_index(self, index: int) -> str:
        return str(index)

    def ordinal(self, index: int) -> int:
        return index

    def index_at(self, ordinal: int) -> int:
        return ordinal

    def process_exact(self, block: SearchBlock, threshold: str) -> BlockResult:
        scan = BlockScan(block, threshold)
        _consider_exactly(scan, block.start_ordinal, block.end_ordinal)
        return scan.result()

    def process(self, block: SearchBlock, threshold: str) -> BlockResult:
        """The block's result by the compiled sieve and float screen, settling exactly
        only the candidates the screen cannot rule out; equal to `process_exact`.

        Above `LARGEST_N` the kernel's int64 and float64 arithmetic is no longer exact,
        and the block goes to the exact path. So does its part up to 5040: the
        kernel's screen keeps only what might beat the best of its own range, and
        next to the large witness values of small n that would lose the best above
        5040.
        """
        # Imported here: numba takes most of a second to load, which commands that
        # never compute (status, export) should not pay.
        from riemann.kernels.exhaustive import LARGEST_N, screen_range

        start, end = block.start_ordinal, block.end_ordinal
        if end - 1 > LARGEST_N or start < SMALLEST_CANDIDATE:
            return self.process_exact(block, threshold)
        scan = BlockScan(block, threshold)
        kernel_start = min(max(start, ROBIN_BOUND + 1), end)
        _consider_exactly(scan, start, kernel_start)
        scan.count_screened(end - kernel_start)
        for n, divisor_sum in screen_range(kernel_start, end, threshold):
            scan.settle(n, divisor_sum)
        return scan.result()

    def describe_progress(self, first_unfinished: int) -> str:
        return f"n = {first_unfinished - 1}"

    def end_after(self, last_n: int) -> int:
        """The end ordinal of a search that checks every n up to `last_n`."""
        return last_n + 1


def _consider_exactly(scan: BlockScan, start: int, end: int) -> None:
    """Feed every n in [start, end) to `scan` with its exact divisor sum."""
    for n, divisor_sum in zip(
        range(start, end), divisor_sums_of_range(start, end), strict=True
    ):
        scan.consider(n, divisor_sum)


STRATEGY = ExhaustiveStrategy()
