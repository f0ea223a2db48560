"""GPTuner: classArgs, encoding of every supported type, determinism, kriging believer, quality, speed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.tuner_helpers import BRANIN, branin, distinct, optimize, record
from tuner_server.history import OptimizeMode, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner

MIXED = {
    "c": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]},
    "n": {"_type": "choice", "_value": [16, 32, 64]},
    "ri": {"_type": "randint", "_value": [1, 6]},
    "u": {"_type": "uniform", "_value": [-1, 1]},
    "qu": {"_type": "quniform", "_value": [2, 10, 2]},
    "lu": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "qlu": {"_type": "qloguniform", "_value": [1, 1000, 10]},
}


def mixed_loss(p):
    return ((p["c"] != "adam") * 1.0 + abs(p["n"] - 32) / 32 + abs(p["ri"] - 3) / 2 + p["u"] ** 2
            + abs(p["qu"] - 6) / 4 + abs(np.log10(p["lu"]) + 2) + abs(p["qlu"] - 100) / 500)


def gp(args, space=BRANIN, seed=0):
    return create_tuner("GPTuner", parse_search_space(space), args, seed)


def test_class_args_and_defaults():
    t = gp({})
    assert t.mode is OptimizeMode.MAXIMIZE
    assert (t.utility, t.kappa, t.xi, t.nu, t.alpha, t.cold_start_num, t.warm_up, t.starting_points) == (
        "ei", 5.0, 0.0, 2.5, 1e-6, 10, 100000, 250)
    t = gp({"optimize_mode": "minimize", "utility": "ucb", "kappa": 2, "xi": 0.1, "nu": 1.5, "alpha": 1e-4,
            "cold_start_num": 5, "selection_num_warm_up": 500, "selection_num_starting_points": 3})
    assert (t.utility, t.kappa, t.nu, t.cold_start_num) == ("ucb", 2.0, 1.5, 5)


@pytest.mark.parametrize(
    "args, words",
    [({"utility": "pi"}, "utility"), ({"kappa": -1}, "kappa"), ({"xi": "0"}, "xi"), ({"nu": 2}, "nu"),
     ({"alpha": 0}, "alpha"), ({"cold_start_num": 0}, "cold_start_num"),
     ({"selection_num_warm_up": 1.5}, "selection_num_warm_up"),
     ({"selection_num_starting_points": 0}, "selection_num_starting_points"), ({"frobnicate": 1}, "frobnicate")],
)
def test_bad_class_args(args, words):
    with pytest.raises(TunerArgsError, match=words):
        gp(args)


@pytest.mark.parametrize("t", ["normal", "qnormal", "lognormal", "qlognormal", "layer_choice"])
def test_unsupported_types_named(t):
    v = {"normal": [0, 1], "qnormal": [0, 1, 1], "lognormal": [0, 1], "qlognormal": [0, 1, 1], "layer_choice": ["a", "b"]}[t]
    with pytest.raises(TunerArgsError, match=t) as e:
        gp({}, {"x": {"_type": "uniform", "_value": [0, 1]}, "bad": {"_type": t, "_value": v}})
    assert "bad" in str(e.value)


def test_nested_choice_rejected():
    space = {"l": {"_type": "choice", "_value": [{"_name": "a"}, {"_name": "b", "x": {"_type": "uniform", "_value": [0, 1]}}]}}
    with pytest.raises(TunerArgsError, match="nested"):
        gp({}, space)


def _history(n_done, n_pending, space=BRANIN, f=branin, seed=0):
    sp = parse_search_space(space)
    rng = np.random.default_rng(seed)
    hist = []
    for i in range(n_done + n_pending):
        p = sp.to_parameters(sp.sample_flat(rng))
        hist.append(record(i, p, f(p)) if i < n_done else record(i, p, None, TrialState.RUNNING))
    return hist


def test_deterministic():
    hist = _history(30, 2)
    a = gp({"optimize_mode": "minimize"}, seed=1).suggest(hist, np.random.default_rng(4))
    b = gp({"optimize_mode": "minimize"}, seed=1).suggest(list(hist), np.random.default_rng(4))
    assert a == b


def test_string_choice_and_every_type_learns():
    sp = parse_search_space(MIXED)
    best, hist = optimize("GPTuner", MIXED, mixed_loss, 40, 0, {"optimize_mode": "minimize", "selection_num_warm_up": 500})
    assert distinct(hist)
    for h in hist:
        assert sp.contains(h.parameters)
        p = h.parameters
        assert type(p["ri"]) is int and 1 <= p["ri"] <= 5 and p["qu"] in (2, 4, 6, 8, 10)
        assert 1e-4 <= p["lu"] <= 0.1 and 1 <= p["qlu"] <= 1000
    assert best < min(h.value for h in hist[:10])
    late = [h.parameters["c"] for h in hist[20:]]
    assert late.count("adam") > len(late) / 2


def test_kriging_believer_spreads_pending_and_never_repeats():
    space = {"a": {"_type": "randint", "_value": [0, 5]}, "b": {"_type": "choice", "_value": ["x", "y"]},
             "c": {"_type": "quniform", "_value": [0, 1, 0.5]}}  # 30 configurations
    t = gp({"optimize_mode": "minimize", "cold_start_num": 4}, space)
    hist = []
    for i in range(6):
        p = t.suggest(hist, np.random.default_rng(i))
        hist.append(record(i, p, float(p["a"]) + (p["b"] == "x") + p["c"]))
    for i in range(6, 30):
        hist.append(record(i, t.suggest(hist, np.random.default_rng(i)), None, TrialState.RUNNING))
    assert distinct(hist) and len(hist) == 30
    with pytest.raises(NoMoreTrials):
        t.suggest(hist, np.random.default_rng(0))


def test_pending_changes_the_suggestion():
    hist = _history(20, 0)
    t = gp({"optimize_mode": "minimize"})
    a = t.suggest(hist, np.random.default_rng(1))
    b = t.suggest(hist + [record(20, a, None, TrialState.RUNNING)], np.random.default_rng(1))
    assert a != b


SEEDS = range(4)


@pytest.mark.parametrize("utility", ["ei", "ucb"])
def test_beats_random_on_branin(utility):
    """Median over 4 seeds of (best - optimum) after 30 trials. Observed ratio ~0.01 (ei), ~0.02 (ucb)."""
    args = {"optimize_mode": "minimize", "utility": utility, "kappa": 2.0}
    g = np.median([optimize("GPTuner", BRANIN, branin, 30, s, args)[0] for s in SEEDS]) - 0.397887
    r = np.median([optimize("Random", BRANIN, branin, 30, s)[0] for s in SEEDS]) - 0.397887
    assert g < 0.3 * r, (g, r)


def test_maximize_mirrors_minimize():
    _, lo = optimize("GPTuner", BRANIN, branin, 14, 2, {"optimize_mode": "minimize"})
    _, hi = optimize("GPTuner", BRANIN, lambda p: -branin(p), 14, 2, {"optimize_mode": "maximize"})
    assert [h.parameters for h in lo] == [h.parameters for h in hi]


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5, float("inf")])
@pytest.mark.parametrize("kind", ["ei", "ucb", "poi"])
def test_analytic_acquisition_gradient_matches_finite_differences(nu, kind):
    """L-BFGS-B uses acquisition_grad (through GP.predict_grad); it must be the true gradient."""
    from tuner_server.tuners.gp import GP, acquisition, acquisition_grad

    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = np.sin(X @ np.array([3.0, -2.0, 1.0]))
    y = (y - y.mean()) / y.std()
    model = GP(nu, 1e-6)
    model.fit(X, y, rng)
    model.condition(X, y)
    P = rng.random((6, 3))
    best = float(y.min())
    value, grad = acquisition_grad(kind, *model.predict_grad(P), best, 2.0, 0.01)
    assert np.allclose(value, acquisition(kind, *model.predict(P), best, 2.0, 0.01))
    h = 1e-5
    fd = np.stack([(acquisition(kind, *model.predict(P + h * np.eye(3)[j]), best, 2.0, 0.01)
                    - acquisition(kind, *model.predict(P - h * np.eye(3)[j]), best, 2.0, 0.01)) / (2 * h)
                   for j in range(3)], axis=1)
    # relative to the gradient's size: the finite differences of sigma lose digits where the
    # posterior variance is tiny (cancellation in amp - k K^-1 k), the analytic one does not
    assert np.linalg.norm(grad - fd) <= 1e-2 * np.linalg.norm(fd) + 1e-9, (grad, fd)


def test_likelihood_gradient_matches_finite_differences():
    from tuner_server.tuners.gp import GP

    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = np.cos(4 * X[:, 0]) + X[:, 1]
    D = ((X[:, None, :] - X[None, :, :]) ** 2).reshape(-1, 2)
    model = GP(2.5, 1e-6)
    theta = np.array([0.2, math.log(0.3), math.log(0.5)])
    _, grad = model._nlml(theta, D, y)
    h = 1e-6
    fd = [(model._nlml(theta + h * e, D, y)[0] - model._nlml(theta - h * e, D, y)[0]) / (2 * h) for e in np.eye(3)]
    assert np.allclose(grad, fd, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- outlying results

BOWL = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}
BOWL_OPT = np.array([0.3, 0.7])


def bowl(p) -> float:
    """Loss in [0, 0.98], one optimum at BOWL_OPT."""
    return float((p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2)


def outlier_scenario(tuner: str, mode: str, outlier: float, seed: int, n_prior: int = 15, n_next: int = 10) -> float:
    """Mean distance to the optimum of ``n_next`` sequential suggestions after ``n_prior``
    random results, one of which reported ``outlier`` (in the objective's own direction: a
    huge loss when minimizing, a huge negative score when maximizing -- a diverged training or
    a script's "worst" sentinel)."""
    sign = 1.0 if mode == "minimize" else -1.0
    sp = parse_search_space(BOWL)
    rng = np.random.default_rng(seed)
    hist = []
    for i in range(n_prior):
        p = sp.to_parameters(sp.sample_flat(rng))
        hist.append(record(i, p, outlier if i == 3 else sign * bowl(p)))
    t = create_tuner(tuner, sp, {"optimize_mode": mode, "cold_start_num": 5}, seed)
    dists = []
    for i in range(n_prior, n_prior + n_next):
        p = t.suggest(hist, np.random.default_rng([seed, i]))
        hist.append(record(i, p, sign * bowl(p)))
        dists.append(float(np.hypot(p["x"] - BOWL_OPT[0], p["y"] - BOWL_OPT[1])))
    return float(np.mean(dists))


def random_distance() -> float:
    """Mean distance of a uniform point of the unit square to BOWL_OPT (~0.41)."""
    u = np.random.default_rng(0).random((20000, 2))
    return float(np.mean(np.hypot(u[:, 0] - BOWL_OPT[0], u[:, 1] - BOWL_OPT[1])))


@pytest.mark.parametrize("mode, outlier", [("minimize", 1.7e308), ("maximize", -1.7e308), ("maximize", -10.0),
                                           ("minimize", 1e6)])
def test_one_outlier_does_not_wreck_the_model(mode, outlier):
    """Before robust_targets, one such result made the next suggestions worse than random
    (median distance 0.52-0.69 against random's 0.45); with it ~0.14 (0.11 without the outlier)."""
    d = np.median([outlier_scenario("GPTuner", mode, outlier, s) for s in range(3)])
    assert d < 0.5 * random_distance(), d


def test_winsorize_only_touches_the_bad_tail():
    from tuner_server.tuners.robust_targets import targets, winsorize_losses

    normal = np.linspace(0.0, 1.0, 21)
    assert np.array_equal(winsorize_losses(normal), normal)  # no outlier: unchanged
    with_bad = np.append(normal, 1.7e308)
    w = winsorize_losses(with_bad)
    assert w[-1] == np.percentile(with_bad, 75) and np.array_equal(w[:-1], normal)
    good = np.append(normal, -1e6)  # a surprisingly good result is kept as is
    assert winsorize_losses(good)[-1] == -1e6
    assert np.isfinite(targets(np.array([0.5] * 10 + [1.7e308, -1.7e308]))).all()  # no overflow


@pytest.mark.parametrize("name", ["GPTuner", "MetisTuner"])
@pytest.mark.parametrize("base", [2**63 - 100, -(2**63)])
def test_a_randint_near_the_int64_ends_is_encoded_as_one_near_zero(name, base):
    # The encoder took a randint's observed values as floats, 2048 apart near +-2**63:
    # every trial of [2**63 - 100, 2**63 - 1) encoded to one point, so the GP saw no
    # difference between them. Counted from the lower bound it learns as in [0, 99).
    def run(lo: int) -> list[int]:
        space = parse_search_space({"r": {"_type": "randint", "_value": [lo, lo + 99]},
                                    "u": {"_type": "uniform", "_value": [0, 1]}})
        t = create_tuner(name, space, {"cold_start_num": 4}, 0)
        hist = []
        for i in range(12):
            p = t.suggest(hist, np.random.default_rng([5, i]))
            hist.append(record(i, p, abs(p["r"] - lo - 60) + p["u"]))
        return [h.parameters["r"] - lo for h in hist]

    assert run(base) == run(0)


def test_the_encoders_snapped_point_is_the_encoding_of_the_value_handed_out():
    # snap() rounded a q-type with round(v/q)*q clipped, while the value handed out is
    # Dimension.quantize's: at a half-step bound (quniform [1, 10, 2]: 1 is no value, 2 is)
    # the GP scored the point of 1 and the trial got 2.
    from tuner_server.tuners.gp import Encoder

    space = parse_search_space({
        "a": {"_type": "quniform", "_value": [1, 10, 2]},
        "b": {"_type": "quniform", "_value": [0.15, 0.95, 0.1]},
        "c": {"_type": "qloguniform", "_value": [0.15, 0.95, 0.1]},
        "d": {"_type": "quniform", "_value": [143.40490155374005, 166.2202119229652, 3.222582057387417]},
    })
    enc = Encoder(space, "GPTuner")
    U = np.vstack([np.zeros(4), np.ones(4), np.random.default_rng(0).random((200, 4))])
    X, raws = enc.snap(U)
    for i in range(len(U)):
        flat = enc.flat_at(raws, i)
        # Equal up to quantize's tidying of k*q (at most 1e-6 q; a half-step is q/2).
        assert np.allclose(enc.encode([flat])[0], X[i], rtol=0, atol=1e-5), (U[i], flat, X[i])
