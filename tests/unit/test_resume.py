"""Resuming an experiment that ended (operator/resume.py, local_resume.py), the final-training
rule for a resumed search (decide.py), the Resumed condition and the operator's choice of
which ended experiments get a reconcile loop (runtime.py, kopf_handlers.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.decide import Goal, Limits, Observed, Phase, decide, final_pending
from autotune_operator.local_resume import SPEC_FILE, SpecChanged, check_output, save_spec
from autotune_operator.resume import ended_run, plan_resume
from autotune_operator.runtime import OperatorRuntime, conditions
from autotune_operator.spec import load_experiment_text
from autotune_operator.spec_change import MUTABLE
from tests.unit.fake_executor import FakeExecutor

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(phase: str = "DONE", total: int = 16, ran: float = 100.0, paused: float = 0, **extra: Any) -> dict[str, Any]:
    """The status of an experiment that started at T0 and ended after ``ran`` seconds of running."""
    out: dict[str, Any] = {
        "phase": phase, "message": "all 16 trials ended", "optimizeMode": "maximize",
        "startTime": iso(T0), "completionTime": iso(T0 + ran + paused),
        "trials": {"total": total, "succeeded": total, "failed": 0},
        "bestTrial": {"name": "e-3", "sequence": 3, "parameters": {"x": 3}, "value": 0.9},
    }
    if paused:
        out["pausedSeconds"] = paused
    out.update(extra)
    return out


def limits(max_trials: int | None = 16, max_seconds: int | None = None, final: bool = False,
           max_failed: int | None = None) -> Limits:
    return Limits(max_trials, 2, max_seconds, None, final, max_failed)


# ----- final training of a resumed search (decide) -----

def test_final_pending_compares_parameters_not_names() -> None:
    assert final_pending([{"x": 3, "y": "a"}], [{"y": "a", "x": 3}], frozenset()) is False
    assert final_pending([{"x": 3}], [{"x": 2}], frozenset()) is True
    assert final_pending([], [], frozenset()) is False
    assert final_pending([{"x": 1}, {"x": 2}], [{"x": 1}], frozenset()) is True  # a Pareto front that grew


def test_a_resumed_search_whose_best_did_not_change_trains_nothing_again() -> None:
    lim = limits(max_trials=32, final=True)
    obs = Observed(elapsed=1, issued=32, active=0, final_issued=1, final_active=0, final_pending=False)
    d = decide(lim, obs)
    assert d.phase is Phase.DONE and d.finished and not d.launch_final
    assert d.message == "all 32 trials ended; final training ended"


def test_a_resumed_search_that_found_a_new_best_final_trains_it_after_its_trials_end() -> None:
    lim = limits(max_trials=32, final=True)
    running = decide(lim, Observed(elapsed=1, issued=32, active=1, final_issued=1, final_pending=True))
    assert running.phase is Phase.RUNNING and not running.launch_final and not running.launch
    d = decide(lim, Observed(elapsed=1, issued=32, active=0, final_issued=1, final_pending=True))
    assert d.phase is Phase.RUNNING and d.launch_final and d.message.endswith("; final training")
    d = decide(lim, Observed(elapsed=1, issued=32, active=0, final_issued=2, final_active=1, final_pending=False))
    assert d.phase is Phase.RUNNING and not d.launch_final
    d = decide(lim, Observed(elapsed=1, issued=32, active=0, final_issued=2, final_active=0, final_pending=False))
    assert d.phase is Phase.DONE and d.finished


def test_no_succeeded_trial_means_no_final_training_when_pending_is_known() -> None:
    d = decide(limits(max_trials=4, final=True), Observed(elapsed=1, issued=4, active=0, final_pending=False))
    assert d.phase is Phase.DONE and d.finished and not d.launch_final and d.message == "all 4 trials ended"
    # unknown (the default): as before, pending iff no final trial was issued
    d = decide(limits(max_trials=4, final=True), Observed(elapsed=1, issued=4, active=0))
    assert d.launch_final


# ----- which ended experiments run again (resume.py) -----

def test_raising_max_trial_num_on_a_done_experiment_resumes_it() -> None:
    run = ended_run(status())
    assert run is not None and run.phase is Phase.DONE and run.issued == 16 and run.ran_seconds == 100
    plan = plan_resume(run, limits(32), "maxTrialNum 16 -> 32", now=T0 + 100 + 3600)
    assert plan.resume and plan.message == "maxTrialNum 16 -> 32: resumed after 16 trial(s)"
    assert plan.paused_seconds == 3600  # the hour it sat DONE


def test_a_done_experiment_whose_limits_still_end_it_stays_done_and_says_what_to_raise() -> None:
    run = ended_run(status())
    for lim, change in ((limits(16), "trialConcurrency 2 -> 4"), (limits(10), "maxTrialNum 16 -> 10")):
        plan = plan_resume(run, lim, change, now=T0 + 500)
        assert not plan.resume
        assert plan.message.startswith(f"{change}: the experiment stays DONE (all {lim.max_trials} trials ended)")
        assert plan.message.endswith("raise maxTrialNum above 16 to resume")


def test_max_exec_seconds_counts_the_time_it_ran_not_the_time_it_sat_ended() -> None:
    # Ran 100 s, then sat DONE for a day: maxExecSeconds 600 leaves 500 s, it resumes.
    run = ended_run(status(ran=100))
    assert plan_resume(run, limits(32, max_seconds=600), "maxTrialNum 16 -> 32", now=T0 + 86_400).resume
    # An earlier pause is not counted either: 700 s from start to end, 650 of them paused.
    run = ended_run(status(ran=50, paused=650))
    assert run.ran_seconds == 50 and run.paused_seconds == 650
    plan = plan_resume(run, limits(32, max_seconds=60), "maxTrialNum 16 -> 32", now=T0 + 800)
    assert plan.resume and plan.paused_seconds == 650 + 100


def test_a_timed_out_experiment_resumes_only_with_more_time() -> None:
    run = ended_run(status("TIMEOUT", total=5, ran=60, message="maxExecSeconds (60s) reached after 5 trial(s) ended"))
    plan = plan_resume(run, limits(16, max_seconds=60), "maxTrialNum 16 -> 20", now=T0 + 61)
    assert not plan.resume and "stays TIMEOUT" in plan.message
    assert "it has run 60s: raise maxExecSeconds above that or remove it to resume" in plan.message
    assert plan_resume(run, limits(16, max_seconds=90), "maxExecSeconds 60 -> 90", now=T0 + 61).resume
    assert plan_resume(run, limits(16, max_seconds=None), "maxExecSeconds 60 -> none", now=T0 + 61).resume


def test_an_error_experiment_is_never_resumed() -> None:
    run = ended_run(status("ERROR", total=2, message="maxFailedTrialNum (2) reached: 2 trial(s) failed"))
    plan = plan_resume(run, limits(32, max_failed=10), "maxFailedTrialNum 2 -> 10", now=T0 + 200)
    assert not plan.resume and "ended ERROR is not resumed" in plan.message and "warmStart" in plan.message


def test_a_reached_objective_goal_keeps_it_done() -> None:
    run = ended_run(status(total=3))
    plan = plan_resume(run, limits(32), "maxTrialNum 16 -> 32", now=T0 + 200, goal=Goal(0.85, maximize=True))
    assert not plan.resume and "objectiveGoal (0.85) reached by e-3" in plan.message


def test_a_resumed_final_training_experiment_knows_whether_its_best_was_final_trained() -> None:
    final = [{"name": "e-final-16", "sequence": 16, "parameters": {"x": 3}, "state": "SUCCEEDED", "value": 0.91}]
    run = ended_run(status(total=17, finalTraining=final))
    assert run.issued == 16 and run.final_issued == 1 and not run.final_pending
    assert plan_resume(run, limits(32, final=True), "maxTrialNum 16 -> 32", now=T0 + 200).resume
    assert not plan_resume(run, limits(16, final=True), "", now=T0 + 200).resume


def test_running_or_new_experiments_are_not_ended_runs() -> None:
    assert ended_run({"phase": "RUNNING"}) is None and ended_run({}) is None


# ----- conditions -----

def test_the_resumed_condition_is_set_on_resume_and_kept_after() -> None:
    done = conditions(Phase.DONE, "all 16 trials ended", [], "t1")
    again = conditions(Phase.RUNNING, "resumed: maxTrialNum 16 -> 32", done, "t2", resumed="maxTrialNum 16 -> 32")
    by = {c["type"]: c for c in again}
    assert by["Succeeded"]["status"] == "False" and by["Succeeded"]["lastTransitionTime"] == "t2"
    assert by["Running"]["status"] == "True"
    assert by["Resumed"] == {"type": "Resumed", "status": "True", "reason": "LimitsRaised",
                             "message": "maxTrialNum 16 -> 32", "lastTransitionTime": "t2"}
    later = {c["type"]: c for c in conditions(Phase.DONE, "all 32 trials ended", again, "t3")}
    assert later["Resumed"]["lastTransitionTime"] == "t2" and later["Succeeded"]["status"] == "True"


# ----- the operator: which ended experiments get a loop, and what it writes -----

def test_the_daemon_filter_runs_only_unended_or_edited_experiments() -> None:
    from autotune_operator.kopf_handlers import needs_loop

    done = {"phase": "DONE", "observedGeneration": 3, "completionTime": "2026-01-01T00:00:00Z"}
    assert needs_loop(status={}, meta={"generation": 1})
    assert needs_loop(status={"phase": "RUNNING", "observedGeneration": 1}, meta={"generation": 1})
    assert not needs_loop(status=done, meta={"generation": 3})
    assert needs_loop(status=done, meta={"generation": 4})
    # TIMEOUT is written first, while the loop still stops the running trials: it keeps its loop.
    assert needs_loop(status={"phase": "TIMEOUT", "observedGeneration": 3}, meta={"generation": 3})


class FakeWriter:
    def __init__(self, last: dict[str, Any]) -> None:
        self.last = dict(last)
        self.ref = type("Ref", (), {"namespace": "ns", "name": "e"})()
        self.writes: list[tuple[dict[str, Any], str | None]] = []

    def write(self, patch: dict[str, Any], resumed: str | None = None) -> None:
        self.writes.append((patch, resumed))
        self.last = {**self.last, **patch}


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, bool]] = []

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        self.emitted.append((reason, message, warning))


def body(generation: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "e", "namespace": "ns", "uid": "u", "generation": generation}, "spec": spec}


def resume(st: dict[str, Any], b: dict[str, Any]) -> tuple[float | None, FakeWriter, FakeEvents]:
    writer, events = FakeWriter(st), FakeEvents()
    out = OperatorRuntime._resume(None, b, writer, events)  # type: ignore[arg-type]  # uses no runtime state
    return out, writer, events


def test_an_operator_restart_leaves_an_unedited_ended_experiment_alone() -> None:
    st = status(observedGeneration=2, limits={"maxTrialNum": 16, "trialConcurrency": 2})
    out, writer, events = resume(st, body(2, {"maxTrialNum": 16, "trialConcurrency": 2}))
    assert out is None and not writer.writes and not events.emitted


def test_a_raised_limit_resumes_with_an_event_naming_the_change() -> None:
    st = status(observedGeneration=2, limits={"maxTrialNum": 16, "trialConcurrency": 2})
    out, writer, events = resume(st, body(3, {"maxTrialNum": 32, "trialConcurrency": 2}))
    assert out is not None and out > 0  # it sat DONE since T0 + 100
    ((patch, resumed),) = writer.writes
    assert patch["phase"] == "RUNNING" and patch["completionTime"] is None and patch["observedGeneration"] == 3
    assert patch["limits"] == {"maxTrialNum": 32, "trialConcurrency": 2} and patch["pausedSeconds"] == round(out)
    assert resumed == "maxTrialNum 16 -> 32" and patch["message"] == "resumed: maxTrialNum 16 -> 32"
    assert events.emitted == [("ExperimentResumed", "maxTrialNum 16 -> 32: resumed after 16 trial(s)", False)]


def test_an_edit_that_does_not_resume_is_recorded_with_a_warning() -> None:
    st = status(observedGeneration=2, limits={"maxTrialNum": 16, "trialConcurrency": 2})
    out, writer, events = resume(st, body(3, {"maxTrialNum": 16, "trialConcurrency": 4}))
    assert out is None and writer.writes == [({"observedGeneration": 3, "limits": {"maxTrialNum": 16, "trialConcurrency": 4}}, None)]
    ((reason, message, warning),) = events.emitted
    assert reason == "ExperimentNotResumed" and warning and message.startswith("trialConcurrency 2 -> 4: the experiment stays DONE")


def test_an_error_experiment_with_no_observed_generation_is_recorded_silently() -> None:
    st = status("ERROR", total=0, message="bad spec")
    out, writer, events = resume(st, body(1, {"maxTrialNum": 16}))
    assert out is None and writer.writes[0][0]["observedGeneration"] == 1 and not events.emitted


# ----- the CRD: only ERROR is frozen, every other non-limit field keeps its own rule -----

def crd() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "crds" / "autotuneexperiments.yaml").read_text())


def test_the_root_rule_freezes_only_error_and_says_how_to_resume() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # The root's one transition rule (the other root rules, e.g. warmStart not naming the
    # experiment itself, check the object alone and never freeze it).
    (root,) = [r for r in schema["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    assert "'ERROR'" in root["rule"] and "DONE" not in root["rule"] and "self.spec == oldSelf.spec" in root["rule"]
    assert "ended ERROR" in root["message"] and all(k in root["message"] for k in MUTABLE)


def test_every_field_but_the_limits_is_guarded_by_its_own_rule_or_the_admission_policy() -> None:
    # What lets a DONE/TIMEOUT experiment change its limits and nothing else: the root rule
    # no longer freezes its spec, so each other field must refuse edits on its own.
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = " ".join(r["rule"] for r in spec["x-kubernetes-validations"])
    policy = (ROOT / "crds" / "autotuneexperiments-immutable.yaml").read_text()
    unguarded = [k for k in spec["properties"] if k not in MUTABLE
                 and f"self.{k} == oldSelf.{k}" not in rules and f"object.spec.{k} == oldObject.spec.{k}" not in policy]
    assert unguarded == []


# ----- local mode (local_resume.py) -----

MANIFEST = """
apiVersion: tensorstack.dev/v1beta1
kind: AutoTuneExperiment
metadata: {name: e}
spec:
  maxTrialNum: 16
  trialConcurrency: 2
  searchSpace: '{"x": {"_type": "choice", "_value": [1, 2, 3]}}'
  trainingConfig:
    type: pytorch
    tasks: [{type: master, replicas: 1, template: {spec: {containers: [{name: pytorch, image: i, command: [python3, t.py]}]}}}]
  tuner: {builtinTunerName: Random, classArgs: '{"optimize_mode": "maximize"}'}
