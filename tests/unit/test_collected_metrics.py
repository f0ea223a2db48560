"""Metrics read from a trial's output reach the tuner server (POST .../collected-metrics,
MlflowRuns.log_collected) over real HTTP, take MLflow's path (curve, final result, extra
metrics), survive a server restart, and are never added twice; and the controller reads
logs each pass and drains an ended trial's log before ending it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from autotune_operator.controller import ExperimentController
from autotune_operator.executors.base import LogChunk, TrialExit, TrialLaunch
from autotune_operator.spec import validate_manifest
from tests.unit.fake_executor import FakeExecutor
from tuner_server.client import HttpClient, InProcessClient, TunerServerError
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.store import Store

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})


def config(**kw: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy", **kw})


def steps(key: str, values: list[float], start: int = 0) -> list[dict[str, Any]]:
    return [{"key": key, "value": v, "step": start + i} for i, v in enumerate(values)]


class Server:
    def __init__(self, db: Path) -> None:
        self.engine = Engine(Store(db))
        self.srv = EmbeddedServer(self.engine, ADMIN).__enter__()
        self.client = HttpClient(self.srv.url, ADMIN, retry_seconds=5)

    def close(self) -> None:
        self.srv.__exit__(None, None, None)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "t.db")
    yield s
    s.close()


def new_trial(engine: Engine, exp_id: str = "e") -> str:
    a = engine.suggest(exp_id)
    engine.started(exp_id, a.trial_id)
    return a.trial_id


def test_collected_values_make_the_curve_and_the_last_ones_the_final_result(server: Server) -> None:
    server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    c = server.client
    assert c.log_collected("e", tid, steps("accuracy", [0.5, 0.7]) + steps("loss", [1.0, 0.6])) == 4
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.7]
    # The same steps again (a restarted controller reads the log from its start) add nothing;
    # only the new step is recorded.
    assert c.log_collected("e", tid, steps("accuracy", [0.5, 0.7, 0.65]) + steps("loss", [1.0, 0.6, 0.5])) == 2
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.7, 0.65]
    assert server.engine.end("e", tid, 0) is TrialState.SUCCEEDED
    t = server.engine.trial("e", tid)
    assert t.record.value == 0.65 and t.record.metrics == {"default": 0.65, "accuracy": 0.65, "loss": 0.5}
    # After the end nothing more is taken.
    assert c.log_collected("e", tid, steps("accuracy", [0.9], start=3)) == 0
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.7, 0.65]


def test_what_was_collected_survives_a_server_restart(tmp_path: Path) -> None:
    first = Server(tmp_path / "t.db")
    first.engine.register("e", "e", config())
    tid = new_trial(first.engine)
    assert first.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3])) == 3
    first.close()

    second = Server(tmp_path / "t.db")  # the events are replayed from the store
    try:
        assert second.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3, 0.4])) == 1
        assert second.engine.trial("e", tid).record.intermediate == [0.1, 0.2, 0.3, 0.4]
        assert second.engine.end("e", tid, 0) is TrialState.SUCCEEDED
        assert second.engine.trial("e", tid).record.value == 0.4
    finally:
        second.close()


def test_the_route_is_the_admins_and_refuses_bad_bodies(server: Server) -> None:
    h = server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    url = f"{server.srv.url}/api/v1/experiments/e/trials/{tid}/collected-metrics"
    ok = {"metrics": steps("accuracy", [0.5])}
    # A trial's own token may not claim what its output said: only the controller reads logs.
    r = httpx.post(url, json=ok, headers={"Authorization": f"Bearer {h.stored.token}"})
    assert r.status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for bad in ({"metrics": [{"key": "accuracy", "value": "NaN", "step": 0}]},
                {"metrics": [{"key": "accuracy", "value": 0.5, "step": -1}]},
                {"metrics": [{"key": "", "value": 0.5, "step": 0}]},
                {"metrics": [{"key": "accuracy", "value": 0.5}]},
                {"metrics": steps("accuracy", [0.5] * 1001)}):
        r = httpx.post(url, content=json.dumps(bad), headers={**admin, "Content-Type": "application/json"})
        assert r.status_code == 422, (bad, r.text)
    assert httpx.post(url.replace(tid, "nope"), json=ok, headers=admin).status_code == 404
    assert server.engine.trial("e", tid).record.intermediate == []
    assert httpx.post(url, json=ok, headers=admin).json() == {"recorded": 1}
    # The HTTP client sends a large read in parts.
    assert server.client.log_collected("e", tid, steps("accuracy", [0.5] * 2500)) == 2499
    assert len(server.engine.trial("e", tid).record.intermediate) == 2500


def test_the_in_process_client_does_the_same(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    engine.register("e", "e", config(assessor={"name": "Medianstop", "classArgs": {"start_step": 2}}))
    client = InProcessClient(engine)
    # Two trials: the first good, the second bad; Medianstop asks the bad one to stop.
    good, bad = new_trial(engine), new_trial(engine)
    assert client.log_collected("e", good, steps("accuracy", [0.8, 0.9, 0.95])) == 3
    assert client.end("e", good, 0) == "SUCCEEDED"
    assert client.log_collected("e", bad, steps("accuracy", [0.1, 0.1, 0.1])) == 3
    assert bad in client.summary("e")["stopRequested"]
    with pytest.raises(TunerServerError) as e:
        client.log_collected("e", bad, [{"key": "accuracy", "value": float("inf"), "step": 3}])
    assert e.value.status == 400



def test_values_read_after_the_trial_exited_are_not_judged_by_the_assessor(server: Server) -> None:
    """A fast trial may print every epoch between two reads: its values then arrive in the
    drain after its exit (final), and a stop decision would only turn a finished trial into
    an early-stopped one (and keep it from being the best)."""
    server.engine.register("e", "e", config(assessor={"name": "Medianstop", "classArgs": {"start_step": 2}}))
    good, late, live = new_trial(server.engine), new_trial(server.engine), new_trial(server.engine)
    c = server.client
    c.log_collected("e", good, steps("accuracy", [0.8, 0.9, 0.95]))
    assert server.engine.end("e", good, 0) is TrialState.SUCCEEDED
    assert c.log_collected("e", late, steps("accuracy", [0.1, 0.2, 0.3]), final=True) == 3
    assert c.log_collected("e", live, steps("accuracy", [0.1, 0.2, 0.3])) == 3
    assert c.summary("e")["stopRequested"] == [live]
    assert server.engine.end("e", late, 0) is TrialState.SUCCEEDED
    assert server.engine.trial("e", late).record.intermediate == [0.1, 0.2, 0.3]


# ----- the controller -----

class ScriptedExecutor(FakeExecutor):
    """Trials that 'print' what the test appends to their log, and exit when told."""

    def __init__(self) -> None:
        self.logs: dict[str, str] = {}
        self.running: set[str] = set()
        self.exits: list[TrialExit] = []
        self.killed: set[str] = set()
        self.broken: set[str] = set()  # read_log raises (an executor bug) for these
        self.finals: list[str] = []  # the order of final reads, to compare with client.end

    def launch(self, trial: TrialLaunch) -> None:
        self.running.add(trial.trial_id)
        self.logs.setdefault(trial.trial_id, "")

    def active(self) -> set[str]:
        return set(self.running)

    def poll(self) -> list[TrialExit]:
        out, self.exits = self.exits, []
        return out

    def exit(self, trial_id: str, code: int) -> None:
        self.running.discard(trial_id)
        self.exits.append(TrialExit(trial_id, code))

    def kill(self, trial_id: str, reason: str, cause: object = None) -> None:
        if trial_id in self.running:
            self.killed.add(trial_id)
            self.running.discard(trial_id)
            self.exits.append(TrialExit(trial_id, -15, True, reason))

    def read_log(self, trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None:
        if trial_id in self.broken:
            raise RuntimeError("log API down")
        if trial_id not in self.logs:
            return None
        text = self.logs[trial_id][cursor or 0:]
        end = len(text) if final else text.rfind("\n") + 1
        if final:
            self.finals.append(trial_id)
        return LogChunk(tuple(text[:end].splitlines()), (cursor or 0) + end)


def experiment(**spec: Any) -> Any:
    return validate_manifest({
        "apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "c"},
        "spec": {"maxTrialNum": 2, "trialConcurrency": 2, "searchSpace": SPACE, "primaryMetric": "accuracy",
                 "tuner": {"builtinTunerName": "Random", "classArgs": {"optimize_mode": "maximize"}},
                 "metricsCollector": {"kind": "StdOut", "additionalMetricNames": ["loss"]},
                 "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "template": {
                     "spec": {"containers": [{"name": "c", "image": "i", "command": ["train"]}]}}}]}, **spec}})


def one_running_trial(tmp_path: Path, client: type[InProcessClient] = InProcessClient
                      ) -> tuple[Engine, ScriptedExecutor, Any, ExperimentController, str]:
    """A controller with one trial launched and running: (engine, executor, client, controller, trial)."""
    engine = Engine(Store(tmp_path / "t.db"))
    ex, tuner = ScriptedExecutor(), client(engine)
    c = ExperimentController(experiment(maxTrialNum=1, trialConcurrency=1), "c", tuner, ex, "http://u")
    c.start()
    c.step()
    (a,) = ex.running
    return engine, ex, tuner, c, a


def test_the_controller_reads_each_pass_and_drains_before_the_end(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    ex = ScriptedExecutor()
    c = ExperimentController(experiment(), "c", InProcessClient(engine), ex, "http://unused")
    c.start()
    c.step()
    a, b = sorted(ex.running)
    ex.logs[a] += "epoch=0 accuracy=0.5 loss=1.0\nepoch=1 accur"
    ex.logs[b] += "accuracy=0.2\n"
    ex.broken.add(b)  # b's reads fail: the pass goes on, a is still read
    c.step()
    assert engine.trial("c", a).record.intermediate == [0.5]
    assert engine.trial("c", b).record.intermediate == []
    ex.broken.discard(b)
    # a's last line has no newline when it exits: the drain reads it, before the end.
    ex.logs[a] += "acy=0.75 loss=0.4\naccuracy=0.8"
    ex.exit(a, 0)
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.SUCCEEDED and t.record.intermediate == [0.5, 0.75, 0.8]
    assert t.record.value == 0.8 and t.record.metrics == {"default": 0.8, "accuracy": 0.8, "loss": 0.4}
    assert engine.trial("c", b).record.intermediate == [0.2]  # read again on this pass
    assert a not in c.state.logs and b in c.state.logs  # forgotten once ended
    ex.exit(b, 0)
    c.step()
    t = engine.trial("c", b)
    assert t.record.state is TrialState.SUCCEEDED and t.record.value == 0.2 and t.message is None
    assert ex.finals == [a, a, b]  # drained once each exited: read until a read gives no more lines


def test_a_trial_that_printed_no_objective_fails_saying_so(tmp_path: Path) -> None:
    engine, ex, _, c, a = one_running_trial(tmp_path)
    ex.logs[a] += "training... loss=0.3\nacc=0.9\n"
    ex.exit(a, 0)
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.FAILED
    assert "no value of 'accuracy' was read from its output" in (t.message or ""), t.message
    # What it did print is named, so the names (or the format) can be fixed from the message alone.
    assert "it printed 'acc', which spec.primaryMetric/objectives and additionalMetricNames do not name" in t.message


def test_a_restarted_controller_reads_from_the_start_and_adds_nothing_twice(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    ex = ScriptedExecutor()
    exp = experiment(maxTrialNum=1, trialConcurrency=1)
    c = ExperimentController(exp, "c", InProcessClient(engine), ex, "http://u")
    c.start()
    c.step()
    (a,) = ex.running
    ex.logs[a] += "accuracy=0.1\naccuracy=0.2\n"
    c.step()
    assert engine.trial("c", a).record.intermediate == [0.1, 0.2]
    again = ExperimentController(exp, "c", InProcessClient(engine), ex, "http://u")  # no cursor, no parser state
    again.start()
    ex.logs[a] += "accuracy=0.3\n"
    again.step()
    assert engine.trial("c", a).record.intermediate == [0.1, 0.2, 0.3]
    ex.exit(a, 0)
    third = ExperimentController(exp, "c", InProcessClient(engine), ex, "http://u")
    third.start()
    third.step()  # the exit is drained from the log's start
    t = engine.trial("c", a)
    assert t.record.state is TrialState.SUCCEEDED and t.record.intermediate == [0.1, 0.2, 0.3] and t.record.value == 0.3


def test_without_a_collector_no_log_is_read(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    ex = ScriptedExecutor()
    exp = experiment()
    del exp.manifest.spec.metricsCollector
    exp.manifest.spec.metricsCollector = None
    c = ExperimentController(exp, "c", InProcessClient(engine), ex, "http://u")
    c.start()
    c.step()
    ex.broken |= ex.running  # any read would raise
    for tid in list(ex.running):
        ex.logs[tid] += "accuracy=0.5\n"
    ex.exit(sorted(ex.running)[0], 0)
    c.step()
    assert ex.finals == []
    assert all(not engine.trial("c", t).record.intermediate for t in ex.logs)


def test_with_several_objectives_each_is_read_and_the_first_makes_the_curve(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    engine.register("e", "e", ExperimentConfig.model_validate({
        "searchSpace": SPACE, "tuner": {"name": "Random"},
        "objectives": [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]}))
    client = InProcessClient(engine)
    both, half = new_trial(engine), new_trial(engine)
    client.log_collected("e", both, steps("accuracy", [0.5, 0.6]) + steps("size", [10.0]) + steps("loss", [0.3]))
    client.log_collected("e", half, steps("accuracy", [0.7]))
    assert engine.trial("e", both).record.intermediate == [0.5, 0.6]
    assert client.end("e", both, 0) == "SUCCEEDED"
    assert engine.trial("e", both).record.values == (0.6, 10.0)
    assert engine.trial("e", both).record.metrics == {"accuracy": 0.6, "size": 10.0, "loss": 0.3}
    assert client.end("e", half, 0) == "FAILED"  # no size was printed: no result, saying so
    assert engine.trial("e", half).message == ("exited 0 without a final result: no value of metric(s) ['size'] "
                                               "(spec.objectives) was read from its output; it printed accuracy")


def test_mlflow_variables_only_when_the_objective_is_read_from_mlflow(tmp_path: Path) -> None:
    """With a collector the objective comes from the output: MLflow's variables would send a
    script's own MLflow calls (its artifacts too) to the tuner server, which refuses those."""
    envs: dict[str, dict[str, str]] = {}

    class Recording(ScriptedExecutor):
        def launch(self, trial: TrialLaunch) -> None:
            envs[trial.trial_id] = dict(trial.env)
            super().launch(trial)

    for name, collector in (("with", {"metricsCollector": {"kind": "StdOut"}}), ("without", {"metricsCollector": None})):
        engine = Engine(Store(tmp_path / f"{name}.db"))
        envs.clear()
        c = ExperimentController(experiment(**collector), "c", InProcessClient(engine), Recording(), "http://unused")
        c.start()
        c.step()
        assert len(envs) == 2
        has = {"MLFLOW_TRACKING_URI" in env for env in envs.values()}
        assert has == ({False} if name == "with" else {True}), name
        # Unbuffered output only matters when the output is read.
        assert {env.get("PYTHONUNBUFFERED") for env in envs.values()} == ({"1"} if name == "with" else {None})


