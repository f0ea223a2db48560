"""A File collector's metrics on a real control plane survive what kills or keeps a process:

* the ``autotune-metrics`` native sidecar killed mid-trial (SIGKILL to its process on the fake
  node, which restarts it as a kubelet restarts a native sidecar): the restarted sidecar relays
  the file from its start again, and the trial's curve still holds each value once (before:
  the values written before the kill were counted a second time, as later steps);
* a pod kept running by an ordinary (non-native) mesh sidecar, ``istio-proxy`` (a real
  never-exiting ``sleep``): the kubelet never stops ``autotune-metrics`` there, so its own
  final read never happens; the trial's last line, written without a newline, is still its
  result (before: the operator ended the trial after the grace with the line unread, and its
  result was the value before).

Real kube-apiserver + kube-controller-manager, fake nodes running the containers as local
processes, the tuner server and the operator as local processes; the trial trains a real
scikit-learn model and writes only to Katib's fixed path /var/log/katib/metrics.log."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from kube_harness.experiments import experiment_manifest, get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, events_of, jobs, operator_env, wait_for

IMAGE = "autotune/operator:e2e"  # images are not emulated: the fake node runs `autotune` from PATH
TRAIN = '''\
import argparse, pathlib, time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, required=True)
p.add_argument("--gate", default="")  # after 3 epochs, wait until this file exists
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--out", required=True)  # a host file: the values written, for the test to compare
a = p.parse_args()
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
clf = SGDClassifier(loss="log_loss", alpha=a.alpha, random_state=0)
out = open("/var/log/katib/metrics.log", "a")
for epoch in range(a.epochs):
    if epoch == 3 and a.gate:
        while not pathlib.Path(a.gate).exists():
            time.sleep(0.1)
    clf.partial_fit(Xtr, ytr, classes=np.arange(10))
    acc = clf.score(Xte, yte)
    last = epoch == a.epochs - 1
    # The last line without a newline (print(..., end="") or a logger without one).
    out.write(f"epoch={epoch} accuracy={acc:.4f}" + ("" if last else "\\n"))
    out.flush()
    with open(a.out, "a") as f:
        f.write(f"{acc:.4f}\\n")
'''
GRACE = 2
FILE = {"kind": "File", "path": "/var/log/katib/metrics.log"}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("relay"), "relay", script=TRAIN,
                      extra_env={"AUTOTUNE_COLLECTOR_IMAGE": IMAGE, "AUTOTUNE_SIDECAR_GRACE_SECONDS": str(GRACE)}) as e:
        yield e


def the_trial(env, uid: str) -> dict:
    r = env["server"].get(f"/api/v1/experiments/{uid}/trials")
    got = r.json() if r.status_code == 200 else []  # 404 until the operator registered the experiment
    return got[0] if len(got) == 1 else {}


def the_pod(kube_cluster, ns: str, exp: str) -> dict | None:
    js = jobs(kube_cluster, ns, exp)
    if not js:
        return None
    out = kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"job-name={js[0]['metadata']['name']}", "-o", "json")
    items = json.loads(out.stdout)["items"]
    return items[0] if items else None


def sidecar_status(pod: dict) -> dict:
    (st,) = [s for s in pod["status"].get("initContainerStatuses") or [] if s["name"] == "autotune-metrics"]
    return st


def start(kube_cluster, env, name: str, tasks: list[dict]) -> str:
    apply_manifest(kube_cluster, env["ns"], experiment_manifest(
        name, space='{"alpha": {"_type": "choice", "_value": [0.01]}}', max_trials=1, primaryMetric="accuracy",
        metricsCollector=FILE, tasks=tasks, annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    return wait_for(lambda: get_experiment(kube_cluster, env["ns"], name).get("metadata", {}).get("uid"), 30,
                    "the experiment")


def test_a_killed_metrics_sidecar_does_not_repeat_the_curve(kube_cluster, env):
    ns, name = env["ns"], "relay-restart"
    gate = env["tmp"] / "gate"
    out = env["tmp"] / "restart.values"
    uid = start(kube_cluster, env, name, [task("master", [sys.executable, str(env["script"]),
                                                          "--alpha=${parameters.alpha}", f"--gate={gate}",
                                                          f"--out={out}"])])
    # The first three values written, relayed and recorded before the sidecar dies.
    try:
        wait_for(lambda: len(the_trial(env, uid).get("intermediate") or []) == 3, 120, "3 values recorded",
                 interval=0.5)
    except AssertionError:
        pod = the_pod(kube_cluster, ns, name)
        raise AssertionError(f"{the_trial(env, uid)}\n{json.dumps((pod or {}).get('status'))}\n"
                             f"{kube_cluster.pod_log(ns, pod['metadata']['name'], 'autotune-metrics') if pod else ''}\n"
                             f"{env['op'].output()[-3000:]}") from None
    pod = the_pod(kube_cluster, ns, name)
    assert pod is not None
    pname = pod["metadata"]["name"]
    before = sidecar_status(pod)
    pid = int(before["containerID"].removeprefix("fakeproc://"))
    os.killpg(pid, signal.SIGKILL)  # its own session (the fake node starts each container so)

    def restarted() -> bool:
        p = the_pod(kube_cluster, ns, name)
        st = sidecar_status(p) if p else {}
        return st.get("restartCount", 0) >= 1 and "running" in (st.get("state") or {})
    wait_for(restarted, 60, "the sidecar restarted", interval=0.5)
    # The new sidecar relays the file from its start again (marked with the same positions).
    wait_for(lambda: kube_cluster.pod_log(ns, pname, "autotune-metrics").count("@-:0:2 epoch=2 ") == 2, 60,
             "the file relayed again")
    gate.write_text("go")
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1, st
    wrote = [float(v) for v in out.read_text().split()]
    assert len(wrote) == 5, wrote
    t = the_trial(env, uid)
    assert t["intermediate"] == wrote, (t["intermediate"], wrote)  # each value once, in order
    assert t["metrics"]["accuracy"] == wrote[-1]  # the last line (no newline): relayed on SIGTERM
    assert "could not read the output" not in env["op"].output()


def test_an_istio_kept_pod_still_reports_the_last_line_without_a_newline(kube_cluster, env):
    ns, name = env["ns"], "relay-istio"
    out = env["tmp"] / "istio.values"
    trainer = task("master", [sys.executable, str(env["script"]), "--alpha=${parameters.alpha}", "--epochs=4",
                              f"--out={out}"])
    # Istio's webhook (without native sidecars) would add this container; the test writes it.
    trainer["template"]["spec"]["containers"].append(
        {"name": "istio-proxy", "image": "istio/proxyv2", "command": ["sleep", "3600"]})
    uid = start(kube_cluster, env, name, [trainer])
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1, st
    t = the_trial(env, uid)
    wrote = [float(v) for v in out.read_text().split()]
    assert len(wrote) == 4, wrote
    assert t["intermediate"] == wrote, (t["intermediate"], wrote)
    assert t["metrics"]["accuracy"] == wrote[-1]  # the line without a newline
    reasons = [e["reason"] for e in events_of(kube_cluster, ns, name)]
    assert "TrialSidecarOutlived" in reasons and "TrialOutputUnread" not in reasons
