"""A plain-Job trial whose pod is evicted runs again in a new pod and ends SUCCEEDED.

The trial's Job carries a podFailurePolicy (workloads/batch_job.py): a pod with the
condition DisruptionTarget is replaced without counting against backoffLimit 0. The test
evicts the running trial's pod through the Eviction API (``pods/eviction``, what ``kubectl
drain`` and the cluster autoscaler use), which sets that condition and deletes the pod; the
fake node kills the training process and reports the pod Failed, as a kubelet does; the real
Job controller (kube-controller-manager) creates a new pod, which trains again from its
start. The nodes are cordoned before the eviction, as ``kubectl drain`` does, so the new pod
waits (Unschedulable) until well past maxTrialSeconds from the trial's first start: the
wait and the lost run are not the trial's time, so it is not stopped. The trial must end
SUCCEEDED with the new pod's printed result, the experiment count no failed trial, and the
operator post one TrialPodDisrupted Event naming the pod.
Real kube-apiserver and controller manager, fake nodes running pods as local processes,
the tuner server and the operator as local processes.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, events_of, jobs, operator_env, wait_for

# Real training, reported by printing (the StdOut collector). The trial's first pod holds after
# its second epoch until it is evicted, so it is evicted midway however slowly the test gets to
# the eviction (1 s epochs left it about 4 s, which a loaded machine can use up); a later pod
# (the replacement) trains its 6 epochs through. On SIGTERM it takes 2 s to stop, as a script
# saving a checkpoint does (the disrupted pod stays visible meanwhile: the operator's
# TrialPodDisrupted Event is read from it).
TRAIN = '''\
import argparse
import os
import signal
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, required=True)
a = p.parse_args()


def on_term(signum, frame):  # what a training script does when its pod is ended: save, then exit
    print("SIGTERM: saving a checkpoint", flush=True)
    time.sleep(2)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_term)
ran_before = os.path.join(os.path.dirname(os.path.abspath(__file__)), "a-pod-ran")
first_pod = not os.path.exists(ran_before)
open(ran_before, "a").close()
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
clf = SGDClassifier(loss="log_loss", alpha=a.alpha, random_state=0)
for epoch in range(6):
    clf.partial_fit(Xtr, ytr, classes=np.arange(10))
    print(f"epoch={epoch} accuracy={clf.score(Xte, yte):.4f}", flush=True)
    time.sleep(600 if first_pod and epoch == 1 else 1.0)
'''
SPACE = '{"alpha": {"_type": "choice", "_value": [0.0001]}}'
PRINTED = re.compile(r"accuracy=([\d.]+)")
LIMIT = 30  # maxTrialSeconds: a whole pod run (~7 s idle) fits with room; the first start + the drain's wait does not


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("disrupt"), "disrupt",
                      {"AUTOTUNE_RESYNC_SECONDS": "0.5"}, script=TRAIN) as e:
        yield e


def trial_pods(core: client.CoreV1Api, ns: str, exp: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(ns, label_selector=f"{LABEL}={exp}").items


def test_an_evicted_trial_pod_is_replaced_and_the_trial_succeeds(kube_cluster, env):
    ns, name = env["ns"], "evicted"
    core = client.CoreV1Api(kube_cluster.api_client())
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, [sys.executable, str(env["script"]), "--alpha=${parameters.alpha}"], space=SPACE, max_trials=1,
        maxFailedTrialNum=1, maxTrialSeconds=LIMIT, primaryMetric="accuracy", metricsCollector={"kind": "StdOut"},
        annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    (job,) = wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the trial's Job")
    tid = job["metadata"]["name"]
    assert job["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"

    # Evicted once it has printed two epochs.
    def printing() -> client.V1Pod | None:
        for p in trial_pods(core, ns, name):
            try:
                if len(PRINTED.findall(kube_cluster.pod_log(ns, p.metadata.name))) >= 2:
                    return p
            except FileNotFoundError:
                pass
        return None

    first = wait_for(printing, 90, "the trial's pod to print two epochs")
    began = first.status.container_statuses[0].state.running.started_at.timestamp()
    nodes = [n.metadata.name for n in core.list_node().items]
    kube_cluster.kubectl("cordon", *nodes)  # a drain: cordon, then evict
    try:
        core.create_namespaced_pod_eviction(first.metadata.name, ns, client.V1Eviction(
            metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=ns)))
        second = wait_for(lambda: [p for p in trial_pods(core, ns, name) if p.metadata.uid != first.metadata.uid], 60,
                          "the Job's new pod")[0]
        assert second.metadata.labels["job-name"] == tid
        # The new pod waits for a node past maxTrialSeconds from the trial's first start: not stopped.
        while time.time() < began + LIMIT + 3:
            time.sleep(0.5)
        assert core.read_namespaced_pod(second.metadata.name, ns).status.phase == "Pending"
        assert get_experiment(kube_cluster, ns, name)["status"]["trials"]["running"] == 1
        assert [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)] == [tid]
    finally:
        kube_cluster.kubectl("uncordon", *nodes)

    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1 and st["trials"]["failed"] == 0, st
    (job,) = jobs(kube_cluster, ns, name)
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), job["status"]
    # The first pod was killed midway (its log stops before the sixth epoch); the second trained whole.
    first_acc = [float(a) for a in PRINTED.findall(kube_cluster.pod_log(ns, first.metadata.name))]
    second_acc = [float(a) for a in PRINTED.findall(kube_cluster.pod_log(ns, second.metadata.name))]
    assert 2 <= len(first_acc) < 6 and len(second_acc) == 6, (first_acc, second_acc)

    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    (t,) = env["server"].get(f"/api/v1/experiments/{uid}/trials").json()
    assert t["state"] == "SUCCEEDED" and t["metrics"]["accuracy"] == second_acc[-1], t
    # The curve: what was read of the first pod, then the new pod's values numbered on after it.
    curve = t["intermediate"]
    assert curve[-6:] == second_acc and curve[:-6] == first_acc[:len(curve) - 6], (curve, first_acc, second_acc)
    # The trial started when its first pod ran (the replacement's start is not its start).
    assert t["started"] <= second.metadata.creation_timestamp.timestamp(), t

    disrupted = [e for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialPodDisrupted"]
    assert len(disrupted) == 1, disrupted
    msg = disrupted[0]["message"]
    assert tid in msg and first.metadata.name in msg and "EvictionByEvictionAPI" in msg, msg
    assert not [e for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialFailed"]
    assert "reconcile failed" not in env["op"].output()
    print(json.dumps({"first": first_acc, "second": second_acc, "curve": curve, "event": msg}))
