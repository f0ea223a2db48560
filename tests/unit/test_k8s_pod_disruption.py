"""A batch Job trial whose pod is evicted or preempted: the Job replaces the pod
(podFailurePolicy, workloads/batch_job.py) and the executor says so once per pod.

The API objects are the recorded stand-ins of test_k8s_trial_start.py (the real path runs
against kube-apiserver in tests/e2e/test_operator_pod_disruption.py): here the point is what
each pass costs and says. A running trial's Job costs no pod LIST until its status reports
a pod terminating (or one not ready after the trial started); that pass's LIST shows the
pod's DisruptionTarget condition, which becomes one TrialPodDisrupted Event; the trial's
start stays its first pod's.
"""

from __future__ import annotations

from typing import Any

from autotune_operator.decide import attempt_since, overdue_trials
from autotune_operator.workloads.batch_job import disruption_policy
from autotune_operator.workloads.pods import current_starts, disruptions
from tests.unit.test_k8s_trial_start import Cluster, job, step
from tests.unit.test_k8s_trial_start import executor as make_executor
from tests.unit.test_trial_start import T0, pod, running

EVICTED = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
           "message": "Eviction API: evicting"}


class Events:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str]] = []

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        self.emitted.append((reason, message))


def policed(tid: str, **status: int) -> dict[str, Any]:
    j = job(tid)
    j["spec"] = {"podFailurePolicy": disruption_policy()}
    j["status"] = dict(status)
    return j


def named(p: dict[str, Any], name: str, *conditions: dict[str, Any]) -> dict[str, Any]:
    p["metadata"].update(name=name, uid=f"uid-{name}")
    if conditions:
        p["status"]["conditions"] = list(conditions)
    return p


def test_disruptions_names_only_asked_trials_pods_with_the_condition_true() -> None:
    pods = [named(pod("q-0", T0), "a", EVICTED), named(pod("q-0", T0), "b"),
            named(pod("q-0", T0), "c", {**EVICTED, "status": "False"}), named(pod("q-1", T0), "d", EVICTED)]
    (d,) = disruptions(pods, {"q-0"})
    assert (d.trial, d.pod, d.uid, d.reason, d.message) == ("q-0", "a", "uid-a", "EvictionByEvictionAPI",
                                                            "Eviction API: evicting")


