"""Random search: independent prior samples, never repeating a configuration."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.tuners.base import Tuner


class RandomTuner(Tuner):
    name = "Random"
    multi_objective = True  # never reads results, so any number of objectives works
    aliases = ("RandomSearch",)
    default_mode = OptimizeMode.MINIMIZE
    # Random has nothing to optimize; seed forms of the hyperopt family pass these.
    ignored_args = frozenset({"constant_liar_type", "parallel_optimize"})

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        return self.sample_new(history, rng)
