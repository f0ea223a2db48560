"""Assessors on hand-made histories: each rule decides as documented."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tuner_server.assessors import AssessorArgsError, assessor_names, create_assessor
from tuner_server.assessors.curvefitting import predict_final
from tuner_server.history import OptimizeMode, TrialRecord, TrialState

S, R = TrialState.SUCCEEDED, TrialState.RUNNING


def rec(i: int, curve, state=S, value=None) -> TrialRecord:
    curve = list(curve)
    if value is None and state is S and curve:
        value = curve[-1]
    return TrialRecord(i, f"t{i}", {}, state=state, value=value, intermediate=curve)


def test_registry_knows_the_four_and_rejects_unknown() -> None:
    assert assessor_names() == ["Bandit", "Curvefitting", "Medianstop", "TruncationSelection"]
    with pytest.raises(AssessorArgsError, match="unknown builtinAssessorName"):
        create_assessor("NoSuchAssessor", {})


# --- Medianstop ---


def test_medianstop_waits_for_start_step_then_applies_the_median_rule() -> None:
    a = create_assessor("Medianstop", {"start_step": 3})
    done = [rec(1, [0.5, 0.6, 0.7]), rec(2, [0.6, 0.7, 0.8]), rec(3, [0.7, 0.8, 0.9])]
    # running averages at step 3: 0.6, 0.7, 0.8 -> median 0.7
    bad = rec(9, [0.1, 0.2], R)
    assert not a.should_stop(bad, done + [bad])  # before start_step
    bad.intermediate.append(0.3)
    assert a.should_stop(bad, done + [bad])
    good = rec(10, [0.1, 0.2, 0.75], R)  # best so far 0.75 beats the median 0.7
    assert not a.should_stop(good, done + [good])


def test_medianstop_evaluation_interval_decides_only_on_the_interval() -> None:
    done = [rec(1, [1.0] * 10)]
    lagging = [0.0] * 10  # below the median at every step: stopped whenever the rule looks
    for over in ("completed", "all"):
        a = create_assessor("Medianstop", {"evaluation_interval": 2, "delay_evaluation": 3, "median_over": over})
        stops = [n for n in range(1, 11) if a.should_stop(rec(2, lagging[:n], R), done)]
        assert stops == [4, 6, 8, 10], over
    every = create_assessor("Medianstop", {})  # default 1: every report, as NNI
    assert [n for n in range(1, 11) if every.should_stop(rec(2, lagging[:n], R), done)] == list(range(1, 11))


def test_medianstop_delay_evaluation_is_start_step() -> None:
    done = [rec(1, [1.0] * 6)]
    lagging = [0.0] * 6
    for args in ({"delay_evaluation": 3}, {"start_step": 3}):
        a = create_assessor("Medianstop", args)
        assert [n for n in range(1, 7) if a.should_stop(rec(2, lagging[:n], R), done)] == [3, 4, 5, 6], args
    with pytest.raises(AssessorArgsError, match="classArgs.start_step and classArgs.delay_evaluation"):
        create_assessor("Medianstop", {"start_step": 3, "delay_evaluation": 3})


def test_medianstop_all_trials_median_differs_from_completed_only() -> None:
    nni = create_assessor("Medianstop", {})
    azure = create_assessor("Medianstop", {"median_over": "all"})
    me = rec(9, [0.4, 0.5], R)  # best 0.5, own running average 0.45
    # Completed trials low, running ones high: completed-only median 0.3 keeps it; over all
    # (0.45, 0.3, 0.9, 0.9) the median is 0.675 > 0.5, so Azure's rule stops it.
    history = [rec(1, [0.3, 0.3]), rec(2, [0.9, 0.9], R), rec(3, [0.9, 0.9], R), me]
    assert not nni.should_stop(me, history)
    assert azure.should_stop(me, history)
    # Completed trials high, running ones low: the other way round.
    history = [rec(1, [0.9, 0.9]), rec(2, [0.1, 0.1], R), rec(3, [0.1, 0.1], R), me]
    assert nni.should_stop(me, history)
    assert not azure.should_stop(me, history)
    # No completed trial yet: NNI's rule has no median and never stops; Azure's uses the running.
    history = [rec(2, [0.9, 0.9], R), rec(3, [0.9, 0.9], R), me]
    assert not nni.should_stop(me, history)
    assert azure.should_stop(me, history)


def test_medianstop_all_counts_only_trials_that_reached_the_step() -> None:
    azure = create_assessor("Medianstop", {"median_over": "all"})
    me = rec(9, [0.4, 0.42], R)  # best 0.42, own average 0.41
    reached = [rec(1, [0.3, 0.3]), rec(4, [0.3, 0.3], TrialState.EARLY_STOPPED)]
    short = [rec(2, [0.9], R), rec(3, [0.9], R), rec(5, [0.9])]  # one report: no average for 1:2
    # median of (0.41, 0.3, 0.3) = 0.3: kept. Counting the short ones (0.9 each) would make it 0.655: stopped.
    assert not azure.should_stop(me, reached + short + [me])
    # a stopped trial that reached the step counts (Azure: all runs): here it tips the median
    high_stopped = [rec(6, [0.8, 0.8], TrialState.EARLY_STOPPED), rec(7, [0.8, 0.8], TrialState.FAILED)]
    assert azure.should_stop(me, [rec(1, [0.3, 0.3])] + high_stopped + [me])


def test_medianstop_args_are_validated_naming_the_field() -> None:
    for bad, field in (
        ({"median_over": "running"}, "classArgs.median_over"),
        ({"median_over": True}, "classArgs.median_over"),
        ({"evaluation_interval": 0}, "classArgs.evaluation_interval"),
        ({"evaluation_interval": 1.5}, "classArgs.evaluation_interval"),
        ({"delay_evaluation": -1}, "classArgs.delay_evaluation"),
        ({"start_step": -1}, "classArgs.start_step"),
        ({"slack_factor": 0.1}, "slack_factor"),
    ):
        with pytest.raises(AssessorArgsError, match=field):
            create_assessor("Medianstop", bad)


# --- Curvefitting ---


@pytest.fixture()
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def saturating(top: float, n: int, rate: float = 3.0):
    x = np.arange(1, n + 1, dtype=float)
    return list(top - 0.5 * np.exp(-x / rate))


def test_curvefitting_stops_a_bad_curve_and_keeps_a_good_one(no_warnings) -> None:
    a = create_assessor("Curvefitting", {"epoch_num": 20, "start_step": 6, "threshold": 0.95, "optimize_mode": "maximize"})
    done = [rec(1, saturating(0.9, 20))]  # best final ~0.9 -> bar 0.855
    bad = rec(5, saturating(0.6, 6), R)  # heads for 0.6
    good = rec(6, saturating(0.9, 6), R)  # at 0.79 now, heads for 0.9
    assert a.should_stop(bad, done + [bad])
    assert not a.should_stop(good, done + [good])
    pred = predict_final(good.intermediate, 20)
    assert pred is not None and abs(pred - 0.9) < 0.01


def test_curvefitting_respects_start_step_and_gap(no_warnings) -> None:
    a = create_assessor("Curvefitting", {"start_step": 4, "gap": 3})
    done = [rec(1, saturating(0.9, 20))]
    full = saturating(0.5, 12)
    stops = {n: a.should_stop(rec(5, full[:n], R), done) for n in range(1, 13)}
    assert [n for n, s in stops.items() if s] == [4, 7, 10]


def test_curvefitting_minimize_mirrors(no_warnings) -> None:
    a = create_assessor("Curvefitting", {"optimize_mode": "minimize"})
    x = np.arange(1, 21, dtype=float)
    done = [rec(1, list(0.2 + 2 * np.exp(-x / 3)))]  # best final loss ~0.2
    bad = rec(2, list(1.0 + 2 * np.exp(-x[:6] / 3)), R)  # heads for 1.0
    good = rec(3, list(0.15 + 2 * np.exp(-x[:6] / 3)), R)  # heads for 0.15
    assert a.should_stop(bad, done + [bad])
    assert not a.should_stop(good, done + [good])


def test_curvefitting_degenerate_curves_are_safe(no_warnings) -> None:
    assert predict_final([0.3], 20) is None and predict_final([0.3, 0.4], 20) is None
    assert predict_final([0.42] * 8, 20) == 0.42
    assert predict_final([0.1, float("nan"), 0.3], 20) is None
    wild = [1e300, -1e300, 1e300, 0.0, 5.0, -3.0, 1e-300]
    p = predict_final(wild, 20)
    assert p is None or math.isfinite(p)
    # a constant curve far under the bar is stopped; without completed trials nothing is
    a = create_assessor("Curvefitting", {"start_step": 1})
    assert a.should_stop(rec(2, [0.1] * 6, R), [rec(1, [0.9])])
    assert not a.should_stop(rec(2, [0.1] * 6, R), [rec(1, [0.9], state=TrialState.FAILED)])
    assert not a.should_stop(rec(2, [0.1], R), [rec(1, [0.9])])  # one point: no decision


def test_curvefitting_args() -> None:
    with pytest.raises(AssessorArgsError, match="threshold"):
        create_assessor("Curvefitting", {"threshold": 1.5})
    with pytest.raises(AssessorArgsError, match="gap"):
        create_assessor("Curvefitting", {"gap": 0})
    with pytest.raises(AssessorArgsError, match="does not know"):
        create_assessor("Curvefitting", {"epochs": 3})


# --- Bandit ---


def test_bandit_needs_exactly_one_slack() -> None:
    with pytest.raises(AssessorArgsError, match="exactly one"):
        create_assessor("Bandit", {})
    with pytest.raises(AssessorArgsError, match="both"):
        create_assessor("Bandit", {"slack_factor": 0.1, "slack_amount": 0.1})


def test_bandit_slack_factor_is_azures_ratio() -> None:
    a = create_assessor("Bandit", {"slack_factor": 0.2})
    leader = rec(1, [0.8], R)  # bar 0.8 / 1.2 = 0.667
    assert a.should_stop(rec(2, [0.65], R), [leader])
    assert not a.should_stop(rec(3, [0.67], R), [leader])
    assert not a.should_stop(leader, [leader, rec(2, [0.1], R)])
    m = create_assessor("Bandit", {"slack_factor": 0.2, "optimize_mode": "minimize"})
    lead = rec(1, [1.0], R)  # bar 1.2
    assert m.should_stop(rec(2, [1.25], R), [lead]) and not m.should_stop(rec(3, [1.15], R), [lead])


def test_bandit_slack_amount_compares_best_so_far_at_the_same_interval() -> None:
    a = create_assessor("Bandit", {"slack_amount": 0.1})
    other = rec(1, [0.5, 0.9, 0.95], R)
    # at interval 2 the leader's best is 0.9 -> bar 0.8; its later 0.95 is not counted
    assert a.should_stop(rec(2, [0.79, 0.7], R), [other])
    assert not a.should_stop(rec(3, [0.81, 0.7], R), [other])  # best so far 0.81


def test_bandit_delay_and_interval() -> None:
    a = create_assessor("Bandit", {"slack_amount": 0.0, "delay_evaluation": 3, "evaluation_interval": 2})
    leader = rec(1, [1.0] * 10, R)
    lagging = [0.0] * 10
    stops = [n for n in range(1, 11) if a.should_stop(rec(2, lagging[:n], R), [leader])]
    assert stops == [4, 6, 8, 10]


# --- TruncationSelection ---


def test_truncation_cuts_the_lowest_percentage_at_the_interval() -> None:
    a = create_assessor("TruncationSelection", {"truncation_percentage": 20})
    others = [rec(i, [0.1 * i, 0.0], R) for i in range(1, 10)]  # 0.1 .. 0.9 at interval 1
    # 10 trials at interval 1 (9 others + the new one): floor(10 * 20%) = 2 are cut
    assert a.should_stop(rec(20, [0.05], R), others)
    assert a.should_stop(rec(21, [0.15], R), others)  # second worst
    assert not a.should_stop(rec(22, [0.25], R), others)  # third worst
    # at interval 2 all ten are at 0.0: a tie group is never cut in part
    assert not a.should_stop(rec(23, [0.05, 0.0], R), others)


def test_truncation_too_few_trials_cut_nothing_and_args() -> None:
    a = create_assessor("TruncationSelection", {})  # 5%: needs 20 trials to cut one
    others = [rec(i, [0.5 + 0.01 * i], R) for i in range(1, 19)]
    assert not a.should_stop(rec(30, [0.0], R), others)  # 19 trials
    assert a.should_stop(rec(30, [0.0], R), others + [rec(19, [0.9], R)])  # 20 trials
    for bad in ({"truncation_percentage": 0}, {"truncation_percentage": 100}, {"exclude_finished_jobs": "yes"}):
        with pytest.raises(AssessorArgsError):
            create_assessor("TruncationSelection", bad)


def test_truncation_exclude_finished_jobs() -> None:
    finished = [rec(i, [0.1 * i], S) for i in range(5, 10)]  # 0.5 .. 0.9, succeeded
    running = [rec(i, [0.1 * i], R) for i in range(1, 5)]  # 0.1 .. 0.4
    me = rec(20, [0.45], R)
    args = {"truncation_percentage": 50}
    # all 10: cut 5, and 0.45 is 5th worst -> stopped
    assert create_assessor("TruncationSelection", args).should_stop(me, finished + running)
    # running only (5 incl. me): cut 2; 0.45 is the best of them -> kept
    ex = create_assessor("TruncationSelection", {**args, "exclude_finished_jobs": True})
    assert not ex.should_stop(me, finished + running)


def test_truncation_delay_interval_and_minimize() -> None:
    a = create_assessor(
        "TruncationSelection",
        {"truncation_percentage": 50, "delay_evaluation": 2, "evaluation_interval": 2, "optimize_mode": "minimize"},
    )
    other = rec(1, [1.0] * 6, R)
    high_loss = [5.0] * 6
    assert [n for n in range(1, 7) if a.should_stop(rec(2, high_loss[:n], R), [other])] == [2, 4, 6]
    assert not a.should_stop(rec(3, [0.5, 0.5], R), [other])