"""


def test_local_resume_names_the_change_and_refuses_other_fields(tmp_path: Path) -> None:
    first = load_experiment_text(MANIFEST)
    assert check_output(tmp_path, first, T0).line is None  # a new folder: a new experiment
    save_spec(tmp_path, first)
    (tmp_path / "status.json").write_text(json.dumps(status()))
    raised = load_experiment_text(MANIFEST.replace("maxTrialNum: 16", "maxTrialNum: 32"))
    r = check_output(tmp_path, raised, T0 + 100 + 60)
    assert r.line == "resuming e: 16 trials so far, maxTrialNum 16 -> 32 (it ended DONE: all 16 trials ended)"
    assert r.paused_seconds == 60
    same = check_output(tmp_path, first, T0 + 200).line
    assert same is not None and same.startswith("e has already ended with 16 trials: the experiment stays DONE")
    changed = load_experiment_text(MANIFEST.replace("python3, t.py", "python3, u.py").replace("16", "32"))
    with pytest.raises(SpecChanged, match=re.escape("spec.trainingConfig changed since the run in")):
        check_output(tmp_path, changed, T0 + 200)
    assert json.loads((tmp_path / SPEC_FILE).read_text())["maxTrialNum"] == 16  # nothing written by a refusal


def test_local_interrupted_runs_continue(tmp_path: Path) -> None:
    exp = load_experiment_text(MANIFEST)
    save_spec(tmp_path, exp)
    (tmp_path / "status.json").write_text(json.dumps(status("ERROR", total=4, message="interrupted by the user")))
    line = check_output(tmp_path, exp, T0 + 500).line
    assert line == "resuming e: 4 trials so far (it ended ERROR: interrupted by the user)"
    # An ERROR that the limits still give (maxFailedTrialNum) is not a resume: it says so.
    st = status("ERROR", total=4, message="maxFailedTrialNum (2) reached: 2 trial(s) failed")
    st["trials"]["failed"] = 2
    (tmp_path / "status.json").write_text(json.dumps(st))
    limited = load_experiment_text(MANIFEST.replace("maxTrialNum: 16", "maxTrialNum: 16\n  maxFailedTrialNum: 2"))
    save_spec(tmp_path, limited)
    line = check_output(tmp_path, limited, T0 + 500).line
    assert line == ("e has already ended with 4 trials: the experiment stays ERROR "
                    "(maxFailedTrialNum (2) reached: 2 trial(s) failed)"), line
    raised = load_experiment_text(MANIFEST.replace("maxTrialNum: 16", "maxTrialNum: 16\n  maxFailedTrialNum: 5"))
    line = check_output(tmp_path, raised, T0 + 500).line
    assert line is not None and line.startswith("resuming e: 4 trials so far, maxFailedTrialNum 2 -> 5 (it ended ERROR")


# ----- the tuner keeps its history: a resumed TPE goes on from its model -----

def test_a_resumed_tpe_continues_from_its_history_not_from_random_startup(tmp_path: Path) -> None:
    import shutil

    import numpy as np

    from tuner_server.engine import Assignment, Engine, ExperimentConfig, build_algorithms
    from tuner_server.store import Store

    config = ExperimentConfig.model_validate({
        "searchSpace": '{"x": {"_type": "uniform", "_value": [0, 10]}}',
        "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "maximize", "tpe_args": {"n_startup_jobs": 4}}},
        "seed": 7,
    })
    db = tmp_path / "autotune.db"
    first = Engine(Store(db))
    first.register("local.e", "e", config)
    for n in range(8):  # the experiment as it ended DONE: 8 trials, the best near x = 10
        a = first.suggest("local.e", n)
        assert isinstance(a, Assignment)
        first.started("local.e", a.trial_id)
        first.report_final("local.e", a.trial_id, -abs(a.parameters["x"] - 9.0))
        first.end("local.e", a.trial_id, 0)
    shutil.copytree(tmp_path, tmp_path.parent / "copy")
    uninterrupted = first.suggest("local.e", 8)
    # Resumed: a new engine (tuner server or `autotune run`) on the same history.
    resumed = Engine(Store(tmp_path.parent / "copy" / "autotune.db"))
    resumed.register("local.e", "e", config)
    again = resumed.suggest("local.e", 8)
    assert isinstance(again, Assignment) and isinstance(uninterrupted, Assignment)
    assert again.trial_id == "e-8" and again.parameters == uninterrupted.parameters
    # ...and that is the model's choice, not the prior's draw a fresh start-up phase would make.
    _, tpe, _ = build_algorithms(config)
    prior = tpe.suggest([], np.random.default_rng([7, 8]))
    assert again.parameters != prior


def test_an_ended_experiment_without_a_loop_still_counts_in_the_phase_gauge() -> None:
    from kubernetes import client

    from autotune_operator.runtime import Settings
    from tuner_server.client import HttpClient

    settings = Settings(server_url="http://127.0.0.1:9", admin_token="t", trial_server_url="http://127.0.0.1:9")
    rt = OperatorRuntime(settings, client.ApiClient(), HttpClient(settings.server_url, "t"))
    rt.experiment_seen("ns", "a", 3, {"phase": "DONE", "observedGeneration": 3, "trials": {"total": 4, "succeeded": 4}})
    rt.experiment_seen("ns", "b", 1, {"phase": "RUNNING"})  # its loop loads it
    rt.experiment_seen("ns", "a", 3, {"phase": "DONE", "observedGeneration": 3})  # seen again: counted once
    phases = rt.metrics.phases()
    assert phases["DONE"] == 1 and phases["RUNNING"] == 0
    assert rt.metrics.experiments_created._value.get() == 0  # an ended experiment is not a new one


# ----- the controller: the pause is not run time -----

class InstantExecutor(FakeExecutor):
    """Every launched trial reports its x and ends at the next poll (no process)."""

    def __init__(self, engine: Any, exp_id: str) -> None:
        self.engine, self.exp_id = engine, exp_id
        self.running: list[str] = []

    def launch(self, trial: Any) -> None:
        self.running.append(trial.trial_id)

    def active(self) -> set[str]:
        return set(self.running)

    def poll(self) -> list[Any]:
        from autotune_operator.executors.base import TrialExit

        out = []
        for tid in self.running:
            self.engine.report_final(self.exp_id, tid, float(self.engine.trial(self.exp_id, tid).record.parameters["x"]))
            out.append(TrialExit(tid, 0))
        self.running = []
        return out

    def kill(self, trial_id: str, reason: str, cause: object = None) -> None:
        pass


def test_a_resumed_controller_counts_only_run_time_against_max_exec_seconds(tmp_path: Path) -> None:
    from autotune_operator.controller import ExperimentController
    from autotune_operator.status import ExperimentStatus
    from tuner_server.client import InProcessClient
    from tuner_server.engine import Engine
    from tuner_server.store import Store

    now = [T0]
    engine = Engine(Store(tmp_path / "autotune.db"), clock=lambda: now[0])
    doc = MANIFEST.replace("maxTrialNum: 16", "maxTrialNum: 2\n  maxExecSeconds: 600")

    def run(text: str, paused: float) -> ExperimentStatus:
        exp = load_experiment_text(text)
        c = ExperimentController(exp, "local.e", InProcessClient(engine), InstantExecutor(engine, "local.e"), "http://x",
                                 clock=lambda: now[0], paused_seconds=paused)
        return c.run()

    st = run(doc, 0)
    assert st.phase is Phase.DONE and st.trials.total == 2 and st.pausedSeconds is None
    now[0] += 86_400  # a day later, with one more trial allowed
    status = json.loads(st.model_dump_json())
    r = check_output_status(tmp_path, status, doc.replace("maxTrialNum: 2", "maxTrialNum: 3"), now[0])
    assert r.paused_seconds == 86_400
    st = run(doc.replace("maxTrialNum: 2", "maxTrialNum: 3"), r.paused_seconds)
    assert st.phase is Phase.DONE and st.message == "all 3 trials ended" and st.trials.total == 3, st
    assert st.pausedSeconds == 86_400
    # Counted from creation instead, the day would have ended it TIMEOUT at once:
    st = run(doc.replace("maxTrialNum: 2", "maxTrialNum: 4"), 0)
    assert st.phase is Phase.TIMEOUT and st.trials.total == 3


def check_output_status(folder: Path, status: dict[str, Any], text: str, now: float) -> Any:
    """local_resume.check_output on a folder holding this status.json and the spec it ran."""
    exp = load_experiment_text(text)
    (folder / "status.json").write_text(json.dumps(status))
    return check_output(folder, exp, now)


def test_local_resume_without_a_readable_spec_file_is_not_silently_unchecked(tmp_path: Path) -> None:
    """experiment.json deleted or hand-edited: a changed trial command resumed silently
    (change None skipped every check) and the folder then held two searches in one history."""
    first = load_experiment_text(MANIFEST)
    save_spec(tmp_path, first)
    (tmp_path / "status.json").write_text(json.dumps(status()))
    raised = load_experiment_text(MANIFEST.replace("maxTrialNum: 16", "maxTrialNum: 32"))
    (tmp_path / SPEC_FILE).write_text("{torn")
    with pytest.raises(SpecChanged, match=re.escape(f"{tmp_path / SPEC_FILE} is not the spec JSON")):
        check_output(tmp_path, raised, T0 + 200)
    (tmp_path / SPEC_FILE).unlink()  # a folder written before experiment.json existed: resumes, saying so
    line = check_output(tmp_path, raised, T0 + 200).line
    assert line is not None and line.startswith("resuming e: 16 trials so far (it ended DONE"), line
    assert line.endswith(f"; {SPEC_FILE} was missing, so only the search space and algorithms were checked for "
                         f"changes, not the trials' command or the limits"), line
    assert check_output(tmp_path / "new", first, T0).line is None  # nothing earlier: nothing to say