class FlakyClient(InProcessClient):
    """The tuner server refusing collected metrics for now (503) while ``down`` is True."""

    down = False

    def log_collected(self, exp_id: str, trial_id: str, metrics: Any, final: bool = False) -> int:
        if self.down:
            raise TunerServerError(503, "restarting")
        return super().log_collected(exp_id, trial_id, metrics, final)


def test_a_succeeded_trial_whose_last_output_cannot_be_read_yet_is_ended_later_with_it(tmp_path: Path) -> None:
    """Ending it at once would make an earlier printed value its final result."""
    engine, ex, _, c, a = one_running_trial(tmp_path)
    ex.logs[a] += "accuracy=0.5\n"
    c.step()
    ex.logs[a] += "accuracy=0.8\n"
    ex.exit(a, 0)
    ex.broken.add(a)  # the log API fails on this pass
    c.step()
    assert engine.trial("c", a).record.state is TrialState.RUNNING  # its end waits for its output
    ex.broken.discard(a)
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.SUCCEEDED and t.record.value == 0.8 and t.record.intermediate == [0.5, 0.8]
    assert not c.state.draining and a not in c.state.logs


def test_a_succeeded_trial_whose_last_values_cannot_be_sent_yet_is_ended_later_with_them(tmp_path: Path) -> None:
    engine, ex, client, c, a = one_running_trial(tmp_path, FlakyClient)
    ex.logs[a] += "accuracy=0.5\n"
    c.step()
    ex.logs[a] += "accuracy=0.8\n"
    ex.exit(a, 0)
    client.down = True
    c.step()
    assert engine.trial("c", a).record.state is TrialState.RUNNING
    client.down = False
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.SUCCEEDED and t.record.value == 0.8


