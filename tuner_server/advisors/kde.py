"""The kernel-density model of BOHB (Falkner et al., 2018), shared with BOSS.

Every top-level parameter is encoded into [0, 1] (categorical: the option index):
uniform types linearly, log types on the log scale, and normal / lognormal types through
the normal CDF, so that no type is mis-indexed (NNI's BOHB mis-handles normal types).
Two product-kernel densities are fitted to the best and the rest of the results *at one
budget*: l(x) (good) and g(x) (bad). Candidates are drawn around good points with widened
bandwidths and the one maximising l(x)/g(x) is proposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np

from tuner_server.advisors.base import run_loss, runs_of
from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import LOG_TYPES, Dimension, SearchSpace, canonical
from tuner_server.tuners.base import TunerArgsError

_NORMAL = frozenset({"normal", "qnormal", "lognormal", "qlognormal"})
# The standard normal from the standard library: scalar cdf/inverse cdf is all this needs,
# and importing scipy.stats here put scipy (~70 MiB with numpy) into the operator, which
# imports the advisor registry only to validate specs.
_STD_NORMAL = NormalDist()


class Encoder:
    def __init__(self, space: SearchSpace, who: str) -> None:
        for d in space.dims:
            if d.is_nested_choice or d.type in ("input_choice", "layer_choice"):
                raise TunerArgsError(f"{who} does not support nested choice or architecture types (parameter '{d.key}')")
        self.space = space
        self.dims: list[Dimension] = [space[k] for k in space.top]
        # 0 for a numeric dimension, else the number of options (for the categorical kernel)
        self.levels = np.array([len(d.options) if d.is_categorical else 0 for d in self.dims])

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        flat = self.space.to_flat(params)
        return np.array([self._enc(d, flat[d.key]) for d in self.dims], dtype=float)

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        return self.space.to_parameters({d.key: self._dec(d, float(v)) for d, v in zip(self.dims, x)})

    @staticmethod
    def _enc(d: Dimension, v: Any) -> float:
        if d.is_categorical:
            return float(v)
        if d.type == "randint":
            # The offset from lo in integers: as floats, values near 2**63 are 2048 apart
            # and every trial of [2**63 - 100, 2**63 - 1) encoded to one point.
            lo, hi = int(d.args[0]), int(d.args[1])
            return (int(v) - lo + 0.5) / (hi - lo)
        x = float(v)
        if d.type in _NORMAL:
            mu, sigma = float(d.args[0]), float(d.args[1])
            z = (math.log(max(x, 1e-300)) if d.type in ("lognormal", "qlognormal") else x) - mu
            return float(np.clip(_STD_NORMAL.cdf(z / sigma), 1e-6, 1 - 1e-6))
        if d.type in LOG_TYPES:
            return (math.log(x) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
        return (x - d.low) / (d.high - d.low) if d.high > d.low else 0.5

    @staticmethod
    def _dec(d: Dimension, u: float) -> Any:
        if d.is_categorical:
            return int(min(max(round(u), 0), len(d.options) - 1))
        u = min(max(u, 0.0), 1.0)
        if d.type in _NORMAL:
            mu, sigma = float(d.args[0]), float(d.args[1])
            z = mu + sigma * _STD_NORMAL.inv_cdf(min(max(u, 1e-6), 1 - 1e-6))
            return d.quantize(math.exp(z) if d.type in ("lognormal", "qlognormal") else z)
        if d.type == "randint":
            lo, hi = int(d.args[0]), int(d.args[1])
            return d.quantize(lo + math.floor(u * (hi - lo)))  # added in integers (see _enc)
        if d.type in LOG_TYPES:
            # exp(log(high)) can exceed high by an ulp (0.1 -> 0.10000000000000006): clip.
            x = math.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
            return d.quantize(min(max(x, d.low), d.high))
        return d.quantize(d.low + u * (d.high - d.low))


@dataclass
class ProductKDE:
    data: np.ndarray  # (n, d), encoded
    bw: np.ndarray  # (d,)
    levels: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, levels: np.ndarray, min_bandwidth: float) -> "ProductKDE":
        n, d = data.shape
        # Scott's normal-reference rule for numeric dims (as statsmodels' KDEMultivariate).
        std = data.std(axis=0) if n > 1 else np.full(d, 0.5)
        bw = 1.06 * std * n ** (-1.0 / (4 + d))
        for j, c in enumerate(levels):
            if c > 0:  # Aitchison-Aitken: probability mass kept off the observed option
                counts = np.bincount(data[:, j].astype(int), minlength=int(c))
                spread = 1.0 - counts.max() / n
                bw[j] = min(max(spread, min_bandwidth), (c - 1) / c)
        return cls(data, np.maximum(bw, min_bandwidth), levels)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Density of each row of x (m, d)."""
        out = np.ones((x.shape[0], self.data.shape[0]))
        for j, c in enumerate(self.levels):
            diff = x[:, j][:, None] - self.data[:, j][None, :]
            if c > 0:
                lam = self.bw[j]
                out *= np.where(np.abs(diff) < 0.5, 1 - lam, lam / max(c - 1, 1))
            else:
                out *= np.exp(-0.5 * (diff / self.bw[j]) ** 2) / self.bw[j]
        return out.mean(axis=1)


