"""TPE and MOTPE on results near the ends of the float range.

The server keeps any finite result, and scripts do report sentinels such as 1.7e308 ("worst
possible") or -1.7e308. Rankings are safe with them; every place where results enter
arithmetic (EI weights of the joint model, the constant liar's mean, MOTPE's hypervolume
tie-break) must stay finite too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import create_tuner
from tuner_server.tuners.tpe import NumericModel
from tuner_server.tuners.tpe_multivariate import _fit, _log_density, ei_weights

HUGE = 1.7e308
SQUARE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}
BEST_AT = (0.15, 0.15)


def test_ei_weights_of_results_near_the_float_range_are_finite_and_in_proportion():
    good = np.array([-HUGE, 0.0, 0.5])
    w = ei_weights(good, np.array([1.0, HUGE]))
    assert np.isfinite(w).all() and (w > 0).all()
    assert w[0] / w[1] == pytest.approx(HUGE)  # still each one's improvement over the split, halved alike
    assert w[1] / w[2] == pytest.approx(2.0)
    sp = parse_search_space(SQUARE)
    models = {k: NumericModel.of(sp[k]) for k in SQUARE}
    est = _fit(sp, models, ["x", "y"], {"x": np.array([0.1, 0.5, 0.9]), "y": np.array([0.1, 0.5, 0.9])}, 1.0, 25, w)
    assert np.isfinite(est.logw).all()
    assert np.isclose(np.exp(est.logw).sum(), 1.0)
    assert np.isfinite(_log_density(est, {"x": np.array([0.1, 0.7]), "y": np.array([0.1, 0.7])})).all()


def _history(best: float, worst: float) -> list[TrialRecord]:
    """20 results of the distance to (0.7, 0.7) on a grid away from BEST_AT, plus one trial
    at BEST_AT reporting ``best`` and one at (0.9, 0.1) reporting ``worst``."""
    hist = []
    for i in range(20):
        x, y = 0.35 + 0.15 * (i % 5), 0.35 + 0.15 * (i // 5)
        hist.append(TrialRecord(i, f"t{i}", {"x": x, "y": y}, TrialState.SUCCEEDED, float(np.hypot(x - 0.7, y - 0.7))))
    hist.append(TrialRecord(20, "t20", {"x": BEST_AT[0], "y": BEST_AT[1]}, TrialState.SUCCEEDED, best))
    hist.append(TrialRecord(21, "t21", {"x": 0.9, "y": 0.1}, TrialState.SUCCEEDED, worst))
    return hist


@pytest.mark.parametrize("mode, best, worst", [("minimize", -HUGE, HUGE), ("maximize", HUGE, -HUGE)])
def test_joint_tpe_follows_a_best_result_near_the_float_range(mode, best, worst):
    """Before: y* - y overflowed, the good estimator's weights were NaN and every suggestion
    came from nowhere in particular (none near the best trial). With EI weights the best
    trial's improvement dwarfs the others', so l(x) gathers around it."""
    sp = parse_search_space(SQUARE)
    hist = _history(best, worst)
    tuner = create_tuner("TPE", sp, {"optimize_mode": mode}, 0)
    assert tuner.multivariate and tuner.good_weights == "ei"
    near = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow on the way is the defect itself
        for k in range(10):
            p = tuner.suggest(hist, np.random.default_rng([5, k]))
            near += np.hypot(p["x"] - BEST_AT[0], p["y"] - BEST_AT[1]) < 0.2
    assert near >= 7, near


@pytest.mark.parametrize("done, mean", [([-HUGE, -1.6e308, 1.0, 3.0], -0.825e308), ([HUGE, HUGE, -HUGE], HUGE / 3)])
def test_the_mean_liar_of_results_near_the_float_range_is_their_mean(done, mean):
    """Before: the plain mean overflowed to -inf (every running trial ranked best, above the
    -1.7e308 that really was) or to +inf (ranked worst, below the 1.7e308 results)."""
    from tuner_server.tuners.tpe import HistoryMemo

    sp = parse_search_space(SQUARE)
    hist = [TrialRecord(i, f"t{i}", {"x": 0.1 * i, "y": 0.5}, TrialState.SUCCEEDED, v) for i, v in enumerate(done)]
    hist.append(TrialRecord(9, "t9", {"x": 0.95, "y": 0.5}, TrialState.RUNNING))
    obs = HistoryMemo(sp).observations(hist, OptimizeMode.MINIMIZE, "mean")
    assert obs.losses[-1] == pytest.approx(mean)


# --------------------------------------------------------------------------- MOTPE's hypervolume tie-break

FRONT = [(0.8, 0.15), (0.0, 1.0), (1.0, 0.0), (0.45, 0.45)]  # (0.45, 0.45) adds 0.19, (0.8, 0.15) 0.06


@pytest.mark.parametrize("sentinel", [(2.0, 2.0), (1e308, 1e308), (HUGE, 0.5), (0.5, HUGE), (HUGE, HUGE)])
def test_motpe_cut_keeps_the_larger_contribution_beside_a_dominated_sentinel(sentinel):
    """The fifth trial is dominated; it sets the reference point. Before, with a sentinel
    there, the hypervolumes overflowed, every contribution was NaN and the third good
    trial was the older (0.8, 0.15) instead of (0.45, 0.45)."""
    from tuner_server.tuners.motpe import motpe_order

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        order = [int(i) for i in np.argsort(motpe_order(FRONT + [sentinel], n_good=3))]
    assert set(order[:2]) == {1, 2}  # each objective's best first
    assert order[2:] == [3, 0, 4]


def test_motpe_suggests_with_sentinels_on_and_off_the_front():
    """A sentinel can also be on the front (the best of one objective): no NaN, no error."""
    sp = parse_search_space(SQUARE)
    tuner = create_tuner("MOTPE", sp, {}, 0, objectives=(OptimizeMode.MINIMIZE, OptimizeMode.MINIMIZE))
    rng = np.random.default_rng(0)
    hist = []
    for i in range(20):
        p = sp.to_parameters(sp.sample_flat(rng))
        v = {3: (-HUGE, HUGE), 7: (HUGE, HUGE), 11: (HUGE, -1.0)}.get(i, (p["x"], 1 - p["x"] + p["y"]))
        hist.append(TrialRecord(i, f"t{i}", p, TrialState.SUCCEEDED, v[0], values=v))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = tuner.suggest(hist, np.random.default_rng(1))
    assert 0 <= p["x"] <= 1 and 0 <= p["y"] <= 1
