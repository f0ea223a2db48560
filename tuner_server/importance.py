"""Which hyperparameters mattered: PED-ANOVA importance from an experiment's trials.

PED-ANOVA (Watanabe, Bansal, Hutter, IJCAI 2023) measures a parameter's importance for
reaching the top ``gamma'`` of the trials as the Pearson divergence between two 1-D
densities of that parameter: among the top trials, and among all trials (the region
``gamma = 1``). A parameter whose good values are spread like all values did not matter;
one whose good values pile up in one place did. The paper shows this equals f-ANOVA's
main-effect variance on the "is it in the top" indicator, so it is marginal (1-D): it says
nothing about interactions. Importances are normalised to sum to 1.

What AutoTune adds or decides (see README "Parameter importance"):

- Densities are Parzen estimators on a grid of at most 50 points per parameter (in log
  space for log types; every value of a small discrete domain is its own grid point),
  Gaussian kernels with Scott's bandwidth, plus a uniform prior of weight 1 (the paper's
  regulariser: a handful of top trials cannot make a spike out of nothing). Choices are
  categorical counts with the same prior.
- A parameter inside a nested choice counts only the trials where it is active, weighted as
  in conditional PED-ANOVA (Baba, Ozaki, Watanabe 2026): ``alpha^2 / beta * D`` with alpha,
  beta the shares of top and region trials where it is active. The choice that gates it
  carries the importance of picking that branch.
- The top set is the best 30% of succeeded trials, at least 5 (Optuna's docs advise at least
  5 above the target quantile). The paper and Optuna default to 10%; with 50-200 trials
  that is 5-20 trials, and their densities are mostly noise: on bench/importance.py's
  problems (two of eight parameters matter) 30% put the two on top in 0.82 of histories
  against 0.74 for 10% (seeds 5-12, used to choose; the published table uses other seeds).
  The answer is then "what mattered to be in the best 30%". Ties at the cut are all in, so
  the result never depends on the order trials arrived in; when that takes every trial (a
  0/1 objective), the top is the trials better than the worst value.
- Too few trials (fewer than 10 succeeded) give no numbers and a reason; so do objectives
  whose value is the same in every trial. Parameters that never vary get 0.
- Several objectives: one importance per objective (each in its own direction), since
  "reaching the Pareto front" mixes what each objective needs.
- Multi-fidelity (advisors): values at different budgets do not compare; the trials of
  the largest budget with enough trials are used, and the result says which.

Pure functions of the trials: no I/O, no randomness, same input same output.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tuner_server.history import OptimizeMode
from tuner_server.searchspace import LOG_TYPES, NORMAL_TYPES, Dimension, SearchSpace, quniform_grid

METHOD = "PED-ANOVA"


@dataclass(frozen=True)
class Settings:
    """``target_quantile`` is gamma' (the paper's and Optuna's default is 0.1; see the module
    docstring for why 0.3 here); the region is all trials."""

    target_quantile: float = 0.3
    min_top_trials: int = 5
    min_trials: int = 10
    grid_points: int = 50
    prior_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.target_quantile < 1.0:
            raise ValueError(f"target_quantile must be in (0, 1), got {self.target_quantile}")
        if self.min_trials < 2 or self.min_top_trials < 1 or self.min_top_trials >= self.min_trials:
            raise ValueError("need 1 <= min_top_trials < min_trials and min_trials >= 2")
        if self.grid_points < 2 or self.prior_weight < 0:
            raise ValueError("grid_points must be >= 2 and prior_weight >= 0")


@dataclass(frozen=True)
class Point:
    """One succeeded trial: its flat assignment (only active keys; a choice as its option
    index) and its loss (lower is better)."""

    flat: Mapping[str, Any]
    loss: float


@dataclass(frozen=True)
class Result:
    """The importance of each parameter for one objective, or why there is none."""

    objective: str
    optimize_mode: str
    trials: int  # succeeded trials used
    top_trials: int = 0
    importances: tuple[tuple[str, float], ...] = ()  # (flat key, importance), most important first
    reason: str | None = None
    budget: int | None = None
    skipped: int = 0  # succeeded trials whose parameters do not fit the search space

    def as_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "optimizeMode": self.optimize_mode,
            "trials": self.trials,
            "topTrials": self.top_trials,
            "budget": self.budget,
            "skipped": self.skipped,
            "importances": [{"parameter": k, "importance": v} for k, v in self.importances],
            "reason": self.reason,
        }

    def line(self, limit: int = 5) -> str:
        """One line for a terminal, e.g. ``learning_rate 0.71, alpha 0.22, batch_size 0.07``."""
        if self.reason:
            return f"none ({self.reason})"
        shown = ", ".join(f"{k} {v:.2f}" for k, v in self.importances[:limit])
        more = len(self.importances) - limit
        return shown + (f", {more} more" if more > 0 else "")


# --------------------------------------------------------------------------- the algorithm


def top_mask(losses: np.ndarray, settings: Settings) -> np.ndarray:
    """The top set: the best ceil(gamma' n) trials, at least ``min_top_trials``, and every
    trial tied with the last of them."""
    n = losses.size
    k = min(max(math.ceil(settings.target_quantile * n), settings.min_top_trials), n)
    cutoff = np.partition(losses, k - 1)[k - 1]
    return losses <= cutoff


def importances(space: SearchSpace, points: Sequence[Point], settings: Settings = Settings()) -> tuple[
        tuple[tuple[str, float], ...], int, str | None]:
    """(importances, size of the top set, reason) for succeeded trials of one objective.

    Importances are sorted by decreasing value, ties in search-space order, and sum to 1
    (all 0 when nothing varies). ``reason`` is set, and importances empty, when the trials
    cannot say anything."""
    n = len(points)
    if n < settings.min_trials:
        return (), 0, f"needs at least {settings.min_trials} succeeded trials, has {n}"
    losses = np.array([p.loss for p in points], dtype=float)
    top = top_mask(losses, settings)
    n_top = int(top.sum())
    if n_top == n:
        # Ties at the cut took every trial. With a few distinct values (a 0/1 objective
        # that 20% of trials reach) the top is then the trials better than the worst value;
        # only when all values are equal is there nothing to say.
        top = losses < losses.max()
        n_top = int(top.sum())
        if n_top == 0:
            return (), n, "every trial has the same objective value"
    raw: list[tuple[str, float]] = []
    for d in space.dims:
        with np.errstate(all="ignore"):  # overflow at the float limit: a non-finite result is 0 (below)
            raw.append((d.key, _importance(d, points, top, n_top, settings)))
    total = sum(v for _, v in raw)
    order = {d.key: i for i, d in enumerate(space.dims)}
    scaled = [(k, (v / total) if total > 0 else 0.0) for k, v in raw]
    scaled.sort(key=lambda kv: (-kv[1], order[kv[0]]))
    return tuple(scaled), n_top, None


def _importance(d: Dimension, points: Sequence[Point], top: np.ndarray, n_top: int, settings: Settings) -> float:
    """alpha^2 / beta * D(top || region) over the trials where ``d`` is active."""
    active = [i for i, p in enumerate(points) if d.key in p.flat]
    if len(active) < 2:
        return 0.0
    top_active = [i for i in active if top[i]]
    if not top_active:
        return 0.0
    axis = _axis(d, [points[i].flat[d.key] for i in active], settings.grid_points)
    if axis is None:
        return 0.0
    where = {i: j for j, i in enumerate(active)}
    bins = axis.bins
    region_counts = np.bincount(bins, minlength=axis.size).astype(float)
    top_counts = np.bincount(bins[[where[i] for i in top_active]], minlength=axis.size).astype(float)
    p_region = axis.density(region_counts, settings.prior_weight)
    p_top = axis.density(top_counts, settings.prior_weight)
    divergence = float(np.sum((p_top - p_region) ** 2 / p_region))
    if not math.isfinite(divergence):
        # Values near the float limit (a normal parameter imported as 1e308) overflow the
        # grid; a NaN here made the sum NaN and so every other parameter's importance 0.
        return 0.0
    alpha = len(top_active) / n_top
    beta = len(active) / len(points)
    return alpha * alpha / beta * divergence


@dataclass(frozen=True)
class _Axis:
    """A parameter's observed values as grid indices, and how to smooth counts on the grid.

    ``positions`` is None for a categorical axis (no notion of distance)."""

    bins: np.ndarray  # int, one per observed value
    size: int
    positions: np.ndarray | None = None

    def density(self, counts: np.ndarray, prior_weight: float) -> np.ndarray:
        n = float(counts.sum())
        uniform = np.full(self.size, 1.0 / self.size)
        if self.positions is None:
            smoothed = counts
        else:
            smoothed = self._kernel(counts) @ counts
        return (smoothed + prior_weight * uniform) / (n + prior_weight)

    def _kernel(self, counts: np.ndarray) -> np.ndarray:
        """Column j: a Gaussian at grid point j, discretised on the grid (so truncated to
        the domain), with Scott's bandwidth for the weighted observations."""
        assert self.positions is not None
        pos = self.positions
        h = _scott_bandwidth(pos, counts)
        spacing = float(np.median(np.diff(pos))) if pos.size > 1 else 1.0
        # At least half a grid step, so a kernel never collapses onto a single point
        # (Optuna's rule: 90% of its mass within half a step either side).
        h = max(h, spacing * 0.5 / 1.64)
        k = np.exp(-0.5 * ((pos[:, None] - pos[None, :]) / h) ** 2)
        return k / k.sum(axis=0, keepdims=True)


def _scott_bandwidth(pos: np.ndarray, counts: np.ndarray) -> float:
    n = counts.sum()
    if n <= 1:
        return 0.0
    mean = float(pos @ counts) / n
    std = math.sqrt(float(((pos - mean) ** 2) @ counts) / (n - 1))
    cum = np.cumsum(counts)
    q1 = pos[int(np.searchsorted(cum, 0.25 * n))]
    q3 = pos[min(int(np.searchsorted(cum, 0.75 * n)), pos.size - 1)]
    iqr = float(q3 - q1)
    spread = min(std, iqr / 1.34) if iqr > 0 else std
    return 1.059 * spread * n ** -0.2


def _axis(d: Dimension, values: list[Any], points: int) -> _Axis | None:
    """The grid for one parameter, or None when it takes a single value (importance 0)."""
    if d.type in ("choice", "layer_choice"):
        idx = np.array([int(v) for v in values])
        if np.unique(idx).size < 2:
            return None
        return _Axis(idx, len(d.options))
    if d.type == "input_choice":
        # A subset of candidates: each subset seen is a category (C(n, k) may be huge).
        keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
        cats = sorted(set(keys))
        if len(cats) < 2:
            return None
        where = {c: i for i, c in enumerate(cats)}
        return _Axis(np.array([where[k] for k in keys]), len(cats))
    log = d.type in LOG_TYPES
    # A randint counted from its lower bound, in integers: as floats, values near 2**63 are
    # 2048 apart and [2**63 - 100, 2**63 - 1) looked like one value (importance 0).
    base = int(d.args[0]) if d.type == "randint" else 0
    x = np.array([float(v - base) if base else float(v) for v in values])
    if log:
        # qlognormal rounds values below q/2 to 0: place them at q/2, where they came from.
        x = np.log(np.maximum(x, (d.q or 0.0) / 2))
    if np.ptp(x) == 0:
        return None
    grid = _grid(d, x, log, points)
    # Nearest grid point (grids are sorted): the midpoints split the line.
    mids = (grid[1:] + grid[:-1]) / 2
    return _Axis(np.searchsorted(mids, x), grid.size, grid)


def _grid(d: Dimension, x: np.ndarray, log: bool, points: int) -> np.ndarray:
    small = d.cardinality()
    if small is not None and small <= points:
        # A small discrete domain: each value its own grid point (randint, q-types).
        vals = (np.arange(int(d.args[1]) - int(d.args[0]), dtype=float) if d.type == "randint"  # as _axis's x
                else np.array(quniform_grid(d.low, d.high, float(d.args[2]))))
        vals = np.log(vals) if log else vals
        if vals.size >= 2:
            return vals
    if d.type in NORMAL_TYPES:
        # Unbounded: the prior's mu +- 3 sigma (in log space for lognormal), widened to
        # whatever was observed.
        mu, sigma = float(d.args[0]), float(d.args[1])
        lo, hi = min(mu - 3 * sigma, float(x.min())), max(mu + 3 * sigma, float(x.max()))
    else:
        if d.type == "randint":  # as _axis's x
            lo, hi = 0.0, float(int(d.args[1]) - int(d.args[0]))
        else:
            lo, hi = (math.log(d.low), math.log(d.high)) if log else (d.low, d.high)
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return np.linspace(lo, hi, points)


# --------------------------------------------------------------------------- from trials


def _numeric_ok(d: Dimension, v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    if d.type in LOG_TYPES:
        return v > 0 or (d.q is not None and v == 0)  # qlognormal's q/2 rounds to 0
    return True


def flatten(space: SearchSpace, parameters: Any) -> dict[str, Any] | None:
    """A trial's parameters as a flat assignment, or None when they do not fit the space
    (an imported or hand-made trial, a space edited since)."""
    if not isinstance(parameters, Mapping):
        return None
    try:
        flat = space.to_flat(parameters)
    except (KeyError, ValueError, TypeError):
        return None
    for k, v in flat.items():
        d = space[k]
        if d.type not in ("choice", "layer_choice", "input_choice") and not _numeric_ok(d, v):
            return None
    return flat


def from_trials(space: SearchSpace, trials: Iterable[Mapping[str, Any]], mode: OptimizeMode,
                objectives: Sequence[tuple[str, OptimizeMode]] | None = None,
                settings: Settings = Settings()) -> list[Result]:
    """Importance per objective from trials as the API shows them (``trial_view``: name,
    parameters, state, value, metrics, kind, budget). Only succeeded search trials count;
    failed, early-stopped, stopped, running and final-training trials are left out."""
    done = [t for t in trials if t.get("state") == "SUCCEEDED" and t.get("kind", "search") == "search"]
    budget = _budget(done, settings.min_trials)
    if budget is not None:
        done = [t for t in done if t.get("budget") == budget]
    goals: list[tuple[str, OptimizeMode, Any]] = (
        [(name, m, lambda t, name=name: (t.get("metrics") or {}).get(name) if isinstance(t.get("metrics"), Mapping) else None)
         for name, m in objectives]
        if objectives else [("default", mode, lambda t: t.get("value"))]
    )
    flats = [flatten(space, t.get("parameters")) for t in done]
    skipped = sum(1 for f in flats if f is None)
    out = []
    for name, m, get in goals:
        points = []
        for t, flat in zip(done, flats):
            v = get(t)
            if flat is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            points.append(Point(flat, m.loss(float(v))))
        imps, n_top, reason = importances(space, points, settings)
        out.append(Result(name, m.value, len(points), n_top, imps, reason, budget, skipped))
    return out


def _budget(done: list[Mapping[str, Any]], min_trials: int) -> int | None:
    """With an advisor: the largest budget with ``min_trials`` succeeded trials (else the
    largest one, to say how few it has). None when trials carry no budget."""
    budgets = sorted({t["budget"] for t in done if t.get("budget") is not None}, reverse=True)
    if not budgets:
        return None
    for b in budgets:
        if sum(1 for t in done if t.get("budget") == b) >= min_trials:
            return b
    return budgets[0]


def report(results: Sequence[Result], settings: Settings = Settings()) -> dict[str, Any]:
    """The JSON the web UI's route and local mode's importance.json hold."""
    return {
        "method": METHOD,
        "targetQuantile": settings.target_quantile,
        "minTopTrials": settings.min_top_trials,
        "minTrials": settings.min_trials,
        "results": [r.as_json() for r in results],
    }