def propose_kde(
    good: ProductKDE, bad: ProductKDE, num_samples: int, bandwidth_factor: float, min_bandwidth: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw candidates around good points (bandwidths widened), best l/g first."""
    n, d = good.data.shape
    cands = np.empty((num_samples, d))
    for i in range(num_samples):
        base = good.data[int(rng.integers(n))]
        for j, c in enumerate(good.levels):
            if c > 0:
                cands[i, j] = base[j] if rng.random() > good.bw[j] else float(rng.integers(int(c)))
            else:
                sd = max(good.bw[j] * bandwidth_factor, min_bandwidth)
                v = rng.normal(base[j], sd)
                for _ in range(20):  # truncated to [0, 1]
                    if 0.0 <= v <= 1.0:
                        break
                    v = rng.normal(base[j], sd)
                cands[i, j] = min(max(v, 0.0), 1.0)
    ratio = good.pdf(cands) / np.maximum(bad.pdf(cands), 1e-32)
    return cands[np.argsort(-ratio, kind="stable")]


def split_good_bad(x: np.ndarray, losses: np.ndarray, top_n_percent: float, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """hpbandster's split: the best top_n_percent (at least min_points) and the worst rest."""
    order = np.argsort(losses, kind="stable")
    n = len(losses)
    n_good = max(min_points, int(top_n_percent * n / 100))
    n_bad = max(min_points, int((100 - top_n_percent) * n / 100))
    return x[order[:n_good]], x[order[n - n_bad :]]


def encode_all(enc: Encoder, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return np.array([enc.encode(p) for p in params], dtype=float).reshape(len(params), len(enc.dims))


def best_new(enc: Encoder, ranked: np.ndarray, seen: set[str]) -> dict[str, Any] | None:
    """The best-ranked candidate not tried before (a grid-like space would otherwise get the
    same configuration again and again), or None when every candidate was."""
    for x in ranked:
        params = enc.decode(x)
        if canonical(params) not in seen:
            return params
    return None


@dataclass(frozen=True)
class KDESettings:
    """BOHB's model settings (NNI's classArgs of the same names)."""

    min_points: int
    top_n_percent: float = 15
    num_samples: int = 64
    random_fraction: float = 1 / 3
    bandwidth_factor: float = 3
    min_bandwidth: float = 1e-3


def results_by_budget(history: Sequence[TrialRecord], mode: OptimizeMode, enc: Encoder) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Encoded configs and losses of the advisor's ended runs, filed under their real budget."""
    rows: dict[int, tuple[list[dict[str, Any]], list[float]]] = {}
    for r in runs_of(history):
        loss = run_loss(mode, r)
        if r.ended and math.isfinite(loss):
            ps, ls = rows.setdefault(r.budget, ([], []))
            ps.append(dict(r.trial.parameters))
            ls.append(loss)
    return {b: (encode_all(enc, ps), np.array(ls)) for b, (ps, ls) in rows.items()}


def model_budget(by_budget: Mapping[int, tuple[np.ndarray, np.ndarray]], min_points: int) -> int | None:
    """The largest budget with enough results for a good and a bad model (None: none has)."""
    ok = [b for b, (_, ls) in by_budget.items() if len(ls) >= min_points + 2]
    return max(ok) if ok else None


def kde_config(enc: Encoder, history: Sequence[TrialRecord], mode: OptimizeMode, settings: KDESettings,
               rng: np.random.Generator) -> dict[str, Any] | None:
    """A new config from the model of the largest budget that has one, or None for a random
    one (no budget has enough results, the ``random_fraction`` draw, or every candidate was
    tried before)."""
    by_budget = results_by_budget(history, mode, enc)
    b = model_budget(by_budget, settings.min_points)
    if b is None or rng.random() < settings.random_fraction:
        return None
    x, losses = by_budget[b]
    good_x, bad_x = split_good_bad(x, losses, settings.top_n_percent, settings.min_points)
    good = ProductKDE.fit(good_x, enc.levels, settings.min_bandwidth)
    bad = ProductKDE.fit(bad_x, enc.levels, settings.min_bandwidth)
    ranked = propose_kde(good, bad, settings.num_samples, settings.bandwidth_factor, settings.min_bandwidth, rng)
    return best_new(enc, ranked, {canonical(t.parameters) for t in history})
