"""Bandit policy (Azure ML sweep jobs): stop a trial that is not within the slack of the best.

Reports are counted as intervals: after a trial's k-th intermediate report (k = 1, 2, ...)
the policy is applied when k is a multiple of ``evaluation_interval`` and k >=
``delay_evaluation``. At such a k, each trial that has reached interval k is scored by its
best value over its first k reports, ``best`` is the best of those scores (the trial itself
included), and the trial is stopped when its own score is outside the slack:

- ``slack_factor`` f, maximize: score < best / (1 + f) (Azure's definition; e.g. best 0.8,
  f 0.2 -> stop below 0.667); minimize: score > best * (1 + f).
- ``slack_amount`` a, maximize: score < best - a; minimize: score > best + a.

Exactly one of slack_factor and slack_amount must be given. For a negative ``best`` the
ratio form is applied to its magnitude (the bar is best - |best| * f / (1 + f) when
maximizing, best + |best| * f when minimizing), so the slack always lies on the worse
side and the best trial itself is never stopped.
"""

from __future__ import annotations

from typing import Any, Sequence

from tuner_server.assessors.base import Assessor, AssessorArgsError, number_arg, reject_rest
from tuner_server.history import OptimizeMode, TrialRecord


def interval_args(name: str, args: dict[str, Any]) -> tuple[int, int]:
    """evaluation_interval (default 1, >= 1) and delay_evaluation (default 0, >= 0)."""
    interval = number_arg(name, args, "evaluation_interval", 1, low=1, integer=True)
    delay = number_arg(name, args, "delay_evaluation", 0, low=0, integer=True)
    return interval, delay


def evaluates_at(k: int, interval: int, delay: int) -> bool:
    """Azure: the policy applies at every multiple of evaluation_interval that is >= delay_evaluation."""
    return k >= 1 and k % interval == 0 and k >= delay


class BanditAssessor(Assessor):
    name = "Bandit"
    aliases = ("BanditPolicy",)

    def configure(self, args: dict[str, Any]) -> None:
        has_factor, has_amount = "slack_factor" in args, "slack_amount" in args
        if has_factor == has_amount:
            raise AssessorArgsError(
                f"{self.name} needs exactly one of classArgs.slack_factor and classArgs.slack_amount, "
                f"got {'both' if has_factor else 'neither'}"
            )
        if has_factor:
            self.slack_factor: float | None = float(number_arg(self.name, args, "slack_factor", 0, low=0))
            self.slack_amount: float | None = None
        else:
            self.slack_factor = None
            self.slack_amount = float(number_arg(self.name, args, "slack_amount", 0, low=0))
        self.evaluation_interval, self.delay_evaluation = interval_args(self.name, args)
        reject_rest(
            self.name, args, ("optimize_mode", "slack_factor", "slack_amount", "evaluation_interval", "delay_evaluation")
        )

    def bar(self, best: float) -> float:
        """The worst score still within the slack of ``best``."""
        maximize = self.mode is OptimizeMode.MAXIMIZE
        if self.slack_amount is not None:
            return best - self.slack_amount if maximize else best + self.slack_amount
        f = self.slack_factor or 0.0
        if maximize:
            return best / (1 + f) if best >= 0 else best - abs(best) * f / (1 + f)
        return best * (1 + f) if best >= 0 else best + abs(best) * f

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        k = len(trial.intermediate)
        if not evaluates_at(k, self.evaluation_interval, self.delay_evaluation):
            return False
        pick = max if self.mode is OptimizeMode.MAXIMIZE else min
        score = pick(trial.intermediate[:k])
        scores = [score]
        for t in history:
            if t.trial_id != trial.trial_id and len(t.intermediate) >= k:
                scores.append(pick(t.intermediate[:k]))
        return self.mode.better(self.bar(pick(scores)), score)
