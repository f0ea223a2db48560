"""GPTuner: Bayesian optimisation with a Gaussian process (own numpy/scipy implementation).

* Encoding: every parameter maps into [0, 1]. uniform/quniform linearly, loguniform /
  qloguniform in log space, randint by bin centre, a choice of numbers by its value
  (NNI's behaviour), any other choice (strings, booleans, mixed -- where NNI fails) one-hot.
  Candidates are always "snapped" to values the space can produce before being scored, so
  the acquisition is evaluated at the point that will actually be run.
* Model: GP with a Matern kernel (nu in 0.5, 1.5, 2.5 or inf), one length scale per
  encoded column plus an amplitude, observation noise ``alpha``, y normalised to zero mean
  and unit variance after replacing bad results beyond Q3 + 10 IQR by Q3 (robust_targets.py:
  one diverged trial reporting 1e6 or -1.7e308 would otherwise set the scale alone). The kernel hyper-parameters maximise the log marginal likelihood
  (analytic gradient, L-BFGS-B, two starts: a fixed one and a random one).
  For speed the likelihood is fitted on at most 150 trials (the 75 best and 75 spread
  over the rest); the posterior then uses every trial.
* Pending trials: kriging believer -- each gets the model's own mean as its value, the
  posterior is recomputed with them, so concurrent suggestions spread out.
* Acquisition (on the loss, lower = better): ei, ucb (lower confidence bound, kappa) or
  poi, with xi in units of the normalised y. Maximised by a random warm-up followed by
  L-BFGS-B from the best warm-up points (analytic gradients of the acquisition through the
  GP's posterior mean and deviation).
  ``selection_num_warm_up`` (NNI 100000) is capped at 1000 and
  ``selection_num_starting_points`` (NNI 250) at 10: scoring 100000 points against a
  500-trial posterior costs a 100000 x 500 kernel matrix per suggestion (seconds), while
  1000 warm-up points plus 10 local searches already find the acquisition's optimum
  on the low-dimensional spaces a GP is meant for, in well under the 500 ms budget.
* The first ``cold_start_num`` results come from the prior. No configuration is suggested
  twice (the best-scoring unseen candidate is taken, else a fresh prior sample); a finite
  space ends with NoMoreTrials.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve, lapack
from scipy.optimize import minimize
from scipy.special import ndtr

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import LOG_TYPES, Dimension, SearchSpace, quniform_steps
from tuner_server.tuners.base import NoMoreTrials, Tuner, TunerArgsError, arg, reject_unknown
from tuner_server.tuners.robust_targets import targets
from tuner_server.tuners.tpe import HistoryMemo, flat_key, fresh_prior_sample

WARM_UP_CAP = 1000
STARTING_POINTS_CAP = 10
FIT_SUBSET = 150
_FD = 1e-4


# --------------------------------------------------------------------------- encoding


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_options(options: Sequence[Any]) -> bool:
    """Options a choice can be encoded by value: numbers whose spread is a finite float. An
    int past 1e308 raised OverflowError once the model was built (trial 10), and options
    -1e308 and 1e308 spread to inf, encoding the top one as NaN; such a choice is one-hot."""
    if not all(_is_number(o) for o in options):
        return False
    try:
        vals = [float(o) for o in options]
    except OverflowError:
        return False
    return math.isfinite(max(vals) - min(vals))


class Encoder:
    """Maps flat assignments of a non-nested space to points of [0, 1]^width and back."""

    def __init__(self, space: SearchSpace, tuner: str) -> None:
        self.space = space
        self.blocks: list[tuple[Dimension, int, int, str]] = []  # dim, start, width, kind
        col = 0
        for d in space.dims:
            if d.is_nested_choice:
                raise TunerArgsError(f"tuner {tuner} does not support nested choice (parameter '{d.key}')")
            if d.type == "choice":
                if _numeric_options(d.options):
                    kind, w = "numchoice", 1
                else:
                    kind, w = "onehot", len(d.options)
            else:
                kind, w = d.type, 1
            self.blocks.append((d, col, w, kind))
            col += w
        self.width = col

    @staticmethod
    def _log_bounds(d: Dimension) -> tuple[float, float]:
        return math.log(d.low), math.log(d.high)

    def _numchoice(self, d: Dimension) -> np.ndarray:
        vals = np.array([float(o) for o in d.options])
        lo, hi = vals.min(), vals.max()
        return (vals - lo) / (hi - lo) if hi > lo else np.full(len(vals), 0.5)

    def encode(self, flats: Sequence[dict[str, Any]]) -> np.ndarray:
        X = np.zeros((len(flats), self.width))
        for d, c, w, kind in self.blocks:
            v = [f[d.key] for f in flats]
            if kind == "onehot":
                X[np.arange(len(flats)), c + np.asarray(v, dtype=int)] = 1.0
            elif kind == "numchoice":
                X[:, c] = self._numchoice(d)[np.asarray(v, dtype=int)]
            elif kind == "randint":
                a, b = int(d.args[0]), int(d.args[1])
                # The offset from a in integers: as floats, values near 2**63 are 2048 apart
                # and every trial of [2**63 - 100, 2**63 - 1) encoded to one point.
                X[:, c] = (np.array([int(x) - a for x in v], dtype=float) + 0.5) / (b - a)
            elif d.type in LOG_TYPES:
                lo, hi = self._log_bounds(d)
                X[:, c] = (np.log(np.asarray(v, dtype=float)) - lo) / (hi - lo)
            else:
                X[:, c] = (np.asarray(v, dtype=float) - d.low) / (d.high - d.low)
        return np.clip(X, 0.0, 1.0)

    def snap(self, U: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Points of the box -> (the encodings of the nearest producible values, raw values per dim).

        Raw values: choice -> option index, numbers -> the parameter value.
        """
        U = np.clip(U, 0.0, 1.0)
        X = np.empty_like(U)
        raws: list[np.ndarray] = []
        for d, c, w, kind in self.blocks:
            u = U[:, c : c + w]
            if kind == "onehot":
                idx = np.argmax(u, axis=1)
                X[:, c : c + w] = 0.0
                X[np.arange(len(U)), c + idx] = 1.0
                raws.append(idx)
                continue
            u = u[:, 0]
            if kind == "numchoice":
                enc = self._numchoice(d)
                idx = np.argmin(np.abs(u[:, None] - enc[None, :]), axis=1)
                X[:, c] = enc[idx]
                raws.append(idx)
            elif kind == "randint":
                a, b = int(d.args[0]), int(d.args[1])
                k = np.minimum(np.floor(u * (b - a)), b - a - 1)
                X[:, c] = (k + 0.5) / (b - a)
                raws.append(k)  # the offset from a: a + k in floats loses a huge a's digits
            else:
                if d.type in LOG_TYPES:
                    lo, hi = self._log_bounds(d)
                    val = np.clip(np.exp(lo + u * (hi - lo)), d.low, d.high)
                else:
                    val = d.low + u * (d.high - d.low)
                q = d.q
                if q is not None:
                    # Onto the grid's multiples as Dimension.quantize (which flat_at applies):
                    # a half-step bound (1 of [1, 10, 2]) is no value, so the GP scored the
                    # point of 1 while the trial got 2.
                    k_lo, k_hi = quniform_steps(d.low, d.high, q)
                    k = np.clip(np.round(val / q), float(k_lo), float(k_hi))
                    val = np.clip(k * q, d.low, d.high)
                if d.type in LOG_TYPES:
                    X[:, c] = (np.log(val) - lo) / (hi - lo)
                else:
                    X[:, c] = (val - d.low) / (d.high - d.low)
                raws.append(val)
        return np.clip(X, 0.0, 1.0), raws

    def flat_at(self, raws: list[np.ndarray], i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (d, _, _, kind), r in zip(self.blocks, raws):
            v = r[i]
            if kind == "randint":
                # In Python ints: (k + a).astype(int) rounded a bound such as 2**63 - 5000 to a
                # float (a value below low) or overflowed int64 at 2**63 (-2**63 handed out).
                out[d.key] = min(int(d.args[0]) + int(v), int(d.args[1]) - 1)
            else:
                out[d.key] = int(v) if kind in ("onehot", "numchoice") else d.quantize(float(v))
        return out


# --------------------------------------------------------------------------- the GP


def _matern(r: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel value M(r) and G(r) with dM/dlog(l_d) = G(r) * (delta_d / l_d)^2."""
    if nu == 0.5:
        e = np.exp(-r)
        return e, np.where(r > 0, e / np.maximum(r, 1e-12), 0.0)
    if nu == 1.5:
        s = math.sqrt(3.0) * r
        e = np.exp(-s)
        return (1.0 + s) * e, 3.0 * e
    if nu == 2.5:
        s = math.sqrt(5.0) * r
        e = np.exp(-s)
        return (1.0 + s + s * s / 3.0) * e, (5.0 / 3.0) * (1.0 + s) * e
    m = np.exp(-0.5 * r * r)  # nu = inf: squared exponential
    return m, m


class GP:
    """Zero-mean GP on normalised y: k(x, x') = amp * Matern_nu(|x - x'| / l) (+ alpha on the diagonal)."""

    LOG_L = (math.log(0.01), math.log(20.0))
    LOG_AMP = (math.log(0.05), math.log(20.0))

    def __init__(self, nu: float, alpha: float) -> None:
        self.nu = nu
        self.alpha = alpha

    def _r(self, A: np.ndarray, B: np.ndarray, ell: np.ndarray) -> np.ndarray:
        a, b = A / ell, B / ell
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(d2, 0.0))

    def _nlml(self, theta: np.ndarray, D: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood and its gradient in (log amp, log l).

        ``D`` holds the squared coordinate differences of every pair, (n*n) x dims, computed
        once per fit: r^2 and the length-scale gradient are then single matrix-vector
        products instead of n x n x dims temporaries per evaluation.
        """
        amp, inv_l2 = math.exp(theta[0]), np.exp(-2.0 * theta[1:])
        n = len(y)
        r = np.sqrt(np.maximum(D @ inv_l2, 0.0)).reshape(n, n)
        M, G = _matern(r, self.nu)
        K = amp * M + (self.alpha + 1e-8) * np.eye(n)
        try:
            c = cho_factor(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        a = cho_solve(c, y, check_finite=False)
        nll = 0.5 * y @ a + np.log(np.diag(c[0])).sum() + 0.5 * n * math.log(2 * math.pi)
        inv, info = lapack.dpotri(c[0], lower=1)
        if info != 0:  # pragma: no cover - c is a valid Cholesky factor
            return 1e25, np.zeros_like(theta)
        W = np.outer(a, a) - (np.tril(inv) + np.tril(inv, -1).T)
        grad = np.empty_like(theta)
        grad[0] = -0.5 * np.sum(W * (amp * M))
        grad[1:] = -0.5 * ((W * (amp * G)).ravel() @ D) * inv_l2
        return float(nll), grad

    def fit(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Fit the hyper-parameters on (a subset of) X, y."""
        idx = np.arange(len(y))
        if len(y) > FIT_SUBSET:
            order = np.argsort(y, kind="stable")
            best, rest = order[: FIT_SUBSET // 2], np.sort(order[FIT_SUBSET // 2 :])
            idx = np.concatenate([best, rest[np.linspace(0, len(rest) - 1, FIT_SUBSET // 2).astype(int)]])
        Xf, yf = X[idx], y[idx]
        dims = X.shape[1]
        D = ((Xf[:, None, :] - Xf[None, :, :]) ** 2).reshape(-1, dims)
        bounds = [self.LOG_AMP] + [self.LOG_L] * dims
        starts = [np.array([0.0] + [math.log(0.3)] * dims)]
        starts.append(np.array([rng.uniform(-1.0, 1.0)] + list(rng.uniform(math.log(0.05), math.log(2.0), dims))))
        best_theta, best_val = starts[0], math.inf
        for s in starts:
            res = minimize(self._nlml, s, args=(D, yf), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 60})
            if res.fun < best_val:
                best_theta, best_val = res.x, res.fun
        self.theta = best_theta

    def condition(self, X: np.ndarray, y: np.ndarray, with_variance: bool = True) -> None:
        """Posterior given (X, y) with the current hyper-parameters (the mean only, unless with_variance)."""
        self.amp, self.ell = math.exp(self.theta[0]), np.exp(self.theta[1:])
        K = self.amp * _matern(self._r(X, X, self.ell), self.nu)[0] + (self.alpha + 1e-8) * np.eye(len(y))
        for jitter in (0.0, 1e-6, 1e-4, 1e-2):
            try:
                L = np.linalg.cholesky(K + jitter * np.eye(len(y)))
                break
            except np.linalg.LinAlgError:
                continue
        self.X = X
        self.a = cho_solve((L, True), y, check_finite=False)
        if with_variance:
            inv, info = lapack.dpotri(L, lower=1)
            if info != 0:  # pragma: no cover - L is a valid Cholesky factor
                inv = cho_solve((L, True), np.eye(len(y)), check_finite=False)
            self.Kinv = np.tril(inv) + np.tril(inv, -1).T

    def predict_mean(self, Xs: np.ndarray) -> np.ndarray:
        return self.amp * _matern(self._r(Xs, self.X, self.ell), self.nu)[0] @ self.a

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Ks = self.amp * _matern(self._r(Xs, self.X, self.ell), self.nu)[0]
        mu = Ks @ self.a
        var = self.amp - np.einsum("ij,ij->i", Ks @ self.Kinv, Ks)
        return mu, np.sqrt(np.maximum(var, 1e-12))

    def predict_grad(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """mu, sigma and their gradients (points x columns) with respect to the point.

        d k(x, x_i) / d x_d = -amp * G(r) * (x_d - x_id) / l_d^2 for every nu (G from _matern),
        so one call replaces the (columns + 1) predictions of finite differences.
        """
        M, G = _matern(self._r(Xs, self.X, self.ell), self.nu)
        Ks = self.amp * M
        mu = Ks @ self.a
        B = Ks @ self.Kinv
        var = self.amp - np.einsum("ij,ij->i", B, Ks)
        sigma = np.sqrt(np.maximum(var, 1e-12))
        dK = (-self.amp * G)[:, :, None] * ((Xs[:, None, :] - self.X[None, :, :]) / (self.ell * self.ell))
        dmu = np.einsum("pnd,n->pd", dK, self.a)
        dvar = -2.0 * np.einsum("pnd,pn->pd", dK, B)
        dsigma = np.where((var > 1e-12)[:, None], dvar / (2.0 * sigma[:, None]), 0.0)
        return mu, sigma, dmu, dsigma


def acquisition(kind: str, mu: np.ndarray, sigma: np.ndarray, best: float, kappa: float, xi: float) -> np.ndarray:
    """Higher is better; mu/best are normalised losses (lower is better)."""
    if kind == "ucb":
        return -mu + kappa * sigma
    imp = best - mu - xi
    z = imp / sigma
    if kind == "poi":
        return ndtr(z)
    return imp * ndtr(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def acquisition_grad(
    kind: str, mu: np.ndarray, sigma: np.ndarray, dmu: np.ndarray, dsigma: np.ndarray, best: float, kappa: float,
    xi: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`acquisition` and its gradient, from the posterior's gradients (chain rule)."""
    value = acquisition(kind, mu, sigma, best, kappa, xi)
    if kind == "ucb":
        return value, -dmu + kappa * dsigma
    imp = best - mu - xi
    z = imp / sigma
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    if kind == "poi":
        dz = (-dmu * sigma[:, None] - imp[:, None] * dsigma) / (sigma * sigma)[:, None]
        return value, pdf[:, None] * dz
    return value, -ndtr(z)[:, None] * dmu + pdf[:, None] * dsigma  # ei: dEI/dmu = -Phi(z), dEI/dsigma = phi(z)


def maximize_on_box(
    score, enc: Encoder, n_warm: int, n_starts: int, rng: np.random.Generator, extra: np.ndarray | None = None,
    score_grad=None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Maximise ``score`` (batched, on encoded points) by random warm-up + L-BFGS-B.

    ``score_grad(X) -> (score, gradient)`` gives L-BFGS-B analytic gradients; without it
    they are batched finite differences (columns + 1 evaluations per step).
    Returns snapped candidates, their raw values and scores, best first.
    """
    U = rng.random((n_warm, enc.width))
    if extra is not None and len(extra):
        U = np.vstack([U, extra])
    Xw, _ = enc.snap(U)
    sw = score(Xw)
    starts = Xw[np.argsort(-sw, kind="stable")[:n_starts]]
    k, w = starts.shape
    eye = np.eye(w) * _FD

    def f(z: np.ndarray) -> tuple[float, np.ndarray]:
        P = z.reshape(k, w)
        if score_grad is not None:
            s, g = score_grad(P)
            return float(-s.sum()), -g.ravel()
        pts = np.vstack([P] + [np.clip(P + eye[j], 0, 1) for j in range(w)])
        s = score(pts)
        base = s[:k]
        g = np.stack([(s[k * (j + 1) : k * (j + 2)] - base) / _FD for j in range(w)], axis=1)
        return float(-base.sum()), -g.ravel()

    res = minimize(f, starts.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (k * w),
                   options={"maxiter": 30})
    local = res.x.reshape(k, w)
    cand = np.vstack([local, Xw])
    Xc, raws = enc.snap(cand)
    sc = score(Xc)
    order = np.argsort(-sc, kind="stable")
    return Xc[order], [r[order] for r in raws], sc[order]


# --------------------------------------------------------------------------- the tuner


class GPTuner(Tuner):
    name = "GPTuner"
    aliases = ("GP",)
    supported_types = frozenset({"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform"})
    default_mode = OptimizeMode.MAXIMIZE

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        reject_unknown(n, args, ("utility", "kappa", "xi", "nu", "alpha", "cold_start_num", "selection_num_warm_up",
                                 "selection_num_starting_points"))
        self.utility = arg(n, args, "utility", "ei", str, lambda v: v in ("ei", "ucb", "poi"), "must be ei, ucb or poi")
        num = (int, float)
        self.kappa = float(arg(n, args, "kappa", 5, num, lambda v: v >= 0, "must be >= 0"))
        self.xi = float(arg(n, args, "xi", 0, num, lambda v: v >= 0, "must be >= 0"))
        self.nu = float(arg(n, args, "nu", 2.5, num, lambda v: v in (0.5, 1.5, 2.5) or v == math.inf,
                            "must be 0.5, 1.5, 2.5 (or inf)"))
        self.alpha = float(arg(n, args, "alpha", 1e-6, num, lambda v: v > 0, "must be > 0"))
        self.cold_start_num = arg(n, args, "cold_start_num", 10, int, lambda v: v >= 1, "must be >= 1")
        self.warm_up = arg(n, args, "selection_num_warm_up", 100000, int, lambda v: v >= 1, "must be >= 1")
        self.starting_points = arg(n, args, "selection_num_starting_points", 250, int, lambda v: v >= 1, "must be >= 1")
        self.encoder = Encoder(self.space, n)
        self._memo = HistoryMemo(self.space)
        self._card = self.space.cardinality()

    def _data(self, history: Sequence[TrialRecord]):
        done, losses, pending, seen = [], [], [], set()
        for t in sorted(history, key=lambda t: t.sequence):
            flat, key = self._memo.flat(t)
            if key is not None:
                seen.add(key)
            if flat is None:
                continue
            if t.state.ended:
                if t.value is not None and math.isfinite(t.value):
                    done.append(flat)
                    losses.append(self.mode.loss(float(t.value)))
            else:
                pending.append(flat)
        return done, np.asarray(losses, dtype=float), pending, seen

    def model(self, history: Sequence[TrialRecord], rng: np.random.Generator):
        """(gp, normalised best loss, seen keys), or None during the cold start."""
        done, losses, pending, seen = self._data(history)
        if self._card is not None and len(seen) >= self._card:
            raise NoMoreTrials(f"all {self._card} configurations of the search space were tried")
        if len(done) < max(self.cold_start_num, 2):
            return None, None, seen
        y = targets(losses)  # winsorized: one diverged trial must not set the scale (robust_targets.py)
        X = self.encoder.encode(done)
        gp = GP(self.nu, self.alpha)
        gp.fit(X, y, rng)
        if pending:  # kriging believer
            gp.condition(X, y, with_variance=False)
            Xp = self.encoder.encode(pending)
            mu_p = gp.predict_mean(Xp)
            X, y = np.vstack([X, Xp]), np.concatenate([y, mu_p])
        gp.condition(X, y)
        return gp, float(y.min()), seen

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        gp, best, seen = self.model(history, rng)
        if gp is None:
            return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))

        def score(Xs: np.ndarray) -> np.ndarray:
            mu, sigma = gp.predict(Xs)
            return acquisition(self.utility, mu, sigma, best, self.kappa, self.xi)

        def score_grad(Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return acquisition_grad(self.utility, *gp.predict_grad(Xs), best, self.kappa, self.xi)

        Xc, raws, _ = maximize_on_box(
            score, self.encoder, min(self.warm_up, WARM_UP_CAP), min(self.starting_points, STARTING_POINTS_CAP), rng,
            score_grad=score_grad,
        )
        for i in range(len(Xc)):
            flat = self.encoder.flat_at(raws, i)
            if flat_key(flat) not in seen:
                return self.space.to_parameters(flat)
        return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))
