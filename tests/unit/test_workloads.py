"""Workload builders: experiment spec + trial -> manifest (pure functions, no cluster)."""

from __future__ import annotations

import re

import pytest
import yaml

from autotune_operator.executors.base import trial_env
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads import (
    EXPERIMENT_LABEL,
    TRIAL_LABEL,
    TrialWorkload,
    WorkloadError,
    build,
    choose_family,
    kind_for,
    outcome,
)
from autotune_operator.workloads.accelerators import AcceleratorPolicy, apply_accelerators
from autotune_operator.workloads.common import Owner

SEED = """
apiVersion: tensorstack.dev/v1beta1
kind: AutoTuneExperiment
metadata:
  name: experiment-sample
spec:
  maxExecSeconds: 7200
  maxTrialNum: 50
  trialConcurrency: 3
  searchSpace: |-
    {
      "batch_size": {"_type": "choice", "_value": [512, 1024, 2048, 4096, 8092]},
      "learning_rate": {"_type": "choice", "_value": [0.0001, 0.001, 0.01, 0.1]}
    }
  trainingConfig:
    type: tensorflow
    tasks:
      - type: worker
        replicas: 1
        template:
          spec:
            securityContext:
              runAsUser: 1000
            containers:
              - command:
                  - python3
                  - dist_mnist.py
                  - --lr=${parameters.learning_rate}
                workingDir: /mnt/mnist-distributed
                imagePullPolicy: IfNotPresent
                image: t9kpublic/tensorflow-1.15.2:tuner-2.23
                name: tensorflow
                env:
                  - {name: USER_VAR, value: "1"}
                  - {name: AUTOTUNE_TRIAL_ID, value: "overridden"}
  tuner:
    builtinTunerName: TPE
    classArgs: |-
      {
        "optimize_mode": "minimize",
        "constant_liar_type": "min"
      }
"""

PARAMS = {"batch_size": 1024, "learning_rate": 0.01}


def spec_of(text: str = SEED, mutate=None):
    doc = yaml.safe_load(text)
    if mutate:
        mutate(doc)
    return validate_manifest(doc).spec


def trial(**kw) -> TrialWorkload:
    env = trial_env("http://tuner:8080", "secret-token", "uid-1", "experiment-sample-3", 3, PARAMS)
    base = dict(
        name="experiment-sample-3",
        namespace="ns1",
        experiment="experiment-sample",
        owner=Owner("tensorstack.dev/v1beta1", "AutoTuneExperiment", "experiment-sample", "uid-1"),
        parameters=PARAMS,
        env=env,
        token_secret="experiment-sample-autotune-token",
        sequence=3,
    )
    base.update(kw)
    return TrialWorkload(**base)


def pod_specs(manifest) -> list[dict]:
    spec = manifest["spec"]
    if manifest["kind"] == "Job":
        return [spec["template"]]
    if "replicaSpecs" in spec:
        return [r["template"] for r in spec["replicaSpecs"]]
    field = next(k for k in spec if k.endswith("ReplicaSpecs"))
    return [r["template"] for r in spec[field].values()]


def check_common(m) -> None:
    md = m["metadata"]
    assert md["name"] == "experiment-sample-3" and md["namespace"] == "ns1"
    assert md["labels"] == {EXPERIMENT_LABEL: "experiment-sample", TRIAL_LABEL: "experiment-sample-3"}
    (ref,) = md["ownerReferences"]
    assert ref["kind"] == "AutoTuneExperiment" and ref["uid"] == "uid-1" and ref["controller"] is True
    for tpl in pod_specs(m):
        assert tpl["metadata"]["labels"][TRIAL_LABEL] == "experiment-sample-3"
        for c in tpl["spec"]["containers"]:
            env = {e["name"]: e for e in c["env"]}
            assert env["AUTOTUNE_TRIAL_ID"]["value"] == "experiment-sample-3"  # ours wins over the user's
            assert env["USER_VAR"]["value"] == "1"
            assert env["AUTOTUNE_SERVER_URL"]["value"] == "http://tuner:8080"
            assert env["AUTOTUNE_SEQUENCE_ID"]["value"] == "3"
            tok = env["AUTOTUNE_TOKEN"]
            assert "value" not in tok, "the token must never appear in the workload in clear"
            assert tok["valueFrom"]["secretKeyRef"] == {"name": "experiment-sample-autotune-token", "key": "token"}
            assert c["command"] == ["python3", "dist_mnist.py", "--lr=0.01"]
    assert "secret-token" not in yaml.safe_dump(m)


def test_batch_job_from_seed_example():
    m = build("job", spec_of(), trial())
    assert m["apiVersion"] == "batch/v1" and m["kind"] == "Job"
    assert m["spec"]["backoffLimit"] == 0
    assert m["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert m["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 1000}
    check_common(m)


def test_batch_job_replaces_a_disrupted_pod_and_fails_on_anything_else():
    # An evicted / preempted / drained pod (condition DisruptionTarget) is replaced without
    # counting; any other pod failure still fails the Job at once (backoffLimit 0).
    m = build("job", spec_of(), trial())
    assert m["spec"]["backoffLimit"] == 0
    assert m["spec"]["podFailurePolicy"] == {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}


