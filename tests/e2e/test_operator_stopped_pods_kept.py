"""A trial the experiment stops keeps its Job and its pod, stopped, with its logs.

Real kube-apiserver and kube-controller-manager (the Job controller, the garbage collector),
the fake node agent standing in for the scheduler and the kubelet (it runs each container as
a local process and honours spec.activeDeadlineSeconds as the kubelet does: kube-harness.md),
the real tuner server and operator processes.

Two trials each need both GPUs of the one GPU node, so the second waits until the first gives
them back. The first runs past maxTrialSeconds: the operator stops it by setting its pod's
activeDeadlineSeconds (workloads/stop_in_place.py); its process is killed, its pod ends
Failed (DeadlineExceeded) and stays, so `kubectl logs` still shows what it printed, and the
second trial gets the GPUs and succeeds. Deleting the experiment removes both Jobs and pods.
Before, the stopped trial's Job was deleted at once, its pod and its logs with it.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from kube_harness.experiments import experiment_manifest, get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import (
    LABEL,
    apply_manifest,
    events_of,
    jobs,
    operator_env,
    wait_for,
)

STOP_ANNOTATION = "autotune.tensorstack.dev/stop-reason"
TRIAL_LABEL = "autotune.tensorstack.dev/trial"
# maxTrialSeconds: the 2-step trial (~1.5 s with its start) must end well within it on a loaded
# machine (4 s left little room); the 400-step one (200 s) is stopped by it either way.
LIMIT = 10
SCRIPT = '''\
import os, sys, time
import autotune
p = autotune.get_next_parameter()
print(f"pid {os.getpid()}", flush=True)
for step in range(int(p["steps"])):
    autotune.report_intermediate_result(float(step))
    print(f"step {step}: loss still high", flush=True)
    time.sleep(0.5)
autotune.report_final_result(float(p["steps"]))
'''


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("keptpods"), "kept",
                      {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}, script=SCRIPT) as e:
        yield e


def pods_of(kube_cluster, ns: str, label: str) -> list[dict]:
    return json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", label, "-o", "json").stdout)["items"]


def test_a_trial_stopped_for_its_time_keeps_its_pod_and_logs_and_gives_back_its_gpus(kube_cluster, env):
    ns, name = env["ns"], "gpus"
    tasks = [task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"],
                  limits={"nvidia.com/gpu": 2})]
    space = '{"steps": {"_type": "choice", "_value": [400, 2]}}'  # one runs for minutes, the other a second
    apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=2, concurrency=2, tasks=tasks,
                                                         maxTrialSeconds=LIMIT))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["failed"] == 1 and st["trials"]["succeeded"] == 1, st  # the second got the GPUs
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    trials = {t["name"]: t for t in env["server"].get(f"/api/v1/experiments/{uid}/trials").json()}
    (stopped,) = [t for t in trials if trials[t]["state"] == "FAILED"]
    assert trials[stopped]["parameters"] == {"steps": 400}, trials[stopped]
    assert trials[stopped]["message"] == f"ran longer than maxTrialSeconds ({LIMIT}s) and was stopped"

    # Its Job is still there, saying why it was stopped...
    by_name = {j["metadata"]["name"]: j for j in jobs(kube_cluster, ns, name)}
    assert sorted(by_name) == [f"{name}-0", f"{name}-1"], sorted(by_name)
    assert by_name[stopped]["metadata"]["annotations"][STOP_ANNOTATION] == trials[stopped]["message"]

    # ...and so is its one pod (no replacement): stopped by the kubelet, not deleted.
    def pod_stopped():
        ps = pods_of(kube_cluster, ns, f"{TRIAL_LABEL}={stopped}")
        return ps if len(ps) == 1 and ps[0]["status"].get("phase") == "Failed" else None

    (p,) = wait_for(pod_stopped, 60, "the stopped trial's pod to end")
    assert p["spec"]["activeDeadlineSeconds"] == 1 and p["status"]["reason"] == "DeadlineExceeded", p["status"]
    (cs,) = p["status"]["containerStatuses"]
    assert "terminated" in cs["state"], cs
    assert not p["metadata"].get("deletionTimestamp")

    # What it printed is still there, and its process is gone (its GPUs were given back:
    # the second trial, which needed both, ran and succeeded above).
    out = kube_cluster.kubectl("logs", "-n", ns, p["metadata"]["name"]).stdout
    assert "step 0: loss still high" in out, out
    pid = int(out.splitlines()[0].split()[1])
    assert not os.path.exists(f"/proc/{pid}"), f"the stopped trial's process {pid} still runs"

    # The Job controller counted the pod's failure (backoffLimit 0): the Job failed, no new pod.
    wait_for(lambda: any(c["type"] == "Failed" and c["status"] == "True" for c in
                         (jobs_named(kube_cluster, ns, stopped)["status"].get("conditions") or [])),
             60, "the stopped trial's Job to fail")
    assert len(pods_of(kube_cluster, ns, f"{TRIAL_LABEL}={stopped}")) == 1
    # Its Job also got a deadline (mutable on a running Job: the API server took the patch)
    # past the pod's grace period (30 s) and a margin, so a pod replacing a disrupted one
    # would be deleted even after the experiment ended; here it never fired: the pod's own
    # failure ended the Job.
    j = jobs_named(kube_cluster, ns, stopped)
    assert j["spec"].get("activeDeadlineSeconds", 0) >= 30 + 60, j["spec"]
    (failed,) = [c for c in j["status"]["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "BackoffLimitExceeded", failed

    msgs = [e["message"] for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialStopped"]
    assert msgs == [f"{stopped}: {trials[stopped]['message']}; its pod {p['metadata']['name']} stopped and kept "
                    "with its logs (kubectl logs)"], msgs

    # The experiment deleted: its Jobs and their pods go with it (garbage collection).
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s")
    wait_for(lambda: not jobs(kube_cluster, ns, name), 60, "GC of the experiment's Jobs")
    wait_for(lambda: not pods_of(kube_cluster, ns, f"{LABEL}={name}"), 60, "GC of the trials' pods")


def jobs_named(kube_cluster, ns: str, job: str) -> dict:
    return json.loads(kube_cluster.kubectl("get", "job", job, "-n", ns, "-o", "json").stdout)
