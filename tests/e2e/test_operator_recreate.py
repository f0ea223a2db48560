"""An experiment created again under the name of one deleted before, while a workload of
the old one is still there under the name its first trial's workload gets:

- still being deleted (the garbage collector removes it after its owner went; here a
  finalizer holds it): the new trial waits for the name to come free, then runs;
- left behind for good (``kubectl delete --cascade=orphan``): the trial fails at once,
  its message naming the workload in the way, and that workload is left alone.

Before, a 409 on create was taken as the experiment's own workload (an operator restart's
adoption), but the workload (another experiment's) was never seen again: the trial ended
FAILED, 'the trial's workload was deleted'."""

from __future__ import annotations

import json

import pytest

from kube_harness.experiments import get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, events_of, jobs, operator_env, trial_experiment, wait_for

ONE = '{"x": {"_type": "choice", "_value": [2]}}'
HOLD = "autotune.test/hold"


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("recreate"), "recreate", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def _done_once(cluster, env, name: str) -> dict:
    ns, op = env["ns"], env["op"]
    apply_manifest(cluster, ns, trial_experiment(name, env["script"], max_trials=1, space=ONE))
    wait_for_phase(cluster, ns, name, "DONE", timeout=120, log=op.output)
    (job,) = jobs(cluster, ns, name)
    return job


def _trials(env, uid: str) -> list[dict]:
    return env["server"].get(f"/api/v1/experiments/{uid}/trials").json()


def test_a_trial_waits_for_the_old_experiments_workload_to_go(kube_cluster, env):
    ns, name, op = env["ns"], "again", env["op"]
    old = _done_once(kube_cluster, env, name)
    job = old["metadata"]["name"]
    old_uid = old["metadata"]["ownerReferences"][0]["uid"]
    kube_cluster.kubectl("patch", "job", job, "-n", ns, "--type=merge", "-p", json.dumps({"metadata": {"finalizers": [HOLD]}}))
    try:
        kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s", timeout=90)
        wait_for(lambda: all(j["metadata"].get("deletionTimestamp") for j in jobs(kube_cluster, ns, name)), 60,
                 "the garbage collector deleting the old experiment's Job")
        apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, space=ONE))
        uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
        assert uid != old_uid
        waits = wait_for(lambda: [e for e in events_of(kube_cluster, ns, name)
                                  if e["reason"] in ("TrialWaitsForWorkloadName", "ExperimentDone")
                                  and e["involvedObject"]["uid"] == uid], 60,
                         f"the new trial waiting; operator log:\n{op.output()[-3000:]}")
        assert [e["reason"] for e in waits] == ["TrialWaitsForWorkloadName"], [e["message"] for e in waits]
        assert job in waits[0]["message"] and "still being deleted" in waits[0]["message"]
        (trial,) = _trials(env, uid)
        assert trial["state"] == "WAITING", trial
        assert get_experiment(kube_cluster, ns, name)["status"]["phase"] == "RUNNING"
    finally:
        kube_cluster.kubectl("patch", "job", job, "-n", ns, "--type=json", "-p",
                             json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]), check=False)
    done = wait_for_phase(kube_cluster, ns, name, "DONE", "ERROR", timeout=120, log=op.output)
    assert done["status"]["trials"]["succeeded"] == 1 and done["status"]["trials"]["failed"] == 0, done["status"]
    (new,) = jobs(kube_cluster, ns, name)
    assert new["metadata"]["name"] == job and new["metadata"]["ownerReferences"][0]["uid"] == uid


def test_a_workload_left_behind_under_the_trials_name_fails_the_trial_saying_so(kube_cluster, env):
    ns, name, op = env["ns"], "left", env["op"]
    old = _done_once(kube_cluster, env, name)
    job = old["metadata"]["name"]
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--cascade=orphan", "--timeout=60s", timeout=90)
    wait_for(lambda: not jobs(kube_cluster, ns, name)[0]["metadata"].get("ownerReferences"), 60, "the orphaned Job")
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, space=ONE))
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    wait_for_phase(kube_cluster, ns, name, "DONE", "ERROR", timeout=120, log=op.output)
    (trial,) = _trials(env, uid)
    assert trial["state"] == "FAILED", trial
    assert f"Job {ns}/{job}" in trial["message"] and "not this experiment's" in trial["message"], trial
    (kept,) = jobs(kube_cluster, ns, name)  # not ours to delete
    assert kept["metadata"]["uid"] == old["metadata"]["uid"] and not kept["metadata"].get("deletionTimestamp")
