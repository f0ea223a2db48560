"""BOHB (Falkner et al., 2018): Hyperband's brackets with configs from per-budget KDE models.

NNI's classArgs: ``optimize_mode``, ``min_budget`` (1), ``max_budget`` (3), ``eta`` (3),
``min_points_in_model`` (number of parameters + 1), ``top_n_percent`` (15),
``num_samples`` (64), ``random_fraction`` (1/3), ``bandwidth_factor`` (3),
``min_bandwidth`` (1e-3); plus ``exec_mode``, ``max_brackets`` and ``promotion``.

Promotions resume by default, as in every advisor here. The paper treats each budget as an
independent evaluation and retrains a promoted config from scratch; the per-budget models
below do not need that, and a trial that ignores its resume directory trains from scratch
anyway, so resuming only saves epochs. ``promotion: restart`` is for trials whose result at
a budget must not depend on an earlier run (say, a learning-rate schedule stretched over
``EPOCHS``): each promoted trial then gets no resume directory.

Brackets as hpbandster: ``s_max = floor(log_eta(max/min))``, bracket ``i`` has
``s = s_max - (i mod (s_max + 1))``, ``n = floor((s_max + 1) / (s + 1) * eta^s)`` configs and the
budgets ``max_budget * eta^-s .. max_budget`` (whole epochs). Every result is filed under
the budget it was trained for (NNI files all under budget 0): one good/bad KDE pair per
budget, and a new config comes from the model of the largest budget holding at least
``min_points_in_model + 2`` results (random with probability ``random_fraction`` or while
no budget has one).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tuner_server.advisors.base import check_budgets, check_eta, integer_budgets
from tuner_server.advisors.brackets import BracketAdvisor, BracketPlan
from tuner_server.advisors.kde import Encoder, KDESettings, kde_config, model_budget, results_by_budget
from tuner_server.advisors.successive_halving import rung_count
from tuner_server.history import TrialRecord
from tuner_server.tuners.base import arg, reject_unknown


class BOHBAdvisor(BracketAdvisor):
    name = "BOHB"

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("min_budget", "max_budget", "eta", "min_points_in_model", "top_n_percent", "num_samples",
                                 "random_fraction", "bandwidth_factor", "min_bandwidth", "exec_mode", "max_brackets",
                                 "promotion"))
        self.min_b, self.max_b = check_budgets(n, args, "min_budget", 1, "max_budget", 3)
        self.eta = check_eta(n, args)
        self.encoder = Encoder(self.space, n)
        d = len(self.encoder.dims)
        self.min_points = arg(n, args, "min_points_in_model", None, int, lambda v: v >= 1, "must be >= 1")
        if self.min_points is None:
            self.min_points = d + 1
        self.top_n_percent = float(arg(n, args, "top_n_percent", 15, (int, float), lambda v: 0 < v < 100, "must be in (0, 100)"))
        self.num_samples = arg(n, args, "num_samples", 64, int, lambda v: v >= 1, "must be >= 1")
        self.random_fraction = float(arg(n, args, "random_fraction", 1 / 3, (int, float), lambda v: 0 <= v <= 1,
                                         "must be in [0, 1]"))
        self.bandwidth_factor = float(arg(n, args, "bandwidth_factor", 3, (int, float), lambda v: v > 0, "must be > 0"))
        self.min_bandwidth = float(arg(n, args, "min_bandwidth", 1e-3, (int, float), lambda v: v > 0, "must be > 0"))
        self.s_max = rung_count(self.min_b, self.max_b, self.eta)
        self.all_budgets = integer_budgets([self.max_b * self.eta ** (-s) for s in range(self.s_max, -1, -1)])
        self.settings = KDESettings(self.min_points, self.top_n_percent, self.num_samples, self.random_fraction,
                                    self.bandwidth_factor, self.min_bandwidth)
        self.take_exec_mode(args)
        self.take_max_brackets(args)
        self.take_promotion(args)

    @property
    def max_budget(self) -> int:
        return self.all_budgets[-1]

    def plan(self, i: int) -> BracketPlan:
        s = self.s_max - (i % (self.s_max + 1))
        n0 = int((self.s_max + 1) / (s + 1) * self.eta**s + 1e-9)
        sizes = tuple(max(int(n0 * self.eta ** (-j) + 1e-9), 1) for j in range(s + 1))
        return BracketPlan(sizes, self.all_budgets[len(self.all_budgets) - s - 1 :])

    def results_by_budget(self, history: Sequence[TrialRecord]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return results_by_budget(history, self.mode, self.encoder)

    def model_budget(self, history: Sequence[TrialRecord]) -> int | None:
        return model_budget(self.results_by_budget(history), self.min_points)

    def new_config(self, history: Sequence[TrialRecord], rng: np.random.Generator, budget: int) -> dict[str, Any]:
        params = kde_config(self.encoder, history, self.mode, self.settings, rng)
        return params if params is not None else dict(self.sample_new(history, rng))
