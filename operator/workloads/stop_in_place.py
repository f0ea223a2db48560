"""Stopping a trial's pods without deleting them: pure functions over pod objects.

A trial the experiment stops (an assessor, maxTrialSeconds, the experiment's end) must give
back its node's devices at once, but deleting its workload deletes its pods and, with
them, everything the trial printed (``kubectl logs`` has nothing left to show: why did it
diverge, how far did it get). A pod's ``spec.activeDeadlineSeconds`` is one of the few pod
fields that may change on a running pod (set, or lowered); once that many seconds have
passed since the pod's ``status.startTime`` the kubelet kills its containers (SIGTERM, then
SIGKILL after the pod's grace period, as for a deletion) and the pod ends ``Failed`` with
reason ``DeadlineExceeded``, but stays, with its logs. A terminal pod holds no resources
(the scheduler and the device plugins count only pods that are not Succeeded or Failed).

Used for batch Jobs only: with ``backoffLimit: 0`` the Job controller counts that failed pod
(no ``DisruptionTarget`` condition, so our podFailurePolicy does not ignore it) and fails
the Job instead of making another pod. The Kubeflow and T9k training operators decide by
each replica's restartPolicy whether a failed pod is replaced, so their jobs are still
deleted. A pod that has not run yet (waiting for a node, a device, an image) printed
nothing and may wait for hours: then the workload is deleted as before. So is a Job whose
pod was disrupted (evicted by a node drain, preempted, its node lost) before it ended: the
podFailurePolicy replaces such a pod without counting it, and the new pod, without the
deadline, would run the stopped trial again from its start. That can happen after the patch,
in the seconds before the kubelet's kill (for a lost node, minutes), so the executor applies
this rule again on each pass until the Job has ended, and gives the Job a deadline
(:func:`job_deadline`) for after the experiment's end, when no pass looks at it any more.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from autotune_operator.workloads.pods import disrupted, pod_started

# The smallest value the API accepts: past at once for any pod that has started.
STOP_DEADLINE_SECONDS = 1
# How long past its pods' grace period a stopped trial's Job may still run (job_deadline).
JOB_MARGIN_SECONDS = 60
DEFAULT_GRACE_SECONDS = 30  # a pod's terminationGracePeriodSeconds when not given
TERMINAL = ("Succeeded", "Failed")


def stop_patch() -> dict[str, Any]:
    """The pod patch that makes the kubelet stop the pod and keep it."""
    return {"spec": {"activeDeadlineSeconds": STOP_DEADLINE_SECONDS}}


def pods_to_stop(pods: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """The names of a trial's pods to stop in place (patch with :func:`stop_patch`), or None
    when its workload must be deleted instead: no pod has run yet (nothing printed, and a
    pod waiting for a node would keep waiting), a pod still waits to run (a disrupted
    pod's replacement), or a pod not ended yet is disrupted (its replacement would run the
    trial again). An empty list: every pod has ended or is stopping (patched), nothing to
    stop."""
    pods = list(pods)
    if not pods or all(pod_started(p) is None for p in pods):
        return None
    not_ended = [p for p in pods if (p.get("status") or {}).get("phase") not in TERMINAL]
    if any(disrupted(p) for p in not_ended):
        return None
    live = [p for p in not_ended if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if any(pod_started(p) is None for p in live):
        return None
    return [str((p.get("metadata") or {}).get("name")) for p in live
            if (p.get("spec") or {}).get("activeDeadlineSeconds") != STOP_DEADLINE_SECONDS]


def job_deadline(started: float, now: float, pods: Iterable[Mapping[str, Any]]) -> int:
    """The Job's ``spec.activeDeadlineSeconds`` (mutable on a running Job) that bounds a stopped
    trial whatever happens to its pods after the patch: the Job controller fails a Job past
    its deadline and deletes its pods that are still active, never the ended ones. Its pods
    end well before (the kubelet kills them within their grace period) and fail the Job first
    (backoffLimit 0), so normally it never fires. It does when a pod was disrupted meanwhile
    and replaced (a node drain, a preemption, a lost node whose pod the taint manager evicts
    minutes later), also after the experiment and its operator loop have ended: the new pod,
    which would run the stopped trial again, is deleted then. Counted from the Job's
    ``status.startTime`` (``started``; its creation when not known yet, which is not later, so
    it never fires sooner than ``now`` + the longest grace period + JOB_MARGIN_SECONDS), as the
    Job controller counts it: from its creation, a Job queued suspended (Kueue) for an hour
    got its bound an hour late."""
    graces = [(p.get("spec") or {}).get("terminationGracePeriodSeconds") for p in pods]
    grace = max((int(g) for g in graces if isinstance(g, (int, float))), default=DEFAULT_GRACE_SECONDS)
    return max(0, math.ceil(now - started)) + max(grace, DEFAULT_GRACE_SECONDS) + JOB_MARGIN_SECONDS


def job_deadline_to_set(current: Any, wanted: int) -> int | None:
    """The deadline to patch on a stopped trial's Job whose ``spec.activeDeadlineSeconds`` is
    ``current``, or None to leave it. Asked on every stop and every later look, not only when a
    pod was patched: an operator that died between the pods' patch and the Job's finds the pods
    patched (nothing to stop) and must still bound the Job. Set when the Job has none or one
    later than ``wanted``; kept when at or before it: one set at an earlier stop (``wanted``
    grows with the clock, so later looks never move it) or a shorter one set by others (our
    Job manifest sets none; an admission policy may): never raised."""
    if isinstance(current, int) and not isinstance(current, bool) and current <= wanted:
        return None
    return wanted
