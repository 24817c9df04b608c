"""`riemann status`: progress, blocks by state, best witness value and live workers."""

import argparse
from datetime import UTC, datetime
from typing import Any

from riemann.cli import output
from riemann.cli.database import opened_store
from riemann.store import LiveWorker, Store, StrategyProgress
from riemann.strategies import strategy_named

STATES = ["NOT_STARTED", "IN_PROGRESS", "FINISHED", "FAILED", "DEAD"]
RECENT_SECONDS = 300.0
"""Throughput is measured over the blocks finished in this window."""
LIVE_WITHIN_SECONDS = 180.0
"""A worker seen within this time is live (it reports at least once a lease third)."""


def strategy_report(progress: StrategyProgress) -> dict[str, Any]:
    strategy = strategy_named(progress.search.strategy)
    search = progress.search
    return {
        "strategy": search.strategy,
        "store_threshold": search.store_threshold,
        "start": strategy.format_index(strategy.index_at(search.start_ordinal)),
        "end": None
        if search.end_ordinal is None
        else strategy.format_index(strategy.index_at(search.end_ordinal)),
        "completed_through": strategy.describe_progress(progress.first_unfinished)
        if progress.first_unfinished > search.start_ordinal
        else None,
        "complete": search.end_ordinal is not None
        and progress.first_unfinished >= search.end_ordinal,
        "blocks": {state: progress.blocks.get(state, 0) for state in STATES},
        "candidates_checked": progress.candidates_checked,
        "candidates_per_second": round(
            progress.recent_candidates / max(progress.recent_seconds, 1.0), 1
        ),
        "last_finished_at": progress.last_finished_at,
        "best": None
        if progress.best_n is None
        else {
            "n": str(progress.best_n),
            "witness_value": str(progress.best_witness_value),
            "block_id": progress.best_block_id,
        },
    }


def worker_report(worker: LiveWorker) -> dict[str, Any]:
    return {
        "worker_id": worker.worker_id,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "started_at": worker.started_at,
        "last_seen_at": worker.last_seen_at,
        "current_block_id": worker.current_block_id,
        "blocks_finished": worker.blocks_finished,
        "candidates_per_second": worker.candidates_per_second,
    }


def status_report(store: Store) -> dict[str, Any]:
    strategies = [
        strategy_report(progress) for progress in store.progress(RECENT_SECONDS)
    ]
    finished_times = [
        s["last_finished_at"] for s in strategies if s["last_finished_at"]
    ]
    return {
        "strategies": strategies,
        "last_finished_at": max(finished_times, default=None),
        "workers": [worker_report(w) for w in store.live_workers(LIVE_WITHIN_SECONDS)],
        "dead_blocks": [
            {"block_id": b.block_id, "strategy": b.strategy, "last_error": b.last_error}
            for b in store.dead_blocks()
        ],
    }


def _seconds_ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f"{(datetime.now(UTC) - moment).total_seconds():.0f} s ago"


def print_text(report: dict[str, Any]) -> None:
    if not report["strategies"]:
        output.say("no search yet: start one with `riemann run` or `riemann generate`")
    for entry in report["strategies"]:
        bound = f" to {entry['end']}" if entry["end"] else ", unbounded"
        output.say(
            f"{entry['strategy']} (from {entry['start']}{bound}, storing witness "
            f"values above {entry['store_threshold']})"
        )
        done = entry["completed_through"] or "nothing yet"
        output.say(
            f"  complete through  {done}"
            + ("  (whole bound)" if entry["complete"] else "")
        )
        output.say(
            "  blocks            "
            + "  ".join(f"{state} {entry['blocks'][state]}" for state in STATES)
        )
        output.say(
            f"  candidates        {entry['candidates_checked']:,} checked, "
            f"{entry['candidates_per_second']:,.0f}/s over the last "
            f"{RECENT_SECONDS / 60:.0f} minutes"
        )
        best = entry["best"]
        output.say(
            "  best above 5040   "
            + (
                f"W = {best['witness_value']} at n = {best['n']} "
                f"(block {best['block_id']})"
                if best
                else "none yet"
            )
        )
        output.say(f"  last block done   {_seconds_ago(entry['last_finished_at'])}")
    output.say(f"live workers: {len(report['workers'])}")
    for worker in report["workers"]:
        rate = worker["candidates_per_second"]
        output.say(
            f"  {worker['worker_id']}  block {worker['current_block_id'] or '-'}  "
            f"{worker['blocks_finished']} finished  "
            + (f"{rate:,.0f}/s  " if rate else "")
            + f"seen {_seconds_ago(worker['last_seen_at'])}"
        )
    if report["dead_blocks"]:
        output.say(
            f"DEAD blocks: {len(report['dead_blocks'])} "
            "(see `riemann blocks dead`, retry with `riemann blocks requeue`)"
        )


def status(args: argparse.Namespace) -> int:
    with opened_store(args, create=False) as store:
        report = status_report(store)
    if args.json:
        output.say_json(report)
    else:
        print_text(report)
    return output.EXIT_OK
