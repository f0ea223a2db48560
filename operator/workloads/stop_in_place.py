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
A replacement stopped on a later pass pushes that deadline out when it would cut the
replacement's grace period (:func:`job_deadline_needed`, :func:`job_deadline_to_set`). The
patch that stops a pod also writes when (STOPPED_AT_ANNOTATION), so what the Job's deadline
must leave is read from the pods as listed: an operator that died between a pod's patch and
the Job's finds the pod patched, and its successor still pushes the deadline out.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any, Iterable, Mapping, NamedTuple

from autotune_operator.workloads.pods import disrupted, parse_time, pod_started

# The smallest value the API accepts: past at once for any pod that has started.
STOP_DEADLINE_SECONDS = 1
# How long past its pods' grace period a stopped trial's Job may still run (job_deadline).
JOB_MARGIN_SECONDS = 60
DEFAULT_GRACE_SECONDS = 30  # a pod's terminationGracePeriodSeconds when not given
# A stopped pod must be able to use its whole grace period, plus this (the kubelet noticing
# the patch, its kill reaching the API server), before the Job's deadline (job_deadline_needed).
STOP_SLACK_SECONDS = 10
TERMINAL = ("Succeeded", "Failed")
# On a stopped trial's Job: the spec.activeDeadlineSeconds the operator set (job_deadline_to_set
# moves only its own; one set by others is never raised). Read back from the Job, so a
# restarted operator knows it too.
DEADLINE_ANNOTATION = "autotune.tensorstack.dev/stop-deadline"
# On a pod the operator stopped: when (RFC 3339, whole seconds rounded up), written by the
# patch that stops it, so the stop and its time land together. Read back from each pod LIST
# (job_deadline_needed): a restarted operator knows what a pod its predecessor stopped just
# before dying needs from the Job's deadline, which only that operator's memory held before.
STOPPED_AT_ANNOTATION = "autotune.tensorstack.dev/stopped-at"


class JobDeadline(NamedTuple):
    """A Job's ``spec.activeDeadlineSeconds`` (``current``, as listed: None when it has none)
    and the one the operator last set on it (``ours``, from DEADLINE_ANNOTATION; None: never)."""

    current: Any
    ours: int | None

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> JobDeadline:
        raw = ((job.get("metadata") or {}).get("annotations") or {}).get(DEADLINE_ANNOTATION)
        try:
            ours = int(raw) if raw is not None else None
        except (TypeError, ValueError):  # edited by hand: not ours to trust
            ours = None
        return cls((job.get("spec") or {}).get("activeDeadlineSeconds"), ours)


def stop_patch(now: float) -> dict[str, Any]:
    """The pod patch that makes the kubelet stop the pod and keep it, and says when (``now``,
    epoch seconds, rounded up: never earlier than the stop, so never less deadline needed)."""
    at = dt.datetime.fromtimestamp(math.ceil(now), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"annotations": {STOPPED_AT_ANNOTATION: at}},
            "spec": {"activeDeadlineSeconds": STOP_DEADLINE_SECONDS}}


def stopped_at(pod: Mapping[str, Any]) -> float | None:
    """When the operator stopped the pod (STOPPED_AT_ANNOTATION), None when it did not say: not
    stopped, or stopped by an operator from before the annotation."""
    return parse_time(((pod.get("metadata") or {}).get("annotations") or {}).get(STOPPED_AT_ANNOTATION))


def as_patched(pod: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The pod as the API server holds it after ``patch`` (:func:`stop_patch`): what the next
    LIST shows, so a pass that patched decides as the passes after it (and a restarted
    operator) do."""
    out = copy.deepcopy(dict(pod))
    md = out.setdefault("metadata", {})
    md["annotations"] = {**(md.get("annotations") or {}), **patch["metadata"]["annotations"]}
    out["spec"] = {**(out.get("spec") or {}), **patch["spec"]}
    return out


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
    return max(0, math.ceil(now - started)) + _grace(pods) + JOB_MARGIN_SECONDS


def job_deadline_needed(started: float, pods: Iterable[Mapping[str, Any]]) -> int:
    """The least Job deadline (counted as :func:`job_deadline`) that lets each pod the operator
    stopped (STOPPED_AT_ANNOTATION) and that is still stopping use its whole grace period, from
    its stop, before the Job controller would delete it, logs and all; 0 when there is none. A
    replacement of a disrupted pod stopped on a pass after the first stop needs more than that
    stop's deadline left, once more than JOB_MARGIN_SECONDS - STOP_SLACK_SECONDS have passed
    since. Read from the pods, not from what this process patched: an operator restarted
    between a pod's patch and the Job's needs it as much as the one that died."""
    needs = []
    for p in pods:
        at = stopped_at(p)
        ended = (p.get("status") or {}).get("phase") in TERMINAL
        if at is None or ended or (p.get("metadata") or {}).get("deletionTimestamp"):
            continue  # (a pod being deleted goes with its own grace period, whatever the Job's deadline)
        needs.append(max(0, math.ceil(at - started)) + _grace([p]) + STOP_SLACK_SECONDS)
    return max(needs, default=0)


def _grace(pods: Iterable[Mapping[str, Any]]) -> int:
    """The longest terminationGracePeriodSeconds of the pods, at least the default."""
    graces = [(p.get("spec") or {}).get("terminationGracePeriodSeconds") for p in pods]
    grace = max((int(g) for g in graces if isinstance(g, (int, float))), default=DEFAULT_GRACE_SECONDS)
    return max(grace, DEFAULT_GRACE_SECONDS)


def job_deadline_to_set(held: JobDeadline, wanted: int, needed: int = 0) -> int | None:
    """The deadline to patch on a stopped trial's Job that holds ``held``, or None to leave it.
    ``wanted`` is :func:`job_deadline` now, ``needed`` :func:`job_deadline_needed` of its pods. Asked on
    every stop and every later look, not only when a pod was patched: an operator that died
    between the pods' patch and the Job's finds the pods patched (nothing to stop) and must
    still bound the Job. Set when the Job has none or one later than ``wanted``. Kept when at
    or before it: one set at an earlier stop (``wanted`` grows with the clock, so later looks
    never move it) or a shorter one set by others (our Job manifest sets none; an admission
    policy may): never raised. Except ours when a pod stopped since needs more (a replacement
    of a disrupted pod, stopped a minute or more after the first stop, by this pass or by an
    operator that died before it pushed the deadline): pushed out to ``wanted``, or the Job
    controller would delete that pod within its grace period."""
    current = held.current
    if not isinstance(current, int) or isinstance(current, bool) or current > wanted:
        return wanted
    if current < needed and current == held.ours:
        return wanted
    return None
