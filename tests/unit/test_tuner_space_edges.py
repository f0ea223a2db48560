"""Search-space edge cases driven through the tuners in-process on hand-made histories:
repeats in nested spaces, value types of carried-over parameters, degenerate spaces."""

from __future__ import annotations

import json
import zlib
from typing import Any, Mapping

import numpy as np

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import NoMoreTrials, create_tuner
from tuner_server.tuners.tpe import flat_key

NESTED = {
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "lr": {"_type": "loguniform", "_value": [1e-3, 1e-1]}, "m": {"_type": "uniform", "_value": [0, 1]}},
        {"_name": "adam", "lr": {"_type": "quniform", "_value": [0, 1, 0.25]}},
        {"_name": "none"},
    ]},
    "bs": {"_type": "choice", "_value": [16, 32]},
}


def _score(p: Mapping[str, Any]) -> float:
    """A deterministic objective unrelated to the parameters' structure (PYTHONHASHSEED-proof)."""
    return float(zlib.crc32(canonical(p).encode()) % 97)


def _run(tuner: str, space: Mapping[str, Any], n: int, history: list[TrialRecord] | None = None,
         class_args: Mapping[str, Any] | None = None) -> list[TrialRecord]:
    t = create_tuner(tuner, parse_search_space(space), class_args or {}, 0)
    hist = list(history or [])
    for i in range(n):
        try:
            p = t.suggest(hist, np.random.default_rng([0, i]))
        except NoMoreTrials:
            break
        json.dumps(p, allow_nan=False)  # what the server sends
        hist.append(TrialRecord(len(hist), f"t{i}", p, TrialState.SUCCEEDED, _score(p)))
    return hist


def test_flat_key_ignores_key_order() -> None:
    assert flat_key({"opt": 1, "opt/adam/lr": 0.25, "bs": 1}) == flat_key({"opt": 1, "bs": 1, "opt/adam/lr": 0.25})


def test_tpe_never_repeats_a_nested_configuration() -> None:
    # The joint (multivariate) model proposed {opt, bs, opt/adam/lr} in that order; the
    # history's keys are parents first ({opt, opt/adam/lr, bs}), so an order-sensitive key
    # missed the repeat and trial 20 repeated an earlier 'adam' configuration.
    hist = _run("TPE", NESTED, 40)
    keys = [canonical(h.parameters) for h in hist]
    assert len(hist) == 40
    assert len(set(keys)) == len(keys), [k for k in keys if keys.count(k) > 1]

