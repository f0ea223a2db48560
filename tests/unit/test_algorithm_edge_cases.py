"""Edge cases found by fuzzing the algorithms: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import Dimension, parse_search_space
from tuner_server.tuners import NoMoreTrials, create_tuner

from tests.unit.work_caps import capped_calls, capped_yields


def record(i: int, params, value: float | None = 1.0, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t{i}", params, state, value)


def test_grid_of_a_qnormal_with_a_coarse_q_ends_without_evaluating_millions_of_points(monkeypatch):
    # qnormal [5, 3, 100] rounds everything within 16 sigma to 0: one value. Once it was
    # tried, the grid bisected the CDF down to 2^-24 (tens of millions of inverse-CDF
    # evaluations, over a minute holding the experiment's lock) to learn nothing new.
    monkeypatch.setattr(Dimension, "quantize", capped_calls(
        Dimension.quantize, "the grid evaluated over 100,000 points of a one-value dimension"))
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


SMALL = {"lr": {"_type": "choice", "_value": [0.1, 0.01, 0.001, 0.0001]}}  # 4 configs


@pytest.mark.parametrize("name,args", [
    ("ASHA", {"optimize_mode": "maximize"}),  # floor(4 / 3) = 1 promoted from rung 0, 0 from rung 1
    ("SuccessiveHalving", {"optimize_mode": "maximize"}),  # rung 0 wants 81 configs
    ("Hyperband", {"optimize_mode": "maximize", "R": 27}),
    ("BOHB", {"optimize_mode": "maximize", "max_budget": 27}),
    ("BOSS", {"optimize_mode": "maximize", "R": 27}),
])
def test_bracket_advisor_on_a_space_smaller_than_its_first_rung_promotes_the_best(name, args):
    # With every config of a small space started, the bracket asked for a new one, the
    # space was used up and the advisor said NoMoreTrials: the operator takes that as
    # final, so nothing was ever promoted and the experiment ended DONE with only
    # min-budget results. The first rung now closes with the configs it has.
    from tuner_server.advisors import create_advisor
    from tuner_server.tuners import TryLater

    a = create_advisor(name, parse_search_space(SMALL), args, 0)
    hist: list[TrialRecord] = []

    def ask() -> None:
        p = a.propose(hist, np.random.default_rng(len(hist)))
        hist.append(TrialRecord(len(hist), f"t{len(hist)}", p.parameters, budget=p.budget, info=p.info))

    for _ in range(4):
        ask()  # all four running at once
    with pytest.raises(TryLater):  # not NoMoreTrials: promotions are still to come
        ask()
    for _ in range(40):
        for t in hist:
            if not t.state.ended:
                t.state, t.value = TrialState.SUCCEEDED, -abs(t.parameters["lr"] - 0.01) + 0.001 * (t.budget or 0)
        try:
            ask()
        except TryLater:
            continue
        except NoMoreTrials:
            break
    else:
        pytest.fail("never ended")
    top = max(t.budget or 0 for t in hist)
    assert top == a.max_budget
    assert {t.parameters["lr"] for t in hist if t.budget == top} == {0.01}


def test_pbt_fills_its_first_generation_on_a_space_smaller_than_the_population():
    # Members of a generation are separate models with their own checkpoints, so two may
    # share hyperparameters. Generation 0 drew without repeats and, once a 2-config space
    # was used up, said NoMoreTrials: the operator ended the experiment after 2 trials,
    # before any generation was trained further.
    sp = parse_search_space({"opt": {"_type": "choice", "_value": ["adam", "sgd"]}})
    t = create_tuner("PBTTuner", sp, {"optimize_mode": "maximize", "population_size": 4, "all_checkpoint_dir": "/ckpt"})
    hist: list[TrialRecord] = []
    for i in range(4):
        hist.append(record(i, t.suggest(hist, np.random.default_rng(i)), value=float(i)))
    assert {h.parameters["opt"] for h in hist} == {"adam", "sgd"}  # no repeat while new ones exist
    assert [h.parameters["save_checkpoint_dir"] for h in hist] == [f"/ckpt/{m}/0" for m in range(4)]
    nxt = t.suggest(hist, np.random.default_rng(4))  # generation 1, member 0
    assert nxt["load_checkpoint_dir"] in {f"/ckpt/{m}/0" for m in range(4)} and nxt["save_checkpoint_dir"] == "/ckpt/0/1"


@pytest.mark.parametrize("options", [[1, 1.0], [{"lr": 1, "bs": 8}, {"bs": 8, "lr": 1.0}]])
def test_choice_listing_one_json_value_twice_is_refused(options):
    # 1 and 1.0 are one value once the spec has been through JSON (the apiserver writes 1.0
    # as 1), and tuners' repeat detection treats them so: with both listed, the space
    # counted 2 configurations but only 1 could ever be new, so Random never reached
    # NoMoreTrials and handed out the same value forever (GridSearch gave one trial).
    from tuner_server.searchspace import SearchSpaceError

    with pytest.raises(SearchSpaceError, match="listed twice"):
        parse_search_space({"a": {"_type": "choice", "_value": options}})


def test_choice_of_true_and_1_and_string_1_stays_three_options():
    sp = parse_search_space({"a": {"_type": "choice", "_value": [1, True, "1", 1.5]}})
    assert sp.cardinality() == 4


def test_quniform_with_a_q_below_1e_15_keeps_its_values():
    # Tidying k*q rounded to at most 15 decimals, so every multiple of q = 1e-20 became
    # 0.0: the space counted one configuration and every trial got 0.
    d = parse_search_space({"a": {"_type": "quniform", "_value": [0, 1e-18, 1e-20]}}).dims[0]
    assert d.cardinality() == 101
    rng = np.random.default_rng(0)
    vals = [d.sample(rng) for _ in range(20)]
    assert len(set(vals)) > 10 and all(0 <= v <= 1e-18 for v in vals)
    assert all(abs(v / 1e-20 - round(v / 1e-20)) < 1e-6 for v in vals)


def test_cardinality_of_a_quniform_with_many_steps_is_counted_not_listed(monkeypatch):
    # cardinality() listed every multiple of q: quniform [0, 1e7, 1] took 25 s and 665 MB,
    # on every Random suggest (it checks for exhaustion) and in the operator's validation;
    # [0, 1e12, 1] never finished.
    import tuner_server.searchspace as ss

    monkeypatch.setattr(ss, "_tidy", capped_calls(ss._tidy, "listed over 100,000 values to count them"))
    big = parse_search_space({"a": {"_type": "quniform", "_value": [0, 1e12, 1]},
                              "b": {"_type": "qloguniform", "_value": [1, 1e9, 1]},
                              "c": {"_type": "quniform", "_value": [0.5, 1e6 + 0.5, 0.25]}})
    assert [d.cardinality() for d in big.dims] == [10**12 + 1, 10**9, 4 * 10**6 + 1]
    # small ones are still listed exactly (clipped ends included)
    assert parse_search_space({"a": {"_type": "quniform", "_value": [2, 10, 5]}}).cardinality() == 3
    assert parse_search_space({"a": {"_type": "quniform", "_value": [0, 10, 4]}}).cardinality() == 3
    t = create_tuner("Random", big, {})
    assert set(t.suggest([], np.random.default_rng(0))) == {"a", "b", "c"}


def test_grid_over_a_huge_randint_or_quniform_walks_it_lazily(monkeypatch):
    # The grid listed every value of every dimension on each suggest: a seed's randint
    # [0, 2**31) was a list of two billion ints (the tuner server ran out of memory), and
    # quniform [0, 1e7, 1] took 25 s per suggest.
    import tuner_server.searchspace as ss
    import tuner_server.tuners.gridsearch as gs

    def guarded_list(it=()):
        if hasattr(it, "__len__") and len(it) > 1_000_000:
            raise AssertionError(f"listing {len(it)} values")
        return list(it)

    monkeypatch.setattr(gs, "list", guarded_list, raising=False)  # the module's list() calls
    monkeypatch.setattr(ss, "_tidy", capped_calls(ss._tidy, "listed over 100,000 multiples of q"))
    sp = parse_search_space({"c": {"_type": "choice", "_value": ["a", "b"]},
                             "seed": {"_type": "randint", "_value": [0, 2**31]},
                             "n": {"_type": "quniform", "_value": [0, 1e7, 1]}})
    t = create_tuner("GridSearch", sp, {})
    hist: list[TrialRecord] = []
    for i in range(4):
        hist.append(record(i, t.suggest(hist, np.random.default_rng(i))))
    assert [(h.parameters["c"], h.parameters["seed"], h.parameters["n"]) for h in hist] == [
        ("a", 0, 0), ("a", 0, 1), ("a", 0, 2), ("a", 0, 3)]


def test_grid_over_an_input_choice_with_billions_of_subsets_walks_it_lazily(monkeypatch):
    import tuner_server.tuners.gridsearch as gs

    monkeypatch.setattr(gs.itertools, "combinations", capped_yields(gs.itertools.combinations, "listed over 100,000 subsets"))
    sp = parse_search_space({"x": {"_type": "input_choice", "_value": {"candidates": [f"c{i}" for i in range(40)], "n_chosen": 20}}})
    t = create_tuner("GridSearch", sp, {})
    first = t.suggest([], np.random.default_rng(0))
    assert first == {"x": [f"c{i}" for i in range(20)]}


@pytest.mark.parametrize("name", ["Random", "PBTTuner"])
def test_random_draws_never_repeat_before_a_finite_space_is_used_up(name):
    # After 200 draws that all hit tried configurations, sample_new returned a repeat: near
    # the end of a 2,000-config space Random ran 26 duplicate trials before NoMoreTrials.
    from tuner_server.tuners.base import param_key

    sp = parse_search_space({"a": {"_type": "randint", "_value": [0, 300]}, "b": {"_type": "choice", "_value": ["x", "y"]}})
    t = create_tuner(name, sp, {"population_size": 700, "all_checkpoint_dir": "/c"} if name == "PBTTuner" else {})
    hist: list[TrialRecord] = []
    for i in range(600):
        p = t.suggest(hist, np.random.default_rng(i))
        hist.append(record(i, {k: v for k, v in p.items() if k in ("a", "b")}))
    assert len({param_key(h.parameters) for h in hist}) == 600


def test_bohb_decodes_the_ends_of_a_loguniform_inside_its_bounds():
    # exp(log(0.1)) is 0.10000000000000006: a candidate at the edge of the box (where the
    # truncated draws give up) became a value above the declared high, which the trial
    # received and a warm start from this experiment then skipped as out of range.
    from tuner_server.advisors.kde import Encoder

    sp = parse_search_space({"a": {"_type": "loguniform", "_value": [1e-4, 0.1]},
                             "b": {"_type": "qloguniform", "_value": [0.003, 0.7, 0.001]}})
    enc = Encoder(sp, "BOHB")
    for d in sp.dims:
        for u in (0.0, 1.0):
            assert d.low <= enc._dec(d, u) <= d.high


def test_ppo_takes_an_input_choice_subset_listed_in_another_order():
    # A warm-start trial (or one converted from NNI) may list the chosen inputs in another
    # order: the warm start accepts it (same subset), but PPO looked the list up as it was
    # and raised ValueError on every suggest, failing the experiment.
    sp = parse_search_space({"op": {"_type": "choice", "_value": ["conv", "pool"]},
                             "in": {"_type": "input_choice", "_value": {"candidates": ["a", "b", "c"], "n_chosen": 2}}})
    t = create_tuner("PPOTuner", sp, {"optimize_mode": "maximize", "trials_per_update": 2, "minibatch_size": 1}, 0)
    hist = [record(0, {"op": "conv", "in": ["c", "a"]}, 1.0), record(1, {"op": "pool", "in": ["b", "a"]}, 0.0)]
    p = t.suggest(hist, np.random.default_rng(0))
    assert p["op"] in ("conv", "pool") and len(p["in"]) == 2
    assert {(p["op"], tuple(p["in"]))} - {("conv", ("a", "c")), ("pool", ("a", "b"))}  # not a repeat of either
