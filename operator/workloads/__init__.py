"""Trial workload builders: one module per workload family, all pure functions.

``build(family, spec, trial)`` turns the experiment's ``trainingConfig`` and one trial into
the manifest of the object that runs it (a batch/v1 Job, a Kubeflow TFJob/PyTorchJob/
XGBoostJob or a T9k *TrainingJob), with a File/TensorFlowEvent metrics collector's sidecar
in its pod templates (metrics_sidecar.py); ``outcome(family, obj)`` reads whether that object
has finished and how. Nothing here talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from autotune_operator.spec import ExperimentSpec
from autotune_operator.workloads import batch_job, kubeflow, metrics_sidecar, t9k
from autotune_operator.workloads.common import (
    EXPERIMENT_LABEL,
    TRIAL_LABEL,
    Outcome,
    TrialWorkload,
    WorkloadError,
)

FAMILIES = ("job", "kubeflow", "t9k")


@dataclass(frozen=True)
class WorkloadKind:
    """The API coordinates of one kind of workload object."""

    family: str
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def kind_for(family: str, training_type: str) -> WorkloadKind:
    """Which object a family uses for a framework (tensorflow / pytorch / xgboost)."""
    if family == "job":
        return WorkloadKind("job", "batch", "v1", "Job", "jobs")
    if family == "kubeflow":
        kind, plural = kubeflow.KINDS[training_type]
        return WorkloadKind("kubeflow", kubeflow.GROUP, kubeflow.VERSION, kind, plural)
    if family == "t9k":
        kind, plural = t9k.KINDS[training_type]
        return WorkloadKind("t9k", t9k.GROUP, t9k.VERSION, kind, plural)
    raise WorkloadError(f"unknown workload family {family!r}; expected one of {', '.join(FAMILIES)}")


def all_kinds() -> list[WorkloadKind]:
    """Every kind the operator may create (for watches and RBAC)."""
    out = [kind_for("job", "tensorflow")]
    for fam in ("kubeflow", "t9k"):
        out += [kind_for(fam, t) for t in ("tensorflow", "pytorch", "xgboost")]
    return out


def choose_family(available_groups: Mapping[str, set[str]], override: str | None = None) -> str:
    """The workload family to use, given the cluster's API groups -> resource plurals.

    An override (operator setting or experiment annotation) wins; otherwise T9k training
    jobs, then Kubeflow jobs, then plain batch Jobs (always there).
    """
    if override:
        if override not in FAMILIES:
            raise WorkloadError(f"unknown workload kind {override!r}; expected one of {', '.join(FAMILIES)}")
        return override
    if "trainingjobs" in " ".join(available_groups.get(t9k.GROUP, set())):
        return "t9k"
    if {"tfjobs", "pytorchjobs", "xgboostjobs"} & available_groups.get(kubeflow.GROUP, set()):
        return "kubeflow"
    return "job"


def build(family: str, spec: ExperimentSpec, trial: TrialWorkload) -> dict[str, Any]:
    """The manifest of trial ``trial``'s workload."""
    kind = kind_for(family, spec.trainingConfig.type)
    if family == "job":
        body = batch_job.build(spec.trainingConfig, trial)
    elif family == "kubeflow":
        body = kubeflow.build(spec.trainingConfig, trial)
    else:
        body = t9k.build(spec.trainingConfig, trial)
    # File / TensorFlowEvent collectors: a sidecar relays the trial's metric files to a log.
    collector = metrics_sidecar.Collector.of(spec.metricsCollector, trial.collector_image or metrics_sidecar.default_image())
    body = metrics_sidecar.inject_workload(family, body, [t.type for t in spec.trainingConfig.tasks], collector)
    return {"apiVersion": kind.api_version, "kind": kind.kind, **body}


def outcome(family: str, obj: Mapping[str, Any]) -> Outcome | None:
    """How a workload ended, or None while it runs."""
    if family == "job":
        return batch_job.outcome(obj)
    if family == "kubeflow":
        return kubeflow.outcome(obj)
    if family == "t9k":
        return t9k.outcome(obj)
    raise WorkloadError(f"unknown workload family {family!r}")


__all__ = [
    "EXPERIMENT_LABEL", "TRIAL_LABEL", "FAMILIES", "Outcome", "TrialWorkload", "WorkloadError", "WorkloadKind",
    "all_kinds", "build", "choose_family", "kind_for", "outcome",
]
