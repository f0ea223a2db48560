"""Search-space semantics (NNI's, exactly) and validation messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tuner_server.searchspace import SearchSpaceError, parse_search_space


def dim(t: str, v):
    return parse_search_space({"p": {"_type": t, "_value": v}})["p"]


def draws(t: str, v, n: int = 4000, seed: int = 7):
    d = dim(t, v)
    rng = np.random.default_rng(seed)
    return [d.sample(rng) for _ in range(n)]


# --------------------------------------------------------------------------- sampling semantics


def test_randint_upper_exclusive_and_integer():
    xs = draws("randint", [3, 7])
    assert set(xs) == {3, 4, 5, 6}
    assert all(type(x) is int for x in xs)
    assert dim("randint", [3, 7]).cardinality() == 4


def test_uniform_within_bounds_and_spread():
    xs = np.array(draws("uniform", [-2, 5]))
    assert xs.min() >= -2 and xs.max() <= 5
    assert abs(xs.mean() - 1.5) < 0.2


@pytest.mark.parametrize(
    "v, expected",
    [
        ([2, 10, 5], {2, 5, 10}),
        ([0, 10, 2.5], {0, 2.5, 5, 7.5, 10}),
        # round(u/4) reaches 2.5 only at u == 10, which rounds half-to-even to 2: no 10.
        ([0, 10, 4], {0, 4, 8}),
    ],
)
def test_quniform_values(v, expected):
    xs = draws("quniform", v, n=6000)
    assert set(xs) == expected
    d = dim("quniform", v)
    assert d.cardinality() == len(expected)


def test_quniform_integer_q_gives_ints():
    assert all(type(x) is int for x in draws("quniform", [2, 10, 5], n=200))
    assert all(isinstance(x, float) for x in draws("quniform", [0, 10, 2.5], n=200))


@pytest.mark.parametrize("t, v", [("loguniform", [1e-4, 1e-1]), ("qloguniform", [1, 1000, 10])])
def test_log_types_within_bounds_and_log_spread(t, v):
    xs = np.array(draws(t, v, n=5000), dtype=float)
    assert xs.min() >= v[0] and xs.max() <= v[1]
    if t == "loguniform":
        # uniform in log space: the median is the geometric mean of the bounds
        assert math.isclose(np.median(xs), math.sqrt(v[0] * v[1]), rel_tol=0.15)
    else:
        assert np.all(np.isclose(xs / 10, np.round(xs / 10)) | (xs == 1))


def test_normal_moments():
    xs = np.array(draws("normal", [3.0, 2.0], n=20000))
    assert abs(xs.mean() - 3.0) < 0.05
    assert abs(xs.std() - 2.0) < 0.05


def test_qnormal_multiples_of_q():
    xs = np.array(draws("qnormal", [10.0, 4.0, 2.5], n=3000))
    assert np.allclose(xs / 2.5, np.round(xs / 2.5))
    assert abs(xs.mean() - 10.0) < 0.3
    ints = draws("qnormal", [0, 5, 2], n=100)
    assert all(type(x) is int and x % 2 == 0 for x in ints)


def test_lognormal_and_qlognormal():
    xs = np.array(draws("lognormal", [0.0, 0.5], n=20000))
    assert xs.min() > 0
    assert abs(np.log(xs).mean()) < 0.02 and abs(np.log(xs).std() - 0.5) < 0.02
    qs = np.array(draws("qlognormal", [2.0, 0.5, 3], n=2000), dtype=float)
    assert np.allclose(qs / 3, np.round(qs / 3)) and qs.min() >= 0


def test_choice_any_json_values():
    sp = parse_search_space({"c": {"_type": "choice", "_value": [1, "a", True, None, 2.5]}})
    rng = np.random.default_rng(1)
    idx = [sp["c"].sample(rng) for _ in range(500)]
    assert set(idx) == {0, 1, 2, 3, 4}  # a flat choice sample is the option index
    xs = [sp.to_parameters({"c": i})["c"] for i in idx]
    assert {json.dumps(x) for x in xs} == {"1", '"a"', "true", "null", "2.5"}


# --------------------------------------------------------------------------- nested choices

NESTED = {
    "layer0": {
        "_type": "choice",
        "_value": [
            {"_name": "Empty"},
            {"_name": "Conv", "kernel_size": {"_type": "choice", "_value": [1, 2, 3, 5]}},
            {"_name": "Max_pool", "pooling_size": {"_type": "choice", "_value": [2, 3, 5]}},
            {"_name": "Avg_pool", "pooling_size": {"_type": "choice", "_value": [2, 3, 5]}},
        ],
    },
    "lr": {"_type": "uniform", "_value": [0.1, 1.0]},
}


def test_nested_choice_parameter_shape():
    sp = parse_search_space(NESTED)
    flat = {"layer0": 1, "layer0/Conv/kernel_size": 1, "lr": 0.5}
    assert sp.to_parameters(flat) == {"layer0": {"_name": "Conv", "kernel_size": 2}, "lr": 0.5}
    assert sp.to_flat({"layer0": {"_name": "Conv", "kernel_size": 2}, "lr": 0.5}) == flat
    assert sp.to_parameters({"layer0": 0, "lr": 0.2}) == {"layer0": {"_name": "Empty"}, "lr": 0.2}
    assert sp.active_keys({"layer0": 2, "layer0/Max_pool/pooling_size": 0, "lr": 0.3}) == [
        "layer0", "layer0/Max_pool/pooling_size", "lr"
    ]


def test_nested_samples_round_trip_and_only_active_children():
    sp = parse_search_space(NESTED)
    rng = np.random.default_rng(3)
    names = set()
    for _ in range(300):
        flat = sp.sample_flat(rng)
        params = sp.to_parameters(flat)
        assert sp.to_flat(params) == flat
        assert sp.to_flat(json.loads(json.dumps(params))) == flat
        layer = params["layer0"]
        names.add(layer["_name"])
        assert set(layer) - {"_name"} == {"Empty": set(), "Conv": {"kernel_size"}}.get(layer["_name"], {"pooling_size"})
    assert names == {"Empty", "Conv", "Max_pool", "Avg_pool"}


def test_cardinality():
    assert parse_search_space(NESTED).cardinality() is None  # lr is continuous
    finite = dict(NESTED, lr={"_type": "randint", "_value": [0, 3]})
    assert parse_search_space(finite).cardinality() == (1 + 4 + 3 + 3) * 3
    assert parse_search_space({"a": {"_type": "quniform", "_value": [2, 10, 5]}, "b": {"_type": "choice", "_value": [1, 2]}}).cardinality() == 6


def test_to_flat_rejects_foreign_values():
    sp = parse_search_space(NESTED)
    with pytest.raises(ValueError):
        sp.to_flat({"layer0": {"_name": "Nope"}, "lr": 0.5})
    with pytest.raises(KeyError):
        sp.to_flat({"layer0": {"_name": "Conv"}, "lr": 0.5})
    assert not sp.contains({"lr": 0.5})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "space, path, words",
    [
        ({"lr": {"_type": "uniform", "_value": [1, 1]}}, "lr", "low < high"),
        ({"lr": {"_type": "quniform", "_value": [5, 1, 1]}}, "lr", "low < high"),
        ({"n": {"_type": "randint", "_value": [4, 2]}}, "n", "lower < upper"),
        ({"lr": {"_type": "loguniform", "_value": [0, 1]}}, "lr", "low > 0"),
        ({"lr": {"_type": "qloguniform", "_value": [-1, 10, 1]}}, "lr", "low > 0"),
        ({"w": {"_type": "normal", "_value": [0, 0]}}, "w", "sigma must be > 0"),
        ({"w": {"_type": "lognormal", "_value": [0, -1]}}, "w", "sigma must be > 0"),
        ({"w": {"_type": "qnormal", "_value": [0, 1, 0]}}, "w", "q must be > 0"),
        ({"w": {"_type": "quniform", "_value": [0, 1, -0.5]}}, "w", "q must be > 0"),
        ({"w": {"_type": "quniform", "_value": [0, 1]}}, "w", "3 numbers"),
        ({"w": {"_type": "uniform", "_value": [0, 1, 2]}}, "w", "2 numbers"),
        ({"w": {"_type": "gaussian", "_value": [0, 1]}}, "w", "unknown _type 'gaussian'"),
        ({"w": {"_type": "uniform", "_value": ["0", 1]}}, "w", "must be a number"),
        ({"w": {"_type": "uniform", "_value": [False, True]}}, "w", "must be a number"),
        ({"w": {"_type": "choice", "_value": []}}, "w", "must not be empty"),
        ({"w": {"_type": "choice", "_value": [1, 2, 1]}}, "w", "listed twice"),
        ({"w": {"_type": "input_choice", "_value": {"candidates": ["a", "b"], "n_chosen": 3}}}, "w", "n_chosen"),
        ({"w": {"_type": "input_choice", "_value": {"candidates": ["a", "b"], "n_chosen": 0}}}, "w", "n_chosen"),
        ({"w": {"_type": "layer_choice", "_value": []}}, "w", "non-empty"),
        (
            {"layer": {"_type": "choice", "_value": [{"_name": "Conv", "k": {"_type": "randint", "_value": [3, 3]}}]}},
            "layer/Conv/k",
            "lower < upper",
        ),
    ],
)
def test_validation_errors_name_the_parameter(space, path, words):
    with pytest.raises(SearchSpaceError) as e:
        parse_search_space(space)
    assert e.value.path == path
    assert f"'{path}'" in str(e.value)
    assert words in str(e.value)


def test_choice_distinguishes_true_from_1():
    # JSON true and 1 are different options (Python's True == 1 must not merge them)
    sp = parse_search_space({"c": {"_type": "choice", "_value": [1, True]}})
    assert sp.to_flat({"c": True}) == {"c": 1}
    assert sp.to_flat({"c": 1}) == {"c": 0}


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"lr": {"_type": "uniform", "_value": [0, 1]', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"lr"', "must be a JSON object"),
        ("{}", "no parameters"),
        ("", "empty"),
    ],
)
def test_bad_documents(text, words):
    with pytest.raises(SearchSpaceError) as e:
        parse_search_space(text)
    assert words in str(e.value)


def test_json_text_accepted():
    sp = parse_search_space('{"lr": {"_type": "loguniform", "_value": [0.001, 0.1]}}')
    assert sp["lr"].type == "loguniform" and sp.top == ("lr",)
