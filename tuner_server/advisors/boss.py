"""BOSS: Bayesian Optimization via Sub-Sampling (Huang et al., 2020, arXiv:2007.05670), the
algorithm of Huawei Vega's HPO (seed 000; vega/algorithms/hpo/sha_base/boss.py, ssa.py).

Input: the maximum budget R and ratio eta. ``s_max = floor(log_eta R)``; bracket ``i`` has
``s = s_max - (i mod (s_max + 1))``, ``K = ceil((s_max + 1) / (s + 1) * eta^s)`` configs and a
first budget ``b = R * eta^-s`` (as Hyperband); its configs come from a surrogate fitted on
the results so far, and the bracket is run by **Sub-Sampling (SS)** instead of successive
halving: when rung ``k`` has ended, the *leader* (the config with the most observations,
the best at rung ``k``) goes on, and so do the challengers that compare best with the
leader on the leader's own sub-sample, i.e. a challenger's result at the highest rung it
reached minus the leader's result at that same rung. So a config dropped at an earlier
rung can come back if it was close to the leader where both were measured (and resumes
from its own checkpoint at that rung). Rung ``k + 1`` takes ``floor(K / eta^(k+1))`` configs.

classArgs: ``optimize_mode``, ``R`` (81, Vega's ``max_epochs``), ``eta`` (3),
``exec_mode``, ``max_brackets``, ``promotion`` (``resume``), and the surrogate's
``num_samples`` (64), ``random_fraction`` (1/3), ``min_points_in_model``.

Difference from Vega, stated: Vega's default surrogate is a random forest ("RF") and its
bracket sizes come from ``num_samples`` / ``repeat_times``; here the surrogate is BOHB's
per-budget KDE (the ``l(x)/g(x)`` ratio), and the bracket sizes are the ones of the
algorithm's description in Vega's docstring (step 4), which are Hyperband's.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tuner_server.advisors.base import Run, run_loss
from tuner_server.advisors.brackets import Selector
from tuner_server.advisors.hyperband import HYPERBAND_ARGS, HyperbandAdvisor
from tuner_server.advisors.kde import Encoder, KDESettings, kde_config
from tuner_server.history import TrialRecord
from tuner_server.tuners.base import arg, reject_unknown


class BOSSAdvisor(HyperbandAdvisor):
    """Hyperband's brackets, with the sub-sampling selection and configs from the KDE model."""

    name = "BOSS"
    default_R = 81  # Vega's max_epochs

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, HYPERBAND_ARGS + ("num_samples", "random_fraction", "min_points_in_model"))
        self.take_hyperband_args(args)
        self.encoder = Encoder(self.space, n)
        num_samples = arg(n, args, "num_samples", 64, int, lambda v: v >= 1, "must be >= 1")
        random_fraction = float(arg(n, args, "random_fraction", 1 / 3, (int, float), lambda v: 0 <= v <= 1,
                                    "must be in [0, 1]"))
        min_points = arg(n, args, "min_points_in_model", None, int, lambda v: v >= 1, "must be >= 1")
        if min_points is None:
            min_points = len(self.encoder.dims) + 1
        self.settings = KDESettings(min_points, num_samples=num_samples, random_fraction=random_fraction)

    def selector(self) -> Selector:
        return lambda runs, rung, n: sub_sampling_select(runs, rung, n, lambda r: run_loss(self.mode, r))

    def new_config(self, history: Sequence[TrialRecord], rng: np.random.Generator, budget: int) -> dict[str, Any]:
        params = kde_config(self.encoder, history, self.mode, self.settings, rng)
        return params if params is not None else dict(self.sample_new(history, rng))


def sub_sampling_select(runs: Sequence[Run], rung: int, n: int, loss: Any) -> list[int]:
    """SS's choice for rung ``rung + 1``: the leader, then the other configs of the bracket
    by (their loss at the highest rung they reached) - (the leader's loss at that rung)."""
    at = [r for r in runs if r.rung == rung and math.isfinite(loss(r))]
    if not at:
        return []
    leader = min(at, key=lambda r: (loss(r), r.config)).config
    leader_at = {r.rung: loss(r) for r in runs if r.config == leader and r.rung <= rung}
    gaps: list[tuple[float, int]] = []
    for c in sorted({r.config for r in runs} - {leader}):
        # Only runs up to ``rung`` count, so that the choice stays the same while the
        # promotions it asks for are issued one by one.
        mine = [r for r in runs if r.config == c and r.rung <= rung and r.ended and math.isfinite(loss(r))]
        if not mine:
            continue
        top = max(mine, key=lambda r: r.rung)
        ref = leader_at.get(top.rung, min(leader_at.values()))
        gaps.append((loss(top) - ref, c))
    gaps.sort()
    return [leader] + [c for _, c in gaps[: n - 1]]
