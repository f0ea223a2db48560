"""PBTTuner: population based training with synchronous generations.

Trials are issued in generations of ``population_size``: trial number ``k`` (in sequence
order) is member ``k % population_size`` of generation ``k // population_size``. Every
trial's parameters carry two extra strings, ``load_checkpoint_dir`` (empty in generation
0: start from scratch) and ``save_checkpoint_dir`` = ``<all_checkpoint_dir>/<member>/<generation>``;
the trial loads its model from the former and saves to the latter (creating it). A
final-training rerun of a trial loads what that trial loaded and saves to
``<all_checkpoint_dir>/final/<sequence>`` (:meth:`PBTTuner.final_parameters`).

* Generation 0: prior samples (no repeats while the space has new ones).
* Generation g+1 is issued only when every trial of generation g has ended. While some
  are still running, ``suggest`` raises :class:`TryLater` (the engine should ask again
  when a trial ends).
* Ranking of generation g by result (failed trials, or ones without a result, rank last).
  The bottom ``fraction`` of members, and every member whose trial failed (it saved no
  checkpoint), **exploit**: each copies the hyper-parameters of a random member of the top
  ``fraction`` that has a result and loads that member's checkpoint (if no member of the
  generation has a result, they start afresh: no checkpoint, explored parameters); then
  **explore**: every parameter is re-sampled from the prior with probability
  ``resample_probability``, else perturbed by a factor ``1 +/- factor`` (numbers; clipped
  to bounds and rounded as the type says) or moved one index step (choice). The other
  members continue unchanged from their own checkpoint.

State is rebuilt from the history each call. The default ``all_checkpoint_dir`` is
``$AUTOTUNE_CHECKPOINT_DIR/<experiment id>``, else ``~/autotune-checkpoints/<experiment id>``
(as NNI's ``~/nni/checkpoint/<experiment id>``): keyed by the seed, as it was, every two
experiments left at the default seed 0 wrote ``<root>/0/<member>/<generation>`` alike, so
two running at once overwrote and loaded each other's models. A local run's engine gives
its output folder as the base instead (``<output>/<name>/checkpoints/<experiment id>``): its
id, ``local.<name>``, is the same for every run of one experiment name, in any ``--output``.
Once trials exist, the root is the one the first trial was given, so a resumed experiment
keeps its checkpoints even if the default (or ``$AUTOTUNE_CHECKPOINT_DIR``) changed in between.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import LOG_TYPES, Dimension
from tuner_server.tuners.base import NoMoreTrials, TryLater, Tuner, TunerArgsError, arg, reject_unknown

LOAD = "load_checkpoint_dir"
SAVE = "save_checkpoint_dir"
FINAL = "final"  # <root>/final/<sequence>: final-training reruns (members are <root>/<number>/...)


class PBTTuner(Tuner):
    name = "PBTTuner"
    aliases = ("PBT",)
    warm_start_refused = "PBTTuner's generations are this experiment's own trials, with their checkpoints"
    added_parameters = frozenset({LOAD, SAVE})
    rerun_own_parameters = frozenset({SAVE})  # final_parameters: a rerun saves to <root>/final/<sequence>
    default_mode = OptimizeMode.MAXIMIZE

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("all_checkpoint_dir", "population_size", "factor", "resample_probability", "fraction"))
        for d in self.space.dims:
            if d.is_nested_choice:
                raise TunerArgsError(f"tuner {n} does not support nested choice (parameter '{d.key}')")
            if d.name in (LOAD, SAVE):
                raise TunerArgsError(f"tuner {n}: parameter name '{d.name}' is reserved for checkpoint paths")
        self.checkpoint_dir_given = "all_checkpoint_dir" in args
        # Keyed by the seed until the engine binds the experiment (bind_experiment).
        self.checkpoint_dir = arg(n, args, "all_checkpoint_dir", os.path.join(_default_base(), str(self.seed)), str,
                                  lambda v: bool(v.strip()), "must be a non-empty path")
        self.population_size = arg(n, args, "population_size", 10, int, lambda v: v >= 2, "must be >= 2")
        self.factor = float(arg(n, args, "factor", 0.2, (int, float), lambda v: 0 < v < 1, "must be in (0, 1)"))
        self.resample_probability = float(arg(n, args, "resample_probability", 0.25, (int, float),
                                              lambda v: 0 <= v <= 1, "must be in [0, 1]"))
        self.fraction = float(arg(n, args, "fraction", 0.2, (int, float), lambda v: 0 < v <= 0.5, "must be in (0, 0.5]"))
        self.n_exploit = max(1, int(self.fraction * self.population_size))

    def bind_experiment(self, experiment: str, checkpoint_base: str | None = None) -> None:
        if not self.checkpoint_dir_given:
            self.checkpoint_dir = os.path.join(checkpoint_base or _default_base(),
                                               re.sub(r"[^A-Za-z0-9._-]", "_", experiment))

    def root(self, trials: Sequence[TrialRecord]) -> str:
        """The checkpoint root: the one trial 0 (member 0, generation 0) was given, once it exists."""
        first = trials[0].parameters.get(SAVE) if trials else None
        if isinstance(first, str) and first:
            return os.path.dirname(os.path.dirname(first))
        return self.checkpoint_dir

    def save_dir(self, member: int, generation: int, root: str | None = None) -> str:
        return os.path.join(self.checkpoint_dir if root is None else root, str(member), str(generation))

    def final_parameters(self, parameters: Mapping[str, Any], sequence: int,
                         history: Sequence[TrialRecord]) -> dict[str, Any]:
        """A final rerun of a member's trial repeats that trial's step of its checkpoint chain:
        the same hyper-parameters, loading what it loaded (an earlier generation's folder,
        which no later trial writes), but saving to ``<root>/final/<sequence>``. Given the
        trial's own folder, a rerun wrote over the very model it was meant to reproduce (and,
        crashing, left it half-written)."""
        params = dict(parameters)
        if SAVE in params:
            trials = sorted(history, key=lambda t: t.sequence)
            params[SAVE] = os.path.join(self.root(trials), FINAL, str(sequence))
        return params

    @classmethod
    def not_own_result(cls, parameters: Mapping[str, Any]) -> str | None:
        """A member of a later generation went on training a model it loaded: its result is
        that model's whole chain (earlier generations' epochs and hyper-parameters), which
        its own hyper-parameters trained from scratch would not reach. Only generation 0
        (and members started afresh) trained from scratch."""
        load = parameters.get(LOAD)
        if isinstance(load, str) and load:
            return f"went on training the model of an earlier PBT generation ({LOAD} {load!r}), not from scratch"
        return None

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        trials = sorted(history, key=lambda t: t.sequence)
        g, m = divmod(len(trials), self.population_size)
        root = self.root(trials)
        if g == 0:
            try:
                params = dict(self.sample_new(trials, rng))
            except NoMoreTrials:  # members are separate models: a repeat still fills the generation
                params = dict(self.space.to_parameters(self.space.sample_flat(rng)))
            params.update({LOAD: "", SAVE: self.save_dir(m, 0, root)})
            return params
        prev = trials[(g - 1) * self.population_size : g * self.population_size]
        if any(not t.state.ended for t in prev):
            raise TryLater(f"generation {g - 1} of {self.name} still has running trials")
        losses = [self.mode.loss(float(t.value)) if t.value is not None and math.isfinite(t.value) else math.inf for t in prev]
        ranking = sorted(range(len(prev)), key=lambda i: (losses[i], i))
        # A member without a result (its trial failed) saved no checkpoint to go on from, nor
        # to be copied: it always exploits, and only members with a result are sources.
        top = [i for i in ranking[: self.n_exploit] if math.isfinite(losses[i])]
        bottom = set(ranking[-self.n_exploit :]) | {i for i in ranking if not math.isfinite(losses[i])}
        if m in bottom and not top:  # the whole generation failed: start afresh, its own parameters explored
            flat = self.explore(self.space.to_flat(prev[m].parameters), rng)
            load = ""
        elif m in bottom:
            src = top[int(rng.integers(len(top)))]
            flat = self.explore(self.space.to_flat(prev[src].parameters), rng)
            load = self.save_dir(src, g - 1, root)
        else:
            flat = self.space.to_flat(prev[m].parameters)
            load = self.save_dir(m, g - 1, root)
        params = dict(self.space.to_parameters(flat))
        params.update({LOAD: load, SAVE: self.save_dir(m, g, root)})
        return params

    def explore(self, flat: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        out = {}
        for k, v in flat.items():
            d = self.space[k]
            if rng.random() < self.resample_probability:
                out[k] = d.sample(rng)
            else:
                out[k] = _perturb(d, v, self.factor, rng)
        return out


def _default_base() -> str:
    return os.environ.get("AUTOTUNE_CHECKPOINT_DIR") or os.path.join(os.path.expanduser("~"), "autotune-checkpoints")


def _perturb(d: Dimension, v: Any, factor: float, rng: np.random.Generator) -> Any:
    up = rng.random() < 0.5
    if d.is_categorical:
        return int(min(max(int(v) + (1 if up else -1), 0), len(d.options) - 1))
    x = float(v) * (1 + factor if up else 1 - factor)
    if d.type == "randint":
        lo, hi = int(d.args[0]), int(d.args[1]) - 1
        step = round(x) - int(v)
        if step == 0:  # a small integer would never move: step by one
            step = 1 if up else -1
        return int(min(max(int(v) + step, lo), hi))
    if d.bounded:
        x = min(max(x, d.low), d.high)
    if d.type in LOG_TYPES and x <= 0:
        x = float(v)
    return d.quantize(x)
