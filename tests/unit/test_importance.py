"""PED-ANOVA parameter importance on hand-made histories whose answer is known."""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import numpy as np
import pytest

from tuner_server.history import OptimizeMode
from tuner_server.importance import Settings, _axis, from_trials, report, top_mask
from tuner_server.searchspace import parse_search_space

MAX, MIN = OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE


def history(space: dict[str, Any], f: Callable[[dict[str, Any]], float], n: int, seed: int = 0,
            state: str = "SUCCEEDED") -> list[dict[str, Any]]:
    """n random-search trials as the API shows them, valued by f."""
    sp = parse_search_space(space)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = sp.to_parameters(sp.sample_flat(rng))
        out.append({"name": f"t{seed}-{i}", "sequence": i, "state": state, "parameters": p, "value": f(p),
                    "metrics": None, "kind": "search", "budget": None})
    return out


def scores(space: dict[str, Any], trials: list[dict[str, Any]], mode: OptimizeMode = MAX) -> dict[str, float]:
    (r,) = from_trials(parse_search_space(space), trials, mode)
    assert r.reason is None, r.reason
    return dict(r.importances)


XY = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def test_a_function_of_x_only_puts_x_far_above_y() -> None:
    s = scores(XY, history(XY, lambda p: -(p["x"] - 0.3) ** 2, 100))
    assert s["x"] > 0.9 and s["y"] < 0.1
    assert math.isclose(sum(s.values()), 1.0)


def test_a_choice_that_decides_the_objective_is_on_top() -> None:
    space = {**XY, "opt": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]}}
    noise = np.random.default_rng(7)  # ties broken by noise unrelated to x and y
    trials = history(space, lambda p: {"sgd": 0.5, "adam": 0.9, "rmsprop": 0.6}[p["opt"]] + 0.01 * noise.random(), 60)
    s = scores(space, trials)
    assert max(s, key=s.get) == "opt" and s["opt"] > 0.8


NESTED = {
    "model": {"_type": "choice", "_value": [
        {"_name": "svm", "C": {"_type": "loguniform", "_value": [0.001, 1000]}},
        {"_name": "tree", "depth": {"_type": "randint", "_value": [1, 20]}},
    ]},
    "noise": {"_type": "uniform", "_value": [0, 1]},
}


def test_a_parameter_of_one_nested_branch_counts_only_where_it_is_active() -> None:
    # svm wins when C is near 1; the tree branch is always worse, whatever its depth.
    def f(p: dict[str, Any]) -> float:
        m = p["model"]
        return 1 - abs(math.log10(m["C"])) / 3 if m["_name"] == "svm" else -1.0

    trials = history(NESTED, f, 120)
    s = scores(NESTED, trials)
    assert set(s) == {"model", "model/svm/C", "model/tree/depth", "noise"}
    assert s["model/svm/C"] > s["noise"] and s["model"] > s["noise"]
    # No top trial ever has a depth: depth cannot have helped reach the top.
    assert s["model/tree/depth"] == 0.0
    # Where it is active, depth is what matters in the tree branch: with svm out of the
    # space, the same trees show it.
    trees = [t for t in trials if t["parameters"]["model"]["_name"] == "tree"]
    for t in trees:
        t["value"] = -abs(t["parameters"]["model"]["depth"] - 5)
    s = scores(NESTED, trees)
    assert max(s, key=s.get) == "model/tree/depth"


def test_the_direction_decides_which_trials_are_the_top() -> None:
    # Maximize: the top are x > 0.8 (a step), so x matters most (y then orders them).
    # Minimize: the lowest values are among x <= 0.8, decided by y alone.
    trials = history(XY, lambda p: (1.0 if p["x"] > 0.8 else 0.0) + 0.01 * p["y"], 200)
    up = scores(XY, trials, MAX)
    down = scores(XY, trials, MIN)
    assert up["x"] > 2 * up["y"] and down["y"] > 0.8
    # Minimizing f is maximizing -f: the same answer.
    negated = [{**t, "value": -t["value"]} for t in trials]
    assert scores(XY, negated, MAX) == pytest.approx(down)


def test_too_few_succeeded_trials_give_no_numbers_but_a_reason() -> None:
    trials = history(XY, lambda p: p["x"], 9) + history(XY, lambda p: p["x"], 30, seed=1, state="FAILED")
    (r,) = from_trials(parse_search_space(XY), trials, MAX)
    assert r.importances == () and r.trials == 9
    assert r.reason == "needs at least 10 succeeded trials, has 9"
    assert report([r])["results"][0]["importances"] == []
    assert "needs at least 10" in r.line()


