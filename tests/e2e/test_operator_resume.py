"""Resuming an ended experiment on a real kube-apiserver: raising maxTrialNum on a DONE
experiment runs it again with its history kept (Event, condition, new trials after the old
ones), also when the edit was made while no operator ran; any other edit of an ended
experiment, and every edit of an ERROR one, is refused by the API server."""

from __future__ import annotations

import json

import pytest

from kube_harness.experiments import get_experiment, phase_of, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, events_of, jobs, operator_env, trial_experiment, wait_for

MUTABLE_TEXT = "maxTrialNum, maxFailedTrialNum, maxTrialSeconds, trialConcurrency and maxExecSeconds"
# Each trial lasts ~3 s (3 reports, 1 s apart), so RUNNING after a resume is seen.
SPACE = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4, 5, 6, 7, 8]}, "sleep": {"_type": "choice", "_value": [1.0]}}'


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("operator"), "resume", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def patch_spec(kube_cluster, ns: str, name: str, spec: dict):
    return kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}),
                                check=False)


def server_trials(env, kube_cluster, ns: str, name: str) -> list[dict]:
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    return env["server"].get(f"/api/v1/experiments/{uid}/trials").json()


def reasons(kube_cluster, ns: str, name: str, reason: str) -> list[str]:
    return [e["message"] for e in events_of(kube_cluster, ns, name) if e["reason"] == reason]


def test_raising_max_trial_num_resumes_a_done_experiment_with_its_history(kube_cluster, env):
    ns, name = env["ns"], "more"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=1, space=SPACE))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["total"] == 2 and st["completionTime"] and st["limits"]["maxTrialNum"] == 2, st
    before = server_trials(env, kube_cluster, ns, name)
    assert [t["name"] for t in before] == [f"{name}-0", f"{name}-1"]

    r = patch_spec(kube_cluster, ns, name, {"maxTrialNum": 4})
    assert r.returncode == 0, r.stderr
    ate = wait_for_phase(kube_cluster, ns, name, "RUNNING", timeout=30, interval=0.2, log=env["op"].output)
    st = ate["status"]
    if st["phase"] == "RUNNING":  # (read again after RUNNING was seen: on a slow machine it may be DONE by now)
        assert "completionTime" not in st and st["message"] == "resumed: maxTrialNum 2 -> 4", st
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds["Succeeded"]["status"] == "False" and conds["Running"]["status"] == "True", conds
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Resumed"]["status"] == "True" and conds["Resumed"]["message"] == "maxTrialNum 2 -> 4", conds
    assert reasons(kube_cluster, ns, name, "ExperimentResumed") == ["maxTrialNum 2 -> 4: resumed after 2 trial(s)"]

    ate = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)
    st = ate["status"]
    assert st["trials"]["total"] == 4 and st["trials"]["succeeded"] == 4 and st["message"] == "all 4 trials ended", st
    assert st["completionTime"] and st["observedGeneration"] == ate["metadata"]["generation"] == 2
    assert {c["type"]: c for c in st["conditions"]}["Succeeded"]["status"] == "True"
    after = server_trials(env, kube_cluster, ns, name)
    assert [t["name"] for t in after] == [f"{name}-{i}" for i in range(4)]
    assert [(t["name"], t["parameters"], t["state"]) for t in after[:2]] == \
        [(t["name"], t["parameters"], t["state"]) for t in before]  # the old trials kept as they were
    assert sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)) == [f"{name}-{i}" for i in range(4)]
    succeeded = sorted(e["message"].split()[1] for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialSucceeded")
    assert succeeded == [f"{name}-{i}" for i in range(4)], succeeded  # the old trials' ends are not reported again

    # Edited while no operator runs: the operator finds generation 3 > observedGeneration 2
    # at startup and resumes it; an experiment it finds ended and unedited stays as it is.
    env["op"].kill()
    r = patch_spec(kube_cluster, ns, name, {"maxTrialNum": 5})
    assert r.returncode == 0, r.stderr
    env["op"].start()
    wait_for(lambda: (get_experiment(kube_cluster, ns, name).get("status") or {}).get("trials", {}).get("total") == 5,
             120, "the fifth trial")
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["total"] == 5 and st["trials"]["succeeded"] == 5 and st["observedGeneration"] == 3, st
    assert "maxTrialNum 4 -> 5: resumed after 4 trial(s)" in reasons(kube_cluster, ns, name, "ExperimentResumed")


def test_an_ended_experiment_refuses_other_edits_and_says_when_limits_do_not_resume_it(kube_cluster, env):
    ns, name = env["ns"], "ended"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, concurrency=1))
    wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)
    for edit, field in [({"seed": 5}, "spec.seed"), ({"trainingConfig": {"type": "xgboost"}}, "spec.trainingConfig"),
                        ({"tuner": {"builtinTunerName": "Random"}}, "spec.tuner")]:
        r = patch_spec(kube_cluster, ns, name, edit)
        assert r.returncode != 0 and f"{field} cannot change" in r.stderr and MUTABLE_TEXT in r.stderr, (edit, r.stderr)
    r = wait_for(lambda: (lambda r: r if r.returncode else None)(
        patch_spec(kube_cluster, ns, name, {"searchSpace": '{"x": {"_type": "choice", "_value": [9]}}'})),
        30, "the admission policy to refuse a searchSpace edit")
    assert "spec.searchSpace cannot change" in r.stderr, r.stderr
    assert get_experiment(kube_cluster, ns, name)["metadata"]["generation"] == 1

    # A limit that does not make it run again: accepted, and the Warning says what would.
    r = patch_spec(kube_cluster, ns, name, {"trialConcurrency": 2})
    assert r.returncode == 0, r.stderr
    wait_for(lambda: reasons(kube_cluster, ns, name, "ExperimentNotResumed"), 30, "the ExperimentNotResumed Event")
    (msg,) = reasons(kube_cluster, ns, name, "ExperimentNotResumed")
    assert msg == "trialConcurrency 1 -> 2: the experiment stays DONE (all 1 trials ended); raise maxTrialNum above 1 to resume"
    ate = wait_for(lambda: (lambda a: a if a["status"].get("observedGeneration") == 2 else None)(
        get_experiment(kube_cluster, ns, name)), 30, "observedGeneration 2")
    assert ate["status"]["phase"] == "DONE" and ate["status"]["trials"]["total"] == 1
    assert not reasons(kube_cluster, ns, name, "ExperimentResumed")


def test_an_error_experiment_cannot_be_edited(kube_cluster, env):
    ns, name = env["ns"], "broken"
    space = '{"x": {"_type": "choice", "_value": [1, 2]}, "fail": {"_type": "choice", "_value": [1]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=4, concurrency=1, space=space,
                                                      maxFailedTrialNum=1))
    wait_for_phase(kube_cluster, ns, name, "ERROR", timeout=120, log=env["op"].output)
    r = patch_spec(kube_cluster, ns, name, {"maxFailedTrialNum": 3})
    assert r.returncode != 0 and "the experiment ended ERROR: its spec cannot change any more" in r.stderr, r.stderr
    assert phase_of(kube_cluster, ns, name) == "ERROR"
