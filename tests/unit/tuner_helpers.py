"""Shared helpers for the model-based tuner tests (TPE, Anneal)."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import NoMoreTrials, create_tuner

# A shifted 4-D sphere: minimum 0 at (1, 2, 3, 4), off-centre so the prior mean is not optimal.
SPHERE = {f"x{i}": {"_type": "uniform", "_value": [-5, 10]} for i in range(4)}


def sphere(p: Mapping[str, Any]) -> float:
    return sum((p[f"x{i}"] - (i + 1)) ** 2 for i in range(4))


def branin(p: Mapping[str, Any]) -> float:
    x, y = p["x"], p["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


BRANIN = {"x": {"_type": "uniform", "_value": [-5, 10]}, "y": {"_type": "uniform", "_value": [0, 15]}}
BRANIN_MIN = 0.397887

ALL_TYPES = {
    "c": {"_type": "choice", "_value": ["a", 2, True]},
    "ri": {"_type": "randint", "_value": [-2, 3]},
    "u": {"_type": "uniform", "_value": [-1, 1]},
    "qu": {"_type": "quniform", "_value": [2, 10, 5]},
    "lu": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "qlu": {"_type": "qloguniform", "_value": [1, 1000, 10]},
    "n": {"_type": "normal", "_value": [0, 2]},
    "qn": {"_type": "qnormal", "_value": [5, 3, 2]},
    "ln": {"_type": "lognormal", "_value": [0, 1]},
    "qln": {"_type": "qlognormal", "_value": [2, 1, 3]},
}


def all_types_objective(p: Mapping[str, Any]) -> float:
    return (
        (p["c"] == 2) * 1.0
        + (p["ri"] - 1) ** 2
        + p["u"] ** 2
        + abs(p["qu"] - 5)
        + abs(math.log10(p["lu"]) + 2)
        + abs(p["qlu"] - 100) / 100
        + abs(p["n"])
        + abs(p["qn"] - 4) / 4
        + abs(math.log(p["ln"]))
        + abs(p["qln"] - 6) / 6
    )


def check_all_types(p: Mapping[str, Any]) -> None:
    assert p["c"] in ("a", 2, True)
    assert type(p["ri"]) is int and -2 <= p["ri"] <= 2
    assert -1 <= p["u"] <= 1
    assert p["qu"] in (2, 5, 10)
    assert 1e-4 <= p["lu"] <= 1e-1
    assert p["qlu"] == 1 or (1 <= p["qlu"] <= 1000 and p["qlu"] % 10 == 0)
    assert isinstance(p["n"], float)
    assert type(p["qn"]) is int and p["qn"] % 2 == 0
    assert p["ln"] > 0
    assert type(p["qln"]) is int and p["qln"] % 3 == 0 and p["qln"] >= 0


def record(i: int, params, value: float | None, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t{i}", params, state, value)


def optimize(
    tuner_name: str, space: Mapping[str, Any], f: Callable[[Mapping[str, Any]], float], n: int, seed: int,
    class_args: Mapping[str, Any] | None = None,
) -> tuple[float, list[TrialRecord]]:
    """Sequential optimisation; returns the best value and the history."""
    sp = parse_search_space(space)
    tuner = create_tuner(tuner_name, sp, class_args or {"optimize_mode": "minimize"}, seed)
    hist: list[TrialRecord] = []
    for i in range(n):
        try:
            p = tuner.suggest(hist, np.random.default_rng([seed, i]))
        except NoMoreTrials:
            break
        hist.append(record(i, p, f(p)))
    return min(h.value for h in hist), hist


def distinct(hist) -> bool:
    keys = [canonical(h.parameters) for h in hist]
    return len(keys) == len(set(keys))
