"""A trial the experiment stops keeps its batch Job and its pods, stopped, with their logs.

The pure rule (workloads/stop_in_place.py) and the Kubernetes executor's kill against a
recorded stand-in for the API server (no kubelet here: what the kubelet does with the
patch is tested on a real kube-apiserver in tests/e2e/test_operator_stopped_pods_kept.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from autotune_operator.executors.base import StopCause
from autotune_operator.executors.kubernetes import STOP_ANNOTATION
from autotune_operator.runtime import Settings
from autotune_operator.workloads.common import EXPERIMENT_LABEL, TRIAL_LABEL
from autotune_operator.workloads.stop_in_place import (
    DEADLINE_ANNOTATION,
    JobDeadline,
    job_deadline,
    job_deadline_needed,
    job_deadline_to_set,
    pods_to_stop,
    STOPPED_AT_ANNOTATION,
    as_patched,
    stop_patch,
    stopped_at,
)
from tests.unit.test_k8s_trial_start import Cluster, Events, executor, job
from tests.unit.test_trial_start import T0, iso, pod, running


def ended(at: float) -> dict[str, Any]:
    return {"name": "c", "state": {"terminated": {"startedAt": iso(at), "exitCode": 0}}}


def named(p: dict[str, Any], name: str, phase: str | None = None) -> dict[str, Any]:
    p = copy.deepcopy(p)
    p["metadata"]["name"] = name
    if phase:
        p["status"]["phase"] = phase
    return p


# ----- the pure rule -----

def test_running_pods_are_stopped_in_place_and_a_trial_that_never_ran_is_deleted() -> None:
    assert stop_patch(T0 + 99.5) == {"metadata": {"annotations": {STOPPED_AT_ANNOTATION: iso(T0 + 100)}},
                                     "spec": {"activeDeadlineSeconds": 1}}
    assert pods_to_stop([]) is None  # no pod yet: the Job is deleted (its pod would still come)
    assert pods_to_stop([pod("q-0", T0)]) is None  # waiting for a node: nothing printed, deleted
    assert pods_to_stop([named(pod("q-0", T0, [running(T0)]), "a", "Running")]) == ["a"]
    # Ended already (its Job not marked yet): kept, nothing to stop.
    assert pods_to_stop([named(pod("q-0", T0, [ended(T0)]), "a", "Succeeded")]) == []
    # A disrupted pod that ran, its replacement waiting for a node: deleted (the new one would wait).
    assert pods_to_stop([named(pod("q-0", T0, [ended(T0)]), "a", "Failed"), named(pod("q-0", T0), "b")]) is None
    # A pod being deleted (evicted) is not patched.
    going = named(pod("q-0", T0, [running(T0)]), "a", "Running")
    going["metadata"]["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    assert pods_to_stop([going, named(pod("q-0", T0, [running(T0)]), "b", "Running")]) == ["b"]


# ----- the executor against a stand-in API server -----

@dataclass
class Patching(Cluster):
    """Pods may be patched (recorded), or refused with ``refuse`` (403: an older chart's RBAC)."""

    refuse: int | None = None
    pod_patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def patch_namespaced_pod(self, name: str, ns: str, body: dict[str, Any]) -> None:
        if self.refuse is not None:
            raise ApiException(status=self.refuse, reason="Forbidden")
        self.pod_patches.append((name, body))
        for p in self.pods:  # applied, as the API server does (a later LIST shows the deadline)
            if p["metadata"]["name"] == name:
                p.setdefault("spec", {}).update(body["spec"])
                p["metadata"].setdefault("annotations", {}).update((body.get("metadata") or {}).get("annotations") or {})

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                        propagation_policy: str) -> None:
        self.deleted.append(name)
        self.jobs = [j for j in self.jobs if j["metadata"]["name"] != name]


