"""maxTrialNum lowered below the trials already issued, on the real API server: once that
many trials ended, the trials still running are stopped (STOPPED, saying why) and the
experiment ends DONE. Before, they ran on to their own end under phase DONE (no
completionTime: `kubectl wait --for=condition=Succeeded` returned while they held nodes)."""

from __future__ import annotations

import json

import pytest

from kube_harness.experiments import get_experiment
from tests.e2e.test_operator_helpers import apply_manifest, operator_env, trial_experiment, wait_for

# Two trials end at once, two would run for 15 minutes.
SPACE = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [0.05, 300]}}'


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("lower"), "lower", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def test_lowering_max_trials_below_the_issued_stops_the_rest_once_reached(kube_cluster, env):
    ns, name, op, server = env["ns"], "lower", env["op"], env["server"]
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=8, concurrency=4, space=SPACE))

    def counts() -> dict:
        return (get_experiment(kube_cluster, ns, name).get("status") or {}).get("trials") or {}

    wait_for(lambda: counts().get("succeeded") == 2 and counts().get("running") == 2, 120,
             f"two trials done, two running; operator log:\n{op.output()[-3000:]}")
    kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"maxTrialNum": 2}}))
    exp = wait_for(lambda: (e := get_experiment(kube_cluster, ns, name))["status"].get("completionTime") and e, 90,
                   f"the experiment to end; operator log:\n{op.output()[-3000:]}")
    st = exp["status"]
    assert st["phase"] == "DONE" and st["reason"] == "MaxTrialsReached", st
    assert st["trials"] == {**st["trials"], "total": 4, "succeeded": 2, "stopped": 2, "running": 0, "waiting": 0}, st
    uid = exp["metadata"]["uid"]
    stopped = [t for t in server.get(f"/api/v1/experiments/{uid}/trials").json() if t["state"] == "STOPPED"]
    assert len(stopped) == 2 and all("maxTrialNum lowered" in t["message"] for t in stopped), stopped
