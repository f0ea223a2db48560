"""GridSearch, Batch and Random: exhaustiveness, order, restarts and argument checking."""

from __future__ import annotations

import numpy as np
import pytest

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner


def record(i: int, params, value: float | None = 1.0, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t{i}", params, state, value)


def drive(tuner, n: int, history=None, seed: int = 0):
    """Ask for up to n suggestions (stopping at NoMoreTrials); returns (history, ended)."""
    hist = list(history or [])
    for _ in range(n):
        try:
            p = tuner.suggest(hist, np.random.default_rng([seed, len(hist)]))
        except NoMoreTrials:
            return hist, True
        hist.append(record(len(hist), p))
    return hist, False


FINITE = {"a": {"_type": "choice", "_value": ["x", "y", "z"]}, "b": {"_type": "randint", "_value": [0, 2]}}


def test_grid_enumerates_finite_grid_once_then_ends():
    t = create_tuner("GridSearch", parse_search_space(FINITE), {})
    hist, ended = drive(t, 50)
    assert ended
    got = sorted((h.parameters["a"], h.parameters["b"]) for h in hist)
    assert got == sorted((a, b) for a in "xyz" for b in (0, 1))


def test_grid_resumes_after_restart_without_repeats():
    sp = parse_search_space(FINITE)
    first, _ = drive(create_tuner("GridSearch", sp, {}), 4)
    # A restarted server builds a new tuner and hands it the stored history.
    rest, ended = drive(create_tuner("GridSearch", sp, {}), 50, history=first)
    assert ended
    keys = [canonical(h.parameters) for h in rest]
    assert len(keys) == 6 == len(set(keys))


def test_grid_bisects_uniform_in_cdf_order():
    t = create_tuner("GridSearch", parse_search_space({"u": {"_type": "uniform", "_value": [0, 8]}}), {})
    hist, ended = drive(t, 7)
    assert not ended
    assert [h.parameters["u"] for h in hist] == [4.0, 2.0, 6.0, 1.0, 3.0, 5.0, 7.0]


def test_grid_quniform_values_are_the_reachable_ones():
    t = create_tuner("GridSearch", parse_search_space({"q": {"_type": "quniform", "_value": [0, 10, 4]}}), {})
    hist, ended = drive(t, 10)
    assert ended and sorted(h.parameters["q"] for h in hist) == [0, 4, 8]


def test_grid_nested_choice():
    sp = parse_search_space(
        {"m": {"_type": "choice", "_value": [{"_name": "A"}, {"_name": "B", "k": {"_type": "choice", "_value": [1, 2]}}]}}
    )
    hist, ended = drive(create_tuner("GridSearch", sp, {}), 10)
    assert ended
    assert [h.parameters for h in hist] == [
        {"m": {"_name": "A"}}, {"m": {"_name": "B", "k": 1}}, {"m": {"_name": "B", "k": 2}}
    ]


BATCH = {"params": {"_type": "choice", "_value": [{"lr": 0.1, "bs": 8}, {"lr": 0.01, "bs": 16}, {"lr": 0.001, "bs": 32}]}}


def test_batch_hands_out_sets_in_order_then_ends():
    t = create_tuner("Batch", parse_search_space(BATCH), {})
    hist, ended = drive(t, 10)
    assert ended
    assert [h.parameters for h in hist] == [{"lr": 0.1, "bs": 8}, {"lr": 0.01, "bs": 16}, {"lr": 0.001, "bs": 32}]


def test_batch_rejects_two_keys():
    sp = parse_search_space(dict(BATCH, other={"_type": "choice", "_value": [1, 2]}))
    with pytest.raises(TunerArgsError, match="exactly one"):
        create_tuner("Batch", sp, {})


def test_batch_rejects_non_choice():
    with pytest.raises(TunerArgsError, match="uniform"):
        create_tuner("Batch", parse_search_space({"x": {"_type": "uniform", "_value": [0, 1]}}), {})


SMALL = {
    "a": {"_type": "choice", "_value": ["x", "y"]},
    "q": {"_type": "quniform", "_value": [0, 10, 4]},  # {0, 4, 8}
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_never_repeats_and_ends_when_exhausted(seed):
    t = create_tuner("Random", parse_search_space(SMALL), {"seed": seed})
    hist, ended = drive(t, 20, seed=seed)
    assert ended
    keys = [canonical(h.parameters) for h in hist]
    assert len(keys) == 6 == len(set(keys))


def test_random_counts_pending_and_failed_trials_as_tried():
    sp = parse_search_space(SMALL)
    t = create_tuner("Random", sp, {})
    hist = [record(0, {"a": "x", "q": 0}, None, TrialState.RUNNING), record(1, {"a": "x", "q": 4}, None, TrialState.FAILED)]
    hist, ended = drive(t, 20, history=hist)
    assert ended and len({canonical(h.parameters) for h in hist}) == len(hist) == 6


@pytest.mark.parametrize("name", ["Random", "TPE", "Anneal", "GridSearch"])
def test_unknown_class_args_are_named(name):
    with pytest.raises(TunerArgsError, match="frobnicate"):
        create_tuner(name, parse_search_space(SMALL), {"frobnicate": 1})


@pytest.mark.parametrize("name", ["Random", "TPE", "Anneal", "Batch"])
def test_unsupported_types_are_named(name):
    sp = parse_search_space({"ops": {"_type": "layer_choice", "_value": ["conv", "pool"]}})
    with pytest.raises(TunerArgsError) as e:
        create_tuner(name, sp, {})
    assert "layer_choice" in str(e.value)
    if name != "Batch":
        assert "ops" in str(e.value)


def test_unknown_tuner_name_lists_known():
    with pytest.raises(TunerArgsError, match="TPE"):
        create_tuner("Nope", parse_search_space(SMALL), {})


def test_bad_optimize_mode():
    with pytest.raises(TunerArgsError, match="optimize_mode"):
        create_tuner("Random", parse_search_space(SMALL), {"optimize_mode": "up"})


# --------------------------------------------------------------------------- repeat detection


def test_param_key_equal_as_json_values_but_bools_apart():
    from tuner_server.tuners.base import param_key

    assert param_key({"a": 1, "b": "x"}) == param_key({"b": "x", "a": 1.0})  # order and 1 == 1.0
    assert param_key({"a": True}) != param_key({"a": 1})
    assert param_key({"m": {"_name": "svm", "C": 1.5}}) == param_key({"m": {"C": 1.5, "_name": "svm"}})
    assert param_key({"m": {"_name": "svm", "C": 1.5}}) != param_key({"m": {"_name": "svm", "C": 2.5}})
    assert param_key({"l": [1, 2]}) != param_key({"l": [2, 1]})


@pytest.mark.parametrize("name", ["Random", "GridSearch"])
def test_true_and_one_are_different_options(name):
    space = {"c": {"_type": "choice", "_value": [1, True, "1"]}}
    t = create_tuner(name, parse_search_space(space), {})
    hist, ended = drive(t, 10)
    assert ended and len(hist) == 3
    assert sorted(repr(h.parameters["c"]) for h in hist) == ["'1'", "1", "True"]


@pytest.mark.parametrize("name", ["Random", "GridSearch"])
def test_repeats_found_in_fresh_equal_records(name):
    """The server hands new (equal) record objects each call; the key memo must still see repeats."""
    t = create_tuner(name, parse_search_space(FINITE), {})
    hist, _ = drive(t, 3)
    for _ in range(3):
        fresh = [record(h.sequence, dict(h.parameters)) for h in hist]
        hist.append(record(len(hist), t.suggest(fresh, np.random.default_rng(len(hist)))))
    assert len({canonical(h.parameters) for h in hist}) == len(hist) == 6
    # an edited record (same sequence and id, other parameters) is re-keyed, not served from the memo
    edited = [record(0, {"a": "z", "b": 1})] + [record(h.sequence, dict(h.parameters)) for h in hist[1:]]
    assert t.space_exhausted(edited) is (canonical(hist[0].parameters) == canonical({"a": "z", "b": 1}))
