"""Katib's File and TensorFlowEvent metrics collectors on a cluster: training scripts that only
write ``accuracy=...`` lines to Katib's fixed path /var/log/katib/metrics.log, or TensorBoard
event files, are tuned unchanged. Each trial pod gets the ``autotune-metrics`` native sidecar
(``autotune collect-metrics``) sharing the path through an emptyDir; the operator reads the
sidecar's log. Two trials run at once writing the same path: each pod has its own file (the
fake kubelet gives each container its own mount namespace), so each trial's curve is exactly
what it wrote. Real kube-apiserver + controller-manager, fake nodes running pods as local
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
from tests.e2e.test_operator_stdout_metrics import KUBEFLOW, play_training_operator
from tests.e2e.test_operator_training_jobs import crd, set_status

IMAGE = "autotune/operator:e2e"  # images are not emulated: the fake node runs `autotune` from PATH
TRAIN = '''\
import argparse, os, struct, time, zlib

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, required=True)
p.add_argument("--events", default="")
p.add_argument("--role", default="master")
a = p.parse_args()
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
clf = SGDClassifier(loss="log_loss", alpha=a.alpha, random_state=0)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def record(step, tag, value):  # a TFRecord of Event{step, summary{value{tag, simple_value}}}
    t = tag.encode()
    val = b"\\x0a" + varint(len(t)) + t + b"\\x15" + struct.pack("<f", value)
    summ = b"\\x0a" + varint(len(val)) + val
    ev = b"\\x09" + struct.pack("<d", time.time()) + b"\\x10" + varint(step) + b"\\x2a" + varint(len(summ)) + summ
    head = struct.pack("<Q", len(ev))
    return head + struct.pack("<I", crc32c(head)) + ev + struct.pack("<I", crc32c(ev))


if a.events:
    os.makedirs(a.events + "/train", exist_ok=True)
    out = open(a.events + "/train/events.out.tfevents.%d.trial" % time.time(), "wb")
else:
    path = "/var/log/katib/metrics.log"  # Katib's fixed path, the same in every trial
    print("fresh file:", not os.path.exists(path), flush=True)
    out = open(path, "a")
for epoch in range(4):
    clf.partial_fit(Xtr, ytr, classes=np.arange(10))
    acc = clf.score(Xte, yte) if a.role == "master" else 0.0001  # a worker's file: never the trial's
    if a.events:
        out.write(record(epoch, "accuracy", acc))
        print(f"wrote accuracy {acc!r}", flush=True)
    else:
        out.write(f"epoch={epoch} accuracy={acc:.4f}\\n")
        print(f"wrote accuracy {acc:.4f}", flush=True)
    out.flush()
    time.sleep(1.0)
'''
SPACE = '{"alpha": {"_type": "choice", "_value": [0.0001, 0.01, 1.0]}}'
WROTE = re.compile(r"^wrote accuracy (\S+)$", re.M)


CRD = ("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs")


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd(*CRD)))
    kube_cluster.wait_crd_established(f"{CRD[3]}.{CRD[0]}")
    with operator_env(kube_cluster, tmp_path_factory.mktemp("filemetrics"), "filemetrics", script=TRAIN,
                      extra_env={"AUTOTUNE_COLLECTOR_IMAGE": IMAGE}) as e:
        yield e
    # Gone before the next module, which may apply the same CRD (see test_operator_stdout_metrics).
    kube_cluster.kubectl("delete", "crd", f"{CRD[3]}.{CRD[0]}", "--timeout=50s", check=False)


def trials_of(env, uid: str) -> dict[str, dict]:
    r = env["server"].get(f"/api/v1/experiments/{uid}/trials")
    return {t["name"]: t for t in r.json()} if r.status_code == 200 else {}


def run_experiment(kube_cluster, env, name: str, collector: dict, *extra: str) -> tuple[dict, dict[str, dict], list]:
    ns = env["ns"]
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, [sys.executable, str(env["script"]), "--alpha=${parameters.alpha}", *extra], space=SPACE,
        max_trials=3, concurrency=2, primaryMetric="accuracy", metricsCollector=collector,
        annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    uid = wait_for(lambda: get_experiment(kube_cluster, ns, name).get("metadata", {}).get("uid"), 30, "the experiment")
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=300, log=env["op"].output)["status"]
    return st, trials_of(env, uid), jobs(kube_cluster, ns, name)


def trial_pod(kube_cluster, ns: str, job: str) -> dict:
    pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"job-name={job}", "-o", "json").stdout)
    (pod,) = pods["items"]
    return pod


def test_plain_jobs_writing_katibs_fixed_metrics_file(kube_cluster, env):
    ns, name = env["ns"], "filemetrics"
    st, trials, js = run_experiment(kube_cluster, env, name, {"kind": "File", "path": "/var/log/katib/metrics.log"})
    assert st["trials"]["succeeded"] == 3, st
    finals = {}
    ran: dict[str, tuple[str, str]] = {}
    for job in js:
        tid = job["metadata"]["name"]
        side = [c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "autotune-metrics"]
        assert side and side[0]["image"] == IMAGE and side[0]["restartPolicy"] == "Always"
        pod = trial_pod(kube_cluster, ns, tid)
        main = kube_cluster.pod_log(ns, pod["metadata"]["name"], "pytorch")
        assert "fresh file: True" in main  # no other trial's file at the same path
        wrote = [float(v) for v in WROTE.findall(main)]
        assert len(wrote) == 4 and 0.1 < wrote[-1] <= 1.0, main
        relayed = kube_cluster.pod_log(ns, pod["metadata"]["name"], "autotune-metrics")
        # Each line marked with its place in the file (relay_marks.py: a restarted sidecar's replay
        # is not counted twice).
        assert relayed == "".join(f"@-:0:{i} epoch={i} accuracy={v:.4f}\n" for i, v in enumerate(wrote))
        t = trials[tid]
        assert t["state"] == "SUCCEEDED", t
        assert t["intermediate"] == wrote, (tid, t["intermediate"], wrote)  # this trial's own file only
        assert t["metrics"]["accuracy"] == wrote[-1]
        finals[tid] = wrote[-1]
        (cs,) = [c for c in pod["status"]["containerStatuses"] if c["name"] == "pytorch"]
        ran[tid] = (cs["state"]["terminated"]["startedAt"], cs["state"]["terminated"]["finishedAt"])
    assert st["bestTrial"]["value"] == max(finals.values())
    assert st["bestTrial"]["parameters"] != {"alpha": 1.0}  # heavy regularisation is really worse
    # trialConcurrency 2: two trials' processes ran at the same time, writing the same path.
    assert any(a != b and ran[a][0] < ran[b][1] and ran[b][0] < ran[a][1] for a in ran for b in ran), ran
    assert not [e for e in events_of(kube_cluster, ns, name) if e["type"] == "Warning"]
    assert "could not read the output" not in env["op"].output()


def test_plain_jobs_writing_tensorboard_event_files(kube_cluster, env):
    ns, name = env["ns"], "tfevents"
    st, trials, js = run_experiment(kube_cluster, env, name, {"kind": "TensorFlowEvent", "path": "/var/log/katib/tfevent"},
                                    "--events=/var/log/katib/tfevent")
    assert st["trials"]["succeeded"] == 3, st
    finals = {}
    for job in js:
        tid = job["metadata"]["name"]
        pod = trial_pod(kube_cluster, ns, tid)
        wrote = [float(v) for v in WROTE.findall(kube_cluster.pod_log(ns, pod["metadata"]["name"], "pytorch"))]
        assert len(wrote) == 4
        t = trials[tid]
        # Event files hold 32-bit floats: the values as they were stored.
        assert t["intermediate"] == pytest.approx(wrote, rel=1e-6), (tid, t["intermediate"], wrote)
        finals[tid] = t["metrics"]["accuracy"]
        assert finals[tid] == pytest.approx(wrote[-1], rel=1e-6)
    assert st["bestTrial"]["value"] == max(finals.values())
    assert not [e for e in events_of(kube_cluster, ns, name) if e["type"] == "Warning"]


def test_kubeflow_job_reads_the_masters_sidecar_only(kube_cluster, env):
    """A PyTorchJob (its pods made by the test, as Kubeflow's operator would): the master's
    template has the sidecar, the worker's only the volume; the worker writes its own file at
    the same path, which is never read."""
    ns, name = env["ns"], "filemetrics-kubeflow"
    cmd = [sys.executable, str(env["script"]), "--alpha=${parameters.alpha}"]
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space='{"alpha": {"_type": "choice", "_value": [0.0001, 0.01]}}', max_trials=2, concurrency=2,
        primaryMetric="accuracy", metricsCollector={"kind": "File", "path": "/var/log/katib/metrics.log"},
        tasks=[task("worker", [*cmd, "--role=worker"]), task("master", cmd)],
        annotations={"autotune.tensorstack.dev/workload-kind": "kubeflow"}))
    played: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if (get_experiment(kube_cluster, ns, name).get("status") or {}).get("phase") in ("DONE", "ERROR", "TIMEOUT"):
            break
        out = kube_cluster.kubectl("get", "pytorchjobs", "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout
        for job in json.loads(out)["items"]:
            jn = job["metadata"]["name"]
            if jn not in played:
                specs = job["spec"]["pytorchReplicaSpecs"]
                assert [c["name"] for c in specs["Master"]["template"]["spec"]["initContainers"]] == ["autotune-metrics"]
                assert "initContainers" not in specs["Worker"]["template"]["spec"]
                assert specs["Worker"]["template"]["spec"]["volumes"] == [{"name": "autotune-metrics", "emptyDir": {}}]
                play_training_operator(kube_cluster, ns, job, KUBEFLOW)
                played.add(jn)
            elif not job.get("status"):
                pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"{KUBEFLOW['owner_label']}={jn}",
                                                       "-o", "json").stdout)
                if [p["status"].get("phase") for p in pods["items"]] == ["Succeeded", "Succeeded"]:
                    set_status(kube_cluster, ns, "pytorchjobs", jn, KUBEFLOW["done"])
        time.sleep(0.5)
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=5, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 2, st
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    for tid, t in trials_of(env, uid).items():
        master = [float(v) for v in WROTE.findall(kube_cluster.pod_log(ns, f"{tid}-master-0", "pytorch"))]
        worker = [float(v) for v in WROTE.findall(kube_cluster.pod_log(ns, f"{tid}-worker-0", "pytorch"))]
        assert len(master) == 4 and worker == [0.0001] * 4  # the worker wrote too, and is not read
        assert t["intermediate"] == master and t["metrics"]["accuracy"] == master[-1], t
