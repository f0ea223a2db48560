"""Kubeflow training operator jobs (kubeflow.org/v1): TFJob, PyTorchJob, XGBoostJob."""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.spec import TrainingConfig
from autotune_operator.workloads.common import Outcome, TrialWorkload, condition, metadata, pod_template
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


def build(config: TrainingConfig, trial: TrialWorkload) -> dict[str, Any]:
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
