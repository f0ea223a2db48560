"""A trial the operator stopped keeps its stop's reason across an operator restart.

An operator restarted (leader failover, crash, rolling update) after it deleted a trial's
workload and before it recorded the trial's end: a maxTrialSeconds stop still ends FAILED
with its message, an assessor's stop EARLY_STOPPED with its last metric, each reported once
and never started again. The workload is then gone (a Job: Background deletion) and the rule
is decide.stopped_before_restart (the tuner server's start times, the limit now), or it is
still there (a training job's finalizer keeps it while it stops) with the reason the stop
wrote on it (STOP_ANNOTATION), which wins. Most tests here run the deleting path (a training
job's stop, or a batch Job with keepStoppedPods false); a batch Job whose pods are stopped in
place and kept (stop_in_place.py) is the last one. Controllers and the Kubernetes executor run here
against the real engine and a recorded stand-in for the API server; the real path is
tests/e2e/test_operator_stop_restart.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from autotune_operator.controller import ExperimentController
from autotune_operator.decide import (EARLY_STOP_REASON, Goal, Limits, Observed, experiment_stop_before_restart,
                                      overdue_reason, stopped_before_restart)
from autotune_operator.executors.kubernetes import STOP_ANNOTATION, KubernetesExecutor, stop_reason
from autotune_operator.spec import validate_manifest
from tests.unit.test_k8s_trial_start import Cluster, Events, executor, job
from tests.unit.test_trial_start import MANIFEST, T0, Clock, iso, pod, running
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine
from tuner_server.store import Store

LIMIT = 60  # MANIFEST's maxTrialSeconds


# ----- the pure rule -----

def test_a_restart_finds_stopped_the_trials_an_assessor_stopped_and_those_past_the_limit_now() -> None:
    since = {"a": T0, "b": T0 + 30, "c": T0 + 50}
    assert stopped_before_restart([], since, T0 + 95, LIMIT) == {"a": overdue_reason(LIMIT), "b": overdue_reason(LIMIT)}
    # An assessor's stop comes first (a trial it stopped is not timed, as in a pass).
    assert stopped_before_restart(["a", "c"], since, T0 + 95, LIMIT) == {
        "a": EARLY_STOP_REASON, "b": overdue_reason(LIMIT), "c": EARLY_STOP_REASON}
    # The limit now: raised since the stop, a trial under it is not stopped; none, none is.
    assert stopped_before_restart([], since, T0 + 95, 3600) == {}
    assert stopped_before_restart(["c"], since, T0 + 95, None) == {"c": EARLY_STOP_REASON}


def test_the_stop_reason_is_read_from_the_workloads_annotation_only() -> None:
    j = job("q-0")
    assert stop_reason(j) is None
    j["metadata"]["annotations"] = {"autotune.tensorstack.dev/ended": "true"}
    assert stop_reason(j) is None
    j["metadata"]["annotations"][STOP_ANNOTATION] = overdue_reason(LIMIT)
    assert stop_reason(j) == overdue_reason(LIMIT)


# ----- controllers and the executor against a stand-in API server -----

@dataclass
class Stopping(Cluster):
    """The API server's side of a stop: a PATCH of a missing object is a 404, a DELETE removes
    it or, with ``finalizer``, leaves it with a deletionTimestamp (a training job's operator)."""

    clock: Clock = field(default_factory=Clock)
    finalizer: bool = False
    fail_delete: bool = False  # the operator dies between its PATCH and its DELETE
    calls: list[tuple[str, str]] = field(default_factory=list)

    def create_namespaced_secret(self, ns: str, body: Any) -> None:  # the experiment's token
        pass

    def find(self, name: str) -> dict[str, Any] | None:
        return next((j for j in self.jobs if j["metadata"]["name"] == name), None)

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: dict) -> None:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if self.find(name) is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        obj = copy.deepcopy(body)
        obj["metadata"]["creationTimestamp"] = iso(self.clock())
        self.jobs.append(obj)

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> dict:
        j = self.find(name)  # (whose it is, after a 409 on create)
        if j is None:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(j)

    def patch_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str, body: dict) -> None:
        self.calls.append(("patch", name))
        j = self.find(name)
        if j is None:
            raise ApiException(status=404, reason="NotFound")
        j["metadata"].setdefault("annotations", {}).update((body.get("metadata") or {}).get("annotations") or {})
        j.setdefault("spec", {}).update(body.get("spec") or {})  # (a stopped trial's Job deadline)

    def patch_namespaced_pod(self, name: str, ns: str, body: dict) -> None:
        self.calls.append(("stop-pod", name))  # (activeDeadlineSeconds: the kubelet stops it, not here)

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                        propagation_policy: str) -> None:
        self.calls.append(("delete", name))
        if self.fail_delete:
            raise ApiException(status=500, reason="the operator died here")
        j = self.find(name)
        if j is None:
            raise ApiException(status=404, reason="NotFound")
        if self.finalizer:
            j["metadata"].setdefault("deletionTimestamp", iso(self.clock()))
        else:
            self.jobs.remove(j)


