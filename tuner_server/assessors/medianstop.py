"""Median stopping (Google Vizier; NNI's Medianstop, Azure ML's median stopping policy).

A running trial is stopped at its k-th intermediate report when its best value over its
first k reports is worse than the median of running averages at step k. Which trials'
running averages make that median is ``median_over``:

- ``"completed"`` (default, NNI's rule): the other trials that SUCCEEDED, each its average
  over its first k reports (one with fewer than k reports: over all of them).
- ``"all"`` (Azure's rule, "the median of the running averages for intervals 1:k across all
  runs"): every trial that has reached k reports, whatever its state (running, succeeded,
  stopped), this trial included; a trial with fewer than k reports has no average for 1:k
  and is left out.

When the rule applies (``evaluates_at``, shared with Bandit and TruncationSelection): at k a
multiple of ``evaluation_interval`` (default 1: every report) and k >= ``start_step``.
``delay_evaluation`` is Azure's name for ``start_step`` (NNI's: the first report the rule
looks at); either may be given, not both. The defaults are NNI's Medianstop exactly.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from tuner_server.assessors.bandit import evaluates_at, interval_args
from tuner_server.assessors.base import Assessor, AssessorArgsError, number_arg, reject_rest
from tuner_server.history import TrialRecord, TrialState

MEDIAN_OVER = ("completed", "all")


def _average(curve: Sequence[float], k: int) -> float:
    upto = curve[: min(k, len(curve))]
    return sum(upto) / len(upto)


class MedianstopAssessor(Assessor):
    name = "Medianstop"
    aliases = ("MedianStop", "MedianStopping")

    def configure(self, args: dict[str, Any]) -> None:
        if "start_step" in args and "delay_evaluation" in args:
            raise AssessorArgsError(
                f"{self.name} classArgs.start_step and classArgs.delay_evaluation are one setting (NNI's and "
                f"Azure's name for the first report the rule applies at): give only one"
            )
        start = number_arg(self.name, args, "start_step", 0, low=0, integer=True)
        self.evaluation_interval, delay = interval_args(self.name, args)
        self.start_step = max(start, delay)  # the one not given is 0
        over = args.pop("median_over", "completed")
        if not isinstance(over, str) or over not in MEDIAN_OVER:
            raise AssessorArgsError(
                f"{self.name} classArgs.median_over must be 'completed' (NNI: completed trials) or 'all' "
                f"(Azure: every trial at that step, running ones too), got {over!r}"
            )
        self.median_over = over
        reject_rest(
            self.name, args, ("optimize_mode", "start_step", "delay_evaluation", "evaluation_interval", "median_over")
        )

    def averages(self, trial: TrialRecord, history: Sequence[TrialRecord], k: int) -> list[float]:
        """The running averages at step k whose median ``trial`` is compared with."""
        others = [t for t in history if t.trial_id != trial.trial_id and t.intermediate]
        if self.median_over == "completed":
            return [_average(t.intermediate, k) for t in others if t.state is TrialState.SUCCEEDED]
        return [_average(trial.intermediate, k)] + [_average(t.intermediate, k) for t in others if len(t.intermediate) >= k]

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        k = len(trial.intermediate)
        if not evaluates_at(k, self.evaluation_interval, self.start_step):
            return False
        averages = self.averages(trial, history, k)
        if not averages:
            return False
        median = statistics.median(averages)
        best = max(trial.intermediate) if self.mode.value == "maximize" else min(trial.intermediate)
        return self.mode.better(median, best)
