"""Katib #1042 on a real control plane: a mesh injects an ordinary sidecar container into
trial pods, the trial's own container exits, the sidecar does not, and the pod stays
Running (so its batch Job never completes). The operator ends such a trial with its
container's exit code after the grace (2 s here, AUTOTUNE_SIDECAR_GRACE_SECONDS, instead of
the default 30), posts TrialSidecarOutlived and deletes the Job; the experiment reaches DONE
with each trial's printed metrics, well before maxTrialSeconds would have stopped them; and
an operator killed before a trial's container exits and restarted after the grace decides
the same from the pod's status.

The second container is named ``istio-proxy`` and stands in for Istio's proxy: it is a real
``sleep`` process that never exits by itself (the fake kubelet runs containers as local
processes; nothing of Istio runs). Real kube-apiserver and kube-controller-manager (Job
controller, garbage collector), the tuner server and the operator as local processes; the
trial trains a real scikit-learn model and reports only by printing (StdOut collector), so
its output is read after its container ended and before its pod goes."""

from __future__ import annotations

import json
import sys
import time

import pytest

from kube_harness.experiments import experiment_manifest, get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, events_of, operator_env, wait_for

TRAIN = '''\
import argparse
import pathlib
import sys
import time

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", required=True)
p.add_argument("--out", required=True)
p.add_argument("--gate", default="")  # train only once this file exists (the test says when)
a = p.parse_args()
while a.gate and not pathlib.Path(a.gate).exists():
    time.sleep(0.1)
if a.alpha == "crash":
    print("diverged", flush=True)
    sys.exit(3)
X, y = load_iris(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
clf = SGDClassifier(alpha=float(a.alpha), random_state=0)
for epoch in range(3):
    clf.partial_fit(Xtr, ytr, classes=np.arange(3))
    acc = clf.score(Xte, yte)
    print(f"epoch={epoch} accuracy={acc:.4f}", flush=True)
pathlib.Path(a.out, a.alpha).write_text(f"{acc:.4f}")  # what the test compares the trial's result with
'''
SPACE = '{"alpha": {"_type": "choice", "_value": ["0.0001", "0.1", "crash"]}}'
GRACE = 2


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("sidecar"), "sidecar", script=TRAIN,
                      extra_env={"AUTOTUNE_SIDECAR_GRACE_SECONDS": str(GRACE)}) as e:
        yield e


def trainer_task(env, out, *extra: str) -> dict:
    trainer = task("master", [sys.executable, str(env["script"]), "--alpha=${parameters.alpha}", f"--out={out}", *extra])
    # The mesh's webhook would add this container; the test writes it into the template.
    trainer["template"]["spec"]["containers"].append(
        {"name": "istio-proxy", "image": "istio/proxyv2", "command": ["sleep", "3600"]})
    return trainer


def pod_of(kube_cluster, ns: str, trial: str) -> dict | None:
    pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"job-name={trial}", "-o", "json").stdout)
    return pods["items"][0] if pods["items"] else None


def state_of(pod: dict | None, container: str) -> dict:
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if cs["name"] == container:
            return cs.get("state") or {}
    return {}


def trials_of(env, uid: str) -> dict[str, dict]:
    r = env["server"].get(f"/api/v1/experiments/{uid}/trials")
    return {t["name"]: t for t in r.json()} if r.status_code == 200 else {}


def test_a_job_trial_whose_istio_proxy_never_exits_still_ends(kube_cluster, env):
    ns, name = env["ns"], "mesh"
    out = env["tmp"] / "results"
    out.mkdir()
    trainer = trainer_task(env, out)
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space=SPACE, max_trials=3, concurrency=2, tasks=[trainer], primaryMetric="accuracy",
        maxTrialSeconds=900, metricsCollector={"kind": "StdOut"},
        annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=240, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 2 and st["trials"]["failed"] == 1, st
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    trials = trials_of(env, uid)
    written = {p.name: float(p.read_text()) for p in out.iterdir()}
    assert set(written) == {"0.0001", "0.1"}
    for t in trials.values():
        alpha = t["parameters"]["alpha"]
        if alpha == "crash":  # the container's own exit code, and why its pod never ended
            assert t["state"] == "FAILED" and t["exitCode"] == 3, t
            assert "exited with code 3 (Error)" in t["message"] and "kept running by istio-proxy" in t["message"], t
        else:  # the printed result, read from the log after the container ended
            assert t["state"] == "SUCCEEDED" and t["exitCode"] == 0, t
            assert t["metrics"]["accuracy"] == written[alpha] and len(t["intermediate"]) == 3, t
        assert "maxTrialSeconds" not in (t.get("message") or "")
    events = [e for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialSidecarOutlived"]
    assert sorted(e["message"].split(":")[0] for e in events) == sorted(f"trial {t}" for t in trials), events
    assert all(e["type"] == "Warning" and "istio-proxy still ran" in e["message"] for e in events)
    # The Jobs were deleted, and with them the pods: no sleep process holds a slot any more.
    wait_for(lambda: not json.loads(kube_cluster.kubectl("get", "jobs,pods", "-n", ns, "-l", f"{LABEL}={name}",
                                                         "-o", "json").stdout)["items"], 60, "the trials' Jobs and pods to go")


def test_an_operator_restarted_while_the_sidecar_runs_decides_the_same(kube_cluster, env):
    """The operator is down when the trial's container exits and for longer than the grace:
    nothing of the trial's end is in any operator's memory. The restarted one adopts the
    running Job (no second copy), reads the container's finishedAt from the pod and ends the
    trial with its result and one Event, instead of waiting for maxTrialSeconds."""
    ns, name = env["ns"], "mesh-restart"
    out, gate = env["tmp"] / "results-restart", env["tmp"] / "gate"
    out.mkdir()
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space='{"alpha": {"_type": "choice", "_value": ["0.01"]}}', max_trials=1,
        tasks=[trainer_task(env, out, f"--gate={gate}")], primaryMetric="accuracy", maxTrialSeconds=900,
        metricsCollector={"kind": "StdOut"}, annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    trial = f"{name}-0"
    wait_for(lambda: "running" in state_of(pod_of(kube_cluster, ns, trial), "pytorch"), 120, "the trainer to run")
    env["op"].kill()
    gate.write_text("go")
    ended = wait_for(lambda: state_of(pod_of(kube_cluster, ns, trial), "pytorch").get("terminated"), 60,
                     "the trainer to exit")
    assert ended["exitCode"] == 0 and "running" in state_of(pod_of(kube_cluster, ns, trial), "istio-proxy")
    time.sleep(GRACE + 1)  # the grace passes while no operator runs (ordering, not a timing check)
    env["op"].start()
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1, st
    (t,) = trials_of(env, get_experiment(kube_cluster, ns, name)["metadata"]["uid"]).values()
    assert t["state"] == "SUCCEEDED" and t["exitCode"] == 0 and t["metrics"]["accuracy"] == float((out / "0.01").read_text())
    events = [e for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialSidecarOutlived"]
    assert len(events) == 1 and events[0]["message"].startswith(f"trial {trial}: container pytorch of pod "), events
    wait_for(lambda: pod_of(kube_cluster, ns, trial) is None, 60, "the trial's pod to go")
