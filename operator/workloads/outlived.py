"""A trial whose own container ended while an injected sidecar keeps its pod alive: pure
functions of pod objects and a clock value.

A service mesh or another admission webhook (Istio's ``istio-proxy``, Linkerd's proxy, a log
shipper, ``cloud-sql-proxy``) may add an *ordinary* container to every pod. It never exits by
itself, so when the trial's container has ended the pod stays ``Running``: a batch Job never
completes, a Kubeflow job never succeeds, and the trial holds its slot (and its GPU) until
``maxTrialSeconds`` or ``maxExecSeconds`` (Katib issue #1042, and the same for its peers).

The rule, read from the trial's *primary* pod and container (primary_pod.py: the Job's
newest pod, or the leading replica's index-0 pod of a training job; the template's first
container):

* the primary container's current state is ``terminated`` and it will not be restarted:
  its restart policy (the container's own ``restartPolicy`` and ``restartPolicyRules``
  where Kubernetes 1.34's container restart rules set them, else the pod's; the pod's
  default is ``Always``) is ``Never``, or ``OnFailure`` with exit code 0 (``Always``
  restarts even a container that exited 0, so such a pod is never decided here);
* another *regular* container of that pod has not terminated (running, or waiting to run
  again). Native sidecars (``initContainers`` with ``restartPolicy: Always``, reported in
  ``initContainerStatuses``) are stopped by the kubelet itself once the regular containers
  have ended, so they never count;
* the pod is not terminal, not being deleted and not disrupted (then the workload's own
  status, or the Job's pod replacement, decides);
* and this has lasted at least ``grace`` seconds, counted from the container's
  ``terminated.finishedAt``: a sidecar that does exit, and the workload controller marking
  its object done, normally win. The start of the grace is in the pod's status, so an
  operator restarted meanwhile reaches the same decision at the same time.

Then the workload is deleted, but not before the trial's output was read to its end and
what was read was accepted by the tuner server (``delete_now``: its pod's log goes with it,
and values read but not sent live only in the operator's memory), at most
OUTPUT_WAIT_SECONDS later.

Nothing here talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from autotune_operator.status import parse_time
from autotune_operator.workloads.batch_job import DISRUPTED
from autotune_operator.workloads.primary_pod import primary_pod

# How long a trial's container may have ended while another container of its pod still runs
# before the trial is ended for it. Long enough for a sidecar that does exit and for the Job
# or training operator to mark the workload done; short next to a trial's minutes or hours.
SIDECAR_GRACE_SECONDS = 30.0
MESSAGE_CHARS = 500  # of a container's terminated.message in the trial's message
# How long an outlived trial's workload is kept for its output to be read to its end and
# recorded (the controller reads and sends again each pass while it cannot: an API error, a
# restarting API server or tuner server).
# Longer than the controller's own wait for a succeeded trial's output (DRAIN_WAIT_SECONDS, 60),
# so that one gives up first; then the workload is deleted and the unread lines are lost,
# which a Warning Event TrialOutputUnread says. Counted from when this executor found the trial
# outlived: an operator restarted, or rebuilt after a failed pass (the tuner server down: every
# pass fails at once), waits anew, so the pod stays while what it printed has nowhere to go.
# (A wait counted from the pod's finishedAt would give up at once after a long outage, unread.)
OUTPUT_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Outlived:
    """A trial's primary container ended and will not run again, while other regular
    containers of its pod (``running``) keep the pod alive."""

    trial: str
    pod: str
    container: str
    exit_code: int
    reason: str  # terminated.reason: Completed, Error, OOMKilled, ...
    message: str  # terminated.message (the termination log), often empty
    finished: float  # terminated.finishedAt, epoch seconds
    running: tuple[str, ...]  # the other regular containers, not terminated

    def trial_message(self) -> str:
        """The trial's message: its container's end, and why the trial ended without its pod."""
        # The termination log may hold up to 4 KiB over many lines: one line, its start.
        text = " ".join(self.message.split())
        why = ": ".join(x for x in (self.reason, text[:MESSAGE_CHARS] + ("..." if len(text) > MESSAGE_CHARS else "")) if x)
        return (f"container {self.container} exited with code {self.exit_code}" + (f" ({why})" if why else "")
                + f"; pod {self.pod} was kept running by {', '.join(self.running)}")

    def event_message(self, grace: float) -> str:
        return (f"trial {self.trial}: container {self.container} of pod {self.pod} exited with code {self.exit_code}, "
                f"but {', '.join(self.running)} still ran {grace:g}s after that (a sidecar that does not exit, such as "
                "a service mesh's proxy); the trial ends with the container's exit code and its workload is deleted")


def delete_now(read_to_end: bool, since: float, now: float, wait: float = OUTPUT_WAIT_SECONDS) -> str | None:
    """What to do with an outlived trial's workload: ``"delete"`` once its output was read to
    its end and recorded, ``"give up"`` (delete, the unread lines are lost) when it could not be within
    ``wait`` seconds of ``since`` (when it was found outlived), else None (keep it: its pod's
    log goes with it)."""
    if read_to_end:
        return "delete"
    return "give up" if now - since >= wait else None


def restarts(policy: str, rules: Sequence[Mapping[str, Any]], exit_code: int) -> bool:
    """Whether the kubelet restarts a container that exited with ``exit_code``. ``rules``:
    the container's ``restartPolicyRules`` (the first rule matching the code wins, action
    ``Restart``), then ``policy``: Always, OnFailure (non-zero only) or Never."""
    for rule in rules:
        codes = rule.get("exitCodes") if isinstance(rule, Mapping) else None
        if not isinstance(codes, Mapping):
            continue
        values = {int(v) for v in codes.get("values") or [] if isinstance(v, int) or str(v).lstrip("-").isdigit()}
        op = codes.get("operator")
        if (op == "In" and exit_code in values) or (op == "NotIn" and exit_code not in values):
            return rule.get("action") == "Restart"
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True  # Always (the pod's default)


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(cs.get("name")): cs for cs in (pod.get("status") or {}).get("containerStatuses") or []
            if isinstance(cs, Mapping)}


def pod_outlived(pod: Mapping[str, Any], container: str, trial: str, now: float, grace: float) -> Outlived | None:
    """The rule of the module doc for one pod and its primary container (by name)."""
    md, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or md.get("deletionTimestamp"):
        return None
    if any(isinstance(c, Mapping) and c.get("type") == DISRUPTED and str(c.get("status")) == "True"
           for c in status.get("conditions") or []):
        return None
    statuses = _statuses(pod)
    term = ((statuses.get(container) or {}).get("state") or {}).get("terminated")
    if not isinstance(term, Mapping):
        return None
    code = term.get("exitCode")
    finished = parse_time(term.get("finishedAt"))
    if not isinstance(code, int) or finished is None:
        return None
    specs = {str(c.get("name")): c for c in spec.get("containers") or [] if isinstance(c, Mapping)}
    own = specs.get(container) or {}
    policy = str(own.get("restartPolicy") or spec.get("restartPolicy") or "Always")
    if restarts(policy, own.get("restartPolicyRules") or [], code):
        return None
    # Every other regular container of the pod's spec whose status is not terminated (one not
    # reported yet has not ended either).
    running = tuple(n for n in specs if n != container
                    and not ((statuses.get(n) or {}).get("state") or {}).get("terminated"))
    if not running or now - finished < grace:
        return None
    return Outlived(trial, str(md.get("name") or ""), container, code, str(term.get("reason") or ""),
                    str(term.get("message") or ""), finished, running)


def outlived(family: str, trial: str, pods: Iterable[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]],
             now: float, grace: float, not_before: float | None = None) -> Outlived | None:
    """Whether trial ``trial`` is to be ended because its primary container ended while other
    containers keep its pod alive (see the module doc); None otherwise. ``pods``, ``tasks``
    and ``not_before`` as for :func:`primary_pod.primary_pod`; ``now`` in epoch seconds."""
    pods = list(pods)
    src = primary_pod(family, trial, pods, tasks, not_before)
    if src is None:
        return None
    pod = next((p for p in pods if str((p.get("metadata") or {}).get("uid") or "") == src.uid
                and (p.get("metadata") or {}).get("name") == src.pod), None)
    return pod_outlived(pod, src.container, trial, now, grace) if pod is not None else None


def may_have_outlived(family: str, workload: Mapping[str, Any]) -> bool:
    """Whether a running workload's own status leaves room for the rule above, so its pods
    are worth a look. A batch Job that counts every active pod ready has none (a pod whose
    container has ended is not ready); training jobs' statuses do not say."""
    if family != "job":
        return True
    st = workload.get("status") or {}
    if st.get("ready") is None:  # an API server before Kubernetes 1.29 may not count them
        return True
    return int(st.get("ready") or 0) < int(st.get("active") or 0)