def test_values_not_sent_are_sent_before_more_is_read(tmp_path: Path) -> None:
    """While the server refuses, the log is not read further (what waits stays one read)."""
    engine, ex, client, c, a = one_running_trial(tmp_path, FlakyClient)
    client.down = True
    ex.logs[a] += "accuracy=0.1\n"
    c.step()
    ex.logs[a] += "accuracy=0.2\n"
    c.step()
    assert len(c.state.logs[a].pending) == 1 and c.state.logs[a].cursor == len("accuracy=0.1\n")
    client.down = False
    c.step()
    assert engine.trial("c", a).record.intermediate == [0.1, 0.2]


def test_an_end_waits_for_the_output_at_most_a_while(tmp_path: Path) -> None:
    """A log gone for good (a deleted pod) does not keep the trial running: past
    DRAIN_WAIT_SECONDS it ends with what was recorded. A failed trial waits the same way (it
    ended at once, its output read only once: a failed read lost its last values for good,
    the tuner server takes none for an ended trial, and on a cluster its outlived pod was then
    kept for a read that never came: test_a_failed_trials_last_values_are_read_on_a_later_pass)."""
    from autotune_operator.controller import DRAIN_WAIT_SECONDS

    now = [1000.0]
    engine = Engine(Store(tmp_path / "t.db"))
    ex = ScriptedExecutor()
    c = ExperimentController(experiment(), "c", InProcessClient(engine), ex, "http://u", clock=lambda: now[0])
    c.start()
    c.step()
    a, b = sorted(ex.running)
    ex.logs[a] += "accuracy=0.5\n"
    c.step()
    ex.broken |= {a, b}
    ex.exit(a, 0)
    ex.exit(b, 1)
    c.step()
    assert engine.trial("c", a).record.state is TrialState.RUNNING
    assert engine.trial("c", b).record.state is TrialState.RUNNING  # its last values are waited for too
    now[0] += DRAIN_WAIT_SECONDS + 1
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.SUCCEEDED and t.record.value == 0.5
    assert engine.trial("c", b).record.state is TrialState.FAILED
    assert not c.state.draining and not c.state.logs


