"""When a trial really began running, read from its pods: pure functions of pod objects.

A trial's workload (batch Job, Kubeflow or T9k training job) is created at once, but its
pods may wait in Pending for minutes or hours (no free GPU/NPU, an image still pulling).
A trial *starts* when any container of any of its pods first ran: the earliest
``startedAt`` of a container's current state (``running`` or ``terminated``) or of its
``lastState`` (a container that restarted), init containers included (an init container
is the trial's own code, run on the node that holds the trial's devices). Every workload
kind labels its pods with the trial (``autotune.tensorstack.dev/trial``), so one rule
serves them all. A batch Job trial's pod that was evicted or preempted is replaced
(batch_job.py): the earliest start stays the trial's start, and ``disruptions`` names the
pods that were ended that way. Nothing here talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping

from autotune_operator.status import parse_time
from autotune_operator.workloads.batch_job import DISRUPTED
from autotune_operator.workloads.common import TRIAL_LABEL


def _state_start(state: Any) -> float | None:
    """``startedAt`` of a container state that ran (``running`` or ``terminated``)."""
    if not isinstance(state, Mapping):
        return None
    times = [parse_time((state.get(k) or {}).get("startedAt")) for k in ("running", "terminated")
             if isinstance(state.get(k), Mapping)]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def pod_started(pod: Mapping[str, Any]) -> float | None:
    """The earliest time any container (or init container) of the pod was running, or None
    while none has run (Pending: unscheduled, pulling its image, ContainerCreating)."""
    status = pod.get("status") or {}
    found: list[float] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            if not isinstance(cs, Mapping):
                continue
            for state in (cs.get("state"), cs.get("lastState")):
                t = _state_start(state)
                if t is not None:
                    found.append(t)
    return min(found) if found else None


def pods_by_trial(pods: Iterable[Mapping[str, Any]], not_before: Mapping[str, float]) -> dict[str, list[Mapping[str, Any]]]:
    """The pods of each trial in ``not_before``, in the order listed. ``not_before`` maps
    each trial to its workload's creation time: a pod created earlier belongs to an earlier
    experiment of the same name (trial names are ``<experiment>-<n>``, so a re-created
    experiment reuses them) and is left out."""
    out: dict[str, list[Mapping[str, Any]]] = {t: [] for t in not_before}
    for pod in pods:
        md = pod.get("metadata") or {}
        trial = (md.get("labels") or {}).get(TRIAL_LABEL)
        if trial not in out:
            continue
        created = parse_time(md.get("creationTimestamp"))
        if created is not None and created < not_before[trial]:
            continue
        out[trial].append(pod)
    return out


def newest(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod created last (by name among equal times: creationTimestamp has whole seconds)."""
    def key(p: Mapping[str, Any]) -> tuple[float, str]:
        md = p.get("metadata") or {}
        return parse_time(md.get("creationTimestamp")) or 0.0, str(md.get("name") or "")
    return max(pods, key=key, default=None)


def trial_starts(pods: Iterable[Mapping[str, Any]], not_before: Mapping[str, float]) -> dict[str, float]:
    """Trial -> when it started, for the trials in ``not_before`` (see :func:`pods_by_trial`)
    whose pods show a start."""
    out: dict[str, float] = {}
    for trial, mine in pods_by_trial(pods, not_before).items():
        found = [t for t in map(pod_started, mine) if t is not None]
        if found:
            out[trial] = min(found)
    return out


@dataclass(frozen=True)
class Disruption:
    """A trial's pod that Kubernetes ended for reasons outside it (condition DisruptionTarget)."""

    trial: str
    pod: str
    uid: str
    reason: str  # EvictionByEvictionAPI, PreemptionByScheduler, DeletionByTaintManager, ...
    message: str


def disruptions(pods: Iterable[Mapping[str, Any]], trials: Collection[str]) -> list[Disruption]:
    """The pods of ``trials`` carrying the condition ``DisruptionTarget`` (status True): set by
    the Eviction API, the scheduler's preemption, the taint manager, the pod garbage collector
    or the kubelet (node pressure, node shutdown) on a pod it is ending. A batch Job trial's
    podFailurePolicy replaces such a pod without counting it as a failure."""
    out: list[Disruption] = []
    for pod in pods:
        md = pod.get("metadata") or {}
        trial = (md.get("labels") or {}).get(TRIAL_LABEL)
        if trial not in trials:
            continue
        for c in (pod.get("status") or {}).get("conditions") or []:
            if isinstance(c, Mapping) and c.get("type") == DISRUPTED and str(c.get("status")) == "True":
                out.append(Disruption(str(trial), str(md.get("name") or ""), str(md.get("uid") or ""),
                                      str(c.get("reason") or ""), str(c.get("message") or "")))
                break
    return out


def disrupted(pod: Mapping[str, Any]) -> bool:
    """Whether the pod carries DisruptionTarget (status True): a batch Job replaces it."""
    return any(isinstance(c, Mapping) and c.get("type") == DISRUPTED and str(c.get("status")) == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def current_starts(pods: Iterable[Mapping[str, Any]], not_before: Mapping[str, float]) -> dict[str, float | None]:
    """Trial -> when the pod that runs it now started; None while it has none running (its
    pod evicted and the replacement not created or not started yet). For the trials in
    ``not_before`` (each trial's workload creation time: older pods are an earlier
    experiment's). A pod being deleted or carrying DisruptionTarget is going, not running
    the trial; of the rest the newest is the one (a batch Job has one pod at a time). For a
    trial never disrupted this is its first pod's start, i.e. its own start."""
    out: dict[str, float | None] = {}
    for trial, mine in pods_by_trial(pods, not_before).items():
        current = newest(p for p in mine if not ((p.get("metadata") or {}).get("deletionTimestamp") or disrupted(p)))
        out[trial] = pod_started(current) if current is not None else None
    return out
