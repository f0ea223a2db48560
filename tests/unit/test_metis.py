"""MetisTuner: classArgs, supported types, determinism, pending trials, quality, speed."""

from __future__ import annotations


import numpy as np
import pytest

from tests.unit.tuner_helpers import BRANIN, branin, distinct, optimize, record
from tuner_server.history import OptimizeMode, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner


def metis(args, space=BRANIN, seed=0):
    return create_tuner("MetisTuner", parse_search_space(space), args, seed)


def test_class_args_and_defaults():
    t = metis({})
    assert t.mode is OptimizeMode.MAXIMIZE and t.nu == 1.5
    assert (t.no_resampling, t.no_candidates, t.starting_points, t.cold_start_num, t.exploration_probability) == (
        True, False, 600, 10, 0.9)
    t = metis({"optimize_mode": "minimize", "no_resampling": False, "no_candidates": True,
               "selection_num_starting_points": 100, "cold_start_num": 4, "exploration_probability": 0.5})
    assert (t.no_candidates, t.starting_points, t.cold_start_num, t.exploration_probability) == (True, 100, 4, 0.5)
    assert any("resampling" in w for w in t.warnings)


@pytest.mark.parametrize(
    "args, words",
    [({"no_resampling": "yes"}, "no_resampling"), ({"no_candidates": 1}, "no_candidates"),
     ({"selection_num_starting_points": 0}, "selection_num_starting_points"), ({"cold_start_num": -1}, "cold_start_num"),
     ({"exploration_probability": 1.5}, "exploration_probability"), ({"utility": "ei"}, "utility"),
     ({"optimize_mode": "max"}, "optimize_mode")],
)
def test_bad_class_args(args, words):
    with pytest.raises(TunerArgsError, match=words):
        metis(args)


@pytest.mark.parametrize("t", ["loguniform", "qloguniform", "normal", "input_choice"])
def test_unsupported_types_named(t):
    v = {"loguniform": [1e-3, 1], "qloguniform": [1, 100, 1], "normal": [0, 1], "input_choice": {"candidates": ["a", "b"]}}[t]
    with pytest.raises(TunerArgsError, match=t) as e:
        metis({}, {"x": {"_type": "uniform", "_value": [0, 1]}, "bad": {"_type": t, "_value": v}})
    assert "bad" in str(e.value)


def _history(n_done, n_pending, seed=0):
    sp = parse_search_space(BRANIN)
    rng = np.random.default_rng(seed)
    hist = []
    for i in range(n_done + n_pending):
        p = sp.to_parameters(sp.sample_flat(rng))
        hist.append(record(i, p, branin(p)) if i < n_done else record(i, p, None, TrialState.RUNNING))
    return hist


def test_deterministic():
    hist = _history(25, 2)
    a = metis({"optimize_mode": "minimize"}, seed=1).suggest(hist, np.random.default_rng(4))
    b = metis({"optimize_mode": "minimize"}, seed=1).suggest(list(hist), np.random.default_rng(4))
    assert a == b


@pytest.mark.parametrize("no_candidates", [False, True])
def test_pending_no_duplicates_and_exhaustion(no_candidates):
    space = {"a": {"_type": "randint", "_value": [0, 5]}, "b": {"_type": "choice", "_value": ["x", "y"]},
             "c": {"_type": "quniform", "_value": [0, 1, 0.5]}}  # 30 configurations
    t = metis({"optimize_mode": "minimize", "cold_start_num": 4, "no_candidates": no_candidates,
               "selection_num_starting_points": 100}, space)
    hist = []
    for i in range(8):
        p = t.suggest(hist, np.random.default_rng(i))
        hist.append(record(i, p, float(p["a"]) + (p["b"] == "x") + p["c"]))
    for i in range(8, 30):
        hist.append(record(i, t.suggest(hist, np.random.default_rng(i)), None, TrialState.RUNNING))
    assert distinct(hist) and len(hist) == 30
    with pytest.raises(NoMoreTrials):
        t.suggest(hist, np.random.default_rng(0))


def test_beats_random_on_branin():
    """Median over 4 seeds of (best - optimum) after 30 trials. Observed ratio ~0.02."""
    args = {"optimize_mode": "minimize"}
    m = np.median([optimize("MetisTuner", BRANIN, branin, 30, s, args)[0] for s in range(4)]) - 0.397887
    r = np.median([optimize("Random", BRANIN, branin, 30, s)[0] for s in range(4)]) - 0.397887
    assert m < 0.3 * r, (m, r)


@pytest.mark.parametrize("mode, outlier", [("minimize", 1.7e308), ("maximize", -1.7e308), ("maximize", -10.0)])
def test_one_outlier_does_not_wreck_the_model(mode, outlier):
    """See test_gp.py's test of the same name: Metis shares GPTuner's model."""
    from tests.unit.test_gp import outlier_scenario, random_distance

    d = np.median([outlier_scenario("MetisTuner", mode, outlier, s) for s in range(3)])
    assert d < 0.5 * random_distance(), d