def test_failed_early_stopped_and_final_trials_are_left_out() -> None:
    good = history(XY, lambda p: -(p["x"] - 0.3) ** 2, 40)
    # Failed trials with great values that depend on y must not move anything.
    bad = history(XY, lambda p: 100 * p["y"], 40, seed=2, state="FAILED")
    early = history(XY, lambda p: 100 * p["y"], 40, seed=3, state="EARLY_STOPPED")
    final = [{**t, "kind": "final", "value": 100 * t["parameters"]["y"]} for t in history(XY, lambda p: 0, 40, seed=4)]
    (r,) = from_trials(parse_search_space(XY), good + bad + early + final, MAX)
    assert r.trials == 40
    assert dict(r.importances) == scores(XY, good)


def test_a_log_scale_parameter_is_read_in_log_space() -> None:
    space = {"lr": {"_type": "loguniform", "_value": [1e-5, 1.0]}, "x": {"_type": "uniform", "_value": [0, 1]}}
    # Best around 1e-4: in linear space every good value sits in the first 0.01% of the range.
    s = scores(space, history(space, lambda p: -abs(math.log10(p["lr"]) + 4), 100))
    assert s["lr"] > 0.9
    # The density grid is in log space: 100 log-uniform rates fill most of its 50 points,
    # where a linear grid would put most of them on its first point.
    sp = parse_search_space(space)
    rates = [t["parameters"]["lr"] for t in history(space, lambda p: 0.0, 100)]
    log_axis = _axis(sp["lr"], rates, 50)
    lin_axis = _axis(parse_search_space({"lr": {"_type": "uniform", "_value": [1e-5, 1.0]}})["lr"], rates, 50)
    assert log_axis is not None and lin_axis is not None
    assert np.allclose(np.exp(log_axis.positions[[0, -1]]), [1e-5, 1.0])
    assert np.unique(log_axis.bins).size > 35 and np.unique(lin_axis.bins).size < 25


def test_every_search_space_type_is_handled() -> None:
    space = {
        "c_num": {"_type": "choice", "_value": [1, 2, 4]},
        "c_str": {"_type": "choice", "_value": ["a", "b"]},
        "ri": {"_type": "randint", "_value": [0, 8]},
        "ri_big": {"_type": "randint", "_value": [0, 100000]},
        "u": {"_type": "uniform", "_value": [-1, 1]},
        "qu": {"_type": "quniform", "_value": [0, 10, 2]},
        "lu": {"_type": "loguniform", "_value": [1e-3, 10]},
        "qlu": {"_type": "qloguniform", "_value": [1, 1000, 1]},
        "n": {"_type": "normal", "_value": [0, 2]},
        "qn": {"_type": "qnormal", "_value": [0, 2, 0.5]},
        "ln": {"_type": "lognormal", "_value": [0, 1]},
        "qln": {"_type": "qlognormal", "_value": [2, 1, 1]},
        "layer": {"_type": "layer_choice", "_value": ["conv3", "conv5", "pool"]},
        "inp": {"_type": "input_choice", "_value": {"candidates": ["a", "b", "c"], "n_chosen": 2}},
    }
    s = scores(space, history(space, lambda p: -abs(p["qn"]), 150))
    assert set(s) == set(space)
    assert max(s, key=s.get) == "qn" and all(math.isfinite(v) and v >= 0 for v in s.values())


def test_qlognormal_values_rounded_to_zero_are_kept() -> None:
    space = {"q": {"_type": "qlognormal", "_value": [-1, 1, 1]}, "x": {"_type": "uniform", "_value": [0, 1]}}
    trials = history(space, lambda p: -abs(p["q"] - 2), 60)
    assert sum(t["parameters"]["q"] == 0 for t in trials) > 10  # exp(N(-1, 1)) < 0.5 often
    (r,) = from_trials(parse_search_space(space), trials, MAX)
    assert r.skipped == 0 and r.trials == 60 and r.importances[0][0] == "q"


def test_a_parameter_that_never_varies_gets_zero() -> None:
    space = {**XY, "only": {"_type": "choice", "_value": ["one"]}, "fixed": {"_type": "uniform", "_value": [0, 1]}}
    trials = history(space, lambda p: p["x"], 50)
    for t in trials:
        t["parameters"]["fixed"] = 0.5  # e.g. a space whose range was a point in practice
    s = scores(space, trials)
    assert s["only"] == 0.0 and s["fixed"] == 0.0 and s["x"] > 0.5


def test_same_objective_everywhere_gives_a_reason() -> None:
    (r,) = from_trials(parse_search_space(XY), history(XY, lambda p: 1.0, 30), MAX)
    assert r.reason == "every trial has the same objective value" and r.importances == ()


def test_deterministic_whatever_the_order_of_the_trials() -> None:
    space = {**XY, "c": {"_type": "choice", "_value": [1, 2, 3]}}
    trials = history(space, lambda p: p["x"] * p["c"], 80)
    first = scores(space, trials)
    shuffled = list(trials)
    random.Random(5).shuffle(shuffled)
    assert scores(space, trials) == first
    assert scores(space, shuffled) == pytest.approx(first, rel=1e-12)


