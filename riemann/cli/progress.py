"""Live progress of `riemann run`: a bar per active level, rate and best witness."""

import logging
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from riemann.store import Store, StrategyProgress
from riemann.strategies import Strategy

logger = logging.getLogger(__name__)

MAX_BARS = 6
RATE_WINDOW_SECONDS = 20.0
LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Snapshot:
    """What the display shows at one moment."""

    progress: StrategyProgress
    completed_through: str | None
    segments: list[tuple[str, int, int]]
    candidates_per_second: float


class RateMeter:
    """Candidates per second over a sliding window of observations."""

    def __init__(self, window_seconds: float = RATE_WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, int]] = deque()

    def observe(self, moment: float, total: int) -> float:
        self._samples.append((moment, total))
        while self._samples and moment - self._samples[0][0] > self.window_seconds:
            self._samples.popleft()
        first_moment, first_total = self._samples[0]
        elapsed = moment - first_moment
        return (total - first_total) / elapsed if elapsed > 0 else 0.0


def take_snapshot(
    store: Store, strategy: Strategy[Any], meter: RateMeter
) -> Snapshot | None:
    reports = [p for p in store.progress(300.0) if p.search.strategy == strategy.name]
    if not reports:
        return None
    progress = reports[0]
    search = progress.search
    first = progress.first_unfinished
    last = max(progress.issued_through or first, first + 1)
    if search.end_ordinal is not None:
        last = min(last, search.end_ordinal)
    segments = strategy.progress_segments(first, last)
    if not segments and search.end_ordinal is not None:
        segments = [("search", search.start_ordinal, search.end_ordinal)]
    done_segments = [
        (label, store.finished_between(strategy.name, start, end), end - start)
        for label, start, end in segments[:MAX_BARS]
    ]
    completed = (
        strategy.describe_progress(first) if first > search.start_ordinal else None
    )
    rate = meter.observe(time.monotonic(), progress.candidates_checked)
    return Snapshot(progress, completed, done_segments, rate)


def short_number(n: int) -> str:
    """n itself when short, else its leading digits and its length."""
    digits = str(n)
    if len(digits) <= 24:
        return digits
    return f"{digits[0]}.{digits[1:7]}e{len(digits) - 1} ({len(digits)} digits)"


def summary_lines(strategy: Strategy[Any], snapshot: Snapshot) -> tuple[str, str]:
    """The headline above the bars: where the search stands, and its best witness."""
    progress = snapshot.progress
    through = snapshot.completed_through or "nothing yet"
    best = (
        f"best above 5040: W = {progress.best_witness_value} "
        f"at n = {short_number(progress.best_n)}"
        if progress.best_n is not None
        else "best above 5040: none yet"
    )
    return (
        f"{strategy.name}: complete through {through} | "
        f"{progress.candidates_checked:,} candidates | "
        f"{snapshot.candidates_per_second:,.0f}/s",
        best,
    )


class ProgressDisplay:
    """Progress bars redrawn in place on a terminal; log lines elsewhere."""

    def __init__(
        self, strategy: Strategy[Any], draw_bars: bool, console: Console | None = None
    ) -> None:
        self.strategy = strategy
        self.draw_bars = draw_bars
        self._console = console or Console(stderr=True)
        self._bars = Progress(
            TextColumn("{task.description:>12}"),
            BarColumn(bar_width=None),
            TextColumn("{task.percentage:>5.1f}%"),
            MofNCompleteColumn(),
            console=self._console,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._headline = Text("starting...")
        self._live: Live | None = None
        self._last_log = 0.0

    def __enter__(self) -> "ProgressDisplay":
        if self.draw_bars:
            self._live = Live(
                Group(self._headline, self._bars),
                console=self._console,
                refresh_per_second=4,
                redirect_stderr=True,
                redirect_stdout=False,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def show(self, snapshot: Snapshot) -> None:
        if not self.draw_bars:
            now = time.monotonic()
            if now - self._last_log >= LOG_EVERY_SECONDS:
                self._last_log = now
                logger.info(
                    "progress",
                    extra={
                        "strategy": self.strategy.name,
                        "completed_through": snapshot.completed_through,
                        "candidates": snapshot.progress.candidates_checked,
                        "candidates_per_second": round(snapshot.candidates_per_second),
                        "best_n": snapshot.progress.best_n,
                        "best_witness_value": snapshot.progress.best_witness_value,
                    },
                )
            return
        self._headline.plain = "\n".join(summary_lines(self.strategy, snapshot))
        shown = set()
        for label, done, total in snapshot.segments:
            shown.add(label)
            if label not in self._tasks:
                self._tasks[label] = self._bars.add_task(label, total=total)
            self._bars.update(self._tasks[label], completed=done, total=total)
        for label in list(self._tasks):
            if label not in shown:
                self._bars.remove_task(self._tasks.pop(label))
