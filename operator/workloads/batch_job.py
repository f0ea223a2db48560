"""A plain batch/v1 Job: one pod running the single task's template (single-process trials)."""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.spec import TrainingConfig
from autotune_operator.workloads.common import Outcome, TrialWorkload, WorkloadError, condition, metadata, pod_template


def build(config: TrainingConfig, trial: TrialWorkload) -> dict[str, Any]:
    if len(config.tasks) != 1 or config.tasks[0].replicas != 1:
        raise WorkloadError(
            "a batch/v1 Job runs one process: trainingConfig needs exactly one task with replicas 1 "
            "(install the Kubeflow training operator or T9k for distributed trials)"
        )
    task = config.tasks[0]
    template = pod_template(task.template, trial, restart_policy="Never")
    if template["spec"]["restartPolicy"] not in ("Never", "OnFailure"):
        template["spec"]["restartPolicy"] = "Never"
    return {
        "metadata": metadata(trial),
        "spec": {"backoffLimit": 0, "template": template},
    }


def outcome(obj: Mapping[str, Any]) -> Outcome | None:
    if condition(obj, "Complete") or condition(obj, "SuccessCriteriaMet"):
        return Outcome(0)
    failed = condition(obj, "Failed") or condition(obj, "FailureTarget")
    if failed:
        return Outcome(1, f"Job failed: {failed.get('reason', '')} {failed.get('message', '')}".strip())
    return None
