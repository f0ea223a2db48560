"""Median stopping (Google Vizier): stop a trial that does worse than the median.

At step S (>= start_step), a running trial is stopped when its best value so far is
worse than the median, over completed trials, of their running averages at step S
(a completed trial with fewer than S steps contributes its last running average).
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from tuner_server.assessors.base import Assessor, number_arg, reject_rest
from tuner_server.history import TrialRecord, TrialState


class MedianstopAssessor(Assessor):
    name = "Medianstop"
    aliases = ("MedianStop", "MedianStopping")

    def configure(self, args: dict[str, Any]) -> None:
        self.start_step = number_arg(self.name, args, "start_step", 0, low=0, integer=True)
        reject_rest(self.name, args, ("optimize_mode", "start_step"))

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        step = len(trial.intermediate)
        if step == 0 or step < self.start_step:
            return False
        averages = []
        for t in history:
            if t.trial_id == trial.trial_id or t.state is not TrialState.SUCCEEDED or not t.intermediate:
                continue
            upto = t.intermediate[: min(step, len(t.intermediate))]
            averages.append(sum(upto) / len(upto))
        if not averages:
            return False
        median = statistics.median(averages)
        best = max(trial.intermediate) if self.mode.value == "maximize" else min(trial.intermediate)
        return self.mode.better(median, best)
