"""Kubeflow (kubeflow.org/v1) and T9k (batch.tensorstack.dev/v1beta1) trial workloads.

Minimal CRDs for those kinds are installed (no controller runs them): the test plays the
training operator by running each workload's container command as a local process with
the env the operator injected (token resolved from the Secret), then patching the
workload's status to Succeeded/Failed, as the real controllers would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kube_harness.experiments import get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, events_of, operator_env, trial_experiment, wait_for
KINDS = [
    ("kubeflow.org", "v1", "TFJob", "tfjobs"),
    ("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs"),
    ("kubeflow.org", "v1", "XGBoostJob", "xgboostjobs"),
    ("batch.tensorstack.dev", "v1beta1", "TensorFlowTrainingJob", "tensorflowtrainingjobs"),
    ("batch.tensorstack.dev", "v1beta1", "PyTorchTrainingJob", "pytorchtrainingjobs"),
    ("batch.tensorstack.dev", "v1beta1", "XGBoostTrainingJob", "xgboosttrainingjobs"),
]


def crd(group: str, version: str, kind: str, plural: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    # The workload kinds' CRDs first: the operator discovers which kinds exist.
    docs = "\n---\n".join(yaml.safe_dump(crd(*k)) for k in KINDS)
    kube_cluster.kubectl("apply", "-f", "-", input=docs)
    for g, _, _, p in KINDS:
        kube_cluster.wait_crd_established(f"{p}.{g}")
    with operator_env(kube_cluster, tmp_path_factory.mktemp("training-jobs"), "tj") as e:  # workload kind: discovered
        yield e
    # Gone before the next module: another one applies the same CRDs, and a CRD still
    # terminating then vanishes under its 'wait Established' (and confuses operators' discovery).
    kube_cluster.kubectl("delete", "crd", *[f"{p}.{g}" for g, _, _, p in KINDS], "--timeout=50s", check=False)


def workloads(kube_cluster, ns: str, plural: str, exp: str) -> list[dict]:
    out = kube_cluster.kubectl("get", plural, "-n", ns, "-l", f"{LABEL}={exp}", "-o", "json").stdout
    return sorted(json.loads(out)["items"], key=lambda o: o["metadata"]["name"])


def play_trial(kube_cluster, ns: str, containers: list[dict]) -> int:
    """Run the first container's command as the training job would, with its env."""
    c = containers[0]
    env = {k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV") if k in os.environ}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            data = json.loads(kube_cluster.kubectl("get", "secret", ref["name"], "-n", ns, "-o", "json").stdout)["data"]
            env[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return subprocess.run(c["command"] + c.get("args", []), env=env, timeout=60).returncode


def set_status(kube_cluster, ns: str, plural: str, name: str, status: dict) -> None:
    kube_cluster.kubectl("patch", plural, name, "-n", ns, "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": status}))