def test_a_failed_trials_last_values_are_read_on_a_later_pass(tmp_path: Path) -> None:
    """A failed trial's curve ends with what it printed last (the record, and an assessor
    judging later trials against it): a read or a send that fails when it exited is made
    again on a later pass, and only then is it ended."""
    for cause in ("read", "send"):
        engine, ex, client, c, a = one_running_trial(tmp_path / cause, FlakyClient)
        ex.logs[a] += "accuracy=0.5\n"
        c.step()
        ex.logs[a] += "accuracy=0.6\nTraceback (most recent call last): ...\n"
        ex.exit(a, 1)
        if cause == "read":
            ex.broken.add(a)  # the log API fails on this pass
        else:
            client.down = True  # the tuner server restarts during this pass
        c.step()
        assert engine.trial("c", a).record.state is TrialState.RUNNING, cause
        ex.broken.discard(a)
        client.down = False
        c.step()
        t = engine.trial("c", a)
        assert t.record.state is TrialState.FAILED and t.record.intermediate == [0.5, 0.6], cause
        assert t.exit_code == 1 and not c.state.draining and a not in c.state.logs


def test_the_final_read_that_finds_nothing_more_follows_the_servers_acceptance(tmp_path: Path) -> None:
    """An executor lets a trial's output go (a Kubernetes workload deleted with its pods'
    logs) on the final read that finds nothing more: the controller makes that read only
    once all it read before was recorded, so a tuner server restarting then loses nothing."""
    engine, ex, client, c, a = one_running_trial(tmp_path, FlakyClient)
    ends: list[Any] = []  # (what was recorded) at each final read that returned no line
    read_log = ex.read_log

    def recording(trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None:
        chunk = read_log(trial_id, cursor, final)
        if final and chunk is not None and not chunk.lines:
            ends.append(list(engine.trial("c", trial_id).record.intermediate))
        return chunk

    ex.read_log = recording  # type: ignore[method-assign]
    ex.logs[a] += "accuracy=0.5\naccuracy=0.7\n"
    ex.exit(a, 0)
    client.down = True
    c.step()
    assert ends == []  # before: [[]], the end found while 0.5 and 0.7 were only in memory
    client.down = False
    c.step()
    assert ends == [[0.5, 0.7]] and engine.trial("c", a).record.state is TrialState.SUCCEEDED


def test_collected_values_do_not_fill_the_mlflow_retry_set(tmp_path: Path) -> None:
    """Collected values are told apart by step; keeping each one's MLflow identity as well grew a
    printing trial's run state by one entry per printed value (a loss per batch: millions)."""
    from tuner_server.mlflow_runs import MlflowRuns

    engine = Engine(Store(tmp_path / "t.db"))
    engine.register("e", "e", config())
    tid = new_trial(engine)
    runs = MlflowRuns.of(engine)
    assert runs.log_collected("e", tid, steps("loss", [0.5] * 3000) + steps("accuracy", [0.1, 0.2])) == 3002
    state = runs._state("e", engine.trial("e", tid))
    assert state.logged == set() and state.collected == {"loss": 2999, "accuracy": 1}
    assert runs.log_collected("e", tid, steps("loss", [0.5] * 3001)) == 1  # still deduplicated, by step


def test_a_trial_whose_log_was_never_readable_ends_at_once(tmp_path: Path) -> None:
    """No log read ever (the operator may not read pod logs, the pod is gone): nothing to wait
    for, and waiting would hold every trial DRAIN_WAIT_SECONDS."""
    engine, ex, _, c, a = one_running_trial(tmp_path)
    del ex.logs[a]  # read_log answers None: no log
    c.step()
    ex.exit(a, 0)
    c.step()
    assert engine.trial("c", a).record.state is TrialState.FAILED and not c.state.draining


def test_long_non_ascii_names_are_sent_in_parts_under_the_body_limit(server: Server) -> None:
    """1000 values whose 250-character names JSON escapes as \\uXXXX are ~1.5 MB: one request
    would be refused (413) and the values dropped; the client sends them in parts instead."""
    server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    key = "准确率" * 83  # 249 characters, 6 bytes each in JSON
    values = steps(key, [i / 1000 for i in range(1000)])
    assert len(json.dumps({"metrics": values})) > 1 << 20
    assert server.client.log_collected("e", tid, values) == 1000
    assert server.client.log_collected("e", tid, values) == 0  # the same steps again: nothing new


def test_the_sdk_makes_the_curve_of_a_trial_that_also_prints_it_across_a_restart(tmp_path: Path) -> None:
    """One source per curve (tuner_server/curve_source.py): collected values neither extend an
    SDK curve nor take its steps, and the first SDK report replaces a collected curve. The
    source of the points is read back from the store by a restarted server; the use of both
    is said once (an event), not on every value."""
    first = Server(tmp_path / "t.db")
    first.engine.register("e", "e", config())
    sdk_first, print_first = new_trial(first.engine), new_trial(first.engine)
    first.engine.report_intermediate("e", sdk_first, 0.5, step=0)
    assert first.client.log_collected("e", sdk_first, steps("accuracy", [0.1])) == 1
    assert first.client.log_collected("e", print_first, steps("accuracy", [0.1, 0.2])) == 2
    assert first.engine.trial("e", print_first).record.intermediate == [0.1, 0.2]
    first.close()

    second = Server(tmp_path / "t.db")
    try:
        e = second.engine
        assert second.client.log_collected("e", sdk_first, steps("accuracy", [0.1, 0.2])) == 1
        e.report_intermediate("e", sdk_first, 0.6, step=1)
        assert e.trial("e", sdk_first).record.intermediate == [0.5, 0.6]
        e.report_intermediate("e", print_first, 0.5, step=0)
        assert second.client.log_collected("e", print_first, steps("accuracy", [0.1, 0.2, 0.3])) == 1
        e.report_intermediate("e", print_first, 0.6, step=1)
        assert e.trial("e", print_first).record.intermediate == [0.5, 0.6]
        assert [p["step"] for p in e.store.intermediate("e", print_first)] == [0, 1]
        for tid, dropped in ((sdk_first, 0), (print_first, 2)):
            (said,) = e.store.trial_events("e", tid, "curve_source")
            assert said["payload"]["dropped"] == dropped and said["payload"]["used"] == "sdk"
            assert "the curve of 'accuracy' is its SDK reports" in said["payload"]["note"]
        # The printed values still are the run's latest metrics; the SDK's final result wins.
        e.report_final("e", sdk_first, 0.7)
        assert e.end("e", sdk_first, 0) is TrialState.SUCCEEDED and e.trial("e", sdk_first).record.value == 0.7
    finally:
        second.close()


def test_mlflow_values_without_a_step_make_the_curve_of_a_trial_that_also_prints_them(server: Server) -> None:
    """mlflow.log_metric without step= logs step 0 every time. The printed values of the same
    metric count their steps 0, 1, 2...; they must not hide the MLflow values from the curve
    (which is MLflow's alone once it reported: curve_source.py), as they did when the newest
    printed step was taken as the curve's newest point ([0.5, 0.6], the MLflow 0.7 dropped)."""
    from tuner_server.mlflow_names import run_id_of
    from tuner_server.mlflow_runs import MlflowRuns

    server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    runs = MlflowRuns.of(server.engine)
    for i, (logged, printed) in enumerate(((0.5, 0.1), (0.6, 0.2), (0.7, 0.3))):
        runs.log_metric("e", tid, {"run_id": run_id_of(tid), "key": "accuracy", "value": logged,
                                   "timestamp": int(time.time() * 1000)})
        assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3][:i + 1])) == 1, printed
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6, 0.7]