def manifest(limit: int = LIMIT) -> Any:
    m = copy.deepcopy(MANIFEST)
    m["spec"]["maxTrialSeconds"] = limit
    return validate_manifest(m)


def operator(cluster: Stopping, engine: Engine, limit: int = LIMIT, keep: bool = False) -> tuple[ExperimentController, Events]:
    """A (re)started operator's controller for the experiment: a new executor, new memory.
    ``keep``: a stopped trial's pods are stopped in place and its Job kept (the default of a
    real operator); False: its Job is deleted."""
    events = Events()
    ex: KubernetesExecutor = executor(cluster, events)
    ex.keep_stopped_pods = keep
    return ExperimentController(manifest(limit), "q", InProcessClient(engine), ex, "http://x", clock=cluster.clock), events


def stopped_by_first_operator(tmp_path: Path, cluster: Stopping, assessor: bool = False) -> tuple[Engine, str, Events]:
    """The first operator runs the trial and stops it (past maxTrialSeconds, or asked by an
    assessor after two reports), then dies before its next pass records the end."""
    engine = Engine(Store(tmp_path / "t.db"), clock=cluster.clock)
    c, events = operator(cluster, engine)
    c.start()
    c.step()
    ((_, tid),) = [x for x in cluster.calls if x[0] == "create"]
    cluster.pods.append(pod(tid, T0, [running(T0)]))  # its pod runs (the attempt maxTrialSeconds times)
    if assessor:
        engine.report_intermediate("q", tid, 0.5, 0)
        engine.report_intermediate("q", tid, 0.25, 1)
        engine.request_stop("q", tid, "Medianstop: early stop at step 1")  # the assessor's flag
        cluster.clock.now = T0 + 10
    else:
        cluster.clock.now = T0 + LIMIT
    try:
        c.step()
    except ApiException:
        assert cluster.fail_delete
    assert cluster.calls[-2:] == [("patch", tid), ("delete", tid)]  # the reason is written before the DELETE
    stopped = [] if cluster.fail_delete else [("TrialEarlyStopped" if assessor else "TrialStopped", False)]
    assert events.emitted == [("TrialCreated", False), *stopped]
    assert engine.trial("q", tid).record.state.value == "RUNNING"  # its end not recorded: the operator died
    cluster.clock.now += 5
    return engine, tid, events


def test_an_overdue_trial_whose_job_is_gone_ends_failed_after_a_restart_and_is_not_started_again(tmp_path: Path) -> None:
    cluster = Stopping()
    engine, tid, _ = stopped_by_first_operator(tmp_path, cluster)
    assert cluster.jobs == []  # Background deletion: the Job is gone at once
    c, events = operator(cluster, engine)
    c.start()
    d = c.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "FAILED" and t.message == overdue_reason(LIMIT), (t.record, t.message)
    assert [x for x in cluster.calls if x[0] == "create"] == [("create", tid)]  # never created again
    assert events.emitted == []  # its Events were posted by the operator that stopped it
    assert d.finished and c.status().trials.failed == 1
    c.step()
    assert engine.trial("q", tid).message == overdue_reason(LIMIT) and events.emitted == []


def test_a_stop_whose_workload_is_still_there_keeps_its_own_reason_though_the_limit_was_raised(tmp_path: Path) -> None:
    cluster = Stopping(finalizer=True)
    engine, tid, _ = stopped_by_first_operator(tmp_path, cluster)
    (j,) = cluster.jobs
    assert j["metadata"]["deletionTimestamp"] and stop_reason(j) == overdue_reason(LIMIT)
    c, events = operator(cluster, engine, limit=3600)  # raised while no operator ran
    c.start()
    assert c.executor.active() == set()  # a workload being stopped is no running trial
    c.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "FAILED" and t.message == overdue_reason(LIMIT), (t.record, t.message)
    assert events.emitted == [] and len(cluster.jobs) == 1


