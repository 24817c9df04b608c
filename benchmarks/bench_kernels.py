"""Kernels against the exact path on the same blocks, and the whole pipeline.

    python benchmarks/bench_kernels.py [--repeats R] [--pipeline-level L] [--workers K]

Prints a table: strategy, block, path, candidates, seconds, candidates per second and
the ratio of the kernel's rate to the exact path's. Each figure is the best of R runs
in this one process (the machine is shared, so the best run is the least disturbed).
The exact path does some ten thousand candidates a second, so it runs on a sample, the
first `--exact-sample` candidates of each block, and the kernel runs on both the
sample and the whole block; the ratio compares their rates on the whole block.

The pipeline line times `riemann run --until-level L --workers K` on a fresh embedded
PostgreSQL (start-up included) against the kernel's single-core rate over the same
levels times K. `--pipeline-level 0` skips it.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from riemann.strategies import SearchBlock, Strategy, strategy_named

THRESHOLD = "1.767"

SUPERABUNDANT_BLOCKS = [(90, 10_000_000, 10_000_000), (100, 50_000_000, 10_000_000)]
EXHAUSTIVE_BLOCKS = [(10**10, 10_000_000)]


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def row(strategy: str, block: str, path: str, candidates: int, seconds: float) -> str:
    rate = candidates / seconds
    return (
        f"| {strategy} | {block} | {path} | {candidates:,} | {seconds:.3f} "
        f"| {rate:,.0f} |"
    )


def compare(
    strategy: Strategy[object],
    name: str,
    block: SearchBlock,
    sample: SearchBlock,
    repeats: int,
) -> list[str]:
    """Rows for the exact path and the kernel on `sample`, the kernel on `block`."""
    strategy.process(sample, THRESHOLD)  # compile or load from the cache first
    exact = best_seconds(lambda: strategy.process_exact(sample, THRESHOLD), repeats)
    fast_sample = best_seconds(lambda: strategy.process(sample, THRESHOLD), repeats)
    fast = best_seconds(lambda: strategy.process(block, THRESHOLD), repeats)
    exact_rate = sample.candidate_count / exact
    label = f"{block.start}..{block.end}"
    sample_label = f"{sample.start}..{sample.end}"
    return [
        row(name, sample_label, "exact", sample.candidate_count, exact) + " 1 |",
        row(name, sample_label, "kernel", sample.candidate_count, fast_sample)
        + f" {sample.candidate_count / fast_sample / exact_rate:,.0f} |",
        row(name, label, "kernel", block.candidate_count, fast)
        + f" {block.candidate_count / fast / exact_rate:,.0f} |",
    ]


def kernel_rows(repeats: int, exact_sample: int) -> list[str]:
    rows = []
    superabundant = strategy_named("superabundant")
    for level, index, count in SUPERABUNDANT_BLOCKS:
        start = superabundant.ordinal((level, index))
        rows += compare(
            superabundant,
            "superabundant",
            superabundant.block_between(start, start + count),
            superabundant.block_between(start, start + exact_sample),
            repeats,
        )
    exhaustive = strategy_named("exhaustive")
    for start, count in EXHAUSTIVE_BLOCKS:
        rows += compare(
            exhaustive,
            "exhaustive",
            exhaustive.block_between(start, start + count),
            exhaustive.block_between(start, start + exact_sample),
            repeats,
        )
    return rows


def kernel_seconds_through(level: int, block_size: int = 20_000_000) -> float:
    """One core's kernel time for every candidate of levels 2 to `level`."""
    superabundant = strategy_named("superabundant")
    blocks = superabundant.next_blocks(
        superabundant.ordinal((2, 0)),
        block_size,
        10**9,
        superabundant.end_after_level(level),
    )
    started = time.perf_counter()
    for block in blocks:
        superabundant.process(block, THRESHOLD)
    return time.perf_counter() - started


def pipeline_rows(level: int, workers: int) -> list[str]:
    superabundant = strategy_named("superabundant")
    candidates = superabundant.end_after_level(level) - superabundant.ordinal((2, 0))
    kernel = kernel_seconds_through(level)
    with tempfile.TemporaryDirectory(prefix="riemann-bench-") as data_dir:
        # The embedded server may run as another user (postgres, under root).
        Path(data_dir).chmod(0o755)
        command = [
            sys.executable,
            "-m",
            "riemann",
            "run",
            "--until-level",
            str(level),
            "--workers",
            str(workers),
            "--data-dir",
            str(Path(data_dir) / "postgres"),
            "--no-progress",
            "--log-level",
            "WARNING",
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        pipeline = time.perf_counter() - started
    kernel_rate = candidates / kernel
    pipeline_rate = candidates / pipeline
    block = f"levels 2..{level}"
    return [
        row("superabundant", block, "kernel, 1 core", candidates, kernel) + " |",
        row(
            "superabundant",
            block,
            f"riemann run, {workers} workers",
            candidates,
            pipeline,
        )
        + f" {pipeline_rate / (kernel_rate * workers):.0%} of kernel x {workers} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exact-sample", type=int, default=20_000)
    parser.add_argument("--pipeline-level", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()

    print("| strategy | block | path | candidates | seconds | candidates/s | ratio |")
    print("|---|---|---|---:|---:|---:|---:|")
    for line in kernel_rows(arguments.repeats, arguments.exact_sample):
        print(line, flush=True)
    if arguments.pipeline_level:
        for line in pipeline_rows(arguments.pipeline_level, arguments.workers):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
