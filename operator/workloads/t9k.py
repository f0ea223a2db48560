"""T9k training jobs (batch.tensorstack.dev/v1beta1): TensorFlow/PyTorch/XGBoostTrainingJob."""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.spec import TrainingConfig
from autotune_operator.workloads.common import Outcome, TrialWorkload, condition, metadata, pod_template
from autotune_operator.workloads.names import training_job_name

GROUP = "batch.tensorstack.dev"
VERSION = "v1beta1"
KINDS: dict[str, tuple[str, str]] = {
    "tensorflow": ("TensorFlowTrainingJob", "tensorflowtrainingjobs"),
    "pytorch": ("PyTorchTrainingJob", "pytorchtrainingjobs"),
    "xgboost": ("XGBoostTrainingJob", "xgboosttrainingjobs"),
}


def build(config: TrainingConfig, trial: TrialWorkload) -> dict[str, Any]:
    specs = []
    for task in config.tasks:
        specs.append(
            {
                "type": task.type.lower(),
                "replicas": task.replicas,
                "restartPolicy": task.restartPolicy or "Never",
                "template": pod_template(task.template, trial),
            }
        )
    # Named so that each replica's Service, <job>-<type>-<index>, is a valid name (names.py).
    meta = {**metadata(trial), "name": training_job_name(trial.name, [(t.type, t.replicas) for t in config.tasks])}
    return {"metadata": meta, "spec": {"replicaSpecs": specs}}


def outcome(obj: Mapping[str, Any]) -> Outcome | None:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Succeeded" or condition(obj, "Completed"):
        return Outcome(0)
    failed = condition(obj, "Failed")
    if phase == "Failed" or failed:
        msg = (failed or {}).get("message") or (obj.get("status") or {}).get("message") or ""
        return Outcome(1, f"{obj.get('kind', 'job')} failed {msg}".strip())
    return None
