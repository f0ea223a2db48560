"""Curvefitting on curves near the float limit (~1.8e308): a prediction that overflows is
no prediction, so the assessor keeps the trial ("no decision") instead of stopping it on
an infinite forecast.

Before, a steep fall near -1e308 (maximize) or rise near 1e308 (minimize) extrapolated
past the float range to -inf/+inf and stopped the trial, and a curve whose range itself
overflows (values of both signs near the limit) predicted an infinity of the wrong sign.
"""

from __future__ import annotations

import warnings

import pytest

from tuner_server.assessors.curvefitting import CurvefittingAssessor, predict_final
from tuner_server.history import OptimizeMode, TrialRecord, TrialState

STEEP_FALL = [-1e308 - 1e307 * i for i in range(7)]  # linear: step 20 is near -2.9e308
STEEP_RISE = [1e308 + 1e307 * i for i in range(7)]
RANGE_OVERFLOWS = [-1.6e308, 1.7e308] * 3 + [1.6e308]  # max - min > float max


def decides(curve: list[float], mode: OptimizeMode, best: float) -> bool:
    assessor = CurvefittingAssessor({"optimize_mode": mode.value, "epoch_num": 20, "start_step": 6})
    done = TrialRecord(0, "done", {}, TrialState.SUCCEEDED, value=best)
    running = TrialRecord(1, "running", {}, TrialState.RUNNING, intermediate=list(curve))
    return assessor.should_stop(running, [done, running])


@pytest.mark.parametrize(("curve", "mode", "best"), [
    (STEEP_FALL, OptimizeMode.MAXIMIZE, 1.0),
    (STEEP_RISE, OptimizeMode.MINIMIZE, 1.0),
    (RANGE_OVERFLOWS, OptimizeMode.MINIMIZE, -1.7e308),
    (RANGE_OVERFLOWS[::-1], OptimizeMode.MAXIMIZE, 1.7e308),
])
def test_a_curve_whose_forecast_overflows_gets_no_decision(curve: list[float], mode: OptimizeMode, best: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warnings leak into the server's log
        assert predict_final(curve, 20, mode) is None
        assert decides(curve, mode, best) is False


def test_a_curve_near_the_limit_whose_forecast_fits_is_still_judged() -> None:
    # 1e307 .. 2.5e307 rising; predicted ~5.7e307, below a best of 1e308's bar: stopped.
    curve = [1e307 * (1 + 1.5 * i / 6) for i in range(7)]
    pred = predict_final(curve, 20, OptimizeMode.MAXIMIZE)
    assert pred is not None and 2.5e307 < pred < 1e308
    assert decides(curve, OptimizeMode.MAXIMIZE, 1e308) is True
