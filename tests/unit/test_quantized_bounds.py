"""q-uniform values stay in [low, high] and on their grid, from every tuner and advisor.

NNI's quniform [low, high, q] is clip(round(x / q) * q, low, high) with x ~ U(low, high)
(qloguniform: x log-uniform). Its values are the grid quniform_grid lists: the multiples of
q whose rounding interval overlaps [low, high] in more than a point, the end ones clipped to
the bounds. A value outside [low, high] (a user's script may assert the range) or off the
grid (a low at a half-step such as 0.15 for q = 0.1, which no draw gives) is a defect.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import numpy as np
import pytest

from tuner_server.advisors import create_advisor
from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.searchspace import Dimension, parse_search_space, quniform_grid
from tuner_server.tuners import NoMoreTrials, TryLater, create_tuner
from tuner_server.warm_start import in_space_form, misfit

# Ranges where a slip shows: bounds at half-steps (exact, or in float as 0.15 / 0.1 =
# 1.4999999999999998), bounds with more digits than q's tidying keeps, q not dividing
# high - low, tiny and huge magnitudes, integers.
TRICKY: list[tuple[str, float, float, float]] = [
    ("quniform", 0.15, 0.95, 0.1),
    ("quniform", 1, 10, 2),
    ("quniform", 0.25, 1.75, 0.5),
    ("quniform", 0, 1, 0.1),
    ("quniform", 0, 10, 4),
    ("quniform", 1.23456789, 9.87654321, 0.1),
    ("quniform", 143.40490155374005, 166.2202119229652, 3.222582057387417),
    ("quniform", -3.293034801853944e-09, -1.44171224387794e-09, 7.935023618925166e-11),
    ("quniform", 1.2345678901234567e20, 9.876543210987654e20, 3.3e19),
    ("qloguniform", 0.15, 0.95, 0.1),
    ("qloguniform", 7.5631153485729134e-06, 1.2187400207893088e-05, 2.795736938918898e-07),
    ("qloguniform", 3, 1000, 7),
]


def space_of(cases: list[tuple[str, float, float, float]]) -> dict[str, Any]:
    return {f"p{i}": {"_type": t, "_value": [lo, hi, q]} for i, (t, lo, hi, q) in enumerate(cases)}


def random_cases(n: int, seed: int) -> list[tuple[str, float, float, float]]:
    """Ranges of 1 to 30 steps at magnitudes 1e-12 .. 1e12, some with a half-step low."""
    r = random.Random(seed)
    out = []
    while len(out) < n:
        q = 10 ** r.uniform(-12, 12) * r.choice([1, 0.1, 0.3, 0.7, 1 / 3, 2.5])
        low = r.uniform(-50, 50) * q * r.choice([1, 0.37])
        if r.random() < 0.3:
            low = round(low / q) * q + q / 2
        t = "quniform" if low <= 0 or r.random() < 0.5 else "qloguniform"
        out.append((t, low, low + q * r.uniform(0.2, 30), q))
    return out


def check_value(d: Dimension, v: Any, where: str) -> None:
    lo, hi, q = d.low, d.high, float(d.args[2])
    assert lo <= v <= hi, f"{where}: {v!r} outside [{lo!r}, {hi!r}] (q={q!r})"
    grid = quniform_grid(lo, hi, q)
    assert v in grid, f"{where}: {v!r} is not one of the values of [{lo!r}, {hi!r}, {q!r}]: {grid[:3]}...{grid[-3:]}"
    assert type(v) is (int if d.is_integer else float), f"{where}: {v!r} is a {type(v).__name__}"


def check_params(space: dict[str, Any], p: dict[str, Any], where: str) -> None:
    sp = parse_search_space(space)
    for d in sp.dims:
        check_value(d, p[d.name], f"{where} {d.name}")


@pytest.mark.parametrize("case", TRICKY, ids=repr)
def test_every_value_a_dimension_gives_is_in_range_and_on_the_grid(case):
    check_dimension(case)


def test_every_value_a_dimension_gives_is_in_range_and_on_the_grid_over_random_ranges():
    for case in random_cases(400, 0):
        check_dimension(case)


def check_dimension(case: tuple[str, float, float, float]) -> None:
    t, lo, hi, q = case
    d = parse_search_space(space_of([case])).dims[0]
    rng = np.random.default_rng(0)
    # The unit map's ends (a Sobol coordinate may be 0), and points spread between them.
    for u in [0.0, 1e-300, 1e-9, 0.5, 1 - 1e-12, math.nextafter(1.0, 0.0), *rng.random(30)]:
        check_value(d, d.from_unit(u), f"from_unit({u!r})")
    for _ in range(30):
        check_value(d, d.sample(rng), "sample")
    # Raw numbers the tuners quantize: the bounds, every half-step inside, numbers beyond
    # the bounds (a perturbation clips or overshoots) and random ones.
    raws = [lo, hi, math.nextafter(lo, math.inf), math.nextafter(hi, -math.inf), lo - q, hi + q, lo - 3 * q, hi * 2]
    k0, k1 = math.floor(lo / q), math.ceil(hi / q)
    raws += [(k + 0.5) * q for k in range(k0, k1 + 1)]
    raws += list(rng.uniform(lo, hi, 30))
    for x in raws:
        if t == "qloguniform" and x <= 0:
            continue
        v = d.quantize(float(x))
        check_value(d, v, f"quantize({x!r})")
        assert d.quantize(v) == v, f"quantize is not idempotent at {v!r}"


def test_quantize_is_nnis_rounding_away_from_the_bounds():
    # Away from rounding ties and the bounds, the value is NNI's round(x / q) * q (tidied).
    checked = 0
    for case in TRICKY + random_cases(200, 1):
        t, lo, hi, q = case
        d = parse_search_space(space_of([case])).dims[0]
        for x in np.random.default_rng(2).uniform(lo, hi, 50):
            k = round(x / q)
            if abs(x / q - k) > 0.49 or not (lo < k * q < hi):
                continue
            assert d.quantize(float(x)) == pytest.approx(k * q, rel=1e-9, abs=q * 1e-6), case
            checked += 1
    assert checked > 5000


def test_a_half_step_low_maps_to_the_first_multiple_above_it():
    # u = 0 is x = low. For [1, 10, 2], round(1 / 2) = 0 (half to even) clipped up gave 1,
    # and for [0.15, 0.95, 0.1] round(1.4999999999999998) = 1 gave 0.15: values no draw
    # in (low, low + q/2) gives, so not in the space's count and off its grid. The value of
    # the draws just above low is the first multiple above it.
    space = parse_search_space(space_of([("quniform", 1, 10, 2), ("quniform", 0.15, 0.95, 0.1),
                                         ("qloguniform", 0.15, 0.95, 0.1)]))
    assert [d.from_unit(0.0) for d in space.dims] == [2, 0.2, 0.2]
    assert [d.quantize(d.low) for d in space.dims] == [2, 0.2, 0.2]


def test_bounds_with_more_digits_than_the_tidying_are_kept_exactly():
    # clip then tidy rounded the clipped bound to q's digits: 9.87654321 became 9.8765432
    # (below high, fine) and 1.23456789 became 1.2345679 (inside), but 166.2202119229652
    # with q 3.22 became 166.220212, above high.
    d = parse_search_space(space_of([("quniform", 143.40490155374005, 166.2202119229652, 3.222582057387417)])).dims[0]
    assert d.from_unit(math.nextafter(1.0, 0.0)) == 166.2202119229652
    d = parse_search_space(space_of([("quniform", 7.5631153485729134e-06, 1.2187400207893088e-05, 2.795736938918898e-07)])).dims[0]
    assert d.from_unit(0.0) == 7.5631153485729134e-06


def test_a_warm_start_value_is_written_as_the_space_writes_it():
    # An imported trial's number goes through quantize: its bound 1.23456789 was rewritten
    # as 1.2345679 (close enough to pass the grid check, then held as a configuration the
    # space never gives); the half-step low 0.15, which the space never gives, was taken.
    space = parse_search_space(space_of([("quniform", 1.23456789, 9.87654321, 0.1)]))
    assert misfit(space, {"p0": 1.23456789}) is None
    assert in_space_form(space, {"p0": 1.23456789}) == {"p0": 1.23456789}
    assert in_space_form(space, {"p0": 0.1 * 13}) == {"p0": 1.3}
    space = parse_search_space(space_of([("quniform", 0.15, 0.95, 0.1)]))
    assert "is not on its grid" in (misfit(space, {"p0": 0.15}) or "")
    assert "is not on its grid" in (misfit(space, {"p0": 0.95}) or "")  # a half-step too
    assert misfit(space, {"p0": 0.2}) is None and misfit(space, {"p0": 0.9}) is None


def test_an_off_grid_warm_start_value_is_refused_naming_the_nearest_value():
    # The reason said '(quniform gives multiples of q=0.1 and its bounds)' of 0.15, which is
    # its low bound: it named as a value the very number it refused.
    space = parse_search_space(space_of([("quniform", 0.15, 0.95, 0.1)]))
    assert misfit(space, {"p0": 0.15}) == (
        "parameter 'p0' = 0.15 is not on its grid (quniform gives multiples of q=0.1, the end ones clipped "
        "to [0.15, 0.95]; the nearest value is 0.2)")
    space = parse_search_space({"p0": {"_type": "qnormal", "_value": [0, 1, 0.5]}})
    assert misfit(space, {"p0": 0.7}) == (
        "parameter 'p0' = 0.7 is not on its grid (qnormal gives multiples of q=0.5; the nearest value is 0.5)")


# ----- every tuner and advisor, driven on the tricky ranges -----

def _score(p: dict[str, Any]) -> float:
    # Pulls the model-based tuners to the low ends (where the clipping happens).
    return sum(math.log1p(abs(float(v))) for v in p.values() if isinstance(v, (int, float)))


def _drive(suggest: Callable[[list[TrialRecord], np.random.Generator], Any], n: int,
           values: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]], multi: bool = False) -> list[dict[str, Any]]:
    """Ask n times; a TryLater finishes every running trial. Returns each suggestion's parameters."""
    hist: list[TrialRecord] = []
    out: list[dict[str, Any]] = []
    stalls = 0
    while len(out) < n:
        try:
            s = suggest(hist, np.random.default_rng([7, len(hist)]))
        except NoMoreTrials:
            break
        except TryLater:
            stalls += 1
            assert stalls < 1000
            for t in hist:
                if not t.state.ended:
                    t.state = TrialState.SUCCEEDED
                    t.value = _score(t.parameters)
                    if multi:
                        t.values = (t.value, -t.value)
            continue
        params, extra = values(s)
        out.append(params)
        hist.append(TrialRecord(len(hist), f"t{len(hist)}", params | extra.get("all", {}), TrialState.RUNNING,
                                budget=extra.get("budget"), info=extra.get("info", {})))
        if extra.get("end_now", True):
            hist[-1].state, hist[-1].value = TrialState.SUCCEEDED, _score(params)
            if multi:
                hist[-1].values = (hist[-1].value, -hist[-1].value)
    return out


