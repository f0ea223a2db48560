"""Anneal: hyperopt-style simulated annealing over the search space.

The first few results come from the prior. After that each suggestion starts from a good
earlier trial -- trials are ranked by loss and the rank is drawn from a geometric
distribution with mean ``avg_best_idx`` (2), so the best trial is picked most often --
and re-samples every active parameter in a neighbourhood of that trial's value. The
neighbourhood shrinks with the number T of observations of the parameter, by
``1 / (1 + T * shrink_coef)`` (shrink_coef 0.1):

* bounded numeric types: uniform over a window of that fraction of the range (in log space
  for log types), shifted to stay inside the bounds, then rounded as the type says;
* normal types: a normal around the value with sigma scaled by the factor;
* choice: keep the value with probability 1 - factor, else draw from the prior;
* a parameter the chosen trial did not have (another branch of a nested choice) comes
  from the prior.

Running trials are ranked with a constant-liar loss (min / max / mean of the results).
No configuration is suggested twice; a finite space ends with NoMoreTrials.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import LOG_TYPES, NORMAL_TYPES, Dimension
from tuner_server.tuners.base import NoMoreTrials, Tuner, arg, reject_unknown
from tuner_server.tuners.tpe import HistoryMemo, flat_key, fresh_prior_sample, parse_liar

AVG_BEST_IDX = 2.0
SHRINK_COEF = 0.1
N_STARTUP = 5
_RETRIES = 24


class AnnealTuner(Tuner):
    name = "Anneal"
    aliases = ("AnnealTuner",)
    default_mode = OptimizeMode.MINIMIZE

    def configure(self, args: dict[str, Any]) -> None:
        reject_unknown(self.name, args, ("parallel_optimize", "constant_liar_type"))
        arg(self.name, args, "parallel_optimize", False, bool)
        self.liar = parse_liar(self.name, "constant_liar_type", args.get("constant_liar_type", "min"))
        self._memo = HistoryMemo(self.space)
        self._card = self.space.cardinality()

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        obs = self._memo.observations(history, self.mode, self.liar)
        if self._card is not None and len(obs.seen) >= self._card:
            raise NoMoreTrials(f"all {self._card} configurations of the search space were tried")
        if obs.n_completed < N_STARTUP:
            return self.space.to_parameters(fresh_prior_sample(self.space, obs.seen, rng, self._card))
        # Observations per parameter (how far annealing has progressed for it).
        counts: dict[str, int] = {}
        for f in obs.flats:
            for k in f:
                counts[k] = counts.get(k, 0) + 1
        ranking = np.argsort(obs.losses, kind="stable")
        for attempt in range(_RETRIES):
            pick = min(int(rng.geometric(1.0 / AVG_BEST_IDX)) - 1, len(ranking) - 1)
            center = obs.flats[int(ranking[pick])]
            # Repeats mean the neighbourhood has collapsed onto tried points: widen it.
            widen = 1.0 + attempt
            flat = self._neighbour(center, counts, widen, rng)
            if flat_key(flat) not in obs.seen:
                return self.space.to_parameters(flat)
        return self.space.to_parameters(fresh_prior_sample(self.space, obs.seen, rng, self._card))

    def _neighbour(
        self, center: dict[str, Any], counts: dict[str, int], widen: float, rng: np.random.Generator
    ) -> dict[str, Any]:
        def pick(d: Dimension) -> Any:
            if d.key not in center:
                return d.sample(rng)
            shrink = min(1.0, widen / (1.0 + counts.get(d.key, 0) * SHRINK_COEF))
            return _perturb(d, center[d.key], shrink, rng)

        return self.space.assign(pick)


def _perturb(d: Dimension, value: Any, shrink: float, rng: np.random.Generator) -> Any:
    """A value near ``value``; ``shrink`` in (0, 1] is the neighbourhood's relative size."""
    t = d.type
    if d.is_categorical:
        return int(value) if rng.random() >= shrink else int(rng.integers(len(d.options)))
    if t in NORMAL_TYPES:
        sigma = float(d.args[1])
        if t in LOG_TYPES:
            floor = (d.q or 0.0) / 2 or 1e-300
            c = math.log(max(float(value), floor))
            return d.quantize(math.exp(rng.normal(c, sigma * shrink)))
        return d.quantize(rng.normal(float(value), sigma * shrink))
    if t == "randint":
        # Counted from the lower bound, in integers: floats near 2**63 are 2048 apart, so
        # a neighbourhood of [2**63 - 100, 2**63 - 1) was one float (always 2**63 - 2).
        base = int(d.args[0])
        lo, hi, c = 0.0, float(int(d.args[1]) - base), float(int(value) - base) + 0.5
    elif t in LOG_TYPES:
        lo, hi, c = math.log(d.low), math.log(d.high), math.log(max(float(value), d.low))
    else:
        lo, hi, c = d.low, d.high, float(value)
    half = 0.5 * (hi - lo) * shrink
    mid = min(max(c, lo + half), hi - half)
    x = rng.uniform(mid - half, mid + half)
    if t in LOG_TYPES:
        x = min(max(math.exp(x), d.low), d.high)  # exp(log(high)) can exceed high by an ulp
    if t == "randint":
        return d.quantize(math.floor(x) + int(d.args[0]))
    return d.quantize(x)