def _log_mlflow(server: Server, tid: str, value: float, step: int) -> None:
    from tuner_server.mlflow_names import run_id_of
    from tuner_server.mlflow_runs import MlflowRuns

    MlflowRuns.of(server.engine).log_metric("e", tid, {"run_id": run_id_of(tid), "key": "accuracy", "value": value,
                                                       "step": step, "timestamp": int(time.time() * 1000)})


@pytest.mark.parametrize("strategy, expected", [("latest", 0.7), ("min", 0.5)])
def test_without_a_final_report_the_objectives_result_comes_from_the_curves_channel(
        server: Server, strategy: str, expected: float) -> None:
    """A trial that logs accuracy with MLflow (0.5, 0.6, 0.7) and prints it (0.1, 0.2, 0.3, each
    after MLflow's of the same step, so each is the run's newest) has MLflow's curve; its result
    on exit 0 is MLflow's last (or least, spec.metricStrategies) value too, not a printed one
    (before: 0.3, and 0.1 as the min over both). Metrics only printed stay in the result."""
    server.engine.register("e", "e", config(metricStrategies=[{"name": "accuracy", "value": strategy}]))
    tid = new_trial(server.engine)
    for i, (logged, printed) in enumerate(((0.5, 0.1), (0.6, 0.2), (0.7, 0.3))):
        _log_mlflow(server, tid, logged, step=i)
        assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3][:i + 1])
                                           + steps("loss", [1.0, 0.9, 0.8][:i + 1])) == 2, printed
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6, 0.7]
    assert server.engine.end("e", tid, 0) is TrialState.SUCCEEDED
    t = server.engine.trial("e", tid)
    assert t.record.value == expected
    assert t.record.metrics == {"default": expected, "accuracy": expected, "loss": 0.8}


def test_the_sdk_curves_last_value_is_the_result_over_printed_and_logged_ones_and_its_final_report_wins(
        server: Server) -> None:
    """The SDK makes the curve over MLflow and printed values: without a final report the
    objective's result on exit 0 is the curve's; a final report of the SDK still wins."""
    server.engine.register("e", "e", config())
    implicit, explicit = new_trial(server.engine), new_trial(server.engine)
    for tid in (implicit, explicit):
        for i, (reported, other) in enumerate(((0.5, 0.1), (0.6, 0.2), (0.7, 0.3))):
            server.engine.report_intermediate("e", tid, reported, step=i)
            _log_mlflow(server, tid, other, step=i)
            assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3][:i + 1])) == 1
        assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6, 0.7]
    server.engine.report_final("e", explicit, 0.65)
    for tid, value in ((implicit, 0.7), (explicit, 0.65)):
        assert server.engine.end("e", tid, 0) is TrialState.SUCCEEDED
        assert server.engine.trial("e", tid).record.value == value
    notes = [e["payload"] for e in server.engine.store.trial_events("e", implicit, "curve_source")]
    assert sorted(n["ignored"] for n in notes) == ["collected", "mlflow"], notes


def test_the_sdk_replaces_an_mlflow_curve_whichever_came_first(server: Server) -> None:
    """Both explicit: the SDK (AutoTune's own channel) outranks MLflow as MLflow outranks printed
    values, so the curve does not depend on which reported first. Before, MLflow's values took
    the SDK's steps and the SDK's reports were dropped as retries ([0.1, 0.2])."""
    server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    _log_mlflow(server, tid, 0.1, step=0)
    _log_mlflow(server, tid, 0.2, step=1)
    server.engine.report_intermediate("e", tid, 0.5, step=0)
    _log_mlflow(server, tid, 0.3, step=2)
    server.engine.report_intermediate("e", tid, 0.6, step=1)
    assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6]
    assert [p["value"] for p in server.engine.store.intermediate("e", tid)] == [0.5, 0.6]
    (note,) = server.engine.store.trial_events("e", tid, "curve_source")
    assert note["payload"]["dropped"] == 2 and note["payload"]["ignored"] == "mlflow"
    assert note["payload"]["note"] == ("the curve of 'accuracy' is its SDK reports; its MLflow-logged values are not "
                                       "part of it (its first 2 point(s), logged before the first report, were dropped)")


