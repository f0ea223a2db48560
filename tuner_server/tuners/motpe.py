"""MOTPE: multi-objective TPE (Ozaki et al., GECCO 2020; the algorithm behind Optuna's
multi-objective TPESampler), on top of our TPE.

TPE models the good trials l(x) and the rest g(x) and proposes the candidate maximising
l(x)/g(x). With several objectives there is no single loss to rank trials by, so MOTPE
ranks them by Pareto dominance instead:

* completed trials are sorted into non-dominated fronts (rank 0 = the Pareto front);
* the good set is the best ``n = min(ceil(gamma * N), 25)`` trials in that order (a share of
  N, not of sqrt(N) as single-objective TPE: a front needs more points than an optimum);
* within the front that the cut falls into, each objective's best trial comes first, then
  trials adding more hypervolume, so the good set keeps the front's spread rather than one
  crowded corner;
* trials still running count as dominated (the bad set, never the good one, however few
  results a split has): the next suggestions move away from them, which spreads concurrent
  trials out.

Everything else (Parzen estimators, candidates, nested choices, no repeats) is TPE's, with
MOTPE's defaults: ``n_startup_jobs`` 10, ``gamma`` 0.1, one estimator per parameter.
Like every tuner it is a pure function of the history and the RNG. Given a
single-objective experiment it behaves as TPE, running trials in the bad set as above
(TPE's default liar would rank them with the best result, in l(x)).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.pareto import hypervolume_contributions, non_dominated_ranks, reference_point
from tuner_server.tuners.base import TunerArgsError
from tuner_server.tuners.tpe import Observations, TPETuner


#: How far past the front, in spans of the front, the reference point may lie when the
#: contributions are computed. Beyond this (a dominated trial reporting a sentinel such as
#: 1.7e308 sets the reference point) the front's own hypervolumes drown in it: the products
#: overflowed to inf, the contributions became inf - inf = NaN and the cut fell by age.
REF_CAP_SPANS = 1e3


def front_contributions(front: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """Each point's exclusive hypervolume against ``ref``, up to one common factor.

    Computed on the front mapped onto [0, 1] per objective (an affine map scales every
    contribution by the same factor, so the order is unchanged), from halves so that no
    difference of finite floats overflows, with the reference point at most REF_CAP_SPANS
    spans past the front. With two objectives the reference point moves only the front's
    ends, which motpe_order keeps first anyway."""
    lo, hi = front.min(axis=0), front.max(axis=0)
    half_ref = 0.5 * np.asarray(ref, dtype=float) - 0.5 * lo
    span = 0.5 * hi - 0.5 * lo
    scale = np.where(span > 0, span, np.where(half_ref > 0, half_ref, 1.0))
    u = (0.5 * front - 0.5 * lo) / scale
    with np.errstate(over="ignore"):
        r = np.minimum(half_ref / scale, REF_CAP_SPANS)
    return np.asarray(hypervolume_contributions(u.tolist(), r.tolist()))


def motpe_order(losses: Sequence[Sequence[float]], n_good: int) -> np.ndarray:
    """Position of every loss vector in MOTPE's order (0 = best): by non-dominated rank,
    then, inside the rank that the good set's cut splits, each objective's best point first
    and the others by hypervolume contribution."""
    n = len(losses)
    if n == 0:
        return np.zeros(0)
    ranks = non_dominated_ranks(losses)
    tiebreak = np.zeros(n)
    by_rank = np.asarray(ranks)
    counted = 0
    for r in range(max(ranks) + 1):
        members = np.flatnonzero(by_rank == r)
        if counted < n_good < counted + len(members):
            pts = [losses[i] for i in members]
            contrib = front_contributions(np.asarray(pts, dtype=float), reference_point(losses))
            # Each objective's best point of the front is kept first (as NSGA-II's infinite
            # crowding distance does): measured against a reference point just past the
            # worst, an end of the front contributes little, yet it anchors the front's spread.
            contrib[np.argmin(np.asarray(pts), axis=0)] = np.inf
            tiebreak[members] = -contrib
            break
        counted += len(members)
    order = np.lexsort((np.arange(n), tiebreak, by_rank))  # rank, then -contribution, then age
    pos = np.empty(n)
    pos[order] = np.arange(n)
    return pos


class MOTPETuner(TPETuner):
    name = "MOTPE"
    aliases = ("MOTPETuner", "MultiObjectiveTPE")
    default_mode = OptimizeMode.MINIMIZE
    multi_objective = True

    def configure(self, args: dict[str, Any]) -> None:
        tpe_args = args.get("tpe_args")
        if tpe_args is None:  # as TPE: null is "not given", 0 or [] a mistake
            tpe_args = {}
        if not isinstance(tpe_args, Mapping):
            raise TunerArgsError(f"{self.name} classArgs.tpe_args must be an object, got {tpe_args!r}")
        if "constant_liar_type" in args or "constant_liar_type" in tpe_args:
            raise TunerArgsError(f"{self.name} does not take constant_liar_type: running trials always count as dominated")
        # MOTPE's own defaults (Optuna's): 10 random trials first; gamma is the good share of N.
        # Univariate by default: on bench/multiobjective.py the joint estimators of TPE's
        # multivariate mode did worse on 2 of 4 problems (tpe_args.multivariate: true to use them).
        defaults = {"n_startup_jobs": 10, "gamma": 0.1, "multivariate": False}
        super().configure({**args, "tpe_args": {**defaults, **tpe_args}})
        self.liar = "worst"  # which lie does not matter: _observations replaces it by inf

    def _split(self, idx: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.objectives:
            good, bad = super()._split(idx, losses)
        else:
            m = len(idx)
            n_below = min(int(math.ceil(self.gamma * m)), 25) if m else 0
            order = np.argsort(losses[idx], kind="stable")
            good, bad = np.sort(order[:n_below]), np.sort(order[n_below:])
        # Running trials (loss inf) rank last, yet the good share is of every observation in
        # idx: where results are few (a nested option tried mostly by running trials, a large
        # gamma) the cut reached into them and l(x) was fitted on points with no result.
        pending = ~np.isfinite(losses[idx[good]])
        if pending.any():
            good, bad = good[~pending], np.sort(np.concatenate([bad, good[pending]]))
        return good, bad

    def _observations(self, history: Sequence[TrialRecord]) -> Observations:
        if not self.objectives:
            obs = super()._observations(history)
            obs.losses[obs.n_completed:] = math.inf  # running trials: no result, never good
            return obs
        flats: list[dict[str, Any]] = []
        vectors: list[tuple[float, ...]] = []
        pending: list[dict[str, Any]] = []
        seen: set[tuple] = set()
        for t in sorted(history, key=lambda t: t.sequence):
            flat, key = self._memo.flat(t)
            if key is not None:
                seen.add(key)
            if flat is None:
                continue
            if not t.state.ended:
                pending.append(flat)
            elif t.values is not None and len(t.values) == len(self.objectives) and all(map(math.isfinite, t.values)):
                flats.append(flat)
                vectors.append(tuple(m.loss(v) for m, v in zip(self.objectives, t.values)))
        n_good = min(int(math.ceil(self.gamma * (len(flats) + len(pending)))), 25)
        pos = motpe_order(vectors, n_good)
        # Pending trials rank after every result: in g(x), never in l(x) (_split).
        losses = np.concatenate([pos, np.full(len(pending), math.inf)]) if pending else pos
        return Observations(flats + pending, losses, len(flats), seen)