def check_env(containers: list[dict], exp: str) -> None:
    for c in containers:
        names = {e["name"]: e for e in c["env"]}
        for k in ("AUTOTUNE_SERVER_URL", "AUTOTUNE_EXPERIMENT_ID", "AUTOTUNE_TRIAL_ID", "AUTOTUNE_PARAMETERS"):
            assert k in names, (k, c["name"])
        assert names["AUTOTUNE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{exp}-autotune-token"


def x_command(script: Path) -> list[str]:
    return [sys.executable, str(script), "--x=${parameters.x}"]


def tf_tasks(script: Path) -> list[dict]:
    """Two GPU workers and a parameter server (which asks for no accelerator)."""
    image = "t9kpublic/tensorflow-1.15.2:tuner-2.23"
    return [task("worker", x_command(script), replicas=2, container="tensorflow", image=image, limits={"nvidia.com/gpu": 1}),
            task("ps", x_command(script), container="tensorflow", image=image)]


def test_t9k_tensorflow_training_jobs_discovered(kube_cluster, env):
    ns, name = env["ns"], "t9k-tf"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=2,
                                                      training_type="tensorflow", tasks=tf_tasks(env["script"])))
    objs = wait_for(lambda: len(w := workloads(kube_cluster, ns, "tensorflowtrainingjobs", name)) == 2 and w, 60,
                    f"2 TensorFlowTrainingJobs; operator log:\n{env['op'].output()[-3000:]}")
    assert get_experiment(kube_cluster, ns, name)["status"]["workloadKind"] == "t9k"
    for o in objs:
        assert o["metadata"]["ownerReferences"][0]["kind"] == "AutoTuneExperiment"
        specs = {r["type"]: r for r in o["spec"]["replicaSpecs"]}
        assert set(specs) == {"worker", "ps"} and specs["worker"]["replicas"] == 2 and specs["ps"]["replicas"] == 1
        worker = specs["worker"]["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker["tolerations"]
        assert "tolerations" not in specs["ps"]["template"]["spec"]  # no accelerator asked for
        for r in specs.values():
            check_env(r["template"]["spec"]["containers"], name)
        assert play_trial(kube_cluster, ns, worker["containers"]) == 0
        set_status(kube_cluster, ns, "tensorflowtrainingjobs", o["metadata"]["name"], {"phase": "Succeeded"})
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=60, interval=0.3, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 2 and st["bestTrial"]["value"] in (1, 2, 3, 4), st


KUBEFLOW = {"autotune.tensorstack.dev/workload-kind": "kubeflow"}


def pt_tasks(script: Path) -> list[dict]:
    """A master and three workers, each with 8 Ascend 910 NPUs."""
    return [task(role, x_command(script), replicas=n, image="pytorch", limits={"huawei.com/Ascend910": 8})
            for role, n in (("master", 1), ("worker", 3))]


def test_kubeflow_pytorch_jobs_by_annotation(kube_cluster, env):
    ns, name = env["ns"], "kf-pt"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=2,
                                                      training_type="pytorch", tasks=pt_tasks(env["script"]),
                                                      annotations=KUBEFLOW))
    objs = wait_for(lambda: len(w := workloads(kube_cluster, ns, "pytorchjobs", name)) == 2 and w, 60,
                    f"2 PyTorchJobs; operator log:\n{env['op'].output()[-3000:]}")
    for o in objs:
        specs = o["spec"]["pytorchReplicaSpecs"]
        assert set(specs) == {"Master", "Worker"} and specs["Worker"]["replicas"] == 3
        for r in specs.values():
            pod = r["template"]["spec"]
            assert pod["nodeSelector"] == {"accelerator": "huawei-Ascend910"}
            assert {"key": "huawei.com/Ascend910", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
            check_env(pod["containers"], name)
    ok, bad = objs
    assert play_trial(kube_cluster, ns, ok["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]) == 0
    set_status(kube_cluster, ns, "pytorchjobs", ok["metadata"]["name"],
               {"conditions": [{"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"}]})
    set_status(kube_cluster, ns, "pytorchjobs", bad["metadata"]["name"],
               {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "OOM"}]})
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=60, interval=0.3, log=env["op"].output)["status"]
    assert st["workloadKind"] == "kubeflow"
    assert st["trials"]["succeeded"] == 1 and st["trials"]["failed"] == 1, st
    assert any(e["reason"] == "TrialFailed" and "OOM" in e["message"] for e in events_of(kube_cluster, ns, name))


def test_kubeflow_xgboost_job_kind(kube_cluster, env):
    ns, name = env["ns"], "kf-xgb"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, training_type="xgboost",
                                                      annotations=KUBEFLOW))
    (o,) = wait_for(lambda: workloads(kube_cluster, ns, "xgboostjobs", name), 60, "an XGBoostJob")
    assert set(o["spec"]["xgbReplicaSpecs"]) == {"Master"}
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s")


# ----- names: the Services a training operator creates for each replica -----
#
# Kubeflow's training operator (and T9k's) names each replica's pod AND Service
# <job>-<replica type, lowercase>-<index>; a Service name must be a DNS-1035 label (a-z first,
# then a-z, 0-9, '-', at most 63 characters), and Kubeflow's admission webhook holds the job's
# own name to the same rule. An experiment's name is a DNS-1123 subdomain of at most 47
# characters (dots, a leading digit allowed), and its trials are <name>-<n>, <name>-final-<n>.

LONGEST = "a" * 47
LEGAL_NAMES = [LONGEST, "dotted.experiment.name", "1st-try", "9" * 40 + ".x" * 3]


def replica_services(family: str, body: dict) -> list[str]:
    """The Service names the family's training operator derives from the workload (one per replica)."""
    name = body["metadata"]["name"]
    if family == "kubeflow":
        specs = next(v for k, v in body["spec"].items() if k.endswith("ReplicaSpecs"))
        pairs = [(rtype, r["replicas"]) for rtype, r in specs.items()]
    else:
        pairs = [(r["type"], r["replicas"]) for r in body["spec"]["replicaSpecs"]]
    return [f"{name}-{rtype.lower()}-{i}" for rtype, n in pairs for i in range(n)]


