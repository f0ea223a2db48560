"""The Kubernetes executor forgets a trial once it has ended and been reported.

An experiment's executor lives as long as the experiment, and a long one runs thousands of
trials: what it keeps per trial must not outlive the trial. Trials that end in each way (their
Job complete, failed, stopped in place and failed by its pod's deadline, deleted after a stop,
with a disrupted pod on the way) leave nothing, except what their workloads still listed need
(a LIST holds them anyway): that they were reported, and when each workload was created.
Against the recorded stand-in for the API server of tests/unit/test_stop_in_place.py.
"""

from __future__ import annotations

from autotune_operator.executors.base import StopCause, TrialLaunch
from tests.unit.test_k8s_trial_start import Events, executor, step
from tests.unit.test_stop_in_place import Patching, named
from tests.unit.test_trial_start import T0, iso, pod, running

# Every per-trial record of the executor (the rebuilt-each-pass ones too: they must stay empty).
PER_TRIAL = ("_killed", "_launched", "_stopped_before", "_started", "_seen_active", "_current", "_replacing",
             "_blocked", "_blocked_before", "_stopping_in_place", "_deadlines", "_job_started", "_outlived",
             "_read_to_end", "_gave_up", "_announced", "_awaiting", "_disrupting", "_live")
FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}


def test_trials_that_ended_leave_nothing_but_what_their_listed_workloads_need() -> None:
    cluster, events = Patching(), Events()
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 100
    tids = [f"q-{i}" for i in range(4)]
    for i, tid in enumerate(tids):
        ex.launch(TrialLaunch(tid, i, {}, {}))
    for j in cluster.jobs:
        j["metadata"]["creationTimestamp"] = iso(T0)
        j["status"] = {"startTime": iso(T0), "active": 1}
    for tid in tids[:3]:  # q-3's pod waits for a node
        p = named(pod(tid, T0, [running(T0 + 1)]), f"{tid}-abc", "Running")
        p["metadata"]["uid"] = f"uid-{tid}"
        cluster.pods.append(p)
    cluster.pods.append(named(pod("q-3", T0), "q-3-abc"))
    step(ex)
    # q-1's pod is evicted (a node drain): its Job says a pod terminates, the executor announces it.
    cluster.pods[1]["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "Evicted"}]
    cluster.jobs[1]["status"] = {"startTime": iso(T0), "active": 1, "terminating": 1}
    step(ex)
    assert [r for r, _ in events.emitted].count("TrialPodDisrupted") == 1
    assert ex._announced and ex._current and ex._started and ex._seen_active and ex._replacing  # (all in use)
    # q-0 completes, q-1 fails; q-2 is stopped (its pod in place), q-3 too (its Job deleted: never ran).
    cluster.jobs[0]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.jobs[1]["status"] = FAILED
    ex.kill("q-2", "stopped by the experiment", StopCause.EXPERIMENT)
    ex.kill("q-3", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.deleted == ["q-3"] and [n for n, _ in cluster.pod_patches] == ["q-2-abc"]
    ex.started()
    exits = ex.poll()
    assert sorted((e.trial_id, e.killed) for e in exits) == [("q-0", False), ("q-1", False), ("q-2", True),
                                                             ("q-3", True)]
    ex.started()
    assert ex.poll() == [] and ex._killed == {"q-2": "stopped by the experiment"}  # q-2 stops: still looked at
    cluster.jobs[2]["status"] = FAILED  # its pod's deadline failed it
    for _ in range(2):
        assert step(ex) == {} and ex.poll() == []
    assert {name: getattr(ex, name) for name in PER_TRIAL if getattr(ex, name)} == {}
    # What the Jobs still listed need: not reported again, each workload's creation (its pods'
    # logs are told from an earlier experiment's of the same name by it).
    assert ex._reported == {"q-0", "q-1", "q-2"} and set(ex._created) == {"q-0", "q-1", "q-2"}
    assert ex.active() == set() and ex.poll() == []
    # The Jobs deleted (the experiment's garbage, or by hand): nothing is left, nothing reported again.
    cluster.jobs.clear()
    assert ex.poll() == [] and ex.poll() == []
    assert ex._reported == set() and ex._created == {}
    assert {name: getattr(ex, name) for name in PER_TRIAL if getattr(ex, name)} == {}
    assert [r for r, _ in events.emitted].count("TrialPodDisrupted") == 1


def test_a_stop_that_races_a_trial_end_leaves_the_ended_workload_alone() -> None:
    # The controller decides its stops from what it saw before a poll; a trial that poll reports
    # ended (and a later pass forgets) may still be asked to stop. Its finished Job is not
    # annotated, deleted or said stopped.
    cluster, events = Patching(), Events()
    ex = executor(cluster, events)
    ex.now = lambda: T0 + 100
    for i, tid in enumerate(("q-0", "q-1")):
        ex.launch(TrialLaunch(tid, i, {}, {}))
    for j in cluster.jobs:
        j["metadata"]["creationTimestamp"] = iso(T0)
        j["status"] = {"startTime": iso(T0), "active": 1}
    cluster.pods.append(named(pod("q-0", T0, [running(T0 + 1)]), "q-0-abc", "Running"))
    cluster.pods.append(named(pod("q-1", T0, [running(T0 + 1)]), "q-1-abc", "Running"))
    step(ex)
    ex.kill("q-1", "stopped by the experiment", StopCause.EXPERIMENT)
    cluster.jobs[0]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.jobs[1]["status"] = FAILED  # q-1's pod deadline failed it
    ex.started()
    assert sorted((e.trial_id, e.killed) for e in ex.poll()) == [("q-0", False), ("q-1", True)]
    for _ in range(2):  # forgotten: _killed no longer holds q-1
        step(ex)
        ex.poll()
    assert ex._killed == {}
    patches, emitted = list(cluster.pod_patches), list(events.emitted)
    jobs = [dict(j["metadata"].get("annotations") or {}) for j in cluster.jobs]
    ex.kill("q-0", "stopped by the experiment", StopCause.EXPERIMENT)
    ex.kill("q-1", "stopped by the experiment", StopCause.EXPERIMENT)
    assert cluster.deleted == [] and cluster.pod_patches == patches and events.emitted == emitted
    assert [dict(j["metadata"].get("annotations") or {}) for j in cluster.jobs] == jobs
    assert ex.poll() == [] and ex._killed == {}