def test_a_requeued_attempt_that_uses_both_channels_is_said_again(server: Server) -> None:
    """The use of two channels is said once per attempt: a requeued trial's new attempt (its
    curve started anew) that uses both gets its own warning and event. Before, the first
    attempt's event kept the second silent."""
    server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    for attempt in range(2):
        server.engine.report_intermediate("e", tid, 0.5, step=0)
        # (each attempt is a run of its own: its steps count from 0)
        assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2])) == 2
        if attempt == 0:
            assert server.engine.requeue("e", tid, "interrupted") is TrialState.WAITING
            server.engine.started("e", tid)
    assert server.engine.trial("e", tid).record.intermediate == [0.5]
    assert len(server.engine.store.trial_events("e", tid, "curve_source")) == 2


CAUSE = ("the cause: its curve of 'accuracy' is its SDK reports (autotune.report_intermediate_result) and it never "
         "called autotune.report_final_result")


def test_a_trial_whose_sdk_curve_has_no_final_report_is_told_so_not_only_what_it_printed(tmp_path: Path) -> None:
    """A trial that reports accuracy with the SDK, prints only loss, and never calls
    report_final_result fails on exit 0 (the SDK's curve alone is no result). Its message said
    only what its output lacked: true, but the script's fix is report_final_result. Through the
    controller (its message about the output); the tuner server's own, below."""
    engine, ex, _, c, a = one_running_trial(tmp_path)
    engine.report_intermediate("c", a, 0.5, step=0)
    engine.report_intermediate("c", a, 0.6, step=1)
    ex.logs[a] += "loss=0.3\nloss=0.2\n"
    ex.exit(a, 0)
    c.step()
    t = engine.trial("c", a)
    assert t.record.state is TrialState.FAILED
    assert (t.message or "").startswith("exited 0, but no value of 'accuracy' was read from its output"), t.message
    assert CAUSE in t.message, t.message


def test_the_servers_message_for_an_sdk_curve_without_a_final_report_names_the_cause(server: Server) -> None:
    """The same trial ended with no message of the controller: the tuner server's (its MLflow
    run has the printed loss) said only 'no value of metric(s) ['accuracy'] ... was read from
    its output; it printed loss'. A trial that printed accuracy too still gets the SDK curve's
    value (39a0c21), and one without an SDK curve keeps its message as it was."""
    server.engine.register("e", "e", config())
    sdk, printed_only = new_trial(server.engine), new_trial(server.engine)
    server.engine.report_intermediate("e", sdk, 0.5, step=0)
    for tid in (sdk, printed_only):
        assert server.client.log_collected("e", tid, steps("loss", [0.3, 0.2])) == 2
        assert server.engine.end("e", tid, 0) is TrialState.FAILED
    said = ("exited 0 without a final result: no value of metric(s) ['accuracy'] (spec.primaryMetric) was read from "
            "its output; it printed loss")
    message = server.engine.trial("e", sdk).message or ""
    assert message.startswith(said) and CAUSE in message, message
    assert server.engine.trial("e", printed_only).message == said


@pytest.mark.parametrize("strategy, expected", [("latest", 0.3), ("min", 0.1)])
def test_mlflow_values_that_are_all_nan_leave_curve_and_result_to_the_printed_ones(
        server: Server, strategy: str, expected: float) -> None:
    """A trial logging accuracy with MLflow, every value NaN (a diverged run), and printing it
    (0.1, 0.2, 0.3): NaN makes no curve point, so its curve is the printed values. Its result
    on exit 0 comes from that channel too (as a curve of SDK reports gives it): before, it took
    MLflow's NaN and the trial failed ('... is nan, not a finite number') with a finite curve."""
    server.engine.register("e", "e", config(metricStrategies=[{"name": "accuracy", "value": strategy}]))
    tid = new_trial(server.engine)
    for i in range(3):
        _log_mlflow(server, tid, float("nan"), step=i)
        assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3][:i + 1])) == 1
    assert server.engine.trial("e", tid).record.intermediate == [0.1, 0.2, 0.3]
    assert server.engine.end("e", tid, 0) is TrialState.SUCCEEDED, server.engine.trial("e", tid).message
    t = server.engine.trial("e", tid)
    assert t.record.value == expected and t.record.metrics == {"default": expected, "accuracy": expected}


def test_a_first_sdk_report_refused_for_its_step_drops_no_printed_point(server: Server) -> None:
    """The SDK's first report replaces a printed curve, from step 0. One sent with a later step
    (a report before it lost, or a script sending its own steps) is refused with 409, as any
    step past the curve's next is; it dropped the printed points first (Store.drop_curve
    committed, the event 'curve_source' said so) and then was refused: the curve lost and the
    report not taken. Now neither happens; the report of step 0 then replaces the curve."""
    h = server.engine.register("e", "e", config())
    tid = new_trial(server.engine)
    assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3])) == 3
    url = f"{server.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate"
    auth = {"Authorization": f"Bearer {h.stored.token}"}
    r = httpx.post(url, json={"metric": 0.5, "step": 2}, headers=auth)
    assert r.status_code == 409, r.text
    assert "intermediate step 2 reported but the next step" in r.json()["detail"] and " is 0" in r.json()["detail"]
    assert server.engine.trial("e", tid).record.intermediate == [0.1, 0.2, 0.3]
    assert [p["value"] for p in server.engine.store.intermediate("e", tid)] == [0.1, 0.2, 0.3]
    assert server.engine.store.trial_events("e", tid, "curve_source") == []
    # The printed values still extend it meanwhile; step 0 replaces it.
    assert server.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3, 0.4])) == 1
    assert server.engine.trial("e", tid).record.intermediate == [0.1, 0.2, 0.3, 0.4]
    assert httpx.post(url, json={"metric": 0.5, "step": 0}, headers=auth).status_code == 200
    assert server.engine.trial("e", tid).record.intermediate == [0.5]
    assert [p["value"] for p in server.engine.store.intermediate("e", tid)] == [0.5]
    (said,) = server.engine.store.trial_events("e", tid, "curve_source")
    assert said["payload"]["dropped"] == 4


