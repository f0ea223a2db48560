"""Hyperband (Li et al., 2018) with NNI's classArgs: ``optimize_mode``, ``R`` (60), ``eta`` (3),
``exec_mode`` (``parallelism`` | ``serial``), plus ``max_brackets`` and ``promotion``.

``s_max = floor(log_eta R)``; bracket ``i`` uses ``s = s_max - (i mod (s_max + 1))``: it starts
``n = ceil((s_max + 1) / (s + 1) * eta^s)`` configs with ``r = R * eta^-s`` epochs and runs
synchronous successive halving (``n_k = floor(n * eta^-k)`` configs at ``r * eta^k`` epochs,
rounded to whole epochs) up to ``R``. Brackets cycle from the most aggressive (``s_max``)
to plain random search (``s = 0``), then start again, until maxTrialNum / maxExecSeconds
(or ``max_brackets``). In ``parallelism`` mode a bracket waiting for its rung to end lets the
next bracket start (as NNI); ``serial`` waits. Promotions resume from the checkpoint of the
config's previous rung by default (``promotion: restart`` retrains from scratch, as NNI).
"""

from __future__ import annotations

import math
from typing import Any

from tuner_server.advisors.base import MAX_BUDGET, budget_ok, check_eta, check_whole_budget, integer_budgets
from tuner_server.advisors.brackets import BracketAdvisor, BracketPlan
from tuner_server.advisors.successive_halving import rung_count
from tuner_server.tuners.base import arg, reject_unknown


HYPERBAND_ARGS = ("R", "eta", "exec_mode", "max_brackets", "promotion")


def hyperband_plan(R: float, eta: float, s: int, s_max: int) -> BracketPlan:
    n = int(math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9))
    r = R * eta ** (-s)
    sizes = tuple(max(1, int(n * eta ** (-k) + 1e-9)) for k in range(s + 1))
    return BracketPlan(sizes, integer_budgets([r * eta**k for k in range(s + 1)]))


class HyperbandAdvisor(BracketAdvisor):
    name = "Hyperband"
    default_R: float = 60  # NNI's

    def configure(self, args: dict[str, Any]) -> None:
        reject_unknown(self.name, args, HYPERBAND_ARGS)
        self.take_hyperband_args(args)

    def take_hyperband_args(self, args: dict[str, Any]) -> None:
        """R, eta and the bracket settings (shared with BOSS, which runs Hyperband's brackets)."""
        n = self.name
        self.R = check_whole_budget(n, "R", float(arg(n, args, "R", self.default_R, (int, float), budget_ok,
                                                      f"must be >= 1 and <= {MAX_BUDGET:g} (the largest budget, in epochs)")))
        self.eta = check_eta(n, args)
        self.s_max = rung_count(1, self.R, self.eta)
        self.take_exec_mode(args)
        self.take_max_brackets(args)
        self.take_promotion(args)

    @property
    def max_budget(self) -> int:
        return max(1, int(round(self.R)))

    def plan(self, i: int) -> BracketPlan:
        s = self.s_max - (i % (self.s_max + 1))
        return hyperband_plan(self.R, self.eta, s, self.s_max)
