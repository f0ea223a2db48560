"""Learning-curve extrapolation (Domhan et al. 2015, as in NNI's Curvefitting), made fast and safe.

At steps ``start_step``, ``start_step + gap``, ... a running trial's curve is fitted with an
ensemble of parametric learning-curve models, the ensemble predicts the value at step
``epoch_num``, and the trial is stopped when that prediction is worse than
``threshold`` x the best final value of the SUCCEEDED trials. For maximize with a positive
best this is exactly ``prediction < threshold * best``; in general (minimize, negative
values) the allowed margin is ``(1 - threshold) * |best|`` on the worse side of ``best``.

Differences from NNI, on purpose:

- No MCMC. Each model is fitted by bounded least squares (a few dozen evaluations at
  most) and the models are weighted by Akaike weights, ``exp(-AIC/2)``, of their fits.
  A call takes milliseconds (``bench/curvefitting_speed.py``), not a minute.
- The curve is first mapped to an increasing-is-better, scale-free space
  ``z = (y' - min y') / range(y') + 1`` (``y' = -y`` when minimizing), so the same
  bounds and starting points suit accuracies, losses and rewards of any scale; the
  prediction is mapped back.
- Every evaluation runs under ``np.errstate(all="ignore")`` with non-finite residuals
  replaced by a large constant; a model whose prediction is not finite, or lies more
  than ``_MAX_SPANS`` observed ranges away from the observed curve, is discarded.

Models (x = step, 1-based; z as above): pow3, log_power, weibull (= janoschek, same family
reparametrized), mmf, exp4, vap, ilog2, logx_linear, linear. dr_hill_zero_background is
mmf with beta = 0 and pow4 is close to pow3, so they are left out.

Degenerate curves: fewer than 3 points, or a curve whose range or forecast overflows
floats (values near ±1.8e308) -> no decision (never stop); a constant curve
(range ~ 0) -> predicted to stay constant. A trial whose best value so far already meets
the bar is not stopped. At or beyond ``epoch_num`` nothing is extrapolated: the last value
is the prediction.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from tuner_server.assessors.base import Assessor, AssessorArgsError, number_arg, reject_rest
from tuner_server.history import OptimizeMode, TrialRecord, TrialState

_BIG = 1e6  # stands in for a non-finite residual
_MAX_SPANS = 10.0  # a prediction further than this many observed ranges away is implausible
_MSE_FLOOR = 1e-8  # in z units (range 1): keeps a perfect fit from taking all the weight
_MAX_NFEV = 25  # per model; the ensemble costs ~15 ms a call (bench/curvefitting_speed.py)
_LO_Z, _HI_Z = -10.0, 12.0  # bounds of asymptotes in z space

Model = Callable[..., np.ndarray]


def _pow3(x, c, a, alpha):
    return c - a * x ** (-alpha)


def _log_power(x, a, b, c):
    return a / (1.0 + (x / np.exp(b)) ** c)


def _weibull(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-((kappa * x) ** delta))


def _mmf(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def _exp4(x, c, a, alpha, b):
    return c - np.exp(-a * x**alpha + b)


def _vap(x, a, b, c):
    return np.exp(a + b / x + c * np.log(x))


def _ilog2(x, c, a):
    return c - a / np.log(x + 1.0)


# name, function, starting point from (z, n), lower bounds, upper bounds
def _nonlinear_models(z: np.ndarray, n: int):
    first, last = float(z[0]), float(z[-1])
    rise = max(last - first, 0.1)
    return (
        ("pow3", _pow3, (last + 0.5 * rise, rise, 0.5), (_LO_Z, -50.0, 0.01), (_HI_Z, 50.0, 5.0)),
        ("log_power", _log_power, (last + 0.5 * rise, 0.0, -1.0), (0.01, -5.0, -5.0), (_HI_Z, 10.0, 5.0)),
        (
            "weibull",
            _weibull,
            (last + 0.5 * rise, first - 0.5 * rise, 1.0 / n, 1.0),
            (_LO_Z, _LO_Z, 1e-3, 0.1),
            (_HI_Z, _HI_Z, 10.0, 5.0),
        ),
        (
            "mmf",
            _mmf,
            (last + 0.5 * rise, first - 0.5 * rise, 1.0 / n, 1.0),
            (_LO_Z, _LO_Z, 1e-3, 0.1),
            (_HI_Z, _HI_Z, 10.0, 5.0),
        ),
        ("exp4", _exp4, (last + 0.5 * rise, 0.5, 0.7, math.log(rise)), (_LO_Z, 0.0, 0.05, -10.0), (_HI_Z, 10.0, 3.0, 5.0)),
        ("vap", _vap, (math.log(max(last, 1e-3)), -0.5, 0.1), (-10.0, -10.0, -2.0), (10.0, 10.0, 2.0)),
        ("ilog2", _ilog2, (last + 0.5 * rise, rise), (_LO_Z, -50.0), (_HI_Z, 50.0)),
    )


def _fit_nonlinear(f: Model, p0, lo, hi, x: np.ndarray, z: np.ndarray, target: float):
    # Imported here, not at module level: the operator imports every assessor to validate
    # specs, and scipy would add ~60 MiB to its idle memory for a fit it never runs.
    from scipy.optimize import least_squares

    p0 = np.clip(np.asarray(p0, dtype=float), np.asarray(lo) + 1e-9, np.asarray(hi) - 1e-9)

    def resid(p):
        r = f(x, *p) - z
        return np.where(np.isfinite(r), r, _BIG)

    try:
        sol = least_squares(resid, p0, bounds=(lo, hi), max_nfev=_MAX_NFEV, method="trf")
    except (ValueError, FloatingPointError, ZeroDivisionError):
        return None
    sse = float(np.sum(resid(sol.x) ** 2))
    pred = float(f(np.float64(target), *sol.x))
    return sse, len(p0), pred


def _fit_linear(features: np.ndarray, z: np.ndarray, target_features: np.ndarray):
    coef, *_ = np.linalg.lstsq(features, z, rcond=None)
    sse = float(np.sum((features @ coef - z) ** 2))
    return sse, features.shape[1], float(target_features @ coef)


def predict_final(curve: Sequence[float], epoch_num: int, mode: OptimizeMode = OptimizeMode.MAXIMIZE) -> float | None:
    """The ensemble's prediction of the curve's value at step ``epoch_num`` (1-based), or
    None when the curve is too short (< 3 points) or no model gives a usable prediction."""
    y = np.asarray(curve, dtype=float)
    if y.size < 3 or not np.all(np.isfinite(y)):
        return None
    if y.size >= epoch_num:
        return float(y[-1])
    sign = 1.0 if mode is OptimizeMode.MAXIMIZE else -1.0
    yp = sign * y
    lo_y = float(yp.min())
    with np.errstate(over="ignore"):
        span = float(np.ptp(yp))
    if not math.isfinite(span):
        return None  # values of both signs near the float limit: z below would be NaN
    if span <= 1e-12 * max(1.0, float(np.abs(yp).max())):
        return float(y[-1])  # constant: nothing to extrapolate
    n = y.size
    x = np.arange(1, n + 1, dtype=float)
    z = (yp - lo_y) / span + 1.0
    target = float(epoch_num)
    fits = []
    with np.errstate(all="ignore"):
        for _name, f, p0, lo, hi in _nonlinear_models(z, n):
            if n <= len(p0):
                continue
            r = _fit_nonlinear(f, p0, lo, hi, x, z, target)
            if r is not None:
                fits.append(r)
        ones = np.ones_like(x)
        fits.append(_fit_linear(np.column_stack([x, ones]), z, np.array([target, 1.0])))
        fits.append(_fit_linear(np.column_stack([np.log(x), ones]), z, np.array([math.log(target), 1.0])))
        preds, aics = [], []
        for sse, k, pred in fits:
            if not (math.isfinite(sse) and math.isfinite(pred)):
                continue
            if pred < 1.0 - _MAX_SPANS or pred > 2.0 + _MAX_SPANS:
                continue
            aics.append(n * math.log(max(sse / n, _MSE_FLOOR)) + 2.0 * k)
            preds.append(pred)
    if not preds:
        return None
    a = np.asarray(aics)
    w = np.exp(-0.5 * (a - a.min()))
    z_pred = float(np.dot(w, preds) / w.sum())
    pred_y = sign * ((z_pred - 1.0) * span + lo_y)  # Python floats: overflow gives ±inf, no error
    # A forecast past the float range (a curve near ±1e308) is no forecast: no decision,
    # rather than stopping a trial on an infinity.
    return pred_y if math.isfinite(pred_y) else None


class CurvefittingAssessor(Assessor):
    name = "Curvefitting"
    aliases = ("CurveFitting",)

    def configure(self, args: dict[str, Any]) -> None:
        self.epoch_num = number_arg(self.name, args, "epoch_num", 20, low=1, integer=True)
        self.start_step = number_arg(self.name, args, "start_step", 6, low=1, integer=True)
        self.threshold = float(number_arg(self.name, args, "threshold", 0.95, low=0))
        if self.threshold > 1:
            raise AssessorArgsError(f"{self.name} classArgs.threshold must be <= 1, got {self.threshold!r}")
        self.gap = number_arg(self.name, args, "gap", 1, low=1, integer=True)
        reject_rest(self.name, args, ("optimize_mode", "epoch_num", "start_step", "threshold", "gap"))

    def assesses_at(self, step: int) -> bool:
        return step >= self.start_step and (step - self.start_step) % self.gap == 0

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        step = len(trial.intermediate)
        if not self.assesses_at(step):
            return False
        finals = [
            t.value
            for t in history
            if t.trial_id != trial.trial_id and t.state is TrialState.SUCCEEDED and t.value is not None and math.isfinite(t.value)
        ]
        if not finals:
            return False
        best = max(finals) if self.mode is OptimizeMode.MAXIMIZE else min(finals)
        margin = (1.0 - self.threshold) * abs(best)
        bar = best - margin if self.mode is OptimizeMode.MAXIMIZE else best + margin
        so_far = max(trial.intermediate) if self.mode is OptimizeMode.MAXIMIZE else min(trial.intermediate)
        if not self.mode.better(bar, so_far):
            return False  # already at or past the bar
        pred = predict_final(trial.intermediate, self.epoch_num, self.mode)
        if pred is None:
            return False
        return self.mode.better(bar, pred)