def test_top_set_is_thirty_percent_but_at_least_five_and_takes_ties() -> None:
    s = Settings()
    assert top_mask(np.arange(100.0), s).sum() == 30
    assert top_mask(np.arange(16.0), s).sum() == 5
    assert top_mask(np.array([0.0, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6]), s).sum() == 6
    assert top_mask(np.arange(100.0), Settings(target_quantile=0.1)).sum() == 10  # the paper's gamma'
    assert list(np.flatnonzero(top_mask(np.arange(20.0)[::-1], s))) == list(range(14, 20))  # lowest losses


def test_multi_objective_gives_one_result_per_objective_in_its_direction() -> None:
    sp = parse_search_space(XY)
    trials = history(XY, lambda p: 0.0, 100)
    for t in trials:
        x, y = t["parameters"]["x"], t["parameters"]["y"]
        t["metrics"] = {"accuracy": -(x - 0.7) ** 2, "size": 1000 * y}
    acc, size = from_trials(sp, trials, MAX, objectives=[("accuracy", MAX), ("size", MIN)])
    assert (acc.objective, size.objective, size.optimize_mode) == ("accuracy", "size", "minimize")
    assert dict(acc.importances)["x"] > 0.9 and dict(size.importances)["y"] > 0.9


def test_with_budgets_the_largest_budget_with_enough_trials_is_used() -> None:
    small = [{**t, "budget": 1} for t in history(XY, lambda p: p["y"], 40)]
    large = [{**t, "budget": 9} for t in history(XY, lambda p: p["x"], 12, seed=1)]
    tiny = [{**t, "budget": 27} for t in history(XY, lambda p: p["y"], 3, seed=2)]
    (r,) = from_trials(parse_search_space(XY), small + large + tiny, MAX)
    assert r.budget == 9 and r.trials == 12 and r.importances[0][0] == "x"


def test_trials_that_do_not_fit_the_space_are_skipped_and_counted() -> None:
    trials = history(XY, lambda p: p["x"], 30)
    trials[0]["parameters"] = {"x": 0.5}  # y missing
    trials[1]["parameters"] = {"x": "high", "y": 0.1}  # not a number
    (r,) = from_trials(parse_search_space(XY), trials, MAX)
    assert r.skipped == 2 and r.trials == 28


def test_summary_line_names_the_top_parameters() -> None:
    (r,) = from_trials(parse_search_space(XY), history(XY, lambda p: p["x"], 30), MAX)
    assert r.line().startswith("x ") and ", y " in r.line()


def test_a_parameter_with_values_near_the_float_limit_does_not_zero_the_others() -> None:
    """Its grid overflowed to NaN, the sum of importances was NaN, and every parameter got 0."""
    space = {"n": {"_type": "normal", "_value": [0, 1]}, **XY}
    trials = history(space, lambda p: p["x"], 60)
    for i, t in enumerate(trials):
        t["parameters"]["n"] = (1e308, -1e308, 0.5)[i % 3]  # imported from somewhere odd
    s = scores(space, trials)
    assert all(math.isfinite(v) for v in s.values()) and s["x"] > 0.5 and s["x"] > s["y"]


def test_a_binary_objective_reached_by_few_trials_still_gives_importances() -> None:
    """Ties at the 30% cut took every trial when fewer than 30% reached the best value (a
    0/1 objective), and the answer was "every trial has the same objective value": false."""
    trials = history(XY, lambda p: 1.0 if p["x"] > 0.85 else 0.0, 60)
    assert 3 <= sum(t["value"] for t in trials) < 18
    (r,) = from_trials(parse_search_space(XY), trials, MAX)
    assert r.reason is None and r.top_trials == sum(t["value"] for t in trials)
    assert r.importances[0][0] == "x" and dict(r.importances)["x"] > 0.8


@pytest.mark.parametrize("base", [2**63 - 100, -(2**63)])
def test_a_randint_near_the_int64_ends_is_read_as_one_near_zero(base: int) -> None:
    # Its values were read as floats, 2048 apart near +-2**63: every trial of
    # [2**63 - 100, 2**63 - 1) had the same r, which 'never varied' and got 0, while it
    # decides the objective. Counted from the lower bound it scores as in [0, 99).
    def run(lo: int) -> dict[str, float]:
        space = {"r": {"_type": "randint", "_value": [lo, lo + 99]}, "y": {"_type": "uniform", "_value": [0, 1]}}
        return scores(space, history(space, lambda p: -abs(p["r"] - lo - 60) - 0.1 * p["y"], 100))

    assert run(base) == run(0)
    assert run(base)["r"] > 0.8
