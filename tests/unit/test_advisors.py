"""Advisors' decisions on hand-made histories: bracket sizes and budgets, rung promotions,
waiting, resume targets, BOHB's per-budget filing and BOSS's sub-sampling rule."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tuner_server.advisors import advisor_names, create_advisor
from tuner_server.advisors.base import Advisor, Proposal, runs_of
from tuner_server.advisors.boss import sub_sampling_select
from tuner_server.advisors.hyperband import hyperband_plan
from tuner_server.advisors.successive_halving import rung_count
from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.tuners.base import NoMoreTrials, TryLater, TunerArgsError

SPACE = parse_search_space({"x": {"_type": "uniform", "_value": [0, 1]}, "c": {"_type": "choice", "_value": ["a", "b"]}})


def add(history: list[TrialRecord], p: Proposal) -> TrialRecord:
    t = TrialRecord(len(history), f"t-{len(history)}", p.parameters, budget=p.budget, info=p.info)
    history.append(t)
    return t


def finish(t: TrialRecord, value: float | None, state: TrialState = TrialState.SUCCEEDED) -> None:
    t.state, t.value = state, value


def x_value(t: TrialRecord) -> float:
    """A result that is better for larger x and grows with the budget."""
    return float(t.parameters["x"]) + 0.01 * (t.budget or 0)


def drive(a: Advisor, n: int, finish_every: int | None = None) -> list[TrialRecord]:
    """Ask n times; on TryLater finish every pending trial (or every ``finish_every`` asks)."""
    h: list[TrialRecord] = []
    asks = 0
    while len(h) < n:
        asks += 1
        try:
            add(h, a.propose(h, np.random.default_rng(len(h))))
        except TryLater:
            for t in h:
                if not t.state.ended:
                    finish(t, x_value(t))
            continue
        except NoMoreTrials:
            break
        if finish_every and asks % finish_every == 0:
            for t in h:
                if not t.state.ended:
                    finish(t, x_value(t))
    return h


def test_registry_names_and_crd_enum():
    assert advisor_names() == ["ASHA", "BOHB", "BOSS", "Hyperband", "SuccessiveHalving"]
    root = Path(__file__).resolve().parents[2]
    crd = yaml.safe_load((root / "crds" / "autotuneexperiments.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert sorted(spec["advisor"]["properties"]["builtinAdvisorName"]["enum"]) == advisor_names()


def test_hyperband_bracket_sizes_and_budgets_R81_eta3():
    # Li et al. (2018), Table 1: R = 81, eta = 3.
    assert rung_count(1, 81, 3) == 4
    assert hyperband_plan(81, 3, 4, 4).sizes == (81, 27, 9, 3, 1)
    assert hyperband_plan(81, 3, 4, 4).budgets == (1, 3, 9, 27, 81)
    assert hyperband_plan(81, 3, 3, 4).sizes == (34, 11, 3, 1)
    assert hyperband_plan(81, 3, 3, 4).budgets == (3, 9, 27, 81)
    assert hyperband_plan(81, 3, 2, 4).sizes == (15, 5, 1)
    assert hyperband_plan(81, 3, 1, 4).sizes == (8, 2)
    assert hyperband_plan(81, 3, 0, 4) .sizes == (5,)
    assert hyperband_plan(81, 3, 0, 4).budgets == (81,)


def test_hyperband_issues_every_bracket_then_stops_at_max_brackets():
    a = create_advisor("Hyperband", SPACE, {"R": 9, "eta": 3, "max_brackets": 3, "exec_mode": "serial"})
    h = drive(a, 1000)
    per = Counter((t.info["bracket"], t.info["rung"], t.budget) for t in h)
    # s_max = 2: bracket 0 (s=2) 9@1, 3@3, 1@9; bracket 1 (s=1) 5@3 -> 1@9; bracket 2 (s=0) 3@9
    assert per == {(0, 0, 1): 9, (0, 1, 3): 3, (0, 2, 9): 1, (1, 0, 3): 5, (1, 1, 9): 1, (2, 0, 9): 3}
    with pytest.raises(NoMoreTrials):
        a.propose(h, np.random.default_rng(0))


def test_successive_halving_promotes_the_top_third_after_the_rung_ends_and_resumes():
    a = create_advisor("SuccessiveHalving", SPACE, {"min_budget": 1, "max_budget": 9, "eta": 3, "exec_mode": "serial"})
    h: list[TrialRecord] = []
    for _ in range(9):
        add(h, a.propose(h, np.random.default_rng(len(h))))
    assert [t.budget for t in h] == [1] * 9
    for t in h[:8]:
        finish(t, x_value(t))
    with pytest.raises(TryLater):  # synchronous: rung 0 has a running trial
        a.propose(h, np.random.default_rng(9))
    finish(h[8], None, TrialState.FAILED)  # a failed trial is never promoted
    best3 = sorted(h[:8], key=lambda t: -t.parameters["x"])[:3]
    ups = [add(h, a.propose(h, np.random.default_rng(len(h)))) for _ in range(3)]
    assert [u.info["config"] for u in ups] == [b.sequence for b in best3]
    assert all(u.budget == 3 and u.parameters == b.parameters for u, b in zip(ups, best3))
    assert [u.info["resume"] for u in ups] == [b.trial_id for b in best3]  # continues from rung 0's checkpoint


def test_parallelism_starts_the_next_bracket_while_one_waits():
    a = create_advisor("SuccessiveHalving", SPACE, {"max_budget": 3, "eta": 3})
    h: list[TrialRecord] = []
    for _ in range(4):
        add(h, a.propose(h, np.random.default_rng(len(h))))
    assert [t.info["bracket"] for t in h] == [0, 0, 0, 1]
    s = create_advisor("SuccessiveHalving", SPACE, {"max_budget": 3, "eta": 3, "exec_mode": "serial"})
    h2: list[TrialRecord] = []
    for _ in range(3):
        add(h2, s.propose(h2, np.random.default_rng(len(h2))))
    with pytest.raises(TryLater):
        s.propose(h2, np.random.default_rng(3))


def test_asha_promotes_asynchronously_and_never_waits():
    a = create_advisor("ASHA", SPACE, {"min_budget": 1, "max_budget": 9, "eta": 3})
    h: list[TrialRecord] = []
    for _ in range(3):
        add(h, a.propose(h, np.random.default_rng(len(h))))
    finish(h[0], 0.5)
    finish(h[1], 0.9)
    # 2 results at rung 0: floor(2/3) = 0 may go up; h[2] still runs -> a new config, no waiting
    p = a.propose(h, np.random.default_rng(3))
    assert p.budget == 1 and p.info["rung"] == 0
    add(h, p)
    finish(h[3], 0.1)
    p = a.propose(h, np.random.default_rng(4))  # 3 results: the best (h[1]) goes to rung 1
    assert (p.info["config"], p.info["rung"], p.budget, p.info["resume"]) == (1, 1, 3, h[1].trial_id)
    add(h, p)
    assert a.propose(h, np.random.default_rng(5)).info["rung"] == 0  # promoted once only


def test_asha_keeps_every_rung_at_most_a_third_of_the_one_below():
    a = create_advisor("ASHA", SPACE, {"min_budget": 1, "max_budget": 27, "eta": 3})
    h = drive(a, 200, finish_every=2)
    rung = Counter(t.info["rung"] for t in h)
    # promotions follow the top 1/eta of a growing rung, so a rung ends a bit above 1/eta
    assert rung[1] <= rung[0] / 2 and rung[2] <= rung[1] / 2 and rung[3] >= 1
    assert {t.budget for t in h} == {1, 3, 9, 27}


def test_bohb_files_results_under_their_budget_and_models_the_largest_one_with_enough():
    a = create_advisor("BOHB", SPACE, {"min_budget": 1, "max_budget": 9, "eta": 3, "min_points_in_model": 2})
    h = drive(a, 40, finish_every=4)
    by = a.results_by_budget(h)
    assert set(by) == {b for b in {1, 3, 9} if any(t.budget == b and t.state.ended for t in h)}
    for b, (x, losses) in by.items():
        assert len(losses) == sum(1 for t in h if t.budget == b and t.state.ended and t.value is not None)
    enough = [b for b, (_, ls) in by.items() if len(ls) >= 4]
    assert a.model_budget(h) == max(enough)
    # promotions resume from the config's run one rung down; new configs start fresh
    assert a.promotion == "resume"
    runs = runs_of(h)
    assert any(r.rung > 0 for r in runs)
    for r in runs:
        below = [u.trial.trial_id for u in runs if u.config == r.config and u.rung == r.rung - 1]
        assert r.trial.info["resume"] == (below[0] if r.rung else None)


def test_bohb_restart_promotions_get_no_checkpoint():
    a = create_advisor("BOHB", SPACE, {"min_budget": 1, "max_budget": 9, "eta": 3, "promotion": "restart"})
    h = drive(a, 40, finish_every=4)
    assert any(t.info["rung"] > 0 for t in h) and all(t.info["resume"] is None for t in h)


def test_bohb_model_proposes_near_the_good_region():
    space = parse_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    a = create_advisor("BOHB", space, {"min_budget": 1, "max_budget": 1, "random_fraction": 0.0, "min_points_in_model": 3})
    h: list[TrialRecord] = []
    for i, x in enumerate(np.linspace(0, 1, 20)):
        t = TrialRecord(i, f"t{i}", {"x": float(x)}, state=TrialState.SUCCEEDED, value=-abs(float(x) - 0.8), budget=1,
                        info={"bracket": 0, "rung": 0, "config": None, "resume": None})
        h.append(t)
    xs = [a.new_config(h, np.random.default_rng(s), 1)["x"] for s in range(10)]
    assert abs(float(np.median(xs)) - 0.8) < 0.15


def test_bohb_encodes_normal_types_through_the_cdf():
    space = parse_search_space({"m": {"_type": "normal", "_value": [10, 2]}, "l": {"_type": "lognormal", "_value": [0, 1]}})
    a = create_advisor("BOHB", space, {})
    enc = a.encoder
    u = enc.encode({"m": 10.0, "l": 1.0})
    assert np.allclose(u, [0.5, 0.5])
    back = enc.decode(np.array([0.841344746, 0.5]))
    assert abs(back["m"] - 12.0) < 1e-3 and abs(back["l"] - 1.0) < 1e-6


def test_boss_sub_sampling_brings_back_a_close_challenger():
    # Bracket: configs 0..3 at rung 0; 0 and 1 went to rung 1. At rung 1 config 1 leads.
    def run(seq: int, cfg: int, rung: int, value: float) -> TrialRecord:
        return TrialRecord(seq, f"t{seq}", {"x": cfg / 10}, state=TrialState.SUCCEEDED, value=value, budget=3**rung,
                           info={"bracket": 0, "rung": rung, "config": cfg, "resume": None})

    h = [run(0, 0, 0, 0.50), run(1, 1, 0, 0.60), run(2, 2, 0, 0.58), run(3, 3, 0, 0.10),
         run(4, 0, 1, 0.55), run(5, 1, 1, 0.70)]
    loss = {r.trial.sequence: -r.trial.value for r in runs_of(h)}
    chosen = sub_sampling_select(runs_of(h), 1, 2, lambda r: loss[r.trial.sequence])
    # leader 1; challengers by gap to the leader where both were measured:
    # config 2 at rung 0: 0.60-0.58 = 0.02; config 0 at rung 1: 0.70-0.55 = 0.15 -> 2 comes back
    assert chosen == [1, 2]


def test_boss_promotes_a_dropped_config_from_its_own_checkpoint():
    a = create_advisor("BOSS", SPACE, {"R": 9, "eta": 3, "exec_mode": "serial", "random_fraction": 1.0})
    h = drive(a, 13)
    assert Counter(t.budget for t in h) == {1: 9, 3: 3, 9: 1}
    for t in h:
        if t.info["rung"] > 0:
            prev = [p for p in h if p.info["rung"] < t.info["rung"] and (p.info["config"] or p.sequence) == t.info["config"]]
            assert t.info["resume"] == max(prev, key=lambda p: p.info["rung"]).trial_id


@pytest.mark.parametrize(
    "name,args,msg",
    [
        ("Hyperband", {"R": 0}, "classArgs.R must be >= 1"),
        ("Hyperband", {"eta": 1}, "classArgs.eta must be >= 2"),
        ("Hyperband", {"exec_mode": "fast"}, "classArgs.exec_mode must be one of"),
        ("BOHB", {"min_budget": 9, "max_budget": 3}, "max_budget (3) must be >= classArgs.min_budget (9)"),
        ("ASHA", {"promotion": "copy"}, "classArgs.promotion must be one of"),
        ("BOSS", {"num_samples": 0}, "classArgs.num_samples must be >= 1"),
        ("SuccessiveHalving", {"rungs": 3}, "does not know classArgs ['rungs']"),
        # Absurd numbers are refused, not turned into a 309-digit budget or a one-rung search.
        ("Hyperband", {"R": 1e308}, "classArgs.R must be >= 1 and <= 1e+09"),
        ("BOSS", {"eta": float("inf")}, "classArgs.eta must be >= 2 and <= 1e+09"),
        ("ASHA", {"max_budget": 1e300}, "classArgs.max_budget must be >= 1 and <= 1e+09"),
        ("BOHB", {"min_budget": float("nan")}, "classArgs.min_budget must be >= 1"),
        # Budgets are whole epochs (EPOCHS is an integer): 3.9 trained 4 epochs, silently.
        ("BOHB", {"max_budget": 3.9}, "BOHB classArgs.max_budget must be a whole number of epochs"),
        ("BOHB", {"min_budget": 1.5, "max_budget": 9}, "BOHB classArgs.min_budget must be a whole number of epochs"),
        ("SuccessiveHalving", {"max_budget": 80.5}, "classArgs.max_budget must be a whole number of epochs"),
        ("ASHA", {"min_budget": 2.5}, "ASHA classArgs.min_budget must be a whole number of epochs"),
        ("Hyperband", {"R": 60.5}, "Hyperband classArgs.R must be a whole number of epochs"),
        ("BOSS", {"R": 8.9}, "BOSS classArgs.R must be a whole number of epochs"),
    ],
)
def test_bad_class_args_name_the_argument(name: str, args: dict[str, Any], msg: str):
    with pytest.raises(TunerArgsError, match=re.escape(msg)):
        create_advisor(name, SPACE, args)


def test_whole_budgets_written_as_floats_are_taken():
    # YAML/JSON may give 27.0 for 27: the same budgets as the integer.
    assert create_advisor("BOHB", SPACE, {"max_budget": 27.0}).all_budgets == create_advisor("BOHB", SPACE, {"max_budget": 27}).all_budgets
    assert create_advisor("Hyperband", SPACE, {"R": 9.0}).max_budget == 9


def test_minimize_ranks_low_values_first():
    a = create_advisor("SuccessiveHalving", SPACE, {"max_budget": 3, "eta": 3, "optimize_mode": "minimize", "exec_mode": "serial"})
    assert a.mode is OptimizeMode.MINIMIZE
    h: list[TrialRecord] = []
    for v in (0.3, 0.1, 0.2):
        finish(add(h, a.propose(h, np.random.default_rng(len(h)))), v)
    assert a.propose(h, np.random.default_rng(3)).info["config"] == 1


def test_bohb_model_never_repeats_a_configuration_of_a_small_grid():
    space = parse_search_space({"a": {"_type": "randint", "_value": [0, 4]}, "b": {"_type": "choice", "_value": ["x", "y"]}})
    a = create_advisor("BOHB", space, {"min_budget": 1, "max_budget": 1, "random_fraction": 0.0, "min_points_in_model": 1})
    h: list[TrialRecord] = []
    for i in range(8):  # the whole grid, once each
        p = a.propose(h, np.random.default_rng(i))
        finish(add(h, p), float(p.parameters["a"]))
    assert len({(t.parameters["a"], t.parameters["b"]) for t in h}) == 8


@pytest.mark.parametrize("name", ["BOHB", "BOSS"])
@pytest.mark.parametrize("base", [2**63 - 100, -(2**63)])
def test_a_randint_near_the_int64_ends_is_modelled_as_one_near_zero(name, base):
    # The KDE encoded a randint's values as floats, 2048 apart near +-2**63: every trial of
    # [2**63 - 100, 2**63 - 1) encoded to one point and every model proposal decoded to
    # 2**63 - 2. Counted from the lower bound it proposes as in [0, 99).
    def run(lo: int) -> list[int]:
        space = parse_search_space({"r": {"_type": "randint", "_value": [lo, lo + 99]},
                                    "u": {"_type": "uniform", "_value": [0, 1]}})
        args = {"min_budget": 1, "max_budget": 1, "random_fraction": 0.0, "min_points_in_model": 3}
        if name == "BOSS":
            args = {"R": 1, "eta": 3, "random_fraction": 0.0, "min_points_in_model": 3}
        a = create_advisor(name, space, args, 0)
        h: list[TrialRecord] = []
        for i in range(15):
            t = add(h, a.propose(h, np.random.default_rng([5, i])))
            finish(t, abs(t.parameters["r"] - lo - 60) + t.parameters["u"])
        return [t.parameters["r"] - lo for t in h]

    assert run(base) == run(0)