def tf_roles(script: Path) -> list[dict]:
    """Every TensorFlow replica type, the longest one (evaluator) with 12 replicas (index 11)."""
    return [task(role, x_command(script), replicas=n, container="tensorflow", image="tf")
            for role, n in (("chief", 1), ("ps", 2), ("worker", 10), ("evaluator", 12))]


@pytest.mark.parametrize("family", ["kubeflow", "t9k"])
@pytest.mark.parametrize("exp", LEGAL_NAMES)
def test_replica_service_names_accepted_by_apiserver(kube_cluster, tmp_path, family, exp):
    """For every legal experiment name, each replica Service of its trials' (and final
    trials') workloads is a name the real kube-apiserver accepts, distinct per trial."""
    from autotune_operator.spec import validate_manifest
    from autotune_operator.workloads import build
    from autotune_operator.workloads.common import Owner, TrialWorkload

    spec = validate_manifest(trial_experiment(exp, tmp_path / "t.py", training_type="tensorflow",
                                              tasks=tf_roles(tmp_path / "t.py"))).spec
    seen: set[str] = set()
    for trial in (f"{exp}-1", f"{exp}-123456789", f"{exp}-final-123456789"):
        tw = TrialWorkload(trial, "default", exp, Owner("tensorstack.dev/v1beta1", "AutoTuneExperiment", exp, "u"),
                           {"x": 1}, {}, f"{exp}-autotune-token")
        body = build(family, spec, tw)
        assert body["metadata"]["labels"]["autotune.tensorstack.dev/trial"] == trial
        services = replica_services(family, body)
        assert not seen & set(services), (trial, seen & set(services))
        seen |= set(services)
        doc = "\n---\n".join(json.dumps({"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": s, "namespace": "default"},
                                         "spec": {"clusterIP": "None", "ports": [{"port": 2222}]}})
                             for s in services)
        r = kube_cluster.kubectl("create", "--dry-run=server", "-f", "-", input=doc, check=False)
        assert r.returncode == 0, (trial, r.stderr[-2000:])


def test_kubeflow_dotted_name_trial_stopped_by_name(kube_cluster, env):
    """A dotted experiment name on Kubeflow: the PyTorchJob's Services are accepted, and
    stopping the trial (maxExecSeconds) deletes its workload (looked up by the name it has)."""
    ns, name = env["ns"], "kf.dotted"
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, training_type="pytorch",
                                                      tasks=pt_tasks(env["script"]), annotations=KUBEFLOW,
                                                      maxExecSeconds=8))
    (o,) = wait_for(lambda: workloads(kube_cluster, ns, "pytorchjobs", name), 60,
                    f"a PyTorchJob; operator log:\n{env['op'].output()[-3000:]}")
    for s in replica_services("kubeflow", o):
        kube_cluster.kubectl("create", "service", "clusterip", s, "--clusterip=None", "--tcp=23456:23456", "-n", ns)
    st = wait_for_phase(kube_cluster, ns, name, "TIMEOUT", timeout=60, interval=0.3, log=env["op"].output)["status"]
    assert st["trials"]["stopped"] == 1, st
    wait_for(lambda: not workloads(kube_cluster, ns, "pytorchjobs", name), 30,
             f"the stopped trial's PyTorchJob deleted; operator log:\n{env['op'].output()[-3000:]}")


def test_kubeflow_job_without_the_frameworks_container_is_an_error_at_once(kube_cluster, env):
    """Kubeflow's training operator refuses a PyTorchJob replica without a container named
    'pytorch' (its webhook; without one it cannot make the replica's Service): the experiment
    ends ERROR naming the field instead of creating jobs that never run."""
    ns, name = env["ns"], "kf-no-pytorch"
    tasks = [task("master", x_command(env["script"]), container="trainer", image="pytorch")]
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, training_type="pytorch",
                                                      tasks=tasks, annotations=KUBEFLOW))
    st = wait_for_phase(kube_cluster, ns, name, "ERROR", timeout=60, interval=0.3, log=env["op"].output)["status"]
    assert "tasks[0].template.spec.containers: a PyTorchJob needs a container named 'pytorch'" in st["message"], st
    assert not workloads(kube_cluster, ns, "pytorchjobs", name)
