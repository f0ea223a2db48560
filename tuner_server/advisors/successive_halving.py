"""SuccessiveHalving: one synchronous successive-halving bracket, repeated.

classArgs: ``optimize_mode``; ``min_budget`` (1) and ``max_budget`` (81) epochs; ``eta`` (3);
``n`` configs in the first rung (default ``eta^K`` with ``K = floor(log_eta(max/min))``, so
one config reaches ``max_budget``); ``exec_mode`` (``parallelism``: while a bracket waits
for its rung to end, the next bracket starts; ``serial``: wait); ``max_brackets`` (none:
keep going until maxTrialNum / maxExecSeconds); ``promotion`` (``resume``, default).

Rung ``k`` trains ``n // eta^k`` configs for ``min_budget * eta^k`` epochs (the last rung
``max_budget``); the top ``1/eta`` of a rung go on once all of it has ended
(seed 002's rule). A promoted trial resumes from the checkpoint of its previous rung.
"""

from __future__ import annotations

import math
from typing import Any

from tuner_server.advisors.base import check_budgets, check_eta, integer_budgets
from tuner_server.advisors.brackets import BracketAdvisor, BracketPlan
from tuner_server.tuners.base import arg, reject_unknown


def rung_count(low: float, high: float, eta: float) -> int:
    """K such that low * eta^K <= high < low * eta^(K+1) (tolerant of float error)."""
    return int(math.floor(math.log(high / low) / math.log(eta) + 1e-9))


class SuccessiveHalvingAdvisor(BracketAdvisor):
    name = "SuccessiveHalving"
    aliases = ("SH", "SHA")

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("min_budget", "max_budget", "eta", "n", "exec_mode", "max_brackets", "promotion"))
        self.min_b, self.max_b = check_budgets(n, args, "min_budget", 1, "max_budget", 81)
        self.eta = check_eta(n, args)
        k = rung_count(self.min_b, self.max_b, self.eta)
        self.n0 = arg(n, args, "n", int(round(self.eta**k)), int, lambda v: v >= 1, "must be >= 1")
        raw = [self.min_b * self.eta**i for i in range(k)] + [self.max_b]
        self.the_plan = BracketPlan(tuple(max(1, int(self.n0 // self.eta**i)) for i in range(k + 1)), integer_budgets(raw))
        self.take_exec_mode(args)
        self.take_max_brackets(args)
        self.take_promotion(args)

    @property
    def max_budget(self) -> int:
        return self.the_plan.budgets[-1]

    def plan(self, i: int) -> BracketPlan:
        return self.the_plan
