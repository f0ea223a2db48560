"""GridSearch walks a nested choice's sub-space lazily too (5f89fea made top-level randint and
q-uniform values lazy, but a nested choice's options were still listed whole on each suggest:
a randint [0, 2**31) under one was a MemoryError, the tuner server's memory)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import create_tuner

from tests.unit.work_caps import capped_yields


def suggestions(space: dict[str, Any], n: int) -> list[dict[str, Any]]:
    t = create_tuner("GridSearch", parse_search_space(space), {})
    hist: list[TrialRecord] = []
    for i in range(n):
        hist.append(TrialRecord(i, f"t{i}", t.suggest(hist, np.random.default_rng(i)), TrialState.SUCCEEDED, 1.0))
    return [h.parameters for h in hist]


def test_a_huge_randint_under_a_nested_choice_is_walked_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuner_server.tuners.gridsearch as gs

    monkeypatch.setattr(gs.GridSearchTuner, "_configs", capped_yields(
        gs.GridSearchTuner._configs, "walked over 100,000 configurations to make 4 suggestions"))
    space = {"c": {"_type": "choice", "_value": ["x", "y"]},
             "m": {"_type": "choice", "_value": [{"_name": "a", "seed": {"_type": "randint", "_value": [0, 2**31]}}, "b"]}}
    assert suggestions(space, 4) == [{"c": "x", "m": {"_name": "a", "seed": s}} for s in range(4)]


def test_the_grid_order_of_nested_choices_is_unchanged() -> None:
    space = {"opt": {"_type": "choice", "_value": [
                 {"_name": "sgd", "lr": {"_type": "choice", "_value": [0.1, 0.01]}, "m": {"_type": "randint", "_value": [0, 2]}},
                 "adam"]},
             "bs": {"_type": "choice", "_value": [16, 32]}}
    assert suggestions(space, 10) == [
        {"opt": {"_name": "sgd", "lr": lr, "m": m}, "bs": bs} for lr in (0.1, 0.01) for m in (0, 1) for bs in (16, 32)
    ] + [{"opt": "adam", "bs": 16}, {"opt": "adam", "bs": 32}]
