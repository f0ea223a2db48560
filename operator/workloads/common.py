"""What every workload family shares: metadata, the trial's pod template, outcomes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from autotune_operator.executors.base import substitute
from autotune_operator.workloads.accelerators import AcceleratorPolicy, apply_accelerators

EXPERIMENT_LABEL = "autotune.tensorstack.dev/experiment"
TRIAL_LABEL = "autotune.tensorstack.dev/trial"
SEQUENCE_ANNOTATION = "autotune.tensorstack.dev/sequence"
TOKEN_KEY = "token"
SECRET_ENV = "AUTOTUNE_TOKEN"


class WorkloadError(ValueError):
    """The experiment cannot be expressed as this kind of workload."""


@dataclass(frozen=True)
class Owner:
    """The AutoTuneExperiment that owns the workload (for ownerReferences)."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class TrialWorkload:
    """One trial, as the builders need it."""

    name: str  # workload name: <experiment>-<n>
    namespace: str
    experiment: str
    owner: Owner
    parameters: Mapping[str, Any]
    env: Mapping[str, str]  # trial_env(); AUTOTUNE_TOKEN is replaced by a secretKeyRef
    token_secret: str  # Secret holding the experiment's token under key "token"
    sequence: int = 0
    accelerators: AcceleratorPolicy = field(default_factory=AcceleratorPolicy)
    # The image of the File/TensorFlowEvent collectors' sidecar (metrics_sidecar.py); None:
    # the chart's default operator image of this version.
    collector_image: str | None = None


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # 0 succeeded; non-zero failed; None unknown
    message: str | None = None


def labels(trial: TrialWorkload) -> dict[str, str]:
    return {EXPERIMENT_LABEL: trial.experiment, TRIAL_LABEL: trial.name}


def metadata(trial: TrialWorkload) -> dict[str, Any]:
    return {
        "name": trial.name,
        "namespace": trial.namespace,
        "labels": labels(trial),
        "annotations": {SEQUENCE_ANNOTATION: str(trial.sequence)},
        "ownerReferences": [
            {
                "apiVersion": trial.owner.api_version,
                "kind": trial.owner.kind,
                "name": trial.owner.name,
                "uid": trial.owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _env_list(trial: TrialWorkload) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in trial.env.items():
        # The MLflow client's copy of the token (trial_env) comes from the Secret too: a
        # token must never be written in plain text into a workload's spec.
        if k in (SECRET_ENV, "MLFLOW_TRACKING_TOKEN"):
            out.append({"name": k, "valueFrom": {"secretKeyRef": {"name": trial.token_secret, "key": TOKEN_KEY}}})
        else:
            out.append({"name": k, "value": v})
    if SECRET_ENV not in trial.env:
        out.append({"name": SECRET_ENV, "valueFrom": {"secretKeyRef": {"name": trial.token_secret, "key": TOKEN_KEY}}})
    return out


def _container(c: Mapping[str, Any], trial: TrialWorkload) -> dict[str, Any]:
    c = copy.deepcopy(dict(c))
    for key in ("command", "args"):
        if key in c and c[key] is not None:
            c[key] = [substitute(a, trial.parameters) for a in c[key]]
    ours = _env_list(trial)
    names = {e["name"] for e in ours}
    # ${parameters.NAME} in env values too, as local mode (and the README) do.
    user = [{**e, "value": substitute(e["value"], trial.parameters)} if isinstance(e.get("value"), str) else e
            for e in (c.get("env") or []) if e.get("name") not in names]
    # AutoTune's variables first: Kubernetes expands $(VAR) in an env value only from the
    # variables listed before it, so a value like "run-$(AUTOTUNE_TRIAL_ID)" or "$(EPOCHS)"
    # (converted Katib templates) works (names never repeat: a user's of ours is dropped).
    c["env"] = ours + user
    return c


def pod_template(template: Mapping[str, Any], trial: TrialWorkload, restart_policy: str | None = None) -> dict[str, Any]:
    """The user's pod template with the trial's labels, env, parameters and accelerators."""
    t = copy.deepcopy(dict(template))
    meta = dict(t.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels(trial)}
    t["metadata"] = meta
    spec = dict(t["spec"])
    spec["containers"] = [_container(c, trial) for c in spec["containers"]]
    if spec.get("initContainers"):
        spec["initContainers"] = [_container(c, trial) for c in spec["initContainers"]]
    if restart_policy is not None and not spec.get("restartPolicy"):
        spec["restartPolicy"] = restart_policy
    t["spec"] = apply_accelerators(spec, trial.accelerators)
    return t


def condition(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and str(c.get("status")) == "True":
            return c
    return None