@pytest.mark.parametrize("policy,expected", [("Never", "Never"), ("Always", "Never"), (None, "Never")])
def test_batch_job_policy_whenever_the_pod_never_restarts(policy, expected):
    def set_policy(doc):
        spec = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]
        if policy is not None:
            spec["restartPolicy"] = policy

    m = build("job", spec_of(mutate=set_policy), trial())
    assert m["spec"]["template"]["spec"]["restartPolicy"] == expected
    assert m["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"


def test_batch_job_on_failure_template_gets_no_pod_failure_policy():
    # The Job API refuses a podFailurePolicy with restartPolicy OnFailure (422): the template
    # is kept as written and a disrupted pod fails the trial, as before.
    def on_failure(doc):
        doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["restartPolicy"] = "OnFailure"

    m = build("job", spec_of(mutate=on_failure), trial())
    assert m["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "podFailurePolicy" not in m["spec"] and m["spec"]["backoffLimit"] == 0


def test_training_jobs_carry_no_pod_failure_policy():
    # Kubeflow and T9k jobs have no such field (their operators handle their own pods).
    for family in ("kubeflow", "t9k"):
        assert "podFailurePolicy" not in yaml.safe_dump(build(family, spec_of(), trial()))


def test_batch_job_refuses_distributed_tasks():
    def two(doc):
        doc["spec"]["trainingConfig"]["tasks"][0]["replicas"] = 2

    with pytest.raises(WorkloadError, match="one process"):
        build("job", spec_of(mutate=two), trial())


def test_kubeflow_tfjob_replica_specs():
    def chief(doc):
        tasks = doc["spec"]["trainingConfig"]["tasks"]
        tasks.append({**tasks[0], "type": "chief", "replicas": 1})
        tasks.append({**tasks[0], "type": "ps", "replicas": 2, "restartPolicy": "OnFailure"})

    m = build("kubeflow", spec_of(mutate=chief), trial())
    assert m["apiVersion"] == "kubeflow.org/v1" and m["kind"] == "TFJob"
    specs = m["spec"]["tfReplicaSpecs"]
    assert set(specs) == {"Worker", "Chief", "PS"}
    assert specs["PS"]["replicas"] == 2 and specs["PS"]["restartPolicy"] == "OnFailure"
    assert specs["Worker"]["restartPolicy"] == "Never"
    assert m["spec"]["runPolicy"]["backoffLimit"] == 0
    check_common(m)


@pytest.mark.parametrize(
    "ftype,kind,field",
    [("pytorch", "PyTorchJob", "pytorchReplicaSpecs"), ("xgboost", "XGBoostJob", "xgbReplicaSpecs")],
)
def test_kubeflow_pytorch_xgboost(ftype, kind, field):
    def fw(doc):
        doc["spec"]["trainingConfig"]["type"] = ftype
        doc["spec"]["trainingConfig"]["tasks"][0]["type"] = "master"
        doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["name"] = ftype

    m = build("kubeflow", spec_of(mutate=fw), trial())
    assert m["kind"] == kind and set(m["spec"][field]) == {"Master"}
    check_common(m)


KF_TASK = {"type": "worker", "template": {"spec": {"containers": [{"name": "pytorch", "image": "i"}]}}}


@pytest.mark.parametrize("ftype,tasks,refused", [
    # the webhook's rules: a container named after the framework in every replica ...
    ("pytorch", [{**KF_TASK, "type": "master", "template": {"spec": {"containers": [{"name": "main", "image": "i"}]}}}],
     "tasks[0].template.spec.containers: a PyTorchJob needs a container named 'pytorch'"),
    ("tensorflow", [{**KF_TASK, "template": {"spec": {"containers": [{"name": "pytorch", "image": "i"}]}}}],
     "a TFJob needs a container named 'tensorflow'"),
    # ... one master (PyTorch, XGBoost: exactly one replica; XGBoost: required) ...
    ("pytorch", [{**KF_TASK, "type": "master", "replicas": 2}], "tasks[0].replicas: a PyTorchJob has exactly 1 master"),
    ("xgboost", [{**KF_TASK, "template": {"spec": {"containers": [{"name": "xgboost", "image": "i"}]}}}],
     "a XGBoostJob needs a master task"),
    # ... and a TFJob's chief or master, not both
    ("tensorflow", [{**KF_TASK, "type": t, "template": {"spec": {"containers": [{"name": "tensorflow", "image": "i"}]}}}
                    for t in ("chief", "master")], "a TFJob has a chief or a master task, not both"),
])
def test_kubeflow_jobs_the_training_operator_refuses_are_refused_naming_the_field(ftype, tasks, refused):
    def fw(doc):
        doc["spec"]["trainingConfig"] = {"type": ftype, "tasks": tasks}

    spec = spec_of(mutate=fw)
    with pytest.raises(WorkloadError, match=re.escape(refused)):
        build("kubeflow", spec, trial())


@pytest.mark.parametrize(
    "ftype,kind", [("tensorflow", "TensorFlowTrainingJob"), ("pytorch", "PyTorchTrainingJob"), ("xgboost", "XGBoostTrainingJob")]
)
def test_t9k_training_jobs(ftype, kind):
    def fw(doc):
        doc["spec"]["trainingConfig"]["type"] = ftype
        doc["spec"]["trainingConfig"]["tasks"][0]["type"] = "worker"
        doc["spec"]["trainingConfig"]["tasks"][0]["replicas"] = 4

    m = build("t9k", spec_of(mutate=fw), trial())
    assert m["apiVersion"] == "batch.tensorstack.dev/v1beta1" and m["kind"] == kind
    (rs,) = m["spec"]["replicaSpecs"]
    assert rs["type"] == "worker" and rs["replicas"] == 4 and rs["restartPolicy"] == "Never"
    check_common(m)


def test_builders_do_not_mutate_the_spec():
    spec = spec_of()
    before = spec.model_dump()
    build("t9k", spec, trial())
    build("job", spec, trial())
    assert spec.model_dump() == before


@pytest.mark.parametrize(
    "resource,selector",
    [
        ("nvidia.com/gpu", None),
        ("amd.com/gpu", None),
        ("huawei.com/Ascend910", {"accelerator": "huawei-Ascend910"}),
        ("huawei.com/Ascend310", {"accelerator": "huawei-Ascend310"}),
        ("huawei.com/Ascend310P", {"accelerator": "huawei-Ascend310P"}),
    ],
)
def test_accelerator_tolerations_and_selectors(resource, selector):
    def gpu(doc):
        c = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
        c["resources"] = {"limits": {resource: 1}}

    m = build("t9k", spec_of(mutate=gpu), trial())
    pod = m["spec"]["replicaSpecs"][0]["template"]["spec"]
    assert {"key": resource, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod.get("nodeSelector") == selector


def test_accelerator_user_settings_win_and_policy_overrides():
    pod = {
        "containers": [{"name": "c", "resources": {"requests": {"huawei.com/Ascend910": "2"}}}],
        "nodeSelector": {"accelerator": "mine"},
        "tolerations": [{"key": "huawei.com/Ascend910", "operator": "Equal", "value": "x"}],
    }
    out = apply_accelerators(pod, AcceleratorPolicy())
    assert out["nodeSelector"] == {"accelerator": "mine"}
    assert out["tolerations"] == pod["tolerations"]
    custom = AcceleratorPolicy(tolerate=False, node_selectors={"huawei.com/Ascend910": {"autotune.dev/accelerator": "huawei-ascend910"}})
    out = apply_accelerators({"containers": pod["containers"]}, custom)
    assert "tolerations" not in out and out["nodeSelector"] == {"autotune.dev/accelerator": "huawei-ascend910"}
    assert apply_accelerators({"containers": [{"name": "c"}]}, AcceleratorPolicy()) == {"containers": [{"name": "c"}]}


def test_outcomes():
    running = {"status": {"conditions": [{"type": "Running", "status": "True"}]}}
    assert outcome("job", {"status": {}}) is None
    assert outcome("job", {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).exit_code == 0
    failed = outcome("job", {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}})
    assert failed.exit_code == 1 and "BackoffLimitExceeded" in failed.message
    assert outcome("kubeflow", running) is None
    assert outcome("kubeflow", {"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}}).exit_code == 0
    assert outcome("kubeflow", {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}).exit_code == 1
    assert outcome("t9k", {"status": {"phase": "Running"}}) is None
    assert outcome("t9k", {"status": {"phase": "Succeeded"}}).exit_code == 0
    assert outcome("t9k", {"status": {"phase": "Failed"}}).exit_code == 1


def test_choose_family_and_kinds():
    assert choose_family({}) == "job"
    assert choose_family({"kubeflow.org": {"tfjobs", "pytorchjobs"}}) == "kubeflow"
    both = {"kubeflow.org": {"tfjobs"}, "batch.tensorstack.dev": {"pytorchtrainingjobs"}}
    assert choose_family(both) == "t9k"
    assert choose_family(both, override="job") == "job"
    with pytest.raises(WorkloadError):
        choose_family({}, override="spark")
    assert kind_for("kubeflow", "xgboost").plural == "xgboostjobs"
    assert kind_for("t9k", "pytorch").api_version == "batch.tensorstack.dev/v1beta1"


def test_placeholders_in_env_values_are_substituted_on_the_cluster_too() -> None:
    """Local mode substituted ${parameters.NAME} in env values; pods got the literal text."""

    def env_lr(doc):
        c = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
        c["env"].append({"name": "LR", "value": "lr=${parameters.learning_rate}"})
        c["env"].append({"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})

    (pod,) = pod_specs(build("job", spec_of(mutate=env_lr), trial()))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["LR"]["value"] == "lr=0.01"
    assert env["USER_VAR"]["value"] == "1"
    assert env["FROM_SECRET"] == {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