def running_trial(cluster: Patching) -> None:
    cluster.jobs.append(job("q-0"))
    cluster.pods.append(named(pod("q-0", T0, [running(T0)]), "q-0-abc", "Running"))


def test_a_stopped_job_trial_has_its_pod_stopped_by_deadline_and_keeps_its_job() -> None:
    cluster, events = Patching(), Events()
    running_trial(cluster)
    ex = executor(cluster, events)
    ex.poll()
    messages: list[str] = []
    ex.events.emit = lambda reason, message, warning=False: messages.append(f"{reason}: {message}")  # type: ignore[union-attr]
    ex.kill("q-0", "ran longer than maxTrialSeconds (60s) and was stopped", StopCause.OVERDUE)
    assert [(n, b["spec"]) for n, b in cluster.pod_patches] == [("q-0-abc", {"activeDeadlineSeconds": 1})]
    assert STOPPED_AT_ANNOTATION in cluster.pod_patches[0][1]["metadata"]["annotations"]
    assert cluster.deleted == [] and [j["metadata"]["name"] for j in cluster.jobs] == ["q-0"]
    assert cluster.jobs[0]["metadata"]["annotations"][STOP_ANNOTATION].startswith("ran longer")
    assert messages == ["TrialStopped: q-0: ran longer than maxTrialSeconds (60s) and was stopped; "
                        "its pod q-0-abc stopped and kept with its logs (kubectl logs)"]
    assert ex.active() == set()  # a stopped trial is not running, though its Job is there
    (exit_,) = ex.poll()
    assert exit_.trial_id == "q-0" and exit_.killed and exit_.message.startswith("ran longer")
    assert ex.poll() == []  # reported once


def test_a_trial_whose_pod_never_ran_has_its_job_deleted() -> None:
    cluster, events = Patching(), Events()
    cluster.jobs.append(job("q-0"))
    cluster.pods.append(pod("q-0", T0))  # Pending: waiting for a GPU
    ex = executor(cluster, events)
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.pod_patches == [] and cluster.deleted == ["q-0"]


def test_with_keep_stopped_pods_off_the_job_is_deleted() -> None:
    cluster, events = Patching(), Events()
    running_trial(cluster)
    ex = executor(cluster, events)
    ex.keep_stopped_pods = False
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.pod_patches == [] and cluster.deleted == ["q-0"]
    assert events.emitted[-1] == ("TrialStopped", False)


