"""MetisTuner: GP-based tuner after Microsoft's Metis (a simplified, faithful version).

Uses the GP, encoding and acquisition search of :mod:`tuner_server.tuners.gp` with a
Matern 1.5 kernel (as Metis does). After ``cold_start_num`` prior samples, every call:

1. finds the model's **predicted optimum** (minimum of the posterior mean), searched from
   ``selection_num_starting_points`` random points plus L-BFGS-B;
2. unless ``no_candidates``, builds candidates: **exploration** -- the point of largest
   posterior uncertainty; **exploitation** (from 12 results on) -- the point of largest
   expected improvement;
3. picks the candidate that could most improve the predicted optimum, scored as
   ``predicted optimum - (mu - 2 sigma)`` at the candidate;
4. returns that candidate with probability ``exploration_probability``, or whenever the
   predicted optimum was already tried; otherwise returns the predicted optimum.

Simplifications, relative to NNI's Metis:
* Exploitation candidates come from expected improvement on the GP instead of NNI's
  Gaussian-mixture model of good/bad trials; the "improves the predicted optimum" score is
  the lower confidence bound above instead of refitting the GP once per candidate.
* Resampling (NNI re-runs leave-one-out outliers when ``no_resampling`` is false) is not
  done: the protocol never repeats a configuration. ``no_resampling`` is accepted and
  validated; ``false`` gives a warning.
* Pending trials: kriging believer (the model's mean stands in for their results).
String choices are supported (one-hot), unlike NNI. No configuration is suggested twice;
a finite space ends with NoMoreTrials.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.tuners.base import Tuner, arg, reject_unknown
from tuner_server.tuners.gp import WARM_UP_CAP, GPTuner, acquisition, acquisition_grad, maximize_on_box
from tuner_server.tuners.tpe import fresh_prior_sample, flat_key

_EXPLOIT_AFTER = 12
_STARTS = 5


class MetisTuner(GPTuner):
    name = "MetisTuner"
    aliases = ("Metis",)
    supported_types = frozenset({"choice", "randint", "uniform", "quniform"})
    default_mode = OptimizeMode.MAXIMIZE

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("no_resampling", "no_candidates", "selection_num_starting_points", "cold_start_num",
                                 "exploration_probability"))
        self.no_resampling = arg(n, args, "no_resampling", True, bool)
        if not self.no_resampling:
            self.warnings.append(f"{n}: resampling is not done (a configuration is never suggested twice)")
        self.no_candidates = arg(n, args, "no_candidates", False, bool)
        starting_points = arg(n, args, "selection_num_starting_points", 600, int, lambda v: v >= 1, "must be >= 1")
        self.cold_start_num = arg(n, args, "cold_start_num", 10, int, lambda v: v >= 1, "must be >= 1")
        self.exploration_probability = float(arg(n, args, "exploration_probability", 0.9, (int, float),
                                                 lambda v: 0 <= v <= 1, "must be in [0, 1]"))
        # the GP machinery of GPTuner, with Metis's kernel
        super().configure({"nu": 1.5, "cold_start_num": self.cold_start_num})
        self.starting_points = self.warm_up = starting_points

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        gp, best, seen = self.model(history, rng)
        if gp is None:
            return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))
        n_done = sum(1 for t in history if t.state.ended and t.value is not None)
        n_warm = min(self.starting_points, WARM_UP_CAP)

        def search(score, score_grad):
            Xc, raws, sc = maximize_on_box(score, self.encoder, n_warm, _STARTS, rng, score_grad=score_grad)
            for i in range(len(Xc)):
                flat = self.encoder.flat_at(raws, i)
                if flat_key(flat) not in seen:
                    return flat, Xc[i], True
            return self.encoder.flat_at(raws, 0), Xc[0], False

        # the predicted optimum over every producible point (tried or not), and the best untried one
        def neg_mean(X):
            mu, _, dmu, _ = gp.predict_grad(X)
            return -mu, -dmu

        def sigma(X):
            _, sg, _, dsg = gp.predict_grad(X)
            return sg, dsg

        Xo, raws_o, so = maximize_on_box(lambda X: -gp.predict_mean(X), self.encoder, n_warm, _STARTS, rng,
                                         score_grad=neg_mean)
        opt_tried = flat_key(self.encoder.flat_at(raws_o, 0)) in seen
        opt_value = -float(so[0])
        opt_flat = next((f for f in (self.encoder.flat_at(raws_o, i) for i in range(len(Xo))) if flat_key(f) not in seen), None)
        if self.no_candidates:
            if opt_flat is not None:
                return self.space.to_parameters(opt_flat)
            return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))
        cands = [search(lambda X: gp.predict(X)[1], sigma)]
        if n_done >= _EXPLOIT_AFTER:
            cands.append(search(lambda X: acquisition("ei", *gp.predict(X), best, 0.0, 0.0),
                                lambda X: acquisition_grad("ei", *gp.predict_grad(X), best, 0.0, 0.0)))
        cands = [c for c in cands if c[2]]
        if cands:
            mu, sigma = gp.predict(np.vstack([c[1] for c in cands]))
            gain = opt_value - (mu - 2.0 * sigma)
            choice = cands[int(np.argmax(gain))][0]
            if opt_tried or rng.random() < self.exploration_probability or opt_flat is None:
                return self.space.to_parameters(choice)
        if opt_flat is not None:
            return self.space.to_parameters(opt_flat)
        return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))