def test_a_stop_the_dead_operator_wrote_but_did_not_delete_is_finished_by_the_next(tmp_path: Path) -> None:
    cluster = Stopping(fail_delete=True)
    engine, tid, _ = stopped_by_first_operator(tmp_path, cluster)
    cluster.fail_delete = False
    (j,) = cluster.jobs
    assert stop_reason(j) == overdue_reason(LIMIT) and not j["metadata"].get("deletionTimestamp")
    c, events = operator(cluster, engine)
    c.start()
    c.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "FAILED" and t.message == overdue_reason(LIMIT)
    assert cluster.jobs == [] and cluster.calls[-1] == ("delete", tid)  # its workload deleted now
    assert events.emitted == []


def test_an_assessors_stop_stays_early_stopped_with_its_last_metric_after_a_restart(tmp_path: Path) -> None:
    for finalizer in (False, True):
        cluster = Stopping(finalizer=finalizer)
        engine, tid, _ = stopped_by_first_operator(tmp_path / str(finalizer), cluster, assessor=True)
        c, events = operator(cluster, engine)
        c.start()
        c.step()
        t = engine.trial("q", tid)
        assert t.record.state.value == "EARLY_STOPPED" and t.record.value == 0.25, (finalizer, t.record)
        assert [x for x in cluster.calls if x[0] == "create"][1:] in ([], [("create", tid)])  # (409: adopted)
        assert len(cluster.jobs) == int(finalizer) and events.emitted == []


