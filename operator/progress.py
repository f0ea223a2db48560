"""The live progress line of `autotune run`: trials done/running/failed, best, elapsed."""

from __future__ import annotations

import os
import sys
import time
from typing import Collection, TextIO

from autotune_operator.decide import final_pending, final_trained
from autotune_operator.status import STATE_COUNT_FIELD, ExperimentStatus, TrialCounts


def search_counts(s: ExperimentStatus) -> TrialCounts:
    """The trial counts without final-training reruns: maxTrialNum bounds the search only,
    so "N/M trials" must not count them (they are shown apart, as "final k/n")."""
    c = s.trials.model_copy()
    for t in s.finalTraining or []:
        field = STATE_COUNT_FIELD.get(t.state)
        if field is not None and getattr(c, field) > 0:
            setattr(c, field, getattr(c, field) - 1)
            c.total -= 1
    return c


def final_to_start(s: ExperimentStatus, rerun_own: Collection[str] = frozenset()) -> int:
    """Chosen configurations (the Pareto front, or the best trial) with no final trial yet:
    final training starts them as slots free up (decide.decide), so the count of final
    trials so far is not yet how many there will be. ``rerun_own``: decide.rerun_own_keys."""
    if s.phase.terminal:
        return 0
    chosen = [p.parameters for p in s.paretoFront] if s.paretoFront else [s.bestTrial.parameters] if s.bestTrial else []
    trained = final_trained([t.model_dump() for t in s.finalTraining or []])
    return sum(final_pending([c], trained, rerun_own) for c in chosen)


def format_progress(s: ExperimentStatus, elapsed: float, max_trials: int | None, compact: bool = False,
                    rerun_own: Collection[str] = frozenset()) -> str:
    """``compact``: without the per-state counts and the best trial's name (a narrow terminal);
    ``rerun_own``: the parameters the tuner gives a final rerun afresh (decide.rerun_own_keys)."""
    c = search_counts(s)
    done = c.succeeded + c.failed + c.earlyStopped + c.stopped
    of = f"/{max_trials}" if max_trials else ""
    parts = [f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {s.phase.value:<7}", f"trials {done}{of} done"]
    detail = [f"{c.succeeded} ok"]
    if c.failed:
        detail.append(f"{c.failed} failed")
    if c.earlyStopped:
        detail.append(f"{c.earlyStopped} early-stopped")
    if c.stopped:
        detail.append(f"{c.stopped} stopped")
    left = c.running + c.waiting
    # Unended trials of an ended run are ones Ctrl-C cut: they run again when it is resumed.
    parts[-1] += ("" if compact else f" ({', '.join(detail)})") + ", " + (f"{left} to run again" if s.phase.terminal and left else f"{left} running")
    if s.finalTraining:
        ended = sum(t.state not in ("WAITING", "RUNNING") for t in s.finalTraining)
        parts.append(f"final {ended}/{len(s.finalTraining) + final_to_start(s, rerun_own)} done")
    if s.bestTrial:
        parts.append(f"best {s.bestTrial.value:.6g}" + ("" if compact else f" ({s.bestTrial.name})"))
    if s.paretoFront:
        parts.append(f"pareto front {len(s.paretoFront)} trial(s)")
    return " | ".join(parts)


class Progress:
    """Rewrites one line on a terminal; prints a line per change otherwise (CI logs)."""

    def __init__(self, max_trials: int | None, stream: TextIO = sys.stderr, quiet: bool = False,
                 rerun_own: Collection[str] = frozenset()) -> None:
        self.max_trials = max_trials
        self.rerun_own = rerun_own
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self._last = ""

    def update(self, s: ExperimentStatus) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        line = format_progress(s, elapsed, self.max_trials, rerun_own=self.rerun_own)
        key = line.split("]", 1)[1]
        if self.tty:
            # One row at most: a longer line wraps, and "\r\033[K" then goes back to and
            # clears only its last row, so every rewrite left the rows above on screen.
            columns = self._columns()
            if columns and len(line) >= columns:
                line = format_progress(s, elapsed, self.max_trials, compact=True, rerun_own=self.rerun_own)
                if len(line) >= columns:
                    line = line[: max(columns - 4, 0)] + "..."
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        elif key != self._last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last = key

    def _columns(self) -> int | None:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or None
        except (OSError, ValueError, AttributeError):  # not a terminal after all, or closed
            return None

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
