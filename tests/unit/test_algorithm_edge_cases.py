"""Edge cases found by fuzzing the algorithms: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import Dimension, parse_search_space
from tuner_server.tuners import NoMoreTrials, create_tuner


def record(i: int, params, value: float | None = 1.0, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t{i}", params, state, value)


def test_grid_of_a_qnormal_with_a_coarse_q_ends_without_evaluating_millions_of_points(monkeypatch):
    # qnormal [5, 3, 100] rounds everything within 16 sigma to 0: one value. Once it was
    # tried, the grid bisected the CDF down to 2^-24 (tens of millions of inverse-CDF
    # evaluations, over a minute holding the experiment's lock) to learn nothing new.
    calls = {"n": 0}
    quantize = Dimension.quantize

    def counted(self, x):
        calls["n"] += 1
        if calls["n"] > 100_000:
            raise AssertionError("the grid evaluated over 100,000 points of a one-value dimension")
        return quantize(self, x)

    monkeypatch.setattr(Dimension, "quantize", counted)
    sp = parse_search_space({"x": {"_type": "qnormal", "_value": [5, 3, 100]}, "c": {"_type": "choice", "_value": ["a", "b"]}})
    t = create_tuner("GridSearch", sp, {})
    hist: list[TrialRecord] = []
    for i in range(5):
        try:
            hist.append(record(i, t.suggest(hist, np.random.default_rng(i))))
        except NoMoreTrials:
            break
    else:
        pytest.fail("the grid did not end")
    assert sorted((h.parameters["x"], h.parameters["c"]) for h in hist) == [(0, "a"), (0, "b")]
