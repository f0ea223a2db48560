"""An outlived trial (Katib #1042: a mesh's never-exiting proxy keeps its pod Running) whose
end the operator handles while the tuner server is down: its Job, and with it the pod log
that holds what it printed, is kept until the tuner server took what was read, and the trial
ends with its whole curve once the server is back, run once.

Before, the operator deleted the Job as soon as the log was read, while the values lived only
in its memory; the failed pass (the summary it asks for next fails too) rebuilt the controller
(operator/runtime.py), so they were lost, and the restarted pass found the trial RUNNING with
no workload and ran it again. The trainer here counts its runs in a file.

Real kube-apiserver and kube-controller-manager (Job controller, garbage collector), the
tuner server and the operator as local processes (the server stopped and started again on
its port and database); the trial trains a real scikit-learn model and reports only by
printing (StdOut collector). The operator is paused (SIGSTOP) while the trainer exits and
the server stops, so that its first pass after that is the one that ends the trial: each
later pass fails at its first call to the server."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from kube_harness.experiments import experiment_manifest, get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, events_of, operator_env, wait_for
from tests.e2e.test_operator_sidecar_outlived import pod_of, state_of, trainer_task, trials_of

TRAIN = '''\
import argparse
import pathlib
import time

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--alpha", required=True)
p.add_argument("--out", required=True)
p.add_argument("--gate", required=True)  # train only once this file exists (the test says when)
a = p.parse_args()
while not pathlib.Path(a.gate).exists():
    time.sleep(0.1)
with open(pathlib.Path(a.out, "runs"), "a") as f:  # one line per run of the trial
    f.write("run\\n")
X, y = load_wine(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.4, random_state=0, stratify=y)
clf = SGDClassifier(alpha=float(a.alpha), random_state=0)
for epoch in range(3):
    clf.partial_fit(Xtr, ytr, classes=np.arange(3))
    acc = clf.score(Xte, yte)
    print(f"epoch={epoch} accuracy={acc:.4f}", flush=True)
pathlib.Path(a.out, "accuracy").write_text(f"{acc:.4f}")
'''
GRACE = 2


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("outlived-down"), "outlived-down", script=TRAIN,
                      extra_env={"AUTOTUNE_SIDECAR_GRACE_SECONDS": str(GRACE)}) as e:
        yield e


def test_an_outlived_trials_job_waits_for_the_tuner_server_to_take_its_output(kube_cluster, env):
    ns, name = env["ns"], "mesh-down"
    out, gate = env["tmp"] / "results", env["tmp"] / "gate"
    out.mkdir()
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space='{"alpha": {"_type": "choice", "_value": ["0.001"]}}', max_trials=1,
        tasks=[trainer_task(env, out, f"--gate={gate}")], primaryMetric="accuracy", maxTrialSeconds=900,
        metricsCollector={"kind": "StdOut"}, annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    trial = f"{name}-0"
    wait_for(lambda: "running" in state_of(pod_of(kube_cluster, ns, trial), "pytorch"), 120, "the trainer to run")
    op, server = env["op"], env["server"]
    assert op.proc is not None
    os.killpg(op.proc.pid, signal.SIGSTOP)
    try:
        gate.write_text("go")
        ended = wait_for(lambda: state_of(pod_of(kube_cluster, ns, trial), "pytorch").get("terminated"), 60,
                         "the trainer to exit")
        assert ended["exitCode"] == 0 and "running" in state_of(pod_of(kube_cluster, ns, trial), "istio-proxy")
        time.sleep(GRACE + 1)  # past the grace before the operator looks again (ordering, not a timing check)
        server.stop()
        seen = len(op.output())
    finally:
        os.killpg(op.proc.pid, signal.SIGCONT)
    # The pass that ends the trial reads its output, cannot send it, and fails at its next call
    # to the server; the passes after it fail at their first call while the server is down.
    wait_for(lambda: f"trial {trial}'s output not" in op.output()[seen:], 60, "the operator to read the trial's output")
    wait_for(lambda: "retrying" in op.output()[seen:], 60, "that pass to fail")
    assert [j["metadata"]["name"] for j in json.loads(kube_cluster.kubectl(
        "get", "jobs", "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout)["items"]] == [trial]  # kept
    server.start()
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=op.output)["status"]
    assert st["trials"]["succeeded"] == 1, st
    (t,) = trials_of(env, get_experiment(kube_cluster, ns, name)["metadata"]["uid"]).values()
    assert t["state"] == "SUCCEEDED" and t["exitCode"] == 0, t
    assert t["metrics"]["accuracy"] == float((out / "accuracy").read_text()) and len(t["intermediate"]) == 3, t
    assert (out / "runs").read_text() == "run\n"  # run once: not started again for a Job gone
    reasons = [e["reason"] for e in events_of(kube_cluster, ns, name)]
    assert "TrialSidecarOutlived" in reasons and "TrialOutputUnread" not in reasons, reasons
    wait_for(lambda: pod_of(kube_cluster, ns, trial) is None, 60, "the trial's pod to go once its output was taken")
