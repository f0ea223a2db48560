"""TPE (Tree-structured Parzen Estimator), written for speed on long histories.

The algorithm (Bergstra et al. 2011, as in hyperopt and NNI):

* The first ``n_startup_jobs`` results come from the prior (random search, no repeats):
  NNI's 20, or 10 for the default joint model on a space without choices (``default_startup``).
* Then every flat dimension is modelled on its own. Only trials in which the dimension
  was active (conditional parameters of a nested choice) are used for it. Those trials
  are ranked by loss; the best ``n = min(ceil(gamma * sqrt(N)), 25)`` form the "good"
  set and the rest the "bad" set.
* Each set becomes an adaptive Parzen estimator: one Gaussian per observation plus a
  prior component (weight ``prior_weight``); bandwidths are the larger gap to the sorted
  neighbours, clipped to ``[prior_sigma / min(100, 1 + n), prior_sigma]``; older
  observations are down-weighted linearly once a set holds more than
  ``linear_forgetting`` points. Log types are modelled in log space, bounded types are
  truncated to their bounds, q-types and randint are scored by the probability mass of
  the bin a candidate rounds into, choice is a weighted categorical with a flat prior.
* ``n_ei_candidates`` values are drawn from the good model l(x); the one maximising
  ``log l(x) - log g(x)`` is kept. Nested choices pick the option first, then their
  children are chosen the same way.
* Trials still running get a "constant liar" loss (best / worst / mean of the observed
  losses) so that concurrent suggestions spread out.

AutoTune's default (``tpe_args.multivariate``, true unless set false) replaces the
per-dimension step with one *joint* estimator per group of co-active parameters
(:mod:`tuner_server.tuners.tpe_multivariate`, as Optuna's multivariate TPE), which follows
coupled parameters (Branin: median regret 0.13 vs 0.81 at 60 trials), and splits at
``ceil(1.0 * sqrt(N))`` unless ``gamma`` is given, and weighs each good trial by its
improvement over the split (Watanabe 2023's EI weighting; uniform where a choice is nested,
see ``default_good_weights``). ``multivariate: false`` is NNI's TPE exactly. The joint
model is weaker on many (~10) independent parameters (the all-ten-types test problem,
median best of 15 seeds at 60 trials: 3.7 joint (4.3 before the EI weighting) vs 3.5
per-parameter); set it false there.

Nothing is kept between calls except a memo of each trial's flattened parameters (pure
caching: the output is a function of the history and the RNG only). Every step is
vectorised with numpy; a suggestion over 1,000 trials x 10 parameters takes a few ms.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import LOG_TYPES, NORMAL_TYPES, Dimension, NestedOption, SearchSpace
from tuner_server.tuners import tpe_multivariate
from tuner_server.tuners.base import NoMoreTrials, Tuner, TunerArgsError, arg, reject_unknown

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TINY = 1e-300
# Finite spaces no larger than this are enumerated when random draws keep hitting seen
# configurations, so that a repeat is never returned while something new exists.
_ENUMERATE_LIMIT = 200_000

# Both spellings of the constant-liar types are accepted, wherever they are given.
# tpe_args.multivariate's default: one joint estimator per group of parameters
# (tpe_multivariate.py) instead of one per parameter.
MULTIVARIATE_DEFAULT = True
MULTIVARIATE_GAMMA = 1.0

# Start-up trials (random) before the model: NNI's 20, or Optuna's 10 for the joint model
# on an all-numeric space.
STARTUP_NNI = 20
STARTUP_NUMERIC = 10


def default_startup(space: SearchSpace, multivariate: bool) -> int:
    """n_startup_jobs when not given. With 10 instead of 20 random trials, the joint model on
    numeric spaces gets ahead sooner (bench/quality.py, 30 seeds, six continuous problems:
    lower regret on all six). Where a parameter is a choice it needs samples of each option
    first: 10 lost on the nested-choice problem (regret 1.16 vs 0.17 at 100 trials) and the
    mixed one (0.40 vs 0.23). So 20 stays there, and NNI's per-parameter mode keeps NNI's 20."""
    if multivariate and not any(d.is_categorical for d in space.dims):
        return STARTUP_NUMERIC
    return STARTUP_NNI


def default_good_weights(space: SearchSpace, multivariate: bool) -> str:
    """How the joint model weighs its good observations when nothing else is said.

    "ei" (Watanabe 2023, "TPE: understanding its algorithm components", the EI weighting):
    a good trial weighs y_split - y, its improvement over the best bad trial, so l(x) leans
    towards the very best trials instead of treating the top ~sqrt(N) alike. bench/quality.py
    (tuned on seeds 0-9, confirmed on 10-39 and 40-69; figures in the commit) found lower
    regret on the continuous problems and on the flat mixed one. Not where a choice is
    nested: there the top-level good set picks the branch, and a branch whose children are
    still untuned (the conditional problem's narrow SVM valley) loses to one that is easy to
    make moderately good, so weighting by improvement locked more seeds into the wrong branch
    (14 -> 19 of 40 stuck). Uniform there, as Optuna does everywhere."""
    if multivariate and not any(d.is_nested_choice for d in space.dims):
        return "ei"
    return "uniform"


_LIAR_ALIASES = {"best": "best", "min": "best", "worst": "worst", "max": "worst", "mean": "mean"}


def parse_liar(tuner: str, where: str, value: Any) -> str | None:
    if value is None or value == "null":
        return None
    if not isinstance(value, str) or value.lower() not in _LIAR_ALIASES:
        raise TunerArgsError(
            f"{tuner} classArgs.{where} must be one of best|worst|mean|null (or min|max|mean), got {value!r}"
        )
    return _LIAR_ALIASES[value.lower()]


# --------------------------------------------------------------------------- history view


@dataclass
class Observations:
    """The history as the model-based tuners need it, in sequence order."""

    flats: list[dict[str, Any]]  # flat assignment (choices as indices) of trials with a loss
    losses: np.ndarray  # their losses (pending trials carry the lie)
    n_completed: int  # trials with a real result
    seen: set[tuple]  # dedup keys of every trial ever issued (any state)


class HistoryMemo:
    """Flattens each trial's parameters once; later calls reuse the result.

    Purely a cache: the entry is re-derived whenever the trial's parameters differ.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._memo: dict[tuple[int, str], tuple[Mapping[str, Any], dict[str, Any] | None, tuple | None]] = {}

    def flat(self, t: TrialRecord) -> tuple[dict[str, Any] | None, tuple | None]:
        ck = (t.sequence, t.trial_id)
        hit = self._memo.get(ck)
        if hit is not None and (hit[0] is t.parameters or hit[0] == t.parameters):
            return hit[1], hit[2]
        try:
            flat = self.space.to_flat(t.parameters)
            key = flat_key(flat)
        except (KeyError, ValueError, TypeError, IndexError):
            flat, key = None, None  # not of this space (e.g. edited spec): ignored by the model
        self._memo[ck] = (t.parameters, flat, key)
        return flat, key

    def observations(self, history: Sequence[TrialRecord], mode: OptimizeMode, liar: str | None) -> Observations:
        trials = sorted(history, key=lambda t: t.sequence)
        done_flats: list[dict[str, Any]] = []
        done_losses: list[float] = []
        pending: list[dict[str, Any]] = []
        seen: set[tuple] = set()
        for t in trials:
            flat, key = self.flat(t)
            if key is not None:
                seen.add(key)
            if flat is None:
                continue
            if t.state.ended:
                v = t.value
                if v is not None and math.isfinite(v):
                    done_flats.append(flat)
                    done_losses.append(mode.loss(float(v)))
            else:
                pending.append(flat)
        losses = np.asarray(done_losses, dtype=float)
        n_done = len(done_flats)
        if pending and liar is not None and n_done:
            lie = {"best": losses.min, "worst": losses.max, "mean": lambda: finite_mean(losses)}[liar]()
            # Pending trials join in sequence order after the results: ties in the ranking
            # are broken by position, so a real result ranks before an equal lie.
            done_flats = done_flats + pending
            losses = np.concatenate([losses, np.full(len(pending), lie)])
        return Observations(done_flats, losses, n_done, seen)


def finite_mean(values: np.ndarray) -> float:
    """The mean of finite ``values``, finite itself: results near the float range's ends (a
    script's +-1.7e308 sentinel) overflow the plain sum to +-inf or, both signs present, to
    NaN -- a constant liar of -inf ranked every running trial first, NaN last. Each value
    divided by the count first cannot overflow (no partial sum exceeds the largest value)."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = float(values.mean())
    return m if math.isfinite(m) else float(np.sum(values / len(values)))


def flat_key(flat: Mapping[str, Any]) -> tuple:
    """A hashable identity of a flat assignment (1 == 1.0, as JSON round trips need).

    Independent of key order: the joint model builds its proposal group by group, not in
    the parents-first order of to_flat, and an order-sensitive key let a configuration
    already tried pass the repeat check (a duplicate trial on a nested space)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in flat.items()))


