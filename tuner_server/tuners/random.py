"""Random search: independent prior samples, never repeating a configuration.

``rule: "sobol"`` (Azure ML's RandomParameterSampling rule) draws the points of a scrambled
Sobol sequence instead, seeded by the experiment's seed, through each parameter's inverse
CDF: the same distribution per parameter, but the points fill the space evenly, with fewer
clumps and gaps than independent draws leave at a few dozen trials.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.tuners.base import NoMoreTrials, Tuner, arg, param_key, reject_unknown

RULES = ("random", "sobol")
# Sobol points tried past a repeat (a finite space revisits configurations) before an
# independent draw stands in.
_LOOKAHEAD = 64


class RandomTuner(Tuner):
    name = "Random"
    multi_objective = True  # never reads results, so any number of objectives works
    aliases = ("RandomSearch",)
    default_mode = OptimizeMode.MINIMIZE
    # Random has nothing to optimize; seed forms of the hyperopt family pass these.
    ignored_args = frozenset({"constant_liar_type", "parallel_optimize"})

    def configure(self, args: dict[str, Any]) -> None:
        reject_unknown(self.name, args, ("rule",))
        self.rule = arg(self.name, args, "rule", "random", str, lambda v: v in RULES, f"must be one of {list(RULES)}")

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        if self.rule == "random":
            return self.sample_new(history, rng)
        seen = self.seen_keys(history)
        if self.space_exhausted(history, seen):
            raise NoMoreTrials(f"all {self.space.cardinality()} configurations of the search space were tried")
        # The point's index is the number of trials so far, so a tuner rebuilt from the
        # history after a restart goes on with the same sequence.
        for point in sobol_points(len(self.space.dims), self.seed, start=len(history), count=_LOOKAHEAD):
            params = self.space.to_parameters(self.space.from_unit(point))
            if param_key(params) not in seen:
                return params
        return self.sample_new(history, rng)


def sobol_points(d: int, seed: int, start: int, count: int) -> np.ndarray:
    """Points start .. start+count-1 of the scrambled Sobol sequence in [0, 1)^d for this seed."""
    from scipy.stats import qmc  # here, not at import: the operator validates specs without scipy

    engine = qmc.Sobol(max(d, 1), scramble=True, rng=seed)
    if start:  # scipy's fast_forward(0) overflows
        engine.fast_forward(start)
    with warnings.catch_warnings():
        # scipy warns that a count that is not a power of two loses Sobol's balance
        # properties: true of any prefix, and a sweep is a prefix.
        warnings.simplefilter("ignore", UserWarning)
        return engine.random(count)
