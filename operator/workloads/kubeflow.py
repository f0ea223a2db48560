"""Kubeflow training operator jobs (kubeflow.org/v1): TFJob, PyTorchJob, XGBoostJob."""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.spec import TrainingConfig
from autotune_operator.workloads.common import Outcome, TrialWorkload, WorkloadError, condition, metadata, pod_template
from autotune_operator.workloads.names import training_job_name

GROUP = "kubeflow.org"
VERSION = "v1"
KINDS: dict[str, tuple[str, str]] = {
    "tensorflow": ("TFJob", "tfjobs"),
    "pytorch": ("PyTorchJob", "pytorchjobs"),
    "xgboost": ("XGBoostJob", "xgboostjobs"),
}
REPLICA_FIELD = {"tensorflow": "tfReplicaSpecs", "pytorch": "pytorchReplicaSpecs", "xgboost": "xgbReplicaSpecs"}
REPLICA_NAMES = {"chief": "Chief", "ps": "PS", "worker": "Worker", "evaluator": "Evaluator", "master": "Master"}
# The container the training operator gives the cluster's addresses (TF_CONFIG, MASTER_ADDR)
# and whose port its Services use; its admission webhook refuses a job with a replica that
# has none, and without the webhook the operator cannot make the replica's Service.
DEFAULT_CONTAINER = {"tensorflow": "tensorflow", "pytorch": "pytorch", "xgboost": "xgboost"}


def problems(config: TrainingConfig) -> list[str]:
    """What the training operator refuses in these tasks (its validating webhook's rules)."""
    out: list[str] = []
    kind = KINDS[config.type][0]
    wanted = DEFAULT_CONTAINER[config.type]
    types = [t.type.lower() for t in config.tasks]
    for i, task in enumerate(config.tasks):
        names = [c.get("name") for c in (task.template.get("spec") or {}).get("containers") or []]
        if wanted not in names:
            out.append(f"spec.trainingConfig.tasks[{i}].template.spec.containers: a {kind} needs a container named "
                       f"{wanted!r} in each replica (the Kubeflow training operator passes the cluster's addresses "
                       f"to it and refuses the job without one); found {names}")
        if config.type in ("pytorch", "xgboost") and task.type.lower() == "master" and task.replicas != 1:
            out.append(f"spec.trainingConfig.tasks[{i}].replicas: a {kind} has exactly 1 master replica, not {task.replicas}")
    if config.type == "xgboost" and "master" not in types:
        out.append(f"spec.trainingConfig.tasks: a {kind} needs a master task")
    if config.type == "tensorflow" and {"chief", "master"} <= set(types):
        out.append(f"spec.trainingConfig.tasks: a {kind} has a chief or a master task, not both")
    return out


def build(config: TrainingConfig, trial: TrialWorkload) -> dict[str, Any]:
    found = problems(config)
    if found:
        raise WorkloadError("the Kubeflow training operator would refuse these trials: " + "; ".join(found))
    replicas: dict[str, Any] = {}
    for task in config.tasks:
        policy = task.restartPolicy or "Never"
        replicas[REPLICA_NAMES[task.type.lower()]] = {
            "replicas": task.replicas,
            "restartPolicy": policy,
            "template": pod_template(task.template, trial),
        }
    # Named so that each replica's Service, <job>-<type>-<index>, is a valid name (names.py).
    meta = {**metadata(trial), "name": training_job_name(trial.name, [(t.type, t.replicas) for t in config.tasks])}
    return {
        "metadata": meta,
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0},
            REPLICA_FIELD[config.type]: replicas,
        },
    }


def outcome(obj: Mapping[str, Any]) -> Outcome | None:
    if condition(obj, "Succeeded"):
        return Outcome(0)
    failed = condition(obj, "Failed")
    if failed:
        return Outcome(1, f"{obj.get('kind', 'job')} failed: {failed.get('reason', '')} {failed.get('message', '')}".strip())
    return None
