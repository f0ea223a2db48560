"""A report at a step the curve already holds: a retry from the process that sent that step,
a new run of the trial from another process (report_session.py). Before, every such report
was a retry, so a trial's restarted process (step 0 again) had its values dropped until it
passed the old process's last step, and the assessor judged the old values. The pure decision,
then a real engine on a real SQLite store, read back by a second engine as a restarted server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner_server.engine import Assignment, BadMetric, Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.report_session import (Report, Sessions, check_session, decide, final_is_stale, from_events,
                                         restart_event)
from tuner_server.store import Store

SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'


# ----- the decision (pure) -----

def test_a_held_step_is_a_retry_from_its_sender_and_a_new_run_from_another() -> None:
    s = Sessions(current="a")
    assert decide(3, 3, "a", s) is Report.APPEND
    assert decide(1, 3, "a", s) is Report.RETRY
    assert decide(0, 3, "b", s) is Report.RESTART
    assert decide(3, 3, "b", s) is Report.RESTART  # a run resumed at the next step (SDK's step=) takes over
    assert decide(4, 3, "b", s) is Report.APPEND  # the caller refuses a step beyond the next
    assert decide(3, 3, "a", s) is Report.APPEND


def test_without_a_session_on_either_side_a_held_step_stays_a_retry() -> None:
    assert decide(0, 3, None, Sessions(current="a")) is Report.RETRY  # an SDK older than sessions
    assert decide(0, 3, "b", Sessions(current=None)) is Report.RETRY  # points of unknown sender
    assert decide(3, 3, None, Sessions(current="a")) is Report.APPEND


def test_a_replaced_process_is_stale_at_any_step() -> None:
    s = Sessions(current="a")
    s.took_over("b")
    assert (s.current, s.replaced) == ("b", {"a"})
    assert decide(0, 1, "a", s) is Report.STALE
    assert decide(1, 1, "a", s) is Report.STALE  # would have extended the new run's curve
    assert decide(0, 1, "b", s) is Report.RETRY
    s.took_over(None)  # a point of no session changes nothing
    assert (s.current, s.replaced) == ("b", {"a"})


def test_sessions_are_rebuilt_from_the_events_of_the_current_attempt_only() -> None:
    restarts = [{"created": 1.0, "replaced": "old-attempt"}, {"created": 2.0, "replaced": "a"},
                {"created": 2.0, "replaced": None}]
    s = from_events({"session": "b"}, restarts, created=2.0)
    assert (s.current, s.replaced) == ("b", {"a"})
    assert from_events(None, [], created=2.0) == Sessions()


def test_a_final_result_is_stale_only_from_a_replaced_process() -> None:
    s = Sessions(current="a")
    s.took_over("b")
    assert final_is_stale("a", s)  # a pod still running beside its replacement
    assert not final_is_stale("b", s)
    assert not final_is_stale("c", s)  # sent no report: replaced nobody, as an evaluation script
    assert not final_is_stale(None, s)  # an SDK older than sessions, MLflow's result


def test_a_restart_says_which_final_result_it_drops() -> None:
    kept = restart_event(1, 3, "b", "a", 2.0)
    assert kept["droppedFinal"] is None and "final" not in kept["note"]
    dropped = restart_event(0, 3, "b", "a", 2.0, final=0.25)
    assert dropped["droppedFinal"] == 0.25 and "final result 0.25" in dropped["note"]
    # Neutral on who recorded it: the SDK's final report, or a result taken from MLflow's values.
    assert "the final result 0.25 recorded before is dropped" in dropped["note"]


def test_a_bad_session_header_is_refused_naming_the_header() -> None:
    assert check_session(" 0f3a ") == "0f3a"
    assert check_session("") is None
    with pytest.raises(ValueError, match="X-AutoTune-Session"):
        check_session("a b")
    with pytest.raises(ValueError, match="X-AutoTune-Session"):
        check_session("x" * 65)


# ----- the engine over a real store -----

def engine(db: Path) -> Engine:
    e = Engine(Store(db))
    e.register("e1", "e1", ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}}))
    return e


def running(e: Engine) -> str:
    a = e.suggest("e1", 0)
    assert isinstance(a, Assignment)
    e.started("e1", a.trial_id)
    return a.trial_id


def curve(e: Engine, tid: str) -> list[float]:
    return list(e.trial("e1", tid).record.intermediate)


def test_a_restarted_process_takes_over_the_curve_and_the_old_values_stay_in_the_events(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    tid = running(e)
    for step, v in enumerate((0.1, 0.2, 0.3)):
        e.report_intermediate("e1", tid, v, step, session="a")
    e.report_intermediate("e1", tid, 0.2, 1, session="a")  # a retry: nothing changes
    assert curve(e, tid) == [0.1, 0.2, 0.3]
    e.report_intermediate("e1", tid, 0.5, 0, session="b")  # the process restarted at step 0
    assert curve(e, tid) == [0.5]
    e.report_intermediate("e1", tid, 0.6, 1, session="b")
    e.report_intermediate("e1", tid, 0.9, 3, session="a")  # the old one, still alive: ignored
    assert curve(e, tid) == [0.5, 0.6]
    assert [p["value"] for p in e.store.intermediate("e1", tid)] == [0.5, 0.6]
    events = e.store.trial_events("e1", tid, "intermediate_metric")
    assert [(p["payload"]["step"], p["payload"]["value"], p["payload"]["session"]) for p in events] == [
        (0, 0.1, "a"), (1, 0.2, "a"), (2, 0.3, "a"), (0, 0.5, "b"), (1, 0.6, "b")]
    [note] = e.store.trial_events("e1", tid, "curve_restarted")
    assert {k: note["payload"][k] for k in ("step", "dropped", "session", "replaced")} == {
        "step": 0, "dropped": 3, "session": "b", "replaced": "a"}
    assert "step 0" in note["payload"]["note"]

    # A restarted server knows the sessions from the events: b's retry is one, a is still stale,
    # and a third process restarting at step 1 keeps b's step 0.
    again = engine(tmp_path / "a.db")
    again.report_intermediate("e1", tid, 0.6, 1, session="b")
    again.report_intermediate("e1", tid, 0.9, 2, session="a")
    assert curve(again, tid) == [0.5, 0.6]
    again.report_intermediate("e1", tid, 0.7, 1, session="c")
    assert curve(again, tid) == [0.5, 0.7]
    again.report_final("e1", tid, 0.7)
    assert again.end("e1", tid, 0) is TrialState.SUCCEEDED
    assert [r.intermediate for r in again.get("e1").history()] == [[0.5, 0.7]]
    assert curve(engine(tmp_path / "a.db"), tid) == [0.5, 0.7]


def test_reports_without_a_session_keep_the_old_rule(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    tid = running(e)
    for step, v in enumerate((0.1, 0.2)):
        e.report_intermediate("e1", tid, v, step)
    e.report_intermediate("e1", tid, 0.5, 0)  # an old SDK's restarted process: dropped, as before
    e.report_intermediate("e1", tid, 0.5, 0, session="b")  # the sender of the held points is unknown
    assert curve(e, tid) == [0.1, 0.2]
    assert e.store.trial_events("e1", tid, "curve_restarted") == []


def test_a_replaced_process_gives_no_final_result_even_after_a_server_restart(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    tid = running(e)
    e.report_intermediate("e1", tid, 0.1, 0, session="a")
    e.report_intermediate("e1", tid, 0.5, 0, session="b")  # a restarted process took over
    e.report_final("e1", tid, 0.5, session="b")
    e.report_final("e1", tid, 0.9, session="a")  # the old one, still alive: answered, not recorded
    assert e.trial("e1", tid).record.value == 0.5
    again = engine(tmp_path / "a.db")
    again.report_final("e1", tid, 0.8, session="a")
    assert again.trial("e1", tid).record.value == 0.5
    assert [(n["payload"]["value"], n["payload"]["session"], n["payload"]["current"])
            for n in again.store.trial_events("e1", tid, "stale_final_ignored")] == [(0.9, "a", "b"), (0.8, "a", "b")]
    [kept] = again.store.trial_events("e1", tid, "final_metric")
    assert kept["payload"]["session"] == "b"
    again.report_final("e1", tid, 0.6, session="b")  # the current run's and a sessionless result count
    assert again.trial("e1", tid).record.value == 0.6
    again.report_final("e1", tid, 0.7)
    assert again.end("e1", tid, 0) is TrialState.SUCCEEDED
    assert again.trial("e1", tid).record.value == 0.7


def test_a_new_run_after_the_final_report_drops_the_replaced_runs_result(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    tid = running(e)
    e.report_intermediate("e1", tid, 0.1, 0, session="a")
    e.report_final("e1", tid, 0.1, session="a")
    e.report_intermediate("e1", tid, 0.5, 0, session="b")  # started again before the trial ended
    assert (curve(e, tid), e.trial("e1", tid).record.value) == ([0.5], None)
    again = engine(tmp_path / "a.db")
    assert (curve(again, tid), again.trial("e1", tid).record.value) == ([0.5], None)
    # Without its own final result the new run ends as any run that reported none.
    assert again.end("e1", tid, 0) is TrialState.FAILED


def test_a_replaced_processs_bad_final_metric_fails_nothing(tmp_path: Path) -> None:
    e = Engine(Store(tmp_path / "m.db"))
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    e.register("e1", "e1", ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": "Random"}, "objectives": objectives}))
    tid = running(e)
    e.report_intermediate("e1", tid, {"accuracy": 0.1}, 0, session="a")
    e.report_intermediate("e1", tid, {"accuracy": 0.5}, 0, session="b")
    with pytest.raises(BadMetric, match="size"):
        e.report_final("e1", tid, {"accuracy": 0.9}, session="a")  # refused: no result of the trial's
    assert e.trial("e1", tid).record.state is TrialState.RUNNING
    with pytest.raises(BadMetric, match="size"):
        e.report_final("e1", tid, {"accuracy": 0.9}, session="b")  # the current run's: fails the trial, as before
    assert e.trial("e1", tid).record.state is TrialState.FAILED


def test_a_run_resumed_at_a_step_keeps_the_steps_before_it_and_its_takeover_survives_a_restart(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    tid = running(e)
    for step, v in enumerate((0.1, 0.2, 0.3)):
        e.report_intermediate("e1", tid, v, step, session="a")
    e.report_intermediate("e1", tid, 0.5, 2, session="b")  # resumed from the checkpoint of epoch 1
    assert curve(e, tid) == [0.1, 0.2, 0.5]
    e.report_intermediate("e1", tid, 0.6, 3, session="c")  # resumed at the next step: takes over, cuts nothing
    assert curve(e, tid) == [0.1, 0.2, 0.5, 0.6]
    notes = [n["payload"] for n in e.store.trial_events("e1", tid, "curve_restarted")]
    assert [(n["step"], n["dropped"], n["replaced"]) for n in notes] == [(2, 1, "a"), (3, 0, "b")]
    assert "went on at step 3" in notes[1]["note"]
    again = engine(tmp_path / "a.db")
    again.report_intermediate("e1", tid, 0.9, 3, session="b")  # b was replaced: still stale
    again.report_final("e1", tid, 0.9, session="b")
    assert (curve(again, tid), again.trial("e1", tid).record.value) == ([0.1, 0.2, 0.5, 0.6], None)


def test_a_replaced_processs_reports_are_said_once_per_attempt_even_across_a_server_restart(tmp_path: Path) -> None:
    # Before, they were answered and dropped with no event or log line: a zombie pod reporting
    # beside its replacement was invisible.
    e = engine(tmp_path / "a.db")
    tid = running(e)
    e.report_intermediate("e1", tid, 0.1, 0, session="a")
    e.report_intermediate("e1", tid, 0.5, 0, session="b")  # a restarted process took over
    e.report_intermediate("e1", tid, 0.2, 1, session="a")  # the old one, still alive
    e.report_intermediate("e1", tid, 0.3, 2, session="a")
    again = engine(tmp_path / "a.db")  # a restarted server does not say it again
    again.report_intermediate("e1", tid, 0.4, 3, session="a")
    again.report_intermediate("e1", tid, 0.6, 0, session="c")  # b replaced in turn: said once too
    again.report_intermediate("e1", tid, 0.7, 1, session="b")
    again.report_intermediate("e1", tid, 0.8, 2, session="b")
    assert curve(again, tid) == [0.6]
    notes = [n["payload"] for n in again.store.trial_events("e1", tid, "stale_report_ignored")]
    assert [(n["session"], n["current"], n["step"], n["value"]) for n in notes] == [
        ("a", "b", 1, 0.2), ("b", "c", 1, 0.7)]
    assert "not recorded" in notes[0]["note"]


def test_a_requeued_trials_new_attempt_replaces_no_process_of_the_attempt_before(tmp_path: Path) -> None:
    # The requeue drops the interrupted attempt's curve, but its points' events stay: their
    # newest sender was taken as the new attempt's current process, so the new attempt's first
    # report was a 'curve_restarted' (and a log warning) replacing a process of another attempt.
    e = engine(tmp_path / "a.db")
    tid = running(e)
    e.report_intermediate("e1", tid, 0.1, 0, session="a")
    e.report_intermediate("e1", tid, 0.2, 1, session="a")
    e.requeue("e1", tid, "interrupted")
    e.started("e1", tid)
    e.report_intermediate("e1", tid, 0.5, 0, session="b")
    e.report_intermediate("e1", tid, 0.6, 1, session="b")
    assert curve(e, tid) == [0.5, 0.6]
    assert e.store.trial_events("e1", tid, "curve_restarted") == []
    # The same after a server restart between the requeue and the new attempt's first report.
    e.requeue("e1", tid, "interrupted")
    again = engine(tmp_path / "a.db")
    again.started("e1", tid)
    again.report_intermediate("e1", tid, 0.7, 0, session="c")
    assert curve(again, tid) == [0.7]
    assert again.store.trial_events("e1", tid, "curve_restarted") == []
