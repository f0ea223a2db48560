"""What the controller makes of a trial's end by the stop's cause (StopCause), as data, not
by its reason's text: maxTrialSeconds (FAILED), the user's interrupt (the trial requeued and
launched again, or left WAITING by Ctrl-C), and, where no cause is known (a Kubernetes stop
annotation, a stop recomputed at a restart), the reason's text as before. A real engine and
store; a scripted executor (trials end when the test says)."""

from __future__ import annotations

from pathlib import Path

from autotune_operator.controller import ExperimentController
from autotune_operator.decide import overdue_reason
from autotune_operator.executors.base import StopCause, TrialExit, TrialLaunch
from autotune_operator.spec import validate_manifest
from tests.unit.fake_executor import FakeExecutor
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine
from tuner_server.store import Store

T0 = 1_800_000_000.0


class ScriptedExecutor(FakeExecutor):
    """Processes that start at launch and end when the test queues their exit."""

    def __init__(self) -> None:
        self.launches: list[str] = []
        self.running: set[str] = set()
        self.exits: list[TrialExit] = []
        self.kills: list[tuple[str, StopCause | None]] = []

    def launch(self, trial: TrialLaunch) -> None:
        self.launches.append(trial.trial_id)
        self.running.add(trial.trial_id)

    def active(self) -> set[str]:
        return set(self.running)

    def end(self, ex: TrialExit) -> None:
        self.running.discard(ex.trial_id)
        self.exits.append(ex)

    def poll(self) -> list[TrialExit]:
        out, self.exits = self.exits, []
        return out

    def kill(self, trial_id: str, reason: str, cause: StopCause | None = None) -> None:
        self.kills.append((trial_id, cause))
        if trial_id in self.running:
            self.end(TrialExit(trial_id, -15, True, reason, cause))


MANIFEST = {
    "apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "s"},
    "spec": {"maxTrialNum": 2, "trialConcurrency": 2, "maxFailedTrialNum": 1,
             "searchSpace": '{"x": {"_type": "choice", "_value": [1, 2]}}',
             "tuner": {"builtinTunerName": "GridSearch", "classArgs": '{"optimize_mode": "maximize"}'},
             "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": {
                 "spec": {"containers": [{"name": "c", "image": "i", "command": ["train"]}]}}}]}},
}


def setup(tmp_path: Path) -> tuple[Engine, ScriptedExecutor, ExperimentController]:
    engine = Engine(Store(tmp_path / "s.db"), clock=lambda: T0)
    ex = ScriptedExecutor()
    c = ExperimentController(validate_manifest(MANIFEST), "s", InProcessClient(engine), ex, "http://x", clock=lambda: T0)
    c.start()
    c.step()
    assert len(ex.launches) == 2
    return engine, ex, c


def state(engine: Engine, tid: str) -> tuple[str, str | None]:
    t = engine.trial("s", tid)
    return t.record.state.value, t.message


def test_the_cause_decides_an_overdue_stop_not_the_text(tmp_path: Path) -> None:
    engine, ex, c = setup(tmp_path)
    a, b = ex.launches
    ex.end(TrialExit(a, -15, True, "stopped: too slow (worded freely)", StopCause.OVERDUE))
    ex.end(TrialExit(b, -15, True, overdue_reason(30), StopCause.EXPERIMENT))
    c.step()
    assert state(engine, a) == ("FAILED", "stopped: too slow (worded freely)")
    assert state(engine, b)[0] == "STOPPED"  # its text reads as overdue, its cause says otherwise


def test_without_a_cause_the_overdue_text_still_counts(tmp_path: Path) -> None:
    engine, ex, c = setup(tmp_path)
    a, _ = ex.launches
    ex.end(TrialExit(a, None, True, overdue_reason(30)))  # e.g. a Kubernetes stop annotation
    c.step()
    assert state(engine, a) == ("FAILED", overdue_reason(30))


def test_a_user_interrupted_end_requeues_and_launches_the_trial_again(tmp_path: Path) -> None:
    """maxFailedTrialNum is 1 and maxTrialNum 2: the interrupted attempt is neither."""
    engine, ex, c = setup(tmp_path)
    a, b = ex.launches
    engine.report_intermediate("s", a, 0.1)
    ex.end(TrialExit(a, 1, True, "interrupted: SIGINT reached its processes", StopCause.USER))
    d = c.step()
    assert ex.launches == [a, b, a] and not d.finished
    assert state(engine, a) == ("RUNNING", "interrupted: SIGINT reached its processes")
    assert engine.trial("s", a).record.intermediate == []  # the attempt's curve is not the trial's
    for tid in (a, b):
        engine.report_final("s", tid, 0.5)
        ex.end(TrialExit(tid, 0))
    d = c.step()
    assert d.finished and c.status().trials.succeeded == 2 and c.status().trials.total == 2


def test_ctrl_c_leaves_the_stopped_trials_waiting_and_ends_the_others_as_they_ended(tmp_path: Path) -> None:
    engine, ex, c = setup(tmp_path)
    a, b = ex.launches
    engine.report_final("s", b, 0.7)
    ex.end(TrialExit(b, 0))  # it finished just as Ctrl-C came
    c.interrupt("interrupted by the user")
    assert (a, StopCause.USER) in ex.kills
    assert state(engine, a) == ("WAITING", "interrupted by the user")
    assert state(engine, b)[0] == "SUCCEEDED"
    counts = c.status().trials
    assert (counts.waiting, counts.stopped, counts.succeeded) == (1, 0, 1)
