"""Katib's StdOut metrics collector on a cluster: a training script that only prints
``accuracy=...`` (no SDK, no MLflow) is tuned unchanged. The operator reads the trial's
primary container's log through the API (GET pods/{pod}/log with timestamps and sinceTime,
served by the fake kubelet), parses it and records the values as MLflow-logged metrics:
the curve per epoch, the last value the result. Plain Jobs, and a Kubeflow PyTorchJob and a
T9k PyTorchTrainingJob whose pods the test makes as their operators would (the master's log
is read, not the worker's). Real kube-apiserver, fake nodes running the pods as local
processes, the tuner server and the operator as local processes."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
import yaml

from kube_harness.experiments import experiment_manifest, get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, events_of, jobs, operator_env, wait_for
from tests.e2e.test_operator_training_jobs import crd, set_status

# Real training, reported only by printing (Katib's default format: name=value).
TRAIN = '''\
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, required=True)
p.add_argument("--role", default="master")
a = p.parse_args()
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
clf = SGDClassifier(loss="log_loss", alpha=a.alpha, random_state=0)
print(f"training on {len(Xtr)} digits, alpha={a.alpha}", flush=True)
for epoch in range(4):
    clf.partial_fit(Xtr, ytr, classes=np.arange(10))
    if a.role == "master":
        acc = clf.score(Xte, yte)
        loss = log_loss(yte, clf.predict_proba(Xte), labels=np.arange(10))
        print(f"epoch={epoch} accuracy={acc:.4f} loss={loss:.4f}", flush=True)
    else:  # a worker's own view: must never become the trial's metrics
        print(f"epoch={epoch} accuracy=0.0001 loss=99", flush=True)
    time.sleep(1.0)
'''
SPACE = '{"alpha": {"_type": "choice", "_value": [0.0001, 0.01, 1.0]}}'
COLLECTOR = {"kind": "StdOut", "additionalMetricNames": ["loss"]}
PRINTED = re.compile(r"accuracy=([\d.]+) loss=([\d.]+)")


CRDS = [("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs"),
        ("batch.tensorstack.dev", "v1beta1", "PyTorchTrainingJob", "pytorchtrainingjobs")]


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    kube_cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(crd(*c)) for c in CRDS))
    for g, _, _, p in CRDS:
        kube_cluster.wait_crd_established(f"{p}.{g}")
    with operator_env(kube_cluster, tmp_path_factory.mktemp("stdout"), "stdout", script=TRAIN) as e:
        yield e
    # Gone before the next module: another one applies the same CRDs, and a CRD still
    # terminating then vanishes under its 'wait Established' (and confuses operators' discovery).
    kube_cluster.kubectl("delete", "crd", *[f"{p}.{g}" for g, _, _, p in CRDS], "--timeout=50s", check=False)


def command(script) -> list[str]:
    return [sys.executable, str(script), "--alpha=${parameters.alpha}"]


def printed(log: str) -> tuple[list[float], list[float]]:
    """(accuracies, losses) a trial printed, in order."""
    rows = PRINTED.findall(log)
    return [float(a) for a, _ in rows], [float(b) for _, b in rows]


def trials_of(env, uid: str) -> dict[str, dict]:
    r = env["server"].get(f"/api/v1/experiments/{uid}/trials")
    return {t["name"]: t for t in r.json()} if r.status_code == 200 else {}  # 404 until the operator registers it


def test_plain_jobs_report_only_by_printing(kube_cluster, env):
    ns, name = env["ns"], "stdout"
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, command(env["script"]), space=SPACE, max_trials=3, concurrency=2, primaryMetric="accuracy",
        metricsCollector=COLLECTOR, annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    # While trials run, their curves grow (what an assessor sees), read pass by pass.
    uid = wait_for(lambda: get_experiment(kube_cluster, ns, name).get("metadata", {}).get("uid"), 30, "the experiment")
    partial = wait_for(lambda: [t for t in trials_of(env, uid).values()
                                if t["state"] == "RUNNING" and 1 <= len(t.get("intermediate") or []) < 4], 120,
                       "a running trial with part of its curve", interval=0.3)
    assert partial
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=240, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 3, st
    trials = trials_of(env, uid)
    finals = {}
    for job in jobs(kube_cluster, ns, name):
        tid = job["metadata"]["name"]
        pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"job-name={tid}", "-o", "json").stdout)
        (pod,) = pods["items"]
        acc, loss = printed(kube_cluster.pod_log(ns, pod["metadata"]["name"]))
        assert len(acc) == 4 and 0.1 < acc[-1] <= 1.0, (tid, acc)
        t = trials[tid]
        assert t["state"] == "SUCCEEDED", t
        # The curve is every printed accuracy in order; the result the last of each metric.
        assert t["intermediate"] == acc, (tid, t["intermediate"], acc)
        assert t["metrics"]["default"] == acc[-1] and t["metrics"]["accuracy"] == acc[-1]
        assert t["metrics"]["loss"] == loss[-1] and "epoch" not in t["metrics"]  # epoch: not a named metric
        finals[tid] = acc[-1]
    assert st["bestTrial"]["value"] == max(finals.values())
    assert st["bestTrial"]["parameters"] != {"alpha": 1.0}  # heavy regularisation is really worse
    assert not [e for e in events_of(kube_cluster, ns, name) if e["type"] == "Warning"]
    assert "could not read the output" not in env["op"].output()


# How each training operator makes a job's pods, played by the test (no controller runs).
KUBEFLOW = {"family": "kubeflow", "plural": "pytorchjobs", "api": "kubeflow.org/v1", "kind": "PyTorchJob",
            "owner_label": "training.kubeflow.org/job-name",
            "done": {"conditions": [{"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"}]}}
# T9k's pods are told apart by name only here (its replica labels are not relied on).
T9K = {"family": "t9k", "plural": "pytorchtrainingjobs", "api": "batch.tensorstack.dev/v1beta1",
       "kind": "PyTorchTrainingJob", "owner_label": "tensorstack.dev/owner-name", "done": {"phase": "Succeeded"}}


def replicas(job: dict) -> list[tuple[str, dict]]:
    """(replica type, replica spec) of a PyTorchJob (a map) or a T9k job (a list)."""
    spec = job["spec"]
    if "pytorchReplicaSpecs" in spec:
        return [(t.lower(), rs) for t, rs in spec["pytorchReplicaSpecs"].items()]
    return [(rs["type"], rs) for rs in spec["replicaSpecs"]]


def play_training_operator(kube_cluster, ns: str, job: dict, op: dict) -> None:
    """Create the job's pods as its operator does: one per replica index, named
    <job>-<type>-<index>, owned by the job; Kubeflow also labels the replica."""
    md = job["metadata"]
    for rtype, rs in replicas(job):
        for i in range(rs["replicas"]):
            tmpl = rs["template"]
            labels = {**(tmpl.get("metadata") or {}).get("labels", {}), op["owner_label"]: md["name"]}
            if op["family"] == "kubeflow":
                labels.update({"training.kubeflow.org/replica-type": rtype,
                               "training.kubeflow.org/replica-index": str(i)})
                if rtype == "master":
                    labels["training.kubeflow.org/job-role"] = "master"
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{md['name']}-{rtype}-{i}", "labels": labels,
                                "ownerReferences": [{"apiVersion": op["api"], "kind": op["kind"],
                                                     "name": md["name"], "uid": md["uid"], "controller": True}]},
                   "spec": {**tmpl["spec"], "restartPolicy": rs.get("restartPolicy") or "Never"}}
            kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod))


@pytest.mark.parametrize("op", [KUBEFLOW, T9K], ids=["kubeflow-pytorchjob", "t9k-pytorchtrainingjob"])
def test_training_job_metrics_come_from_the_masters_log(kube_cluster, env, op):
    ns, name = env["ns"], f"stdout-{op['family']}"
    script = env["script"]
    tasks = [task("worker", [*command(script), "--role=worker"], replicas=1),
             task("master", command(script))]
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space='{"alpha": {"_type": "choice", "_value": [0.0001, 0.01]}}', max_trials=2, concurrency=2,
        primaryMetric="accuracy", metricsCollector=COLLECTOR, tasks=tasks,
        annotations={"autotune.tensorstack.dev/workload-kind": op["family"]}))
    played: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        exp = get_experiment(kube_cluster, ns, name)
        if (exp.get("status") or {}).get("phase") in ("DONE", "ERROR", "TIMEOUT"):
            break
        out = kube_cluster.kubectl("get", op["plural"], "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout
        for job in json.loads(out)["items"]:
            jn = job["metadata"]["name"]
            if jn not in played:
                play_training_operator(kube_cluster, ns, job, op)
                played.add(jn)
            elif not job.get("status"):
                pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"{op['owner_label']}={jn}",
                                                       "-o", "json").stdout)
                phases = [p["status"].get("phase") for p in pods["items"]]
                if len(phases) == 2 and all(ph == "Succeeded" for ph in phases):
                    set_status(kube_cluster, ns, op["plural"], jn, op["done"])
        time.sleep(0.5)
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=5, log=env["op"].output)["status"]
    assert st["workloadKind"] == op["family"] and st["trials"]["succeeded"] == 2, st
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    for tid, t in trials_of(env, uid).items():
        acc, loss = printed(kube_cluster.pod_log(ns, f"{tid}-master-0"))
        worker_acc, _ = printed(kube_cluster.pod_log(ns, f"{tid}-worker-0"))
        assert len(acc) == 4 and worker_acc == [0.0001] * 4  # the worker printed too, and is not read
        assert t["intermediate"] == acc and t["metrics"]["accuracy"] == acc[-1] and t["metrics"]["loss"] == loss[-1], t