def test_an_ended_trials_curve_channel_is_not_kept_in_memory(server: Server) -> None:
    """Hosted.curve_sources and curve_noted (340b596, 795ebf6) got an entry per trial (and per
    attempt and channel left out) for the experiment's life: a long experiment's every trial
    stayed in memory. They are dropped when the trial ends (or is requeued): an ended trial's
    curve takes no more values, and what they cache is in the store (its points' events, its
    'curve_source' events), read back when asked, as after a restart."""
    h = server.engine.register("e", "e", config())
    done, requeued, live = (new_trial(server.engine) for _ in range(3))
    for tid in (done, requeued, live):
        server.engine.report_intermediate("e", tid, 0.5, step=0)
        assert server.client.log_collected("e", tid, steps("accuracy", [0.1])) == 1
    server.engine.report_final("e", done, 0.5)
    assert server.engine.end("e", done, 0) is TrialState.SUCCEEDED
    assert server.engine.requeue("e", requeued, "interrupted") is TrialState.WAITING
    assert set(h.curve_sources) == {live} and set(h.curve_noted) == {live}
    # Asked after its end, the channel is read from the store, not kept again.
    assert server.engine.curve_source("e", done) == "sdk" and done not in h.curve_sources
    # The live trial is still warned once, however many values it prints.
    assert server.client.log_collected("e", live, steps("accuracy", [0.1, 0.2])) == 1
    assert len(server.engine.store.trial_events("e", live, "curve_source")) == 1


def _refuse_curve_points(store: Store) -> None:
    """A simulated crash at the write of a curve point: SQLite refuses every INSERT into the
    curve's table (an authorizer; setting one re-prepares the cached statements), so that
    write's transaction never commits, as when the server is killed before its commit."""
    def authorize(action: int, table: str | None, *_: Any) -> int:
        refused = action == sqlite3.SQLITE_INSERT and table == "intermediate"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    store._db.set_authorizer(authorize)


def test_a_curve_replaced_by_a_higher_channel_survives_a_crash_before_the_new_point(tmp_path: Path) -> None:
    """The SDK's first report replaces a printed curve: the printed points are deleted and the
    report's point written. They were two transactions (Store.drop_curve, then the point), so a
    server killed between the two commits left the trial with no curve (and the retried report
    after the restart found the curve empty). Now one transaction: the crash (simulated, see
    _refuse_curve_points) keeps the old curve whole across a restart, and the retry replaces it."""
    first = Server(tmp_path / "t.db")
    h = first.engine.register("e", "e", config())
    tid = new_trial(first.engine)
    assert first.client.log_collected("e", tid, steps("accuracy", [0.1, 0.2, 0.3])) == 3
    url = f"{first.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate"
    auth = {"Authorization": f"Bearer {h.stored.token}"}
    _refuse_curve_points(first.engine.store)
    assert httpx.post(url, json={"metric": 0.5, "step": 0}, headers=auth).status_code == 500  # the crash
    first.close()

    second = Server(tmp_path / "t.db")  # the restarted server reads the store back
    try:
        e = second.engine
        assert [p["value"] for p in e.store.intermediate("e", tid)] == [0.1, 0.2, 0.3]
        assert e.trial("e", tid).record.intermediate == [0.1, 0.2, 0.3]
        assert e.store.trial_events("e", tid, "curve_source") == []
        # The SDK's retry replaces it now, in one write.
        url = f"{second.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate"
        assert httpx.post(url, json={"metric": 0.5, "step": 0}, headers=auth).status_code == 200
        assert e.trial("e", tid).record.intermediate == [0.5]
        assert [p["value"] for p in e.store.intermediate("e", tid)] == [0.5]
        (said,) = e.store.trial_events("e", tid, "curve_source")
        assert said["payload"]["dropped"] == 3 and said["payload"]["used"] == "sdk"
        assert e.curve_source("e", tid) == "sdk"
    finally:
        second.close()


@pytest.mark.parametrize("other", ["mlflow", "print"])
def test_without_a_final_report_every_objective_the_sdk_reported_comes_from_the_sdk(server: Server, other: str) -> None:
    """Several objectives (acc, size); the SDK's intermediate reports carry both, and MLflow
    (or printed lines) send both too, other values. With no final report the result on exit 0
    follows the channel ranks for every objective: the SDK's acc (the curve's) and the SDK's
    size, by its strategy (min). Before, only the curve's objective came from the SDK: size
    was MLflow's (printed) last value, 120, in a result whose acc was the SDK's. An objective
    the SDK's reports lack (a second trial: they carry acc alone, as intermediate reports
    may) still comes from the channel below that has it."""
    from tuner_server.mlflow_names import run_id_of, tracking_uri

    h = server.engine.register("e", "e", config(
        primaryMetric=None, objectives=[{"name": "acc", "optimizeMode": "maximize"},
                                        {"name": "size", "optimizeMode": "minimize"}],
        metricStrategies=[{"name": "size", "value": "min"}]))
    auth = {"Authorization": f"Bearer {h.stored.token}"}

    def send_other(tid: str, key: str, value: float, step: int) -> None:
        if other == "print":
            assert server.client.log_collected("e", tid, [{"key": key, "value": value, "step": step}]) == 1
            return
        r = httpx.post(f"{tracking_uri(server.srv.url, 'e', tid)}/api/2.0/mlflow/runs/log-metric", headers=auth,
                       json={"run_id": run_id_of(tid), "key": key, "value": value, "step": step,
                             "timestamp": 1_700_000_000_000 + step})
        assert r.status_code == 200, r.text

    results = []
    for sdk_keys in (("acc", "size"), ("acc",)):
        tid = new_trial(server.engine)
        url = f"{server.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate"
        for step, (acc, size) in enumerate(((0.5, 20.0), (0.6, 30.0))):
            reported = {k: v for k, v in (("acc", acc), ("size", size)) if k in sdk_keys}
            assert httpx.post(url, json={"metric": reported, "step": step}, headers=auth).status_code == 200
            send_other(tid, "acc", acc - 0.4, step)
            send_other(tid, "size", size + 100, step)
        assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6]
        assert server.client.end("e", tid, 0) == "SUCCEEDED", server.engine.trial("e", tid).message
        results.append(server.engine.trial("e", tid).record.metrics)
    assert results[0] == {"acc": 0.6, "size": 20.0}
    assert results[1] == {"acc": 0.6, "size": 120.0}


