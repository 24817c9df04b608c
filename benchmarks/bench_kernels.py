"""Kernels against the exact path on the same blocks, and the whole pipeline.

    python benchmarks/bench_kernels.py [--repeats R] [--pipeline-level L] [--workers K]

Prints a table: strategy, block, path, candidates, seconds, candidates per second and
the ratio of the kernel's rate to the exact path's. Each figure is the best of R runs
in this one process (the machine is shared, so the best run is the least disturbed).
The exact path does some ten thousand candidates a second, so it runs on a sample, the
first `--exact-sample` candidates of each block, and the kernel runs on both the
sample and the whole block; the ratio compares their rates on the whole block.

The pipeline lines time `riemann run --until-level L --workers K` on the embedded
PostgreSQL, against the kernel's single-core rate over the same levels times K: on a
new data folder (initdb included), on an existing one (server start and stop
included), and from the first claim to the last finish. `--pipeline-level 0` skips
them.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2

from riemann.embedded_postgres import EmbeddedPostgres
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
    """One core's kernel time for every candidate of levels 2 to `level`, in blocks
    of `block_size`, with the exact path's part (levels below 13) included."""
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


def run_pipeline(level: int, workers: int, data_dir: Path) -> float:
    """Seconds of wall time of `riemann run --until-level level` on `data_dir`."""
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
        str(data_dir),
        "--no-progress",
        "--log-level",
        "WARNING",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def busy_seconds(data_dir: Path) -> float:
    """From the first claim to the last finish of the search stored in `data_dir`,
    by the database's clock: the pipeline without the processes' start and stop."""
    server = EmbeddedPostgres(data_dir)
    connection = psycopg2.connect(server.start())
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT extract(epoch FROM max(finished_at) - min(started_at)) "
                "FROM search_blocks"
            )
            (seconds,) = cursor.fetchone()
    finally:
        connection.close()
        server.stop()
    return float(seconds)


def pipeline_rows(level: int, workers: int, repeats: int) -> list[str]:
    """Three measures of `riemann run`, each against one core's kernel time x K.

    A first run on a new data folder pays for initdb; later runs start an existing
    server; and between the first claim and the last finish only the pipeline
    itself (generator, janitor, workers, PostgreSQL) is at work.
    """
    superabundant = strategy_named("superabundant")
    candidates = superabundant.end_after_level(level) - superabundant.ordinal((2, 0))
    kernel = min(kernel_seconds_through(level) for _ in range(repeats))
    kernel_rate = candidates / kernel
    block = f"levels 2..{level}"

    def measured(path: str, seconds: float) -> str:
        share = candidates / seconds / (kernel_rate * workers)
        return (
            row("superabundant", block, path, candidates, seconds)
            + f" {share:.0%} of kernel x {workers} |"
        )

    with tempfile.TemporaryDirectory(prefix="riemann-bench-") as folder:
        # The embedded server may run as another user (postgres, under root).
        Path(folder).chmod(0o755)
        fresh = run_pipeline(level, workers, Path(folder) / "fresh")
        existing_dir = Path(folder) / "existing"
        server = EmbeddedPostgres(existing_dir)
        server.start()
        server.stop()
        existing = run_pipeline(level, workers, existing_dir)
        busy = busy_seconds(existing_dir)
    return [
        row("superabundant", block, "kernel, 1 core", candidates, kernel) + " |",
        measured(f"riemann run, {workers} workers, new data folder", fresh),
        measured(f"riemann run, {workers} workers, existing data folder", existing),
        measured(f"first claim to last finish, {workers} workers", busy),
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
        rows = pipeline_rows(
            arguments.pipeline_level, arguments.workers, arguments.repeats
        )
        for line in rows:
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
