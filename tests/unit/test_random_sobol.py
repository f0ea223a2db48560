"""Random's rule "sobol" (Azure ML's RandomParameterSampling rule): evenly spread points
through each parameter's inverse CDF, reproducible by seed and after a restart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.test_tuners_basic import FINITE, drive
from tests.unit.tuner_helpers import ALL_TYPES, check_all_types
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import TunerArgsError, create_tuner

SQUARE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def points(tuner, n: int) -> np.ndarray:
    hist, _ = drive(tuner, n)
    return np.array([[h.parameters["x"], h.parameters["y"]] for h in hist])


def empty_cells(pts: np.ndarray, k: int) -> int:
    """How many of the k x k cells of the unit square hold no point."""
    cells = {(min(int(x * k), k - 1), min(int(y * k), k - 1)) for x, y in pts}
    return k * k - len(cells)


def test_sobol_fills_the_square_more_evenly_than_independent_draws():
    # 64 points on an 8 x 8 grid: Sobol's first 64 points put one in every cell; 64
    # independent draws leave about 64 * (63/64)^64 ~ 23 cells empty.
    sp = parse_search_space(SQUARE)
    sobol_empty = [empty_cells(points(create_tuner("Random", sp, {"rule": "sobol"}, seed), 64), 8) for seed in range(5)]
    random_empty = [empty_cells(points(create_tuner("Random", sp, {}, seed), 64), 8) for seed in range(5)]
    assert sobol_empty == [0] * 5, sobol_empty
    assert min(random_empty) > 10, random_empty


def test_sobol_is_reproducible_by_seed_and_continues_after_a_restart():
    sp = parse_search_space(SQUARE)
    a = points(create_tuner("Random", sp, {"rule": "sobol"}, 3), 10)
    b = points(create_tuner("Random", sp, {"rule": "sobol"}, 3), 10)
    c = points(create_tuner("Random", sp, {"rule": "sobol"}, 4), 10)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # A tuner rebuilt from the first 6 trials (a tuner-server restart) hands out the same last 4.
    first, _ = drive(create_tuner("Random", sp, {"rule": "sobol"}, 3), 6)
    rest, _ = drive(create_tuner("Random", sp, {"rule": "sobol"}, 3), 4, history=first)
    assert np.array_equal(np.array([[h.parameters["x"], h.parameters["y"]] for h in rest]), a)


def test_sobol_keeps_every_type_in_range_and_each_marginal_matches_the_prior():
    sp = parse_search_space(ALL_TYPES)
    hist, _ = drive(create_tuner("Random", sp, {"rule": "sobol"}, 0), 256)
    for h in hist:
        check_all_types(h.parameters)
    # Quantile checks on a few marginals (256 Sobol points are nearly exact).
    lu = sorted(math.log10(h.parameters["lu"]) for h in hist)
    assert abs(lu[128] - (-2.5)) < 0.05  # log-uniform on [1e-4, 1e-1]: median 10^-2.5
    n = sorted(h.parameters["n"] for h in hist)
    assert abs(n[128]) < 0.05 and abs(n[int(256 * 0.8413)] - 2) < 0.15  # normal(0, 2): 84th percentile at 2
    counts = {v: sum(h.parameters["c"] == v and type(h.parameters["c"]) is type(v) for h in hist) for v in ("a", 2, True)}
    assert all(80 <= c <= 90 for c in counts.values()), counts


def test_sobol_on_a_finite_space_never_repeats_and_ends():
    t = create_tuner("Random", parse_search_space(FINITE), {"rule": "sobol"}, 1)
    hist, ended = drive(t, 20)
    assert ended and len({canonical(h.parameters) for h in hist}) == len(hist) == 6


def test_sobol_on_a_nested_space():
    space = {"model": {"_type": "choice", "_value": [
        {"_name": "svm", "C": {"_type": "loguniform", "_value": [0.01, 100]}},
        {"_name": "tree", "depth": {"_type": "uniform", "_value": [1, 10]}},
    ]}}
    hist, _ = drive(create_tuner("Random", parse_search_space(space), {"rule": "sobol"}, 0), 32)
    names = [h.parameters["model"]["_name"] for h in hist]
    assert names.count("svm") == names.count("tree") == 16
    assert all(set(h.parameters["model"]) == ({"_name", "C"} if h.parameters["model"]["_name"] == "svm" else {"_name", "depth"})
               for h in hist)


@pytest.mark.parametrize("bad", ["halton", 1, None])
def test_an_unknown_rule_is_named(bad):
    with pytest.raises(TunerArgsError, match="rule"):
        create_tuner("Random", parse_search_space(SQUARE), {"rule": bad})



def test_from_unit_on_an_input_choice_with_an_astronomical_number_of_subsets():
    # comb(2000, 1000) ~ 1e600 does not fit a float: the rank is computed in integers.
    space = parse_search_space({"inputs": {"_type": "input_choice",
                                           "_value": {"candidates": [f"c{i}" for i in range(2000)], "n_chosen": 1000}}})
    picks = [space["inputs"].from_unit(u) for u in (0.0, 0.3, 0.999)]
    assert all(len(p) == 1000 == len(set(p)) for p in picks)
    assert picks[0] == [f"c{i}" for i in range(1000)]  # rank 0: the first subset in order
    assert len({tuple(p) for p in picks}) == 3