@pytest.mark.parametrize("other", ["mlflow", "print"])
def test_an_objective_only_the_sdk_reports_carry_is_no_missing_objective(server: Server, other: str) -> None:
    """Several objectives (acc, size); the SDK's intermediate reports carry both, MLflow (or
    printed lines) only acc, and no final report. The result on exit 0 takes size from the SDK's
    reports (c671ead), so their size counts as given: the trial succeeds with the SDK's values.
    Before, the check for missing objectives looked at MLflow's (printed) values alone and failed
    it: "no value of MLflow metric(s) ['size'] (spec.objectives) was logged; it logged acc". An
    objective no channel sent (a second trial: the SDK's reports carry acc alone) still fails
    the trial, the message naming it."""
    from tuner_server.mlflow_names import run_id_of, tracking_uri

    h = server.engine.register("e", "e", config(
        primaryMetric=None, objectives=[{"name": "acc", "optimizeMode": "maximize"},
                                        {"name": "size", "optimizeMode": "minimize"}],
        metricStrategies=[{"name": "size", "value": "min"}]))
    auth = {"Authorization": f"Bearer {h.stored.token}"}

    def send_acc(tid: str, value: float, step: int) -> None:
        if other == "print":
            assert server.client.log_collected("e", tid, [{"key": "acc", "value": value, "step": step}]) == 1
            return
        r = httpx.post(f"{tracking_uri(server.srv.url, 'e', tid)}/api/2.0/mlflow/runs/log-metric", headers=auth,
                       json={"run_id": run_id_of(tid), "key": "acc", "value": value, "step": step,
                             "timestamp": 1_700_000_000_000 + step})
        assert r.status_code == 200, r.text

    ended = []
    for sdk_keys in (("acc", "size"), ("acc",)):
        tid = new_trial(server.engine)
        url = f"{server.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate"
        for step, (acc, size) in enumerate(((0.5, 20.0), (0.6, 30.0))):
            reported = {k: v for k, v in (("acc", acc), ("size", size)) if k in sdk_keys}
            assert httpx.post(url, json={"metric": reported, "step": step}, headers=auth).status_code == 200
            send_acc(tid, acc - 0.4, step)
        assert server.engine.trial("e", tid).record.intermediate == [0.5, 0.6]
        state = server.client.end("e", tid, 0)
        ended.append((state, server.engine.trial("e", tid)))
    (state, both), (state_acc_only, acc_only) = ended
    assert state == "SUCCEEDED", both.message
    assert both.record.metrics == {"acc": 0.6, "size": 20.0}
    assert state_acc_only == "FAILED"
    assert "['size']" in (acc_only.message or "") and "report_final_result" in (acc_only.message or ""), acc_only.message


@pytest.mark.parametrize("server_restart", [False, True])
@pytest.mark.parametrize("other", ["mlflow", "print"])
def test_values_a_replaced_process_logged_make_no_result_of_the_new_run(tmp_path: Path, other: str,
                                                                        server_restart: bool) -> None:
    """Several objectives (acc, size). Process A reports acc by the SDK (session header a) and
    sends acc and size by MLflow (or printed lines); the trial's process restarts: B (session b)
    reports step 0 again (a curve_restarted), acc only. No final report. The result on exit 0
    is B's alone: sending nothing by the other channel it fails, naming size and the restart; a
    second trial whose B sends acc and size there too takes B's size (and acc from its curve). Before, size came from A's values: the trial
    SUCCEEDED with {acc: 0.3 (B), size: 21.0 (A)}, a result of two runs. A's values stay in the
    store. The same with the tuner server restarted before the end (the run replayed from the
    events) and without (the run kept in memory since before the restart)."""
    from tuner_server.mlflow_names import run_id_of, tracking_uri

    server = Server(tmp_path / "t.db")
    h = server.engine.register("e", "e", config(
        primaryMetric=None, objectives=[{"name": "acc", "optimizeMode": "maximize"},
                                        {"name": "size", "optimizeMode": "minimize"}]))
    auth = {"Authorization": f"Bearer {h.stored.token}"}

    def send_other(tid: str, key: str, value: float, step: int, ts: int) -> None:
        if other == "print":
            assert server.client.log_collected("e", tid, [{"key": key, "value": value, "step": step}]) == 1
            return
        r = httpx.post(f"{tracking_uri(server.srv.url, 'e', tid)}/api/2.0/mlflow/runs/log-metric", headers=auth,
                       json={"run_id": run_id_of(tid), "key": key, "value": value, "step": step,
                             "timestamp": 1_700_000_000_000 + ts})
        assert r.status_code == 200, r.text

    def report(tid: str, session: str, step: int, acc: float) -> None:
        r = httpx.post(f"{server.srv.url}/api/v1/experiments/e/trials/{tid}/intermediate",
                       json={"metric": {"acc": acc}, "step": step}, headers={**auth, "X-AutoTune-Session": session})
        assert r.status_code == 200, r.text

    trials = []
    for b_sends_size in (False, True):
        tid = new_trial(server.engine)
        for step, (acc, size) in enumerate(((0.5, 20.0), (0.6, 21.0))):  # process A
            report(tid, "a" * 32, step, acc)
            send_other(tid, "acc", acc - 0.5, step, step)
            send_other(tid, "size", size, step, step)
        report(tid, "b" * 32, 0, 0.3)  # process B: a new run from step 0
        if b_sends_size:  # (a step the output read has not had: the controller skips those it had)
            send_other(tid, "acc", -0.1, 2 if other == "print" else 0, 10)
            send_other(tid, "size", 40.0, 2 if other == "print" else 0, 10)
        assert server.engine.trial("e", tid).record.intermediate == [0.3]
        trials.append(tid)
    if server_restart:
        server.close()
        server = Server(tmp_path / "t.db")  # the runs are replayed from the store's events
    try:
        without, with_size = trials
        assert server.client.end("e", without, 0) == "FAILED", server.engine.trial("e", without).record.metrics
        message = server.engine.trial("e", without).message or ""
        assert "'size'" in message and "restarted" in message, message
        assert server.client.end("e", with_size, 0) == "SUCCEEDED", server.engine.trial("e", with_size).message
        assert server.engine.trial("e", with_size).record.metrics == {"acc": 0.3, "size": 40.0}
        # A's values are kept in the store all the same.
        kept = [m["value"] for e in server.engine.store.trial_events("e", without, "mlflow_")
                if e["kind"] in ("mlflow_metrics", "mlflow_collected") for m in e["payload"]["metrics"]]
        assert sorted(kept) == sorted([0.5 - 0.5, 0.6 - 0.5, 20.0, 21.0])
    finally:
        server.close()
