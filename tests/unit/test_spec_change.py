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


def test_warm_start_edits_are_refused():
    old = {**BASE, "warmStart": {"experiments": ["a"]}}
    assert diff_spec(old, {**old, "warmStart": {"experiments": ["b"]}}).refused == ("warmStart",)
    assert diff_spec(old, BASE).refused == ("warmStart",)


def test_every_refusal_message_of_the_api_server_lists_the_mutable_fields():
    # The CRD's transition rules and the admission policies say which fields may change; they
    # must name exactly what the operator applies (MUTABLE), or a user is told a wrong list.
    import re
    from pathlib import Path

    from autotune_operator.spec_change import MUTABLE

    root = Path(__file__).resolve().parents[2]
    files = ["crds/autotuneexperiments.yaml", "crds/autotuneexperiments-immutable.yaml",
             "helm/autotune/templates/immutable-spec-policy.yaml"]
    seen = 0
    for f in files:
        text = " ".join((root / f).read_text().split())
        for listed in re.findall(r"only ([A-Za-z, ]+?) can change", text):
            names = [n.strip() for n in re.split(r",| and ", listed) if n.strip()]
            assert sorted(names) == sorted(MUTABLE), (f, listed)
            seen += 1
    assert seen >= 13  # 9 CRD rules, 2 policies in each of the two files
