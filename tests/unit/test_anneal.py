"""Anneal: classArgs, determinism, concurrency, nested spaces, bounds, exhaustion, quality."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.tuner_helpers import (
    ALL_TYPES, BRANIN, BRANIN_MIN, SPHERE, all_types_objective, branin, check_all_types, distinct, optimize,
    record, sphere,
)
from tuner_server.history import OptimizeMode, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner
from tuner_server.tuners.anneal import N_STARTUP


def anneal(args, space=SPHERE, seed=0):
    return create_tuner("Anneal", parse_search_space(space), args, seed)


@pytest.mark.parametrize("given, liar", [("min", "best"), ("max", "worst"), ("mean", "mean"), (None, None)])
def test_class_args_forms(given, liar):
    t = anneal({"optimize_mode": "maximize", "seed": 3, "parallel_optimize": True, "constant_liar_type": given})
    assert t.mode is OptimizeMode.MAXIMIZE and t.seed == 3 and t.liar == liar


def test_defaults():
    t = anneal({})
    assert t.mode is OptimizeMode.MINIMIZE and t.liar == "best"


@pytest.mark.parametrize(
    "args, words",
    [
        ({"constant_liar_type": "median"}, "constant_liar_type"),
        ({"parallel_optimize": 1}, "parallel_optimize"),
        ({"tpe_args": {}}, "tpe_args"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_class_args(args, words):
    with pytest.raises(TunerArgsError, match=words):
        anneal(args)


def test_deterministic():
    _, h1 = optimize("Anneal", SPHERE, sphere, 30, 5)
    _, h2 = optimize("Anneal", SPHERE, sphere, 30, 5)
    _, h3 = optimize("Anneal", SPHERE, sphere, 30, 6)
    assert [h.parameters for h in h1] == [h.parameters for h in h2]
    assert [h.parameters for h in h1] != [h.parameters for h in h3]


def test_neighbourhood_shrinks_around_good_trials():
    """Late proposals sit much closer to the best trial than early ones."""
    _, hist = optimize("Anneal", SPHERE, sphere, 120, 1)
    best = np.array([1, 2, 3, 4])
    dist = [np.linalg.norm(np.array([h.parameters[f"x{i}"] for i in range(4)]) - best) for h in hist]
    assert np.median(dist[100:]) < 0.25 * np.median(dist[:N_STARTUP])


def test_many_pending_no_duplicates_small_space():
    space = {"a": {"_type": "randint", "_value": [0, 5]}, "b": {"_type": "choice", "_value": ["x", "y"]},
             "c": {"_type": "quniform", "_value": [0, 1, 0.5]}}  # 30 configurations
    t = create_tuner("Anneal", parse_search_space(space), {"constant_liar_type": "min"}, 0)
    hist = []
    for i in range(8):
        p = t.suggest(hist, np.random.default_rng([0, i]))
        hist.append(record(i, p, p["a"] + p["c"]))
    ended = False
    for i in range(8, 60):
        try:
            p = t.suggest(hist, np.random.default_rng([0, i]))
        except NoMoreTrials:
            ended = True
            break
        hist.append(record(i, p, None, TrialState.RUNNING))
    assert ended and len(hist) == 30 and distinct(hist)


def test_all_ten_types_stay_in_bounds():
    best, hist = optimize("Anneal", ALL_TYPES, all_types_objective, 80, 2)
    assert len(hist) == 80 and distinct(hist)
    for h in hist:
        check_all_types(h.parameters)
    assert best < min(h.value for h in hist[:N_STARTUP])


def test_nested_space():
    space = {
        "opt": {"_type": "choice", "_value": [
            {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0, 1]}},
            {"_name": "adam", "beta1": {"_type": "uniform", "_value": [0.5, 1]}},
        ]},
        "lr": {"_type": "loguniform", "_value": [1e-4, 1]},
    }

    def loss(p):
        o = p["opt"]
        return (0.0 if o["_name"] == "adam" else 1.0) + abs(o.get("beta1", 0.9) - 0.9) + abs(np.log10(p["lr"]) + 2)

    sp = parse_search_space(space)
    _, hist = optimize("Anneal", space, loss, 60, 0)
    for h in hist:
        assert sp.contains(h.parameters)
        assert set(h.parameters["opt"]) == {"_name", "beta1" if h.parameters["opt"]["_name"] == "adam" else "momentum"}
    late = [h.parameters["opt"]["_name"] for h in hist[30:]]
    assert late.count("adam") > 0.7 * len(late)


def test_beats_random_on_branin():
    """Median gap to the optimum over 9 seeds at 60 trials. Observed ratio ~0.1."""
    seeds = range(9)
    a = np.median([optimize("Anneal", BRANIN, branin, 60, s)[0] for s in seeds]) - BRANIN_MIN
    r = np.median([optimize("Random", BRANIN, branin, 60, s)[0] for s in seeds]) - BRANIN_MIN
    assert a < 0.5 * r, (a, r)


def test_beats_random_on_sphere():
    seeds = range(9)
    a = np.median([optimize("Anneal", SPHERE, sphere, 60, s)[0] for s in seeds])
    r = np.median([optimize("Random", SPHERE, sphere, 60, s)[0] for s in seeds])
    assert a < 0.4 * r, (a, r)


@pytest.mark.parametrize("base", [2**63 - 100, -(2**63)])
def test_a_randint_near_the_int64_ends_is_perturbed_as_one_near_zero(base):
    # Floats near +-2**63 are 2048 apart: the neighbourhood of a randint [2**63 - 100,
    # 2**63 - 1) value was one float, so every perturbation gave 2**63 - 2 (a repeat, then
    # a prior draw). Counted from the lower bound it moves as in randint [0, 99).
    def run(lo: int) -> list[int]:
        space = parse_search_space({"r": {"_type": "randint", "_value": [lo, lo + 99]},
                                    "u": {"_type": "uniform", "_value": [0, 1]}})
        t = create_tuner("Anneal", space, {}, 0)
        hist = []
        for i in range(N_STARTUP + 20):
            p = t.suggest(hist, np.random.default_rng([5, i]))
            hist.append(record(i, p, abs(p["r"] - lo - 60) + p["u"]))
        return [h.parameters["r"] - lo for h in hist]

    assert run(base) == run(0)
