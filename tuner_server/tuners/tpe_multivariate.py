"""Multivariate TPE: one joint Parzen estimator per group of parameters that are active together.

Per-parameter TPE (hyperopt, NNI) models p(x_d | good) and p(x_d | bad) for every
dimension on its own and picks each dimension's value separately, so it cannot see that
good values of two parameters go together (Branin's curved valley, an optimizer whose best
learning rate differs). Here, as in Optuna's ``TPESampler(multivariate=True, group=True)``
(Falkner et al. 2018's BOHB kernel density), each observation is one component of a
*product* kernel over all parameters of its group, and a candidate is scored jointly by
``log l(x) - log g(x)``.

Groups follow the search space's tree: the top-level parameters form one group, fitted on
every observation; the children of a nested-choice option form another, fitted on the
observations in which that option was chosen. The proposal walks the tree: the best
candidate of the top group fixes the nested choices, then each chosen option's group is
proposed the same way.

* Split: the caller's ranking (``split``) decides which observations of a group are good.
* Components: one per observation, time-weighted by linear forgetting, plus one prior
  component (weight ``prior_weight``) -- the prior's wide Gaussian / uniform categorical.
  With ``good_weights="ei"`` the good set's components weigh their improvement over the
  split instead (:func:`ei_weights`) and the prior ``prior_weight`` times their mean.
* Bandwidths, per observation and numeric dimension: hyperopt's adaptive rule (the larger
  gap to the sorted neighbours), clipped to ``[range / min(100, n + 2), range]`` -- what
  Optuna 5 also uses for its multivariate estimator (Scott's rule, tried first, was worse
  on Branin/Hartmann). Numbers live in model space (log for log types, bin centres for
  randint) and bounded ones are truncated to their bounds.
* Categorical kernel: the observed option gets weight 1 plus ``prior_weight / (n + 1)`` on
  every option, normalised; the prior component is uniform.
* Candidates are drawn from l(x), mapped to the values the space produces, and scored at
  those values (so the score is of the point that will actually run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from tuner_server.searchspace import Dimension, NestedOption, SearchSpace

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TINY = 1e-300

Split = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


GOOD_WEIGHTS = ("uniform", "ei")


def ei_weights(good_losses: np.ndarray, bad_losses: np.ndarray) -> np.ndarray:
    """Watanabe 2023's EI weighting of the good observations: each weighs its improvement
    over the split, y* - y with y* the best bad loss (a tiny floor keeps ties in). With no
    bad observation there is no split to improve on: all weigh 1.

    Results near the float range's ends (a script's +-1.7e308 "worst" sentinel is finite,
    so the server keeps it) make y* - y overflow to inf, and the estimator's weights became
    inf / inf = NaN: every score NaN, the proposal a fixed arbitrary point. Then all the
    weights are taken as half the improvement (halves of finite floats cannot overflow, and
    only the weights' ratios matter)."""
    if len(bad_losses) == 0:
        return np.ones(len(good_losses))
    split = float(np.min(bad_losses))
    with np.errstate(over="ignore", invalid="ignore"):
        w = split - good_losses
    if not np.all(np.isfinite(w)):
        return np.maximum(0.5 * split - 0.5 * good_losses, 0.5e-12)
    return np.maximum(w, 1e-12)


@dataclass
class _Set:
    """The components of one Parzen estimator (good or bad) of one group."""

    logw: np.ndarray  # component log weights (normalised), prior component last
    mu: dict[str, np.ndarray]  # numeric key -> component centres (model space)
    sigma: dict[str, np.ndarray]  # numeric key -> component bandwidths
    logmass: dict[str, np.ndarray]  # numeric key -> log truncation mass per component
    cat: dict[str, np.ndarray]  # categorical key -> components x options probabilities


def _weights(n: int, prior_weight: float, lf: int) -> np.ndarray:
    from tuner_server.tuners.tpe import linear_forgetting_weights

    w = np.append(linear_forgetting_weights(n, lf), prior_weight)
    return w / w.sum()


def _fit(
    space: SearchSpace, models: Mapping[str, Any], keys: Sequence[str], cols: Mapping[str, np.ndarray],
    prior_weight: float, lf: int, obs_weights: np.ndarray | None = None,
) -> _Set:
    """The estimator over ``keys`` from the rows ``cols`` (key -> observed values, time order).
    ``obs_weights``: the observations' weights instead of linear forgetting; the prior then
    weighs ``prior_weight`` times their mean (so it keeps its share against them)."""
    n = len(next(iter(cols.values()))) if cols else 0
    if obs_weights is not None and n:
        # Only ratios matter: scaled to at most 1, so that weights near the float range
        # (EI improvements of results near +-1e308) cannot overflow the sum to inf.
        ow = obs_weights / obs_weights.max()
        w = np.append(ow, ow.mean() * prior_weight)
        logw = np.log(w / w.sum())
    else:
        logw = np.log(_weights(n, prior_weight, lf))
    mu: dict[str, np.ndarray] = {}
    sigma: dict[str, np.ndarray] = {}
    logmass: dict[str, np.ndarray] = {}
    cat: dict[str, np.ndarray] = {}
    for k in keys:
        d = space[k]
        if d.is_categorical:
            kk = len(d.options)
            p = np.full((n + 1, kk), prior_weight / (n + 1))
            p[np.arange(n), cols[k].astype(int)] += 1.0
            p[n] = 1.0 / kk
            cat[k] = p / p.sum(axis=1, keepdims=True)
            continue
        nm = models[k]
        x = nm.to_model(cols[k])
        mu[k] = np.append(x, nm.prior_mu)
        sigma[k] = np.append(_gap_bandwidths(x, nm), nm.prior_sigma)
        if nm.lo is not None:
            mass = ndtr((nm.hi - mu[k]) / sigma[k]) - ndtr((nm.lo - mu[k]) / sigma[k])
            logmass[k] = np.log(np.maximum(mass, _TINY))
        else:
            logmass[k] = np.zeros(n + 1)
    return _Set(logw, mu, sigma, logmass, cat)


def _gap_bandwidths(x: np.ndarray, nm: Any) -> np.ndarray:
    """hyperopt's adaptive bandwidths per observation: the larger gap to its sorted
    neighbours (the bounds -- mu +/- 3 sigma for normal types -- count as neighbours, except
    that the outermost points use their inner gap, as Optuna does), clipped to
    [w / min(100, n + 2), w] with w the range of a bounded type, sigma of a normal one."""
    n = len(x)
    if n == 0:
        return x.copy()
    if nm.lo is not None:
        lo, hi = nm.lo, nm.hi
    else:
        lo, hi = nm.prior_mu - 3.0 * nm.prior_sigma, nm.prior_mu + 3.0 * nm.prior_sigma
    width = nm.prior_sigma  # the range of a bounded type; sigma for a normal one (as per-parameter TPE)
    order = np.argsort(x, kind="stable")
    ext = np.concatenate([[min(lo, x.min())], x[order], [max(hi, x.max())]])
    sg = np.maximum(ext[1:-1] - ext[:-2], ext[2:] - ext[1:-1])
    if n >= 2:
        sg[0] = ext[2] - ext[1]
        sg[-1] = ext[-2] - ext[-3]
    out = np.empty(n)
    out[order] = sg
    return np.clip(out, width / min(100.0, n + 2.0), width)


def _log_density(s: _Set, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """log of the estimator at the candidates ``x`` (key -> model-space values / option indices)."""
    lp = np.broadcast_to(s.logw, (len(next(iter(x.values()))), len(s.logw))).copy()
    for k, v in x.items():
        if k in s.cat:
            lp += np.log(np.maximum(s.cat[k][:, v.astype(int)].T, _TINY))
        else:
            z = (v[:, None] - s.mu[k][None, :]) / s.sigma[k][None, :]
            lp += -0.5 * z * z - np.log(s.sigma[k])[None, :] - _LOG_SQRT_2PI - s.logmass[k][None, :]
    top = lp.max(axis=1)  # numpy's own log-sum-exp: scipy's costs ~10x more at these sizes
    return top + np.log(np.exp(lp - top[:, None]).sum(axis=1))


def _sample(
    space: SearchSpace, models: Mapping[str, Any], keys: Sequence[str], s: _Set, n: int, rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, list[Any]]]:
    """``n`` draws of l(x): (model-space values for scoring, the values a trial would receive)."""
    w = np.exp(s.logw)
    comp = np.minimum(np.searchsorted(np.cumsum(w), rng.random(n) * w.sum(), side="right"), len(w) - 1)
    model: dict[str, np.ndarray] = {}
    values: dict[str, list[Any]] = {}
    for k in keys:
        d: Dimension = space[k]
        if d.is_categorical:
            p = s.cat[k][comp]
            idx = (p.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
            idx = np.minimum(idx, len(d.options) - 1)
            model[k] = idx
            values[k] = [int(i) for i in idx]
            continue
        nm = models[k]
        mu, sg = s.mu[k][comp], s.sigma[k][comp]
        if nm.lo is None:
            x = mu + sg * rng.standard_normal(n)
        else:
            a, b = ndtr((nm.lo - mu) / sg), ndtr((nm.hi - mu) / sg)
            x = mu + sg * ndtri(np.clip(a + (b - a) * rng.random(n), 1e-300, 1.0 - 1e-16))
            x = np.clip(np.nan_to_num(x, nan=(nm.lo + nm.hi) / 2), nm.lo, nm.hi)
        raw = np.exp(x) if nm.log else x
        if nm.x_lo is not None and not nm.randint:
            raw = np.clip(raw, nm.x_lo, nm.x_hi)
        vals = [nm.trial_value(d, r) for r in (nm.values(x) if (nm.q is not None or nm.randint) else raw)]
        values[k] = vals
        model[k] = nm.to_model(nm.column(vals))  # scored where the trial will run
    return model, values


def propose(
    space: SearchSpace, models: Mapping[str, Any], flats: Sequence[Mapping[str, Any]], split: Split,
    n_candidates: int, prior_weight: float, lf: int, rng: np.random.Generator,
    good_weights: str = "uniform", losses: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The best candidate (flat) and, per key, candidate values best first (for de-duplication).

    ``flats`` are the observations in time order; ``split(idx)`` takes indices into them and
    returns (good, bad) positions into ``idx``.
    """
    if good_weights not in GOOD_WEIGHTS or (good_weights == "ei" and losses is None):
        raise ValueError(f"good_weights must be one of {GOOD_WEIGHTS} (ei needs the losses), got {good_weights!r}")
    flat: dict[str, Any] = {}
    ranked: dict[str, list[Any]] = {}
    column: dict[str, np.ndarray] = {}  # key -> its value in every observation (NaN where inactive)

    def values_of(k: str) -> np.ndarray:
        if k not in column:
            nm = models.get(k)
            raw = [f.get(k, math.nan) for f in flats]
            column[k] = nm.column(raw) if nm is not None else np.asarray(raw, dtype=float)
        return column[k]

    def group(keys: Sequence[str], idx: np.ndarray) -> None:
        good, bad = split(idx)
        sets = []
        for pos in (good, bad):
            rows = idx[pos]
            ow = None
            if pos is good and good_weights == "ei" and losses is not None:
                ow = ei_weights(losses[rows], losses[idx[bad]])
            sets.append(_fit(space, models, keys, {k: values_of(k)[rows] for k in keys}, prior_weight, lf, ow))
        model, values = _sample(space, models, keys, sets[0], n_candidates, rng)
        score = _log_density(sets[0], model) - _log_density(sets[1], model)
        order = np.argsort(-score, kind="stable")
        best = int(order[0])
        for k in keys:
            flat[k] = values[k][best]
            seen: set[Any] = set()
            ranked[k] = [v for v in (values[k][int(i)] for i in order) if not (v in seen or seen.add(v))]
        for k in keys:
            d = space[k]
            if d.is_nested_choice:
                opt = d.options[flat[k]]
                if isinstance(opt, NestedOption) and opt.children:
                    sub = idx[values_of(k)[idx] == flat[k]]
                    group(opt.children, sub)

    group(space.top, np.arange(len(flats)))
    return flat, ranked