def test_an_evicted_pod_is_announced_once_and_the_trial_keeps_its_first_start() -> None:
    cluster, events = Cluster(jobs=[policed("q-0", active=1)]), Events()
    cluster.pods = [named(pod("q-0", T0, [running(T0 + 5)]), "q-0-a")]
    ex = make_executor(cluster, events)  # type: ignore[arg-type]
    assert step(ex) == {"q-0": T0 + 5}
    cluster.jobs[0]["status"] = {"active": 1, "ready": 1}
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 1  # steady: no pod LIST
    # Evicted: the pod terminates with the condition; the Job counts it as terminating.
    cluster.jobs[0]["status"] = {"active": 0, "ready": 0, "terminating": 1}
    cluster.pods[0]["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    cluster.pods[0]["status"]["conditions"] = [EVICTED]
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 2
    assert ex.attempt_starts() == {"q-0": None}  # no pod runs it: maxTrialSeconds does not count
    assert events.emitted == [("TrialPodDisrupted", "trial q-0: pod q-0-a was disrupted (EvictionByEvictionAPI: "
                                                    "Eviction API: evicting); its Job runs the trial again in a new "
                                                    "pod, not counted as a failure")]
    # Still terminating next pass: listed again, not announced again.
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 3 and len(events.emitted) == 1
    # Replaced: the old pod gone, the new one waits, then runs; the start stays the first pod's.
    cluster.jobs[0]["status"] = {"active": 1, "ready": 0}
    cluster.pods = [named(pod("q-0", T0 + 60), "q-0-b")]
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 4
    assert ex.attempt_starts() == {"q-0": None}
    # The new pod runs (the Job says ready): listed once more, as its start is still unknown.
    cluster.jobs[0]["status"] = {"active": 1, "ready": 1}
    cluster.pods = [named(pod("q-0", T0 + 60, [running(T0 + 70)]), "q-0-b")]
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 5
    assert ex.attempt_starts() == {"q-0": T0 + 70}  # maxTrialSeconds counts from here
    assert step(ex) == {"q-0": T0 + 5} and step(ex) == {"q-0": T0 + 5}
    assert len(cluster.pod_lists) == 5 and len(events.emitted) == 1


def test_a_kubelet_ended_pod_is_announced_from_the_replacements_pass() -> None:
    # Node pressure or shutdown: the kubelet fails the pod (it stays, Failed) and the Job's new
    # pod waits: ready < active after the trial started makes that pass list the pods.
    cluster, events = Cluster(jobs=[policed("q-0", active=1, ready=1)]), Events()
    cluster.pods = [named(pod("q-0", T0, [running(T0 + 5)]), "q-0-a")]
    ex = make_executor(cluster, events)  # type: ignore[arg-type]
    assert step(ex) == {"q-0": T0 + 5}
    cluster.jobs[0]["status"] = {"active": 1, "ready": 0}
    cluster.pods[0]["status"] = {"phase": "Failed", "conditions": [
        {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": "memory pressure"}]}
    cluster.pods.append(named(pod("q-0", T0 + 60), "q-0-b"))
    assert step(ex) == {"q-0": T0 + 5}
    assert [r for r, _ in events.emitted] == ["TrialPodDisrupted"] and "TerminationByKubelet: memory pressure" in \
        events.emitted[0][1]


def test_a_job_without_the_policy_costs_nothing_and_says_nothing() -> None:
    # An OnFailure template's Job has no podFailurePolicy: a disruption fails it (TrialFailed).
    j = job("q-0")
    j["status"] = {"active": 0, "terminating": 1}
    cluster, events = Cluster(jobs=[j]), Events()
    cluster.pods = [named(pod("q-0", T0, [running(T0 + 5)]), "q-0-a", EVICTED)]
    ex = make_executor(cluster, events)  # type: ignore[arg-type]
    assert step(ex) == {"q-0": T0 + 5}  # its start: the one LIST every trial costs
    assert step(ex) == {"q-0": T0 + 5} and len(cluster.pod_lists) == 1 and events.emitted == []


def test_current_start_is_the_newest_pod_not_going() -> None:
    first = named(pod("q-0", T0, [running(T0 + 5)]), "a")
    going = named(pod("q-0", T0, [running(T0 + 5)]), "a", EVICTED)
    new = named(pod("q-0", T0 + 60), "b")
    assert current_starts([first], {"q-0": T0}) == {"q-0": T0 + 5}  # never disrupted: its own start
    assert current_starts([going], {"q-0": T0}) == {"q-0": None}  # evicted, no replacement yet
    deleting = named(pod("q-0", T0, [running(T0 + 5)]), "a")
    deleting["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    assert current_starts([deleting, new], {"q-0": T0}) == {"q-0": None}  # the replacement waits
    new["status"]["containerStatuses"] = [running(T0 + 70)]
    assert current_starts([going, new], {"q-0": T0}) == {"q-0": T0 + 70}
    assert current_starts([new], {"q-0": T0 + 100}) == {"q-0": None}  # older pods: an earlier experiment's
    assert current_starts([], {"q-0": T0}) == {"q-0": None}


def test_max_trial_seconds_counts_from_the_replacement_pods_start() -> None:
    since = {"a": T0, "b": T0, "c": T0}
    # a: evicted, its new pod started at T0+100; b: its new pod waits; c: never disrupted.
    clock = attempt_since(since, {"a": T0 + 100, "b": None, "c": T0, "gone": T0})
    assert clock == {"a": T0 + 100, "c": T0}
    assert overdue_trials(clock, T0 + 120, 60) == ["c"]
    assert overdue_trials(since, T0 + 120, 60) == ["a", "b", "c"]  # the clock it replaces


def test_a_restarted_executor_does_not_time_a_trial_whose_new_pod_waits() -> None:
    # The operator restarted while the evicted trial's new pod waits for a node: the tuner
    # server has the trial RUNNING since its first pod; this executor never saw that pod.
    cluster, events = Cluster(jobs=[policed("q-0", active=1, ready=0)]), Events()
    cluster.pods = [named(pod("q-0", T0 + 60), "q-0-b")]
    ex = make_executor(cluster, events)  # type: ignore[arg-type]
    assert step(ex) == {} and ex.attempt_starts() == {"q-0": None}
    assert attempt_since({"q-0": T0 + 5}, ex.attempt_starts()) == {}  # not overdue while it waits
    cluster.jobs[0]["status"] = {"active": 1, "ready": 1}
    cluster.pods = [named(pod("q-0", T0 + 60, [running(T0 + 70)]), "q-0-b")]
    assert step(ex) == {"q-0": T0 + 70} and ex.attempt_starts() == {"q-0": T0 + 70}
    n = len(cluster.pod_lists)
    assert step(ex) == {"q-0": T0 + 70} and len(cluster.pod_lists) == n and events.emitted == []
