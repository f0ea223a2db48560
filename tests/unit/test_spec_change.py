"""Which edits of a running experiment's spec take effect (operator/spec_change.py)."""

from __future__ import annotations

from autotune_operator.spec_change import SpecChange, describe_limits, diff_spec, refused_message

BASE = {
    "maxTrialNum": 4, "trialConcurrency": 1, "searchSpace": '{"x": {"_type": "choice", "_value": [1]}}',
    "trainingConfig": {"type": "pytorch", "tasks": []}, "tuner": {"builtinTunerName": "TPE"},
}


def test_limits_change_and_nothing_else():
    new = {**BASE, "maxTrialNum": 8, "trialConcurrency": 2, "maxExecSeconds": 60, "maxFailedTrialNum": 5}
    c = diff_spec(BASE, new)
    assert c.limits == {"maxTrialNum": (4, 8), "maxFailedTrialNum": (None, 5), "trialConcurrency": (1, 2),
                        "maxExecSeconds": (None, 60)}
    assert c.refused == ()
    assert describe_limits(c) == ("maxTrialNum 4 -> 8, maxFailedTrialNum none -> 5, trialConcurrency 1 -> 2, "
                                  "maxExecSeconds none -> 60")


def test_removing_a_limit_is_a_change_and_the_default_concurrency_is_not():
    old = {**BASE, "maxExecSeconds": 60}
    new = {k: v for k, v in BASE.items() if k != "trialConcurrency"}
    assert diff_spec(old, new).limits == {"maxExecSeconds": (60, None)}


def test_search_defining_fields_are_refused_with_their_names():
    new = {**BASE, "searchSpace": "{}", "tuner": {"builtinTunerName": "Random"}, "seed": 3, "maxTrialNum": 5}
    c = diff_spec(BASE, new)
    assert c.refused == ("searchSpace", "seed", "tuner") and c.limits == {"maxTrialNum": (4, 5)}
    msg = refused_message(c)
    assert "spec.searchSpace, spec.seed, spec.tuner changed" in msg and "maxTrialNum" in msg


def test_no_change():
    assert diff_spec(BASE, dict(BASE)).empty and SpecChange().empty
