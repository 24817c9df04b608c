"""Loading every kernel and its tables before the first block, not during it.

A fresh process pays about a second the first time it runs a kernel: numba loads the
cached machine code (or compiles it, when there is no cache yet) and the ln ln table
is built. A worker that calls `warm_up` before claiming work keeps that second out of
its first block's lease and out of its rate.
"""

from riemann.kernels.exhaustive import screen_range
from riemann.kernels.superabundant import screen_partitions


def warm_up() -> None:
    """Run each kernel once on a few candidates."""
    for _ in screen_partitions(90, 0, 10, "1.767"):
        pass
    for _ in screen_range(10**10, 10**10 + 10, "1.767"):
        pass