def _plain(p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return p, {}


def _pbt(p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    own = {k: v for k, v in p.items() if not k.endswith("checkpoint_dir")}
    return own, {"all": {k: v for k, v in p.items() if k.endswith("checkpoint_dir")}, "end_now": False}


def _proposal(p: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return p.parameters, {"budget": p.budget, "info": p.info}


TUNERS: list[tuple[str, dict[str, Any], int]] = [
    ("Random", {}, 40), ("Random", {"rule": "sobol"}, 40), ("GridSearch", {}, 40),
    ("TPE", {"tpe_args": {"n_startup_jobs": 5}}, 40),
    ("TPE", {"tpe_args": {"n_startup_jobs": 5, "multivariate": False}}, 40), ("Anneal", {}, 40), ("Evolution", {"population_size": 8}, 40),
    ("GPTuner", {"cold_start_num": 5}, 12), ("MetisTuner", {"cold_start_num": 5}, 10),
    ("PBTTuner", {"population_size": 6, "all_checkpoint_dir": "/ckpt"}, 42),
]


@pytest.mark.parametrize("name, args, n", TUNERS, ids=lambda v: str(v))
def test_every_tuner_hands_out_values_in_range_and_on_the_grid(name, args, n):
    cases = TRICKY if name != "MetisTuner" else [c for c in TRICKY if c[0] == "quniform"]
    space = space_of(cases)
    tuner = create_tuner(name, parse_search_space(space), args, 3)
    for i, p in enumerate(_drive(tuner.suggest, n, _pbt if name == "PBTTuner" else _plain)):
        check_params(space, p, f"{name} suggestion {i}")


def test_motpe_hands_out_values_in_range_and_on_the_grid():
    space = space_of(TRICKY)
    tuner = create_tuner("MOTPE", parse_search_space(space), {}, 3,
                         objectives=(OptimizeMode.MINIMIZE, OptimizeMode.MAXIMIZE))
    for i, p in enumerate(_drive(tuner.suggest, 40, _plain, multi=True)):
        check_params(space, p, f"MOTPE suggestion {i}")


@pytest.mark.parametrize("name", ["Hyperband", "BOHB", "SuccessiveHalving", "ASHA", "BOSS"])
def test_every_advisor_hands_out_values_in_range_and_on_the_grid(name):
    space = space_of(TRICKY)
    args = {"R": 9, "eta": 3} if name in ("Hyperband", "BOSS") else {"min_budget": 1, "max_budget": 9, "eta": 3}
    advisor = create_advisor(name, parse_search_space(space), args, 3)
    for i, p in enumerate(_drive(advisor.propose, 40, _proposal)):
        check_params(space, p, f"{name} proposal {i}")


def test_pbt_perturbation_from_the_grids_ends_stays_on_the_grid():
    # explore multiplies by 1 +- factor and clips to [low, high]: from the grid's ends it
    # lands on the bounds, where a half-step low quantized to itself.
    space = space_of(TRICKY)
    sp = parse_search_space(space)
    tuner = create_tuner("PBTTuner", sp, {"resample_probability": 0.0, "factor": 0.8}, 0)
    rng = np.random.default_rng(0)
    for end in (0, -1):
        flat = {d.key: quniform_grid(d.low, d.high, float(d.args[2]))[end] for d in sp.dims}
        for _ in range(50):
            check_params(space, sp.to_parameters(tuner.explore(flat, rng)), "PBT explore")


@pytest.mark.parametrize("lo, hi, q", [(0.5, 0.5000000001, 1), (0.15, 0.150000000001, 0.1), (0.25, 0.25 + 1e-12, 0.5)])
def test_a_range_narrower_than_the_rounding_noise_at_a_half_step_has_its_values(lo, hi, q):
    # quniform_grid takes k/q within 1e-9 of a whole number for one (k*q's float noise), so
    # a range that narrow around a half-step counted no multiple at all: 0 configurations,
    # and every tuner ended the experiment at once ('all 0 configurations ... were tried').
    # Draws there round either way: its values are both bounds.
    space = space_of([("quniform", lo, hi, q)])
    sp = parse_search_space(space)
    assert quniform_grid(lo, hi, q) == [lo, hi] and sp.cardinality() == 2
    for name in ("Random", "GridSearch", "TPE", "Anneal", "Evolution", "GPTuner"):
        got = sorted(p["p0"] for p in _drive(create_tuner(name, sp, {}, 0).suggest, 5, _plain))
        assert got == [lo, hi], (name, got)