def test_a_trial_that_completed_while_no_operator_ran_succeeds_though_it_is_past_the_limit_now(tmp_path: Path) -> None:
    """Past maxTrialSeconds by the clock at the restart, but its Job completed before: its own
    end wins (it was never stopped)."""
    cluster = Stopping()
    engine = Engine(Store(tmp_path / "t.db"), clock=cluster.clock)
    c, _ = operator(cluster, engine)
    c.start()
    c.step()
    (j,) = cluster.jobs
    tid = j["metadata"]["name"]
    engine.started("q", tid, T0 + 1)
    engine.report_final("q", tid, 0.9)
    j["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.clock.now = T0 + 10 * LIMIT  # the operator was down meanwhile
    c2, events = operator(cluster, engine)
    c2.start()
    c2.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "SUCCEEDED" and t.record.value == 0.9, (t.record, t.message)
    assert events.emitted == [("TrialSucceeded", False)]


# ----- trials the experiment itself stopped (maxExecSeconds, objectiveGoal, maxFailedTrialNum) -----

def test_a_restart_finds_stopped_by_the_experiment_every_trial_an_experiment_past_its_stop_still_runs() -> None:
    limits = Limits(max_trials=10, concurrency=2, max_seconds=100, max_failed=3)
    running = Observed(elapsed=99, issued=4, active=2, failed=2)
    assert experiment_stop_before_restart(limits, running) is None  # still searching: nothing stopped
    timeout = experiment_stop_before_restart(limits, replace(running, elapsed=100))
    assert timeout == "maxExecSeconds (100s) reached after 2 trial(s) ended"
    assert experiment_stop_before_restart(limits, replace(running, failed=3, last_failure="t-1: boom")) == (
        "maxFailedTrialNum (3) reached: 3 trial(s) failed; last: t-1: boom")
    goal = Goal(0.9, maximize=True)
    assert experiment_stop_before_restart(limits, replace(running, best=0.95, best_name="t-0"), goal) == (
        "objectiveGoal (0.9) reached by t-0 (0.95)")
    # Past its stop with nothing left running: nothing to stop (the experiment just ends).
    assert experiment_stop_before_restart(limits, replace(running, elapsed=100, active=0)) is None
    # Every unfinished trial gets the experiment's reason, unless stopped for its own first.
    since = {"a": T0, "b": T0 + 50, "c": T0 + 50}
    assert stopped_before_restart(["c"], since, T0 + 95, LIMIT, timeout, ["a", "b", "c", "d"]) == {
        "a": overdue_reason(LIMIT), "b": timeout, "c": EARLY_STOP_REASON, "d": timeout}
    assert stopped_before_restart([], since, T0 + 95, LIMIT, None, ["a", "b"]) == {"a": overdue_reason(LIMIT)}


def test_a_trial_the_timed_out_experiment_stopped_whose_job_is_gone_ends_stopped_and_is_not_created_again(
        tmp_path: Path) -> None:
    """maxExecSeconds reached: the first operator stops the running trial (its Job deleted,
    Background) and dies before recording its end; the next one ends it STOPPED with the
    message the first would have recorded, without creating its Job again."""
    cluster = Stopping()
    engine = Engine(Store(tmp_path / "t.db"), clock=cluster.clock)
    m = copy.deepcopy(MANIFEST)
    m["spec"]["maxExecSeconds"] = 30  # under maxTrialSeconds (60): the experiment's stop, not the trial's

    def run_operator() -> tuple[ExperimentController, Events]:
        events = Events()
        ex: KubernetesExecutor = executor(cluster, events)
        ex.keep_stopped_pods = False  # its Job deleted (a training job's path)
        return ExperimentController(validate_manifest(m), "q", InProcessClient(engine), ex, "http://x",
                                    clock=cluster.clock), events

    c, first_events = run_operator()
    c.start()
    c.step()
    ((_, tid),) = [x for x in cluster.calls if x[0] == "create"]
    cluster.pods.append(pod(tid, T0, [running(T0)]))
    c.step()
    assert engine.trial("q", tid).record.state.value == "RUNNING"
    cluster.clock.now = T0 + 30
    d = c.step()
    why = "maxExecSeconds (30s) reached after 0 trial(s) ended"
    assert d.phase.value == "TIMEOUT" and d.stop_active and d.message == why
    assert cluster.calls[-2:] == [("patch", tid), ("delete", tid)] and cluster.jobs == []  # Job gone
    assert engine.trial("q", tid).record.state.value == "RUNNING"  # the operator dies before its next pass
    cluster.clock.now += 5
    c2, events = run_operator()
    c2.start()
    d = c2.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "STOPPED" and t.message == why, (t.record, t.message)
    assert [x for x in cluster.calls if x[0] == "create"] == [("create", tid)]  # never created again
    stops = [e for e in first_events.emitted + events.emitted if e[0] != "TrialCreated"]
    assert len(stops) <= 1 and events.emitted == []  # one stop Event at most, by the operator that stopped it
    assert d.finished and d.phase.value == "TIMEOUT" and c2.status().trials.stopped == 1


def test_a_stopped_trial_whose_pod_was_stopped_in_place_ends_failed_after_a_restart_and_its_job_stays(
        tmp_path: Path) -> None:
    """keepStoppedPods (the default): the first operator writes the reason and stops the pod
    (activeDeadlineSeconds), the Job stays; it dies before recording the end. The next one
    ends the trial FAILED with the reason the Job carries, stops the pod again (the first may
    have died before it did), and neither deletes nor re-creates the Job."""
    cluster = Stopping()
    engine = Engine(Store(tmp_path / "t.db"), clock=cluster.clock)
    c, events = operator(cluster, engine, keep=True)
    c.start()
    c.step()
    ((_, tid),) = [x for x in cluster.calls if x[0] == "create"]
    cluster.pods.append(pod(tid, T0, [running(T0)]))
    cluster.clock.now = T0 + LIMIT
    c.step()
    pod_name = cluster.pods[0]["metadata"]["name"]
    # The reason first, then the stop, then the Job's deadline (stop_in_place.job_deadline).
    assert cluster.calls[-3:] == [("patch", tid), ("stop-pod", pod_name), ("patch", tid)]
    assert events.emitted == [("TrialCreated", False), ("TrialStopped", False)]
    (j,) = cluster.jobs
    assert stop_reason(j) == overdue_reason(LIMIT) and not j["metadata"].get("deletionTimestamp")
    assert engine.trial("q", tid).record.state.value == "RUNNING"  # the operator dies here
    deadline = j["spec"]["activeDeadlineSeconds"]
    cluster.clock.now += 5
    c2, events2 = operator(cluster, engine, keep=True)
    c2.start()
    assert c2.executor.active() == set()
    d = c2.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "FAILED" and t.message == overdue_reason(LIMIT), (t.record, t.message)
    # The pod stopped again (this stand-in does not apply the pod's patch); the Job has its
    # deadline already, so it is not patched again (stop_in_place.job_deadline_to_set).
    assert cluster.calls[-1] == ("stop-pod", pod_name) and len(cluster.jobs) == 1
    assert cluster.jobs[0]["spec"]["activeDeadlineSeconds"] == deadline
    assert [x for x in cluster.calls if x[0] in ("create", "delete")] == [("create", tid)]
    assert events2.emitted == [] and d.finished