def test_an_operator_that_may_not_patch_pods_deletes_the_job_and_says_so_once() -> None:
    cluster, events = Patching(refuse=403), Events()
    running_trial(cluster)
    cluster.jobs.append(job("q-1"))
    cluster.pods.append(named(pod("q-1", T0, [running(T0)]), "q-1-abc", "Running"))
    ex = executor(cluster, events)
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    ex.kill("q-1", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.deleted == ["q-0", "q-1"]
    assert events.emitted == [("PodsNotPatchable", True), ("TrialStopped", False), ("TrialStopped", False)]


def test_a_restarted_operator_stops_again_a_stopped_trial_still_running_and_never_deletes_it() -> None:
    """The operator that wrote the stop's reason died before patching the pod: the next one
    patches it (idempotent), reports the trial stopped once, and keeps the Job."""
    cluster, events = Patching(), Events()
    running_trial(cluster)
    cluster.jobs[0]["metadata"]["annotations"] = {STOP_ANNOTATION: "stopped by the experiment"}
    ex = executor(cluster, events)
    (exit_,) = ex.poll()
    assert exit_.killed and exit_.message == "stopped by the experiment"
    assert [(n, b["spec"]) for n, b in cluster.pod_patches] == [("q-0-abc", stop_patch(T0)["spec"])]
    assert cluster.deleted == []
    # Its Job failed since (the pod's deadline): a later operator leaves it alone.
    cluster.pod_patches.clear()
    cluster.jobs[0]["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    (exit_,) = executor(cluster, Events()).poll()
    assert exit_.killed and cluster.pod_patches == [] and cluster.deleted == []


def disrupted(p: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    """The pod as the Eviction API (a node drain), the scheduler's preemption or the taint
    manager leave it: condition DisruptionTarget, and deleting unless already ended."""
    p = copy.deepcopy(p)
    p["status"]["phase"] = phase
    p["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]
    if phase not in ("Succeeded", "Failed"):
        p["metadata"]["deletionTimestamp"] = iso(T0 + 70)
    return p


def test_a_disrupted_pod_not_ended_yet_means_a_replacement_so_the_job_is_deleted() -> None:
    # Our podFailurePolicy ignores a DisruptionTarget pod's failure and the Job makes a new pod:
    # it would run the stopped trial again from its start.
    assert pods_to_stop([disrupted(named(pod("q-0", T0, [running(T0)]), "a", "Running"))]) is None
    # One disrupted and replaced long ago, its replacement running: the replacement is stopped.
    old = disrupted(named(pod("q-0", T0, [ended(T0)]), "a"), "Failed")
    assert pods_to_stop([old, named(pod("q-0", T0, [running(T0 + 5)]), "b", "Running")]) == ["b"]
    # Patched already (activeDeadlineSeconds 1): the kubelet is stopping it, not patched again.
    b = named(pod("q-0", T0, [running(T0 + 5)]), "b", "Running")
    b["spec"] = {"activeDeadlineSeconds": 1}
    assert pods_to_stop([old, b]) == []


@pytest.mark.parametrize("replacement", ["pending", "running"])
def test_a_stopped_trial_whose_pod_is_disrupted_while_it_stops_does_not_run_again(replacement: str) -> None:
    """The pod is evicted (a node drain), preempted or its node lost during the seconds (the
    grace period; for a lost node, minutes) between the patch and the kubelet's kill. The Job's
    podFailurePolicy then replaces it without counting a failure, and the new pod, without the
    deadline, would run the stopped trial from its start, holding its GPUs, while the
    experiment counts it stopped (or has ended). The executor keeps looking at a trial it
    stopped in place until its Job has ended: a replacement that has run is stopped too, one
    waiting has its Job deleted."""
    cluster, events = Patching(), Events()
    running_trial(cluster)
    ex = executor(cluster, events)
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert [n for n, _ in cluster.pod_patches] == ["q-0-abc"] and cluster.deleted == []
    (exit_,) = ex.poll()
    assert exit_.killed
    cluster.pods[0] = disrupted(cluster.pods[0], "Failed")  # evicted before the kubelet's kill
    new = named(pod("q-0", T0 + 80, [running(T0 + 85)] if replacement == "running" else None), "q-0-def",
                "Running" if replacement == "running" else "Pending")
    cluster.pods.append(new)  # the Job controller's replacement; the Job has no outcome yet
    assert ex.poll() == []  # (the trial was reported stopped once)
    if replacement == "running":
        assert [n for n, _ in cluster.pod_patches] == ["q-0-abc", "q-0-def"] and cluster.deleted == []
    else:
        assert cluster.deleted == ["q-0"]
    # Its Job ended (failed by the deadline, or deleted): no more LISTs for it.
    for j in cluster.jobs:
        j["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    ex.poll()
    n = len(cluster.pod_lists)
    ex.poll()
    assert len(cluster.pod_lists) == n


@pytest.mark.parametrize("grace,expect", [(None, 100 + 30 + 60), (120, 100 + 120 + 60), (0, 100 + 30 + 60)])
def test_a_stopped_trials_job_gets_a_deadline_past_its_pods_grace_period(grace: int | None, expect: int) -> None:
    """The bound that holds after the experiment's loop has ended (no one looks at the Job
    any more): the Job controller fails the Job at its deadline and deletes a pod that
    replaced a disrupted one. Counted from the Job's start (not before its creation, T0):
    never before the pods' grace period (at least the default 30 s) and a margin have passed."""
    cluster, events = Patching(), Events()
    running_trial(cluster)
    if grace is not None:
        cluster.pods[0]["spec"] = {"terminationGracePeriodSeconds": grace}
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 99.5  # (whole seconds, rounded up)
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == expect
    assert cluster.deleted == [] and [n for n, _ in cluster.pod_patches] == ["q-0-abc"]
    # Its pod patched already: a later look (each pass) neither patches it nor moves the deadline.
    ex.now = lambda: T0 + 130
    ex.poll()
    ex.poll()
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == expect and len(cluster.pod_patches) == 1


@pytest.mark.parametrize("raw,expect", [("", True), ("true", True), ("TRUE", True), ("false", False), ("0", False)])
def test_the_setting_reads_true_and_false(raw: str, expect: bool) -> None:
    env = {"AUTOTUNE_ADMIN_TOKEN": "t" * 20, "AUTOTUNE_KEEP_STOPPED_PODS": raw}
    assert Settings.from_env(env).keep_stopped_pods is expect
    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20}).keep_stopped_pods is True


def test_a_bad_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(SystemExit, match="AUTOTUNE_KEEP_STOPPED_PODS must be true or false, not 'sometimes'"):
        Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20, "AUTOTUNE_KEEP_STOPPED_PODS": "sometimes"})


@pytest.mark.parametrize("template_deadline", [None, 150, 7200])
def test_an_operator_restarted_between_the_pods_patch_and_the_jobs_still_bounds_the_job(
        template_deadline: int | None) -> None:
    """The operator wrote the stop's reason and patched the pod, then died before it patched
    the Job: the restarted one finds the pod patched already (nothing to stop) and must still
    give the Job its deadline, or a replacement of a pod disrupted meanwhile would run the
    stopped trial again after the experiment's end. Once: later passes do not move it. A
    shorter deadline set by others (150 s: our Job manifest sets none, an admission policy
    may) is kept, never raised; a longer one is lowered."""
    cluster, events = Patching(), Events()
    running_trial(cluster)
    j = cluster.jobs[0]
    if template_deadline is not None:
        j["spec"] = {"activeDeadlineSeconds": template_deadline}
    j["metadata"]["annotations"] = {STOP_ANNOTATION: "ran longer than maxTrialSeconds (60s) and was stopped"}
    cluster.pods[0]["spec"] = {"activeDeadlineSeconds": 1}  # the first operator's patch; still stopping
    ex = executor(cluster, events)  # the restarted operator
    ex.now = lambda: T0 + 99.5
    (exit_,) = ex.poll()
    assert exit_.killed and cluster.pod_patches == [] and cluster.deleted == []
    expect = 150 if template_deadline == 150 else 100 + 30 + 60
    assert j["spec"]["activeDeadlineSeconds"] == expect
    ex.now = lambda: T0 + 130
    ex.poll()
    ex.poll()
    assert j["spec"]["activeDeadlineSeconds"] == expect and cluster.pod_patches == []


def test_a_stop_keeps_a_shorter_deadline_the_job_already_has() -> None:
    cluster, events = Patching(), Events()
    running_trial(cluster)
    cluster.jobs[0]["spec"] = {"activeDeadlineSeconds": 150}  # (set by others: an admission policy)
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 99.5
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert [n for n, _ in cluster.pod_patches] == ["q-0-abc"]
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == 150  # not raised to 190


def test_a_queued_jobs_deadline_counts_from_its_start_not_its_creation() -> None:
    """The Job controller counts spec.activeDeadlineSeconds from status.startTime, which a Job
    created suspended (queued by Kueue) gets only when it is admitted, hours after its
    creation maybe. Counted from the creation, the bound came that much later than the pods'
    grace period and margin after the stop: a replacement of a disrupted pod ran the stopped
    trial (holding its GPUs) for the hour it had waited."""
    cluster, events = Patching(), Events()
    cluster.jobs.append(job("q-0", created=T0 - 3600))  # queued an hour, then admitted at T0
    cluster.jobs[0]["status"] = {"startTime": iso(T0), "active": 1}
    cluster.pods.append(named(pod("q-0", T0, [running(T0)]), "q-0-abc", "Running"))
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 99.5
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert [n for n, _ in cluster.pod_patches] == ["q-0-abc"]
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == 100 + 30 + 60  # not 3600 + 190


def test_the_executor_forgets_a_jobs_deadline_once_its_trial_has_ended() -> None:
    """What bounds a stopped trial's Job (its deadline and start, read from each LIST) is kept
    for the workloads still running only: an experiment's executor lives as long as the
    experiment, and a long one has thousands of trials. Before, one entry per trial stayed."""
    cluster, events = Patching(), Events()
    for tid in ("q-0", "q-1", "q-2"):
        cluster.jobs.append(job(tid))
        cluster.jobs[-1]["status"] = {"startTime": iso(T0), "active": 1}
        cluster.pods.append(named(pod(tid, T0, [running(T0)]), f"{tid}-abc", "Running"))
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 99.5
    ex.poll()
    assert sorted(ex._deadlines) == ["q-0", "q-1", "q-2"]  # (what a stop needs: kill has no LIST of its own)
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == 100 + 30 + 60  # the behaviour kept
    ex.poll()
    assert sorted(ex._deadlines) == ["q-0", "q-1", "q-2"]  # q-0 is stopping: still looked at
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    cluster.jobs[0]["status"] = failed  # its pod's DeadlineExceeded failed the Job
    cluster.jobs[1] = job("q-1", complete=True)
    del cluster.jobs[2]  # deleted by someone
    ex.poll()
    assert ex._deadlines == {} and ex._job_started == {}
    assert ex.active() == set() and ex._deadlines == {} and ex._job_started == {}


# ----- a replacement stopped on a later pass -----

def test_a_pod_stopped_later_pushes_out_our_deadline_when_it_would_cut_its_grace_period() -> None:
    """The Job's deadline set at the first stop (100 s after the Job's start: 100 + 30 + 60) is
    enough for a pod stopped then. A replacement of a disrupted pod stopped at 200 s needs
    200 + 30 + the slack: the Job controller would delete it (its logs with it) within its
    grace period. Ours is pushed out to the deadline wanted now; one set by others is not."""
    b = named(pod("q-0", T0, [running(T0 + 150)]), "b", "Running")
    assert job_deadline_needed(T0, []) == 0  # nothing stopped: nothing needed
    assert job_deadline_needed(T0, [b]) == 0  # running, not stopped (yet)
    b = as_patched(b, stop_patch(T0 + 199.5))
    assert stopped_at(b) == T0 + 200 and b["spec"]["activeDeadlineSeconds"] == 1
    assert job_deadline_needed(T0, [b]) == 200 + 30 + 10
    # Once it has ended (or goes: being deleted), it needs nothing more of the Job.
    assert job_deadline_needed(T0, [named(b, "b", "Failed")]) == 0
    wanted = job_deadline(T0, T0 + 199.5, [b])
    assert wanted == 200 + 30 + 60
    assert job_deadline_to_set(JobDeadline(190, 190), wanted, 240) == wanted  # ours, too short: pushed out
    assert job_deadline_to_set(JobDeadline(190, None), wanted, 240) is None  # others': never raised
    assert job_deadline_to_set(JobDeadline(190, 150), wanted, 240) is None  # changed since we set it: others'
    assert job_deadline_to_set(JobDeadline(250, 250), wanted, 240) is None  # ours, long enough: kept
    assert job_deadline_to_set(JobDeadline(190, 190), wanted, 0) is None  # no pod stopped now: kept
    assert job_deadline_to_set(JobDeadline(None, None), wanted, 0) == wanted
    assert job_deadline_to_set(JobDeadline(7200, None), wanted, 0) == wanted  # later than wanted: lowered
    # A pod with a long grace period needs it all.
    b["spec"] = {"terminationGracePeriodSeconds": 300}
    assert job_deadline_needed(T0, [b]) == 200 + 300 + 10
    assert JobDeadline.of({"spec": {"activeDeadlineSeconds": 190},
                           "metadata": {"annotations": {DEADLINE_ANNOTATION: "190"}}}) == (190, 190)
    assert JobDeadline.of({"metadata": {"annotations": {DEADLINE_ANNOTATION: "soon"}}}) == (None, None)


@pytest.mark.parametrize("others", [False, True])
def test_a_replacement_stopped_on_a_later_pass_gets_its_grace_period_before_the_jobs_deadline(others: bool) -> None:
    """The trial is stopped 100 s after its Job started (the Job's deadline: 190). Its pod is
    evicted before the kubelet's kill; the Job controller's replacement runs and the operator
    first sees it, and stops it, at 200 s. Before, the Job kept 190: the Job controller failed
    the Job at 190 s and deleted the replacement while it stopped, its logs with it. Now ours
    becomes 290 (200 + 30 + 60), once; a deadline set by others (here 190 too, without our
    annotation) is kept."""
    cluster, events = Patching(), Events()
    running_trial(cluster)
    j = cluster.jobs[0]
    j["status"] = {"startTime": iso(T0), "active": 1}
    if others:
        j["spec"] = {"activeDeadlineSeconds": 190}  # (an admission policy's)
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 99.5
    ex.poll()
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    assert j["spec"]["activeDeadlineSeconds"] == 190
    assert (j["metadata"].get("annotations") or {}).get(DEADLINE_ANNOTATION) == (None if others else "190")
    (exit_,) = ex.poll()
    assert exit_.killed
    cluster.pods[0] = disrupted(cluster.pods[0], "Failed")  # evicted before the kubelet's kill
    cluster.pods.append(named(pod("q-0", T0 + 150, [running(T0 + 160)]), "q-0-def", "Running"))
    ex.now = lambda: T0 + 199.5
    assert ex.poll() == []
    assert [n for n, _ in cluster.pod_patches] == ["q-0-abc", "q-0-def"] and cluster.deleted == []
    expect = 190 if others else 200 + 30 + 60
    assert j["spec"]["activeDeadlineSeconds"] == expect
    assert (j["metadata"].get("annotations") or {}).get(DEADLINE_ANNOTATION) == (None if others else "290")
    # The replacement still stopping (patched): later passes do not move it again.
    ex.now = lambda: T0 + 260
    ex.poll()
    ex.poll()
    assert j["spec"]["activeDeadlineSeconds"] == expect and len(cluster.pod_patches) == 2



def crashed_after_the_pods_patch(marked: bool) -> tuple[Patching, dict[str, Any]]:
    """What an operator leaves when it dies (its process killed) after it stopped a replacement
    on a later pass (the pod patched at 200 s, 100 s after the first stop) and before it pushed
    out the Job's deadline (ours, 190, from the first stop). ``marked``: the patch said when
    (STOPPED_AT_ANNOTATION); not: an operator from before it, which patched the deadline only."""
    cluster = Patching()
    running_trial(cluster)
    j = cluster.jobs[0]
    j["status"] = {"startTime": iso(T0), "active": 1}
    j["spec"] = {"activeDeadlineSeconds": 190}
    j["metadata"]["annotations"] = {STOP_ANNOTATION: "stopped by the experiment", DEADLINE_ANNOTATION: "190"}
    cluster.pods[0] = disrupted(cluster.pods[0], "Failed")  # the first pod, evicted before the kubelet's kill
    b = named(pod("q-0", T0 + 150, [running(T0 + 160)]), "q-0-def", "Running")
    cluster.pods.append(as_patched(b, stop_patch(T0 + 199.5)) if marked else
                        {**b, "spec": {**b.get("spec", {}), "activeDeadlineSeconds": 1}})
    return cluster, j


def test_a_pod_stopped_just_before_an_operator_crash_still_gets_its_grace_period_from_the_restarted_one() -> None:
    """The operator died between the replacement's patch and the Job's. Before, the restarted
    one found the pod patched (nothing to stop, so nothing 'stopped now') and kept our 190: the
    Job controller then failed the Job at 190 s (DeadlineExceeded) and deleted the replacement
    while it used its grace period, its logs with it. The pod's stopped-at (written by the same
    patch) says it needs 200 + 30 + 10: the restarted operator pushes ours out to the deadline
    wanted now (205 + 30 + 60), once, patching no pod."""
    cluster, j = crashed_after_the_pods_patch(marked=True)
    # The pure decision on that observed state (the crash: the pod patched, the Job not).
    held, listed = JobDeadline.of(j), cluster.pods
    assert job_deadline_needed(T0, listed) == 200 + 30 + 10
    assert job_deadline_to_set(held, job_deadline(T0, T0 + 204.5, listed), job_deadline_needed(T0, listed)) == 295
    # The restarted operator acts on it.
    ex = executor(cluster, Events())
    ex.now = lambda: T0 + 204.5
    (exit_,) = ex.poll()
    assert exit_.killed and exit_.message == "stopped by the experiment"
    assert cluster.pod_patches == [] and cluster.deleted == []
    assert j["spec"]["activeDeadlineSeconds"] == 205 + 30 + 60
    assert j["metadata"]["annotations"][DEADLINE_ANNOTATION] == "295"
    ex.now = lambda: T0 + 260
    ex.poll()
    ex.poll()
    assert j["spec"]["activeDeadlineSeconds"] == 295 and cluster.pod_patches == []


def test_a_pod_stopped_without_its_time_by_an_older_operator_leaves_the_deadline_as_before() -> None:
    """An operator upgraded mid-stop: the pod its predecessor patched says nothing of when, so
    nothing is pushed (the rule before the annotation); the deadline is never lowered either."""
    cluster, j = crashed_after_the_pods_patch(marked=False)
    ex = executor(cluster, Events())
    ex.now = lambda: T0 + 204.5
    (exit_,) = ex.poll()
    assert exit_.killed and cluster.pod_patches == [] and j["spec"]["activeDeadlineSeconds"] == 190

def test_the_trials_stopped_in_place_are_looked_at_with_one_pod_list_per_pass() -> None:
    """The experiment's end stops all its running trials at once; until their Jobs end, each
    pass looks at their pods (a replacement to stop, or a disrupted pod). One LIST naming
    them all, not one per trial; each trial's own pods decide for it."""
    cluster, events = Patching(), Events()
    for tid in ("q-0", "q-1", "q-2"):
        cluster.jobs.append(job(tid))
        cluster.pods.append(named(pod(tid, T0, [running(T0)]), f"{tid}-abc", "Running"))
    ex = executor(cluster, events)
    ex.poll()
    for tid in ("q-0", "q-1", "q-2"):
        ex.kill(tid, "stopped by the experiment", StopCause.EXPERIMENT)
    assert len(ex.poll()) == 3
    # q-1's pod evicted before the kubelet's kill: its replacement waits, so its Job goes.
    cluster.pods[1] = disrupted(cluster.pods[1], "Failed")
    cluster.pods.append(named(pod("q-1", T0 + 80), "q-1-def", "Pending"))
    n = len(cluster.pod_lists)
    assert ex.poll() == []
    assert cluster.pod_lists[n:] == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-1,q-2)"]
    assert cluster.deleted == ["q-1"] and len(cluster.pod_patches) == 3
    n = len(cluster.pod_lists)
    ex.poll()
    assert cluster.pod_lists[n:] == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-2)"]
