"""A plain batch/v1 Job: one pod running the single task's template (single-process trials).

``backoffLimit: 0``: a trial whose process fails is a failed trial, at once (a retry would
re-run a configuration the tuner already holds a result slot for, and hide a crash). But a
pod can also end without anything being wrong with the trial: evicted (node drain, the
Eviction API), preempted by a higher-priority pod, deleted by the taint manager or the pod
garbage collector, or ended by the kubelet for node pressure or a node shutdown. Kubernetes
marks such a pod with the condition ``DisruptionTarget`` and a Job ``podFailurePolicy`` rule
``Ignore`` on it makes the Job controller create a new pod without counting the failure
(stable since Kubernetes 1.31, beta and on by default since 1.26). So the trial runs again
from its start in a new pod instead of ending FAILED and counting toward maxFailedTrialNum.

The Job API allows a podFailurePolicy only with ``restartPolicy: Never`` (a pod that restarts
its containers in place never fails as a whole for the policy to look at). A template with
``restartPolicy: OnFailure`` therefore gets none: there the kubelet restarts a failed
container in place, but a disrupted pod still fails the Job (backoffLimit 0) and the trial
ends FAILED, as before. Users cannot set Job-level fields (a task's template is a pod
template), so there is no user policy to merge with.
"""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.spec import TrainingConfig
from autotune_operator.workloads.common import Outcome, TrialWorkload, WorkloadError, condition, metadata, pod_template

# The pod condition Kubernetes sets on a pod it is about to end for reasons outside the pod:
# reason EvictionByEvictionAPI, PreemptionByScheduler, DeletionByTaintManager,
# DeletionByPodGC or TerminationByKubelet.
DISRUPTED = "DisruptionTarget"


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
    spec: dict[str, Any] = {"backoffLimit": 0, "template": template}
    if template["spec"]["restartPolicy"] == "Never":
        spec["podFailurePolicy"] = disruption_policy()
    return {"metadata": metadata(trial), "spec": spec}


def disruption_policy() -> dict[str, Any]:
    """A disrupted pod (condition DisruptionTarget) is replaced and not counted; every other
    failure counts (backoffLimit 0: the trial fails at once). With this policy the Job
    controller replaces a pod only once it is terminal (podReplacementPolicy Failed), so an
    evicted trial's old and new processes never run at the same time."""
    return {"rules": [{"action": "Ignore", "onPodConditions": [{"type": DISRUPTED, "status": "True"}]}]}


def outcome(obj: Mapping[str, Any]) -> Outcome | None:
    if condition(obj, "Complete") or condition(obj, "SuccessCriteriaMet"):
        return Outcome(0)
    failed = condition(obj, "Failed") or condition(obj, "FailureTarget")
    if failed:
        return Outcome(1, f"Job failed: {failed.get('reason', '')} {failed.get('message', '')}".strip())
    return None
