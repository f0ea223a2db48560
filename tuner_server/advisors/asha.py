"""ASHA: asynchronous successive halving (Li et al., 2020), usable with any concurrency.

classArgs: ``optimize_mode``; ``min_budget`` (1) and ``max_budget`` (81) epochs; ``eta`` (3);
``promotion`` (``resume``, default: a promoted config continues from its checkpoint).

Rungs ``k = 0..K`` train for ``min_budget * eta^k`` epochs (the last ``max_budget``). On every
request, from the highest rung down: a config that ended at rung ``k`` and ranks in the top
``floor(n_k / eta)`` of the ``n_k`` results at rung ``k`` so far, and was not promoted yet,
is promoted to rung ``k + 1``. If there is none, a new random config starts at rung 0. It
never waits for running trials, so every slot stays busy; it runs until maxTrialNum /
maxExecSeconds.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tuner_server.advisors.base import Advisor, Proposal, check_budgets, check_eta, integer_budgets, run_loss, runs_of
from tuner_server.advisors.successive_halving import rung_count
from tuner_server.history import TrialRecord
from tuner_server.tuners.base import NoMoreTrials, TryLater, reject_unknown


class ASHAAdvisor(Advisor):
    name = "ASHA"

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("min_budget", "max_budget", "eta", "promotion"))
        self.min_b, self.max_b = check_budgets(n, args, "min_budget", 1, "max_budget", 81)
        self.eta = check_eta(n, args)
        k = rung_count(self.min_b, self.max_b, self.eta)
        self.budgets = integer_budgets([self.min_b * self.eta**i for i in range(k)] + [self.max_b])
        self.take_promotion(args)

    @property
    def max_budget(self) -> int:
        return self.budgets[-1]

    def promotable(self, history: Sequence[TrialRecord], at_least_one: bool = False) -> tuple[int, int] | None:
        """(config, rung to promote it to), or None. ``at_least_one``: the top of a rung is
        at least its best config (once no new config can start, the rungs will not grow)."""
        runs = runs_of(history)
        for k in range(len(self.budgets) - 2, -1, -1):
            done = [r for r in runs if r.rung == k and r.ended]
            promoted = {r.config for r in runs if r.rung == k + 1}
            n_top = int(len(done) // self.eta + 1e-9)
            if at_least_one and done:
                n_top = max(n_top, 1)
            ranked = sorted(done, key=lambda r: (run_loss(self.mode, r), r.config))[:n_top]
            for r in ranked:
                if r.config not in promoted and math.isfinite(run_loss(self.mode, r)):
                    return r.config, k + 1
        return None

    def propose(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> Proposal:
        runs = runs_of(history)
        up = self.promotable(history)
        if up is not None:
            config, rung = up
            params = dict(next(r.trial.parameters for r in runs if r.config == config))
            return self.proposal(runs, bracket=0, rung=rung, config=config, budget=self.budgets[rung], parameters=params)
        try:
            params = self.new_config(history, rng, self.budgets[0])
        except NoMoreTrials:
            if any(not r.ended for r in runs):
                raise TryLater("every configuration has started; waiting for results to promote") from None
            # A finite space used up: the rungs stop growing, so floor(n / eta) may stay 0 and
            # nothing would pass rung 0 of a small space; promote each rung's best instead.
            up = self.promotable(history, at_least_one=True)
            if up is None:
                raise
            config, rung = up
            params = dict(next(r.trial.parameters for r in runs if r.config == config))
            return self.proposal(runs, bracket=0, rung=rung, config=config, budget=self.budgets[rung], parameters=params)
        return self.proposal(runs, bracket=0, rung=0, config=None, budget=self.budgets[0], parameters=params)
