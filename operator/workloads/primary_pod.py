"""Which pod and container of a trial hold its output: pure functions of pod objects.

A metrics collector that reads a trial's stdout (``spec.metricsCollector``) reads one
container of one pod, the one local mode runs (the task's first container):

* a plain batch/v1 Job: its newest pod (backoffLimit 0, but an evicted or preempted pod is
  replaced by the Job's podFailurePolicy, batch_job.py, and the replacement is the one
  running the trial now; read from its start, its values numbered on after the old pod's);
* Kubeflow TFJob / PyTorchJob / XGBoostJob and T9k *TrainingJob: the replica that leads
  the training, index 0: ``chief`` if the trial has one, else ``master``, else ``worker``
  (a TFJob without a chief: TensorFlow makes worker 0 the chief, and Kubeflow labels that
  pod ``job-role: master``), else the first task's type. This is the pod Katib calls
  primary (``training.kubeflow.org/job-role: master``); T9k's replica types are the same
  words with the same roles, so the same rule serves its kinds.

A pod's replica type and index are read from the operators' labels
(``training.kubeflow.org/replica-type``/``replica-index``, the older unprefixed
``replica-type``/``replica-index``, or any ``<prefix>/replica-type``), else from its name:
both operators name a replica's pod ``<job>-<type>-<index>`` (the job is named after the
trial, names.py; ``tasks`` give the replica counts that name depends on).
Of several pods of that replica (a pod re-created after a restart) the newest wins.

The container is the first container of that replica's template in the experiment's
``trainingConfig`` (its name); a pod that has no container of that name (a webhook renamed
it) is read from its first container. A File or TensorFlowEvent collector's lines are the
log of that pod's sidecar (metrics_sidecar.py), a native sidecar whose status is among the
pod's ``initContainerStatuses``: ``primary_pod(..., container="autotune-metrics")``.
Nothing here talks to a cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from autotune_operator.workloads.names import workload_name
from autotune_operator.workloads.pods import newest, pods_by_trial

# Replica types every supported framework uses (spec.REPLICA_TYPES' union).
REPLICA_TYPES = ("chief", "master", "worker", "ps", "evaluator")
ROLE_LABEL = "training.kubeflow.org/job-role"  # "master" on Kubeflow's primary pod
_TYPE_LABELS = ("training.kubeflow.org/replica-type", "replica-type")
_INDEX_LABELS = ("training.kubeflow.org/replica-index", "replica-index")


@dataclass(frozen=True)
class LogSource:
    """The pod and container to read, and whether that container has run (has a log)."""

    pod: str
    uid: str
    container: str
    has_log: bool


def primary_replica(task_types: Sequence[str]) -> str:
    """The replica type whose index-0 pod leads the training (see the module doc)."""
    types = [t.lower() for t in task_types]
    for t in ("chief", "master", "worker"):
        if t in types:
            return t
    return types[0]


def replica_of(pod: Mapping[str, Any], job: str) -> tuple[str, int] | None:
    """(replica type, index) of a training job's pod, from labels or its name (``job``: the
    training job's name)."""
    md = pod.get("metadata") or {}
    labels: Mapping[str, str] = md.get("labels") or {}
    rtype = next((labels[k] for k in _TYPE_LABELS if k in labels), None)
    if rtype is None:
        rtype = next((v for k, v in labels.items() if k.endswith("/replica-type")), None)
    index = next((labels[k] for k in _INDEX_LABELS if k in labels), None)
    if index is None:
        index = next((v for k, v in labels.items() if k.endswith("/replica-index")), None)
    if rtype is not None and index is not None and str(index).isdigit():
        return str(rtype).lower(), int(index)
    m = re.fullmatch(rf"{re.escape(job)}-({'|'.join(REPLICA_TYPES)})-(\d+)", str(md.get("name") or ""), re.I)
    if m:
        return m.group(1).lower(), int(m.group(2))
    return None


def has_run(pod: Mapping[str, Any], container: str) -> bool:
    """Whether the container ever started (running or terminated, now or before a restart):
    before that the kubelet has no log and the API answers 400. Init containers (a native
    sidecar among them) are looked up too."""
    status = pod.get("status") or {}
    for cs in list(status.get("containerStatuses") or []) + list(status.get("initContainerStatuses") or []):
        if isinstance(cs, Mapping) and cs.get("name") == container:
            for state in (cs.get("state"), cs.get("lastState")):
                if isinstance(state, Mapping) and (state.get("running") or state.get("terminated")):
                    return True
    return False


def template_container(tasks: Sequence[Mapping[str, Any]], replica: str) -> str | None:
    """The first container's name in the template of the task of type ``replica``."""
    for t in tasks:
        if str(t.get("type", "")).lower() == replica:
            containers = ((t.get("template") or {}).get("spec") or {}).get("containers") or []
            return containers[0].get("name") if containers else None
    return None


def primary_pod(family: str, trial: str, pods: Iterable[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]],
                not_before: float | None = None, container: str | None = None) -> LogSource | None:
    """The pod and container whose log is trial ``trial``'s output, or None while it has no pod.

    ``pods``: pods of the namespace (those not labelled with the trial are ignored).
    ``tasks``: the experiment's ``trainingConfig.tasks`` as mappings (type, replicas, template).
    ``not_before``: the workload's creation time; an older pod belongs to an earlier
    experiment of the same name (trial names are reused) and is ignored.
    ``container``: read this container (or init container) of the primary pod instead of
    the template's first container (a metrics collector's sidecar).
    """
    mine = pods_by_trial(pods, {trial: float("-inf") if not_before is None else not_before})[trial]
    if not mine or not tasks:
        return None
    if family == "job":
        replica = str(tasks[0].get("type", "")).lower()
        chosen = newest(mine)
    else:
        replica = primary_replica([str(t.get("type", "")) for t in tasks])
        job = workload_name(family, trial, [(str(t.get("type", "")), int(t.get("replicas") or 1)) for t in tasks])
        leaders = [p for p in mine if replica_of(p, job) == (replica, 0)]
        if not leaders:  # unknown labels and names: Kubeflow's role label still says
            leaders = [p for p in mine if ((p.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL) == "master"]
        chosen = newest(leaders)
    if chosen is None:
        return None
    md = chosen.get("metadata") or {}
    if container is not None:
        return LogSource(str(md.get("name")), str(md.get("uid") or ""), container, has_run(chosen, container))
    names = [c.get("name") for c in (chosen.get("spec") or {}).get("containers") or [] if isinstance(c, Mapping)]
    wanted = template_container(tasks, replica)
    read = wanted if wanted in names else (names[0] if names else wanted)
    if not read:
        return None
    return LogSource(str(md.get("name")), str(md.get("uid") or ""), read, has_run(chosen, read))
