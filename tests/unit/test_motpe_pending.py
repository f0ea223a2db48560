"""MOTPE never counts a running trial as good: it has no result to be good with.

Hand-made histories; the split is read from the tuner's own steps (_observations, _columns,
_split), as suggest uses them.
"""

from __future__ import annotations

import numpy as np
import pytest

from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners import create_tuner

MIN2 = (OptimizeMode.MINIMIZE, OptimizeMode.MINIMIZE)
SQUARE = {"x0": {"_type": "uniform", "_value": [0, 1]}, "x1": {"_type": "uniform", "_value": [0, 1]}}
NESTED = {"x": {"_type": "uniform", "_value": [0, 1]},
          "m": {"_type": "choice", "_value": [{"_name": "a", "y": {"_type": "uniform", "_value": [0, 1]}}, {"_name": "b"}]}}


def rec(i: int, params, values, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t{i}", params, state, value=values[0] if values else None, values=values)


def single(t: TrialRecord) -> TrialRecord:
    """The same trial in a single-objective experiment (value only)."""
    return TrialRecord(t.sequence, t.trial_id, t.parameters, t.state, t.value)


def good_rows(tuner, hist, key: str) -> tuple[list[int], int]:
    """The observations (rows) in the good set of ``key``'s estimator, and how many rows hold a result."""
    obs = tuner._observations(hist)
    idx = tuner._columns(obs)[key][0]
    good, _ = tuner._split(idx, obs.losses)
    return [int(i) for i in idx[good]], obs.n_completed


def test_a_large_gamma_does_not_reach_into_running_trials():
    """10 results, 12 running, gamma 0.5: the good share is 11, but only 10 trials have a
    result. Before, the 11th good trial was a running one."""
    sp = parse_search_space(SQUARE)
    rng = np.random.default_rng(0)
    hist = []
    for i in range(22):
        p = sp.to_parameters(sp.sample_flat(rng))
        hist.append(rec(i, p, (p["x0"], 1 - p["x0"] + p["x1"])) if i < 10 else rec(i, p, None, TrialState.RUNNING))
    tuner = create_tuner("MOTPE", sp, {"tpe_args": {"gamma": 0.5}}, 0, objectives=MIN2)
    rows, n_results = good_rows(tuner, hist, "x0")
    assert rows == list(range(10)) and n_results == 10


def nested_history() -> list[TrialRecord]:
    """10 results, all on option b; 3 running trials, the only ones on option a."""
    hist = [rec(i, {"x": i / 10, "m": {"_name": "b"}}, (i / 10, 1 - i / 10)) for i in range(10)]
    hist += [rec(10 + i, {"x": 0.5, "m": {"_name": "a", "y": 0.9 - 0.01 * i}}, None, TrialState.RUNNING) for i in range(3)]
    return hist


@pytest.mark.parametrize("objectives", [MIN2, ()])
def test_an_option_tried_only_by_running_trials_has_no_good_trial(objectives):
    """Before: the child y's good set was a running trial (multi-objective: the split's
    share of 3 observations; single objective: TPE's 'best' liar gave them the best loss)."""
    sp = parse_search_space(NESTED)
    hist = nested_history() if objectives else [single(t) for t in nested_history()]
    args = {} if objectives else {"optimize_mode": "minimize", "tpe_args": {"gamma": 0.5}}
    tuner = create_tuner("MOTPE", sp, args, 0, objectives=objectives)
    for key in ("x", "m", "m/a/y"):
        rows, n_results = good_rows(tuner, hist, key)
        assert all(r < n_results for r in rows), (key, rows)
    assert good_rows(tuner, hist, "m/a/y")[0] == []


def test_single_objective_motpe_is_not_drawn_to_the_running_trials_option():
    """Before, the running trials (option a, no result yet) were ranked with the best result
    and MOTPE proposed option a every time; the results are all on option b."""
    sp = parse_search_space(NESTED)
    hist = [single(t) for t in nested_history()]
    tuner = create_tuner("MOTPE", sp, {"optimize_mode": "minimize", "tpe_args": {"gamma": 0.5, "n_startup_jobs": 5}}, 0)
    picks = [tuner.suggest(hist, np.random.default_rng(k))["m"]["_name"] for k in range(10)]
    assert picks.count("a") <= 2, picks
