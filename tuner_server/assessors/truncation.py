"""Truncation selection (Azure ML sweep jobs): stop the worst given percentage at each interval.

After a trial's k-th intermediate report the policy is applied when k is a multiple of
``evaluation_interval`` and k >= ``delay_evaluation`` (as for Bandit). The trial's value at
interval k (its k-th report) is compared with the values at interval k of every trial that
has reached it (with ``exclude_finished_jobs``, only trials still running, plus this one).
With n such trials, the ``floor(n * truncation_percentage / 100)`` worst are cut: the trial
is stopped when fewer than that many of the others are worse than or equal to it (ties
count in its favour, so a tie group is never cut in part). Too few trials (n * p < 100)
means nothing is cut.

truncation_percentage: an integer 1..99 (Azure), default 5.
"""

from __future__ import annotations

from typing import Any, Sequence

from tuner_server.assessors.bandit import evaluates_at, interval_args
from tuner_server.assessors.base import Assessor, AssessorArgsError, number_arg, reject_rest
from tuner_server.history import TrialRecord


class TruncationSelectionAssessor(Assessor):
    name = "TruncationSelection"
    aliases = ("Truncation", "TruncationSelectionPolicy")

    def configure(self, args: dict[str, Any]) -> None:
        p = number_arg(self.name, args, "truncation_percentage", 5, low=1, integer=True)
        if p > 99:
            raise AssessorArgsError(f"{self.name} classArgs.truncation_percentage must be an integer 1..99, got {p!r}")
        self.truncation_percentage = p
        self.evaluation_interval, self.delay_evaluation = interval_args(self.name, args)
        ex = args.pop("exclude_finished_jobs", False)
        if not isinstance(ex, bool):
            raise AssessorArgsError(f"{self.name} classArgs.exclude_finished_jobs must be true or false, got {ex!r}")
        self.exclude_finished_jobs = ex
        reject_rest(
            self.name,
            args,
            ("optimize_mode", "truncation_percentage", "evaluation_interval", "delay_evaluation", "exclude_finished_jobs"),
        )

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        k = len(trial.intermediate)
        if not evaluates_at(k, self.evaluation_interval, self.delay_evaluation):
            return False
        mine = trial.intermediate[k - 1]
        others = [
            t.intermediate[k - 1]
            for t in history
            if t.trial_id != trial.trial_id
            and len(t.intermediate) >= k
            and not (self.exclude_finished_jobs and t.state.ended)
        ]
        cut = (len(others) + 1) * self.truncation_percentage // 100
        worse_or_equal = sum(1 for v in others if not self.mode.better(v, mine))
        return worse_or_equal < cut
