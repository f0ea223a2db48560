"""A trial's time starts when it really starts running, not when its workload is created.

The pure rule that reads a trial's start from its pods (workloads/pods.py), the tuner
server's idempotent "started at T" (engine + store), and the controller that keeps a
trial queued for a node WAITING (never overdue) and stops it maxTrialSeconds after it
began. The real Kubernetes path is tests/e2e/test_trial_start_e2e.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping

from autotune_operator.controller import ExperimentController
from autotune_operator.decide import overdue_trials
from autotune_operator.executors.base import TrialExit, TrialLaunch
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads.common import EXPERIMENT_LABEL, TRIAL_LABEL
from autotune_operator.workloads.pods import parse_time, pod_started, trial_starts
from tests.unit.fake_executor import FakeExecutor
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store

T0 = 1_800_000_000.0  # a fixed "now" for the injected clocks


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(trial: str, created: float, statuses: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init is not None:
        status["initContainerStatuses"] = init
    return {"metadata": {"name": f"{trial}-x", "labels": {EXPERIMENT_LABEL: "e", TRIAL_LABEL: trial},
                         "creationTimestamp": iso(created)}, "status": status}


def running(at: float) -> dict[str, Any]:
    return {"name": "c", "state": {"running": {"startedAt": iso(at)}}}


# ----- the pure rule: a trial starts when any container of any of its pods first ran -----

def test_parse_time_reads_kubernetes_timestamps_and_refuses_the_rest() -> None:
    assert parse_time("2027-01-15T08:00:00Z") == dt.datetime(2027, 1, 15, 8, tzinfo=dt.timezone.utc).timestamp()
    assert parse_time("2027-01-15T08:00:00.250000Z") == parse_time("2027-01-15T08:00:00Z") + 0.25
    assert parse_time("2027-01-15T08:00:00+01:00") == parse_time("2027-01-15T07:00:00Z")
    for bad in (None, "", "yesterday", 17, {"startedAt": "x"}):
        assert parse_time(bad) is None


def test_a_pod_that_has_not_run_has_no_start() -> None:
    assert pod_started(pod("t", T0)) is None  # unscheduled: no statuses at all
    pulling = {"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}, "lastState": {}}
    assert pod_started(pod("t", T0, [pulling])) is None
    assert pod_started(pod("t", T0, [{"name": "c", "state": {"running": {}}}])) is None  # no startedAt yet
    assert pod_started({"metadata": {}, "status": {"containerStatuses": ["junk", None]}}) is None


def test_a_pod_starts_at_its_earliest_container_running_ended_restarted_or_init() -> None:
    assert pod_started(pod("t", T0, [running(T0 + 30)])) == T0 + 30
    ended = {"name": "c", "state": {"terminated": {"exitCode": 0, "startedAt": iso(T0 + 5), "finishedAt": iso(T0 + 9)}}}
    assert pod_started(pod("t", T0, [ended])) == T0 + 5  # a container that already ended
    restarted = {"name": "c", "state": {"running": {"startedAt": iso(T0 + 60)}},
                 "lastState": {"terminated": {"exitCode": 1, "startedAt": iso(T0 + 20), "finishedAt": iso(T0 + 50)}}}
    assert pod_started(pod("t", T0, [restarted])) == T0 + 20  # its first run, not the restart
    assert pod_started(pod("t", T0, [running(T0 + 40), running(T0 + 35)])) == T0 + 35  # sidecar first
    init = [{"name": "fetch", "state": {"terminated": {"startedAt": iso(T0 + 12), "finishedAt": iso(T0 + 30)}}}]
    waiting = {"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}
    assert pod_started(pod("t", T0, [waiting], init=init)) == T0 + 12  # the trial's own init code ran


def test_trial_starts_takes_each_asked_trials_earliest_pod_and_ignores_older_pods() -> None:
    pods = [
        pod("e-0", T0, [running(T0 + 50)]),  # worker
        pod("e-0", T0, [running(T0 + 45)]),  # master, earlier
        pod("e-1", T0, [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]),
        pod("e-2", T0 - 100, [running(T0 - 90)]),  # left by an earlier experiment named "e"
        pod("e-3", T0, [running(T0 + 5)]),  # not asked about
        {"metadata": {"labels": {}}, "status": {}},
    ]
    assert trial_starts(pods, {"e-0": T0, "e-1": T0, "e-2": T0}) == {"e-0": T0 + 45}
    assert trial_starts(pods, {"e-2": T0 - 100}) == {"e-2": T0 - 90}  # its own pod this time
    assert trial_starts([], {"e-0": T0}) == {}


# ----- the tuner server: an idempotent "started at T" -----

class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_with_trials(tmp_path: Path, clock: Clock, n: int = 1) -> tuple[Engine, list[str]]:
    e = Engine(Store(tmp_path / "t.db"), clock=clock)
    space = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4]}}'
    e.register("e", "e", ExperimentConfig.model_validate({"searchSpace": space, "tuner": {"name": "GridSearch"}}))
    return e, [e.suggest("e").trial_id for _ in range(n)]  # type: ignore[union-attr]


def test_started_at_marks_the_trial_running_then_only_an_earlier_time_replaces_it(tmp_path: Path) -> None:
    clock = Clock()
    e, (tid,) = engine_with_trials(tmp_path, clock)
    assert e.summary("e")["trials"]["waiting"] == 1 and e.summary("e")["runningSince"] == {}
    clock.now = T0 + 600  # it queued for ten minutes
    e.started("e", tid, T0 + 590)
    s = e.summary("e")
    assert s["trials"]["running"] == 1 and s["runningSince"] == {tid: T0 + 590}
    e.started("e", tid, T0 + 595)  # a later observation (a second pod) changes nothing
    e.started("e", tid)  # an older client's "now" neither
    assert e.trial("e", tid).started == T0 + 590
    e.started("e", tid, T0 + 580)  # an earlier one wins
    assert e.summary("e")["runningSince"] == {tid: T0 + 580}
    # survives a restart of the server
    again = Engine(Store(tmp_path / "t.db"), clock=clock)
    assert again.trial("e", tid).started == T0 + 580 and again.trial("e", tid).record.state.value == "RUNNING"


def test_a_metric_report_before_the_observation_is_corrected_by_it(tmp_path: Path) -> None:
    clock = Clock()
    e, (tid,) = engine_with_trials(tmp_path, clock)
    clock.now = T0 + 100
    e.report_intermediate("e", tid, 0.5)  # the trial reported before the operator saw its pod run
    assert e.trial("e", tid).started == T0 + 100
    e.started("e", tid, T0 + 70)
    assert e.trial("e", tid).started == T0 + 70


def test_started_at_is_kept_between_the_trials_creation_and_now(tmp_path: Path) -> None:
    clock = Clock()
    e, (a, b) = engine_with_trials(tmp_path, clock, 2)
    clock.now = T0 + 50
    e.started("e", a, T0 + 80)  # a node clock ahead of ours: not in the future
    e.started("e", b, T0 - 3600)  # nor before the trial existed
    assert e.trial("e", a).started == T0 + 50 and e.trial("e", b).started == T0


def test_an_ended_trial_gets_its_start_but_stays_ended(tmp_path: Path) -> None:
    clock = Clock()
    e, (tid,) = engine_with_trials(tmp_path, clock)
    clock.now = T0 + 40
    assert e.end("e", tid, 1).value == "FAILED"  # ended between two passes, never seen running
    e.started("e", tid, T0 + 10)
    t = e.trial("e", tid)
    assert t.record.state.value == "FAILED" and t.started == T0 + 10 and t.ended == T0 + 40
    assert Engine(Store(tmp_path / "t.db"), clock=clock).trial("e", tid).record.state.value == "FAILED"


def test_only_started_trials_can_be_overdue(tmp_path: Path) -> None:
    clock = Clock()
    e, (queued, ran) = engine_with_trials(tmp_path, clock, 2)
    e.started("e", ran, T0 + 100)
    clock.now = T0 + 10_000  # both created long ago; one queued the whole time
    assert overdue_trials(e.summary("e")["runningSince"], clock.now, 60) == [ran]


# ----- the controller: WAITING until the executor sees the trial run -----

class QueuedExecutor(FakeExecutor):
    """Stands in for a cluster whose trials queue: launch creates a workload that runs only
    when the test says so (``begin``). The real one is KubernetesExecutor (e2e)."""

    starts_on_launch = False

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.begun: dict[str, float] = {}
        self.killed: dict[str, str] = {}
        self.exits: list[TrialExit] = []

    def launch(self, trial: TrialLaunch) -> None:
        if trial.trial_id not in self.launched:
            self.launched.append(trial.trial_id)

    def active(self) -> set[str]:
        return set(self.launched) - set(self.killed)

    def started(self) -> Mapping[str, float]:
        return dict(self.begun)

    def poll(self) -> list[TrialExit]:
        out, self.exits = self.exits, []
        return out

    def kill(self, trial_id: str, reason: str, cause: object = None) -> None:
        if trial_id not in self.killed:
            self.killed[trial_id] = reason
            self.exits.append(TrialExit(trial_id, None, True, reason))


MANIFEST = {
    "apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "q"},
    "spec": {"maxTrialNum": 1, "trialConcurrency": 1, "maxTrialSeconds": 60,
             "searchSpace": '{"x": {"_type": "choice", "_value": [1]}}',
             "tuner": {"builtinTunerName": "GridSearch", "classArgs": '{"optimize_mode": "maximize"}'},
             "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": {
                 "spec": {"containers": [{"name": "c", "image": "i", "command": ["train"]}]}}}]}},
}


def test_a_queued_trial_is_never_overdue_and_is_stopped_its_limit_after_it_began(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Store(tmp_path / "t.db"), clock=clock)
    ex = QueuedExecutor()
    c = ExperimentController(validate_manifest(MANIFEST), "q", InProcessClient(engine), ex, "http://x", clock=clock)
    c.start()
    c.step()
    (tid,) = ex.launched
    assert engine.trial("q", tid).record.state.value == "WAITING"  # created, not running
    clock.now = T0 + 3600  # an hour in the queue: 60 times maxTrialSeconds
    c.step()
    assert not ex.killed and c.status().trials.waiting == 1
    ex.begun[tid] = T0 + 3590  # a GPU freed up ten seconds ago
    c.step()
    assert not ex.killed and engine.trial("q", tid).started == T0 + 3590
    assert c.status().trials.running == 1
    clock.now = T0 + 3649
    c.step()
    assert not ex.killed  # 59 s of running
    clock.now = T0 + 3650
    c.step()
    assert ex.killed == {tid: "ran longer than maxTrialSeconds (60s) and was stopped"}
    d = c.step()
    t = engine.trial("q", tid)
    assert t.record.state.value == "FAILED" and t.message == ex.killed[tid] and d.finished


def test_a_restarted_controller_reports_the_start_again_and_it_is_idempotent(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Store(tmp_path / "t.db"), clock=clock)
    client = InProcessClient(engine)
    ex = QueuedExecutor()
    c = ExperimentController(validate_manifest(MANIFEST), "q", client, ex, "http://x", clock=clock)
    c.start()
    c.step()
    (tid,) = ex.launched
    ex.begun[tid] = T0 + 5
    clock.now = T0 + 20
    c.step()
    again = ExperimentController(validate_manifest(MANIFEST), "q", client, ex, "http://x", clock=clock)
    again.start()
    clock.now = T0 + 30
    again.step()
    assert ex.launched == [tid] and engine.trial("q", tid).started == T0 + 5 and not ex.killed


def test_an_executor_whose_launch_is_the_start_reports_it_at_launch(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Store(tmp_path / "t.db"), clock=clock)
    ex = QueuedExecutor()
    ex.starts_on_launch = True  # local mode: a process runs from its launch
    c = ExperimentController(validate_manifest(MANIFEST), "q", InProcessClient(engine), ex, "http://x", clock=clock)
    c.start()
    c.step()
    (tid,) = ex.launched
    t = engine.trial("q", tid)
    assert t.record.state.value == "RUNNING" and t.started == T0


# ----- every workload kind: its pods carry what the executor's pod LIST selects on -----

def test_every_workload_kinds_pods_are_found_by_the_executors_selector() -> None:
    from autotune_operator.workloads import build
    from tests.unit.test_workloads import pod_specs, spec_of, trial

    for family, ftype in [("job", "tensorflow"), ("kubeflow", "tensorflow"), ("kubeflow", "pytorch"),
                          ("kubeflow", "xgboost"), ("t9k", "tensorflow"), ("t9k", "pytorch"), ("t9k", "xgboost")]:
        def fw(doc: dict[str, Any], ftype: str = ftype) -> None:
            doc["spec"]["trainingConfig"]["type"] = ftype
            doc["spec"]["trainingConfig"]["tasks"][0]["type"] = "worker" if ftype == "tensorflow" else "master"
            doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["name"] = ftype  # Kubeflow's rule

        for tpl in pod_specs(build(family, spec_of(mutate=fw), trial())):
            labels = tpl["metadata"]["labels"]
            assert labels[EXPERIMENT_LABEL] == "experiment-sample" and labels[TRIAL_LABEL] == "experiment-sample-3", family
            # a pod made from it (as the Job / training operator would), once its container ran
            p = {"metadata": {**tpl["metadata"], "creationTimestamp": iso(T0)}, "status": {"containerStatuses": [
                {"name": c["name"], "state": {"running": {"startedAt": iso(T0 + 7)}}} for c in tpl["spec"]["containers"]]}}
            assert trial_starts([p], {"experiment-sample-3": T0}) == {"experiment-sample-3": T0 + 7}, family


def test_the_controller_forgets_a_start_the_executor_no_longer_reports(tmp_path: Path) -> None:
    # The Kubernetes executor forgets an ended trial (7587d24); the controller's record of the
    # starts it told the tuner server must not keep every trial of a long experiment either.
    clock = Clock()
    engine = Engine(Store(tmp_path / "t.db"), clock=clock)
    ex = QueuedExecutor()
    c = ExperimentController(validate_manifest(MANIFEST), "q", InProcessClient(engine), ex, "http://x", clock=clock)
    c.start()
    c.step()
    (tid,) = ex.launched
    ex.begun[tid] = T0 + 5
    clock.now = T0 + 20
    c.step()
    assert c.state.start_reported == {tid} and engine.trial("q", tid).started == T0 + 5
    c.step()  # still reported by the executor: told once
    assert c.state.start_reported == {tid}
    del ex.begun[tid]  # the executor forgot it
    c.step()
    assert c.state.start_reported == set() and engine.trial("q", tid).started == T0 + 5