# --------------------------------------------------------------------------- new configurations


def enumerate_flats(space: SearchSpace, keys: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every configuration of a finite space as a flat assignment."""
    from tuner_server.tuners.gridsearch import dimension_values  # local: avoids an import cycle

    keys = list(space.top if keys is None else keys)
    if not keys:
        yield {}
        return
    k, rest = keys[0], keys[1:]
    d = space[k]
    if d.type in ("choice", "layer_choice"):
        heads: list[dict[str, Any]] = []
        for i, opt in enumerate(d.options):
            if isinstance(opt, NestedOption):
                heads.extend({k: i, **sub} for sub in enumerate_flats(space, opt.children))
            else:
                heads.append({k: i})
    else:
        heads = [{k: v} for v in dimension_values(d, 1) or []]
    tails = list(enumerate_flats(space, rest))
    for h, t in itertools.product(heads, tails):
        yield {**h, **t}


def order_flat(space: SearchSpace, flat: Mapping[str, Any]) -> dict[str, Any]:
    """``flat`` re-ordered as :meth:`SearchSpace.to_flat` orders keys (so keys compare)."""
    return {k: flat[k] for k in space.active_keys(flat)}


def fresh_prior_sample(
    space: SearchSpace, seen: set[tuple], rng: np.random.Generator, cardinality: int | None, tries: int = 200
) -> dict[str, Any]:
    """A prior sample (flat) that is not in ``seen``; NoMoreTrials when none is left."""
    if cardinality is not None and len(seen) >= cardinality:
        raise NoMoreTrials(f"all {cardinality} configurations of the search space were tried")
    flat: dict[str, Any] = {}
    for _ in range(tries):
        flat = order_flat(space, space.sample_flat(rng))
        if flat_key(flat) not in seen:
            return flat
    if cardinality is not None and cardinality <= _ENUMERATE_LIMIT:
        rest = [f for f in enumerate_flats(space) if flat_key(order_flat(space, f)) not in seen]
        if not rest:
            raise NoMoreTrials(f"all {cardinality} configurations of the search space were tried")
        return order_flat(space, rest[int(rng.integers(len(rest)))])
    for _ in range(tries * 50):  # a huge space that is nearly used up: keep drawing
        flat = order_flat(space, space.sample_flat(rng))
        if flat_key(flat) not in seen:
            return flat
    return flat  # astronomically unlikely; a repeat beats stalling the experiment


# --------------------------------------------------------------------------- Parzen estimators


def linear_forgetting_weights(n: int, lf: int) -> np.ndarray:
    """Weights of ``n`` time-ordered observations: the newest ``lf`` weigh 1, older ones ramp."""
    if lf <= 0 or n <= lf:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - lf), np.ones(lf)])


@dataclass
class Mixture:
    mu: np.ndarray
    sigma: np.ndarray
    logw: np.ndarray  # log weight minus log truncation mass (so components are normalised)
    w: np.ndarray  # plain mixture weights (sum 1), for sampling


def adaptive_parzen(
    obs: np.ndarray, prior_mu: float, prior_sigma: float, prior_weight: float, lf: int,
    lo: float | None, hi: float | None,
) -> Mixture:
    """hyperopt's adaptive Parzen normal estimator over time-ordered ``obs``."""
    n = len(obs)
    if n == 0:
        mu = np.array([prior_mu])
        sigma = np.array([prior_sigma])
        w = np.array([1.0])
    else:
        wobs = linear_forgetting_weights(n, lf)
        order = np.argsort(obs, kind="stable")
        srt = obs[order]
        pos = int(np.searchsorted(srt, prior_mu))
        mu = np.insert(srt, pos, prior_mu)
        w = np.insert(wobs[order], pos, prior_weight)
        if n == 1:
            sigma = np.full(2, prior_sigma * 0.5)
        else:
            gaps = np.diff(mu)
            sigma = np.empty(n + 1)
            sigma[1:-1] = np.maximum(gaps[:-1], gaps[1:])
            sigma[0] = gaps[0]
            sigma[-1] = gaps[-1]
        min_sigma = prior_sigma / min(100.0, 1.0 + len(mu))
        np.clip(sigma, min_sigma, prior_sigma, out=sigma)
        sigma[pos] = prior_sigma
        w = w / w.sum()
    logw = np.log(w)
    if lo is not None:
        mass = ndtr((hi - mu) / sigma) - ndtr((lo - mu) / sigma)
        logw = logw - np.log(np.maximum(mass, _TINY))
    return Mixture(mu, sigma, logw, w)


def sample_mixture(m: Mixture, n: int, lo: float | None, hi: float | None, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from the mixture, each component truncated to [lo, hi] (inverse CDF)."""
    comp = np.searchsorted(np.cumsum(m.w), rng.random(n) * m.w.sum(), side="right")
    np.minimum(comp, len(m.w) - 1, out=comp)
    mu, sigma = m.mu[comp], m.sigma[comp]
    if lo is None:
        return mu + sigma * rng.standard_normal(n)
    a = ndtr((lo - mu) / sigma)
    b = ndtr((hi - mu) / sigma)
    u = a + (b - a) * rng.random(n)
    x = mu + sigma * ndtri(np.clip(u, 1e-300, 1.0 - 1e-16))
    return np.clip(np.nan_to_num(x, nan=(lo + hi) / 2), lo, hi)


def mixture_logpdf(m: Mixture, x: np.ndarray) -> np.ndarray:
    z = (x[:, None] - m.mu[None, :]) / m.sigma[None, :]
    lp = -0.5 * z * z + (m.logw - np.log(m.sigma) - _LOG_SQRT_2PI)[None, :]
    top = lp.max(axis=1)
    return top + np.log(np.exp(lp - top[:, None]).sum(axis=1))


def mixture_logmass(m: Mixture, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log P(lo < X < hi) for each (lo, hi) pair."""
    a = ndtr((lo[:, None] - m.mu[None, :]) / m.sigma[None, :])
    b = ndtr((hi[:, None] - m.mu[None, :]) / m.sigma[None, :])
    mass = (b - a) @ np.exp(m.logw)
    return np.log(np.maximum(mass, _TINY))


# --------------------------------------------------------------------------- per-dimension models


@dataclass(frozen=True)
class NumericModel:
    """How one numeric dimension is represented in the estimator's (model) space."""

    log: bool
    lo: float | None  # model-space bounds (None: unbounded normal types)
    hi: float | None
    prior_mu: float
    prior_sigma: float
    q: float | None  # quantum in value space (randint: 1 with floor rounding)
    randint: bool
    x_lo: float | None  # value-space bounds for clipping bins
    x_hi: float | None
    # randint: its lower bound, subtracted in integers before a value becomes a float. Near
    # +-2**63 a float is 2048 apart, so [2**63 - 100, 2**63 - 1) as floats was one point:
    # zero bandwidths (RuntimeWarnings) and every proposal 2**63 - 2, replaced by a prior draw.
    offset: int = 0

    @staticmethod
    def of(d: Dimension) -> "NumericModel":
        t = d.type
        log = t in LOG_TYPES
        if t == "randint":
            width = float(int(d.args[1]) - int(d.args[0]))
            return NumericModel(False, 0.0, width, width / 2, width, 1.0, True, 0.0, width, int(d.args[0]))
        if t in NORMAL_TYPES:
            mu, sigma = float(d.args[0]), float(d.args[1])
            return NumericModel(log, None, None, mu, sigma, d.q, False, None, None)
        lo, hi = d.low, d.high
        mlo, mhi = (math.log(lo), math.log(hi)) if log else (lo, hi)
        return NumericModel(log, mlo, mhi, (mlo + mhi) / 2, mhi - mlo, d.q, False, lo, hi)

    def column(self, values: Sequence[Any]) -> np.ndarray:
        """Trial values (NaN where inactive) -> the floats to_model takes (randint: offset)."""
        if not self.offset:
            return np.asarray(values, dtype=float)
        return np.array([v if isinstance(v, float) and math.isnan(v) else v - self.offset for v in values], dtype=float)

    def trial_value(self, d: Dimension, v: float) -> Any:
        """A value of values() (randint: offset) -> the value a trial receives."""
        return d.quantize(int(v) + self.offset if self.randint else float(v))

    def to_model(self, values: np.ndarray) -> np.ndarray:
        """column() values -> model space (bin centre for randint, log for log types)."""
        if self.randint:
            return values + 0.5
        if self.log:
            floor = self.q / 2 if self.q else _TINY  # qlognormal can round down to 0
            return np.log(np.maximum(values, floor))
        return values

    def values(self, x: np.ndarray) -> np.ndarray:
        """Model-space draws -> the values a trial would receive (vectorised quantize)."""
        v = np.exp(x) if self.log else x
        if self.randint:
            return np.clip(np.floor(v), self.x_lo, self.x_hi - 1)
        if self.q is not None:
            v = np.round(v / self.q) * self.q
            if self.x_lo is not None:
                v = np.clip(v, self.x_lo, self.x_hi)
        return v

    def bins(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-space edges of the bin of values that round to ``v``."""
        if self.randint:
            return v, v + 1.0
        k = np.round(v / self.q)
        lo_e, hi_e = (k - 0.5) * self.q, (k + 0.5) * self.q
        if self.x_lo is not None:
            lo_e, hi_e = np.maximum(lo_e, self.x_lo), np.minimum(hi_e, self.x_hi)
        if self.log:
            with np.errstate(divide="ignore"):
                lo_e = np.log(np.maximum(lo_e, 0.0))
            hi_e = np.log(np.maximum(hi_e, _TINY))
        return lo_e, hi_e


class TPETuner(Tuner):
    name = "TPE"
    aliases = ("TPETuner", "tpe")
    default_mode = OptimizeMode.MINIMIZE

    _TPE_ARGS = ("constant_liar_type", "n_startup_jobs", "n_ei_candidates", "linear_forgetting", "prior_weight", "gamma",
                 "multivariate")

    def configure(self, args: dict[str, Any]) -> None:
        reject_unknown(self.name, args, ("parallel_optimize", "tpe_args", "constant_liar_type"))
        arg(self.name, args, "parallel_optimize", False, bool)
        tpe_args = args.get("tpe_args")
        if tpe_args is None:  # null is "not given"; 0, [] or "" are mistakes, not an empty object
            tpe_args = {}
        if not isinstance(tpe_args, Mapping):
            raise TunerArgsError(f"{self.name} classArgs.tpe_args must be an object, got {tpe_args!r}")
        unknown = sorted(set(tpe_args) - set(self._TPE_ARGS))
        if unknown:
            raise TunerArgsError(
                f"{self.name} does not know classArgs.tpe_args {unknown}; known: {sorted(self._TPE_ARGS)}"
            )
        if "constant_liar_type" in args and "constant_liar_type" in tpe_args:
            raise TunerArgsError(f"{self.name}: give constant_liar_type either at top level or in tpe_args, not both")
        if "constant_liar_type" in tpe_args:
            self.liar = parse_liar(self.name, "tpe_args.constant_liar_type", tpe_args["constant_liar_type"])
        else:
            self.liar = parse_liar(self.name, "constant_liar_type", args.get("constant_liar_type", "best"))
        n = f"{self.name}"
        t = tpe_args
        self.n_candidates = arg(n, t, "n_ei_candidates", 24, int, lambda v: v >= 1, "must be >= 1")
        self.lf = arg(n, t, "linear_forgetting", 25, int, lambda v: v >= 0, "must be >= 0")
        self.prior_weight = float(arg(n, t, "prior_weight", 1.0, (int, float), lambda v: v > 0, "must be > 0"))
        self.gamma = float(arg(n, t, "gamma", 0.25, (int, float), lambda v: 0 < v <= 1, "must be in (0, 1]"))
        # AutoTune's addition (not an NNI classArg): model the parameters jointly.
        self.multivariate = arg(n, t, "multivariate", MULTIVARIATE_DEFAULT, bool)
        self.n_startup = arg(n, t, "n_startup_jobs", default_startup(self.space, self.multivariate), int, lambda v: v >= 0,
                             "must be >= 0")
        # A joint estimator needs more good points than a per-parameter one to cover several
        # dimensions: without an explicit gamma it splits at ceil(1.0 * sqrt(n)) (about
        # Optuna's 10% at 100 trials; bench/quality.py: mean normalized regret 0.49 -> 0.28
        # at 100 trials over 8 problems). A given gamma is used as given, in either mode.
        self.split_gamma = self.gamma if ("gamma" in t or not self.multivariate) else MULTIVARIATE_GAMMA
        # How the joint model weighs its good trials (bench/quality.py variants can set it).
        # MOTPE's "losses" are Pareto ranks, not values to take improvements of.
        self.good_weights = "uniform" if self.multi_objective else default_good_weights(self.space, self.multivariate)
        self._memo = HistoryMemo(self.space)
        self._card = self.space.cardinality()
        self._models = {d.key: NumericModel.of(d) for d in self.space.dims if not d.is_categorical}

    # ----- suggest -----
    def _observations(self, history: Sequence[TrialRecord]) -> Observations:
        """What the estimators are fit on; MOTPE ranks by Pareto front instead of one loss."""
        return self._memo.observations(history, self.mode, self.liar)

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        obs = self._observations(history)
        if self._card is not None and len(obs.seen) >= self._card:
            raise NoMoreTrials(f"all {self._card} configurations of the search space were tried")
        if obs.n_completed < max(self.n_startup, 1):
            return self.space.to_parameters(fresh_prior_sample(self.space, obs.seen, rng, self._card))
        if self.multivariate:
            flat, ranked = tpe_multivariate.propose(
                self.space, self._models, obs.flats, lambda idx: self._split(idx, obs.losses), self.n_candidates,
                self.prior_weight, self.lf, rng, self.good_weights, obs.losses,
            )
        else:
            flat, ranked = self._propose(self._columns(obs), obs.losses, rng)
        if flat_key(flat) in obs.seen:
            flat = self._dedup(flat, ranked, obs.seen, rng)
        return self.space.to_parameters(flat)

    def _columns(self, obs: Observations) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """key -> (indices of observations where the key is active, their values)."""
        n = len(obs.flats)
        all_idx = np.arange(n)
        cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for d in self.space.dims:
            k = d.key
            if d.parent is None:
                idx = all_idx
                vals = [f[k] for f in obs.flats]
            else:
                pairs = [(i, f[k]) for i, f in enumerate(obs.flats) if k in f]
                idx = np.fromiter((p[0] for p in pairs), dtype=np.intp, count=len(pairs))
                vals = [p[1] for p in pairs]
            nm = self._models.get(k)
            cols[k] = (idx, nm.column(vals) if nm is not None else np.asarray(vals, dtype=float))
        return cols

    def _split(self, idx: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (into idx, time-ordered) of the good and the bad observations."""
        m = len(idx)
        n_below = min(int(math.ceil(self.split_gamma * math.sqrt(m))), 25) if m else 0
        order = np.argsort(losses[idx], kind="stable")
        return np.sort(order[:n_below]), np.sort(order[n_below:])

    def _propose(
        self, cols: dict[str, tuple[np.ndarray, np.ndarray]], losses: np.ndarray, rng: np.random.Generator
    ) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """The best candidate of every active dimension; also all candidates, best first."""
        ranked: dict[str, list[Any]] = {}

        def pick(d: Dimension) -> Any:
            idx, vals = cols[d.key]
            good, bad = self._split(idx, losses)
            if d.is_categorical:
                cands = self._categorical(len(d.options), vals[good].astype(int), vals[bad].astype(int), rng)
            else:
                cands = self._numeric(d, self._models[d.key], vals[good], vals[bad], rng)
            ranked[d.key] = cands
            return cands[0]

        flat = self.space.assign(pick)
        return flat, ranked

    def _categorical(self, k: int, good: np.ndarray, bad: np.ndarray, rng: np.random.Generator) -> list[int]:
        pl = np.bincount(good, weights=linear_forgetting_weights(len(good), self.lf), minlength=k)[:k] + self.prior_weight
        pg = np.bincount(bad, weights=linear_forgetting_weights(len(bad), self.lf), minlength=k)[:k] + self.prior_weight
        pl /= pl.sum()
        pg /= pg.sum()
        draws = np.searchsorted(np.cumsum(pl), rng.random(self.n_candidates) * pl.sum(), side="right")
        draws = np.minimum(draws, k - 1)
        score = np.log(pl[draws]) - np.log(pg[draws])
        return _distinct_by_score(draws.tolist(), score)

    def _numeric(
        self, d: Dimension, nm: NumericModel, good: np.ndarray, bad: np.ndarray, rng: np.random.Generator
    ) -> list[Any]:
        l_mix = adaptive_parzen(nm.to_model(good), nm.prior_mu, nm.prior_sigma, self.prior_weight, self.lf, nm.lo, nm.hi)
        g_mix = adaptive_parzen(nm.to_model(bad), nm.prior_mu, nm.prior_sigma, self.prior_weight, self.lf, nm.lo, nm.hi)
        x = sample_mixture(l_mix, self.n_candidates, nm.lo, nm.hi, rng)
        if nm.q is None:
            score = mixture_logpdf(l_mix, x) - mixture_logpdf(g_mix, x)
            raw = np.exp(x) if nm.log else x
            if nm.x_lo is not None:  # exp(log(high)) can be high * (1 + 2e-16)
                raw = np.clip(raw, nm.x_lo, nm.x_hi)
            return [d.quantize(float(r)) for r in raw[np.argsort(-score, kind="stable")]]
        v = nm.values(x)
        uv, inv = np.unique(v, return_inverse=True)  # draws often share a bin: score each once
        lo_e, hi_e = nm.bins(uv)
        score = (mixture_logmass(l_mix, lo_e, hi_e) - mixture_logmass(g_mix, lo_e, hi_e))[inv.reshape(-1)]
        # quantize() makes the value exactly what the search space semantics produce.
        vals = [nm.trial_value(d, r) for r in v]
        return _distinct_by_score(vals, score)

    def _dedup(
        self, flat: dict[str, Any], ranked: dict[str, list[Any]], seen: set[tuple], rng: np.random.Generator
    ) -> dict[str, Any]:
        """The proposal was tried already: vary it with other good candidates, then the prior."""
        for _ in range(16):
            alt = dict(flat)
            keys = [k for k in flat if len(ranked.get(k, ())) > 1]
            if not keys:
                break
            for k in rng.permutation(keys)[: 1 + int(rng.integers(len(keys)))]:
                opts = ranked[k]
                alt[k] = opts[1 + int(rng.integers(len(opts) - 1))]
            alt = self._complete(alt, rng)
            if flat_key(alt) not in seen:
                return alt
        return fresh_prior_sample(self.space, seen, rng, self._card)

    def _complete(self, flat: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Make ``flat`` consistent after a choice changed: drop inactive keys, sample new ones."""
        return self.space.assign(lambda d: flat[d.key] if d.key in flat else d.sample(rng))


def _distinct_by_score(values: list[Any], score: np.ndarray) -> list[Any]:
    """Distinct values ordered by their best score (ties: first drawn first)."""
    out: list[Any] = []
    seen: set[Any] = set()
    for i in np.argsort(-score, kind="stable"):
        v = values[int(i)]
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out
