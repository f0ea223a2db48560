"""A trial whose attempt the user interrupted (Ctrl-C in local mode) goes back to WAITING
(Engine.requeue): not ended, so it counts toward neither maxTrialNum nor maxFailedTrialNum,
and its attempt's reports are dropped so the attempt that runs next records its own curve
from step 0 (the tuner and assessor never see two curves, nor a result of the dropped one).
A real engine on a real SQLite store, read back by a second engine as a resumed run does."""

from __future__ import annotations

from pathlib import Path

from autotune_operator.decide import Limits, Observed, Phase, decide
from tuner_server.engine import Assignment, Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.store import Store

SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'
WHY = "interrupted by the user; it runs again, with the same parameters, when the same command is run again"


def engine(db: Path, now: float = 1.0) -> Engine:
    e = Engine(Store(db), clock=lambda: now)
    e.register("e1", "e1", ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}}))
    return e


def issue(e: Engine, seq: int) -> Assignment:
    a = e.suggest("e1", seq)
    assert isinstance(a, Assignment)
    e.started("e1", a.trial_id)
    return a


def view(e: Engine, trial_id: str) -> dict:
    return next(t for t in e.trials_view("e1") if t["name"] == trial_id)


def test_an_interrupted_trial_waits_again_without_its_attempt(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    a = issue(e, 0)
    for v in (0.3, 0.5):
        e.report_intermediate("e1", a.trial_id, v)
    e.report_final("e1", a.trial_id, 0.5)  # reported, then Ctrl-C before it exited
    assert e.requeue("e1", a.trial_id, WHY) is TrialState.WAITING
    t = view(e, a.trial_id)
    assert (t["state"], t["value"], t["intermediate"], t["message"]) == ("WAITING", None, [], WHY)
    assert t["parameters"] == a.parameters
    counts = e.summary("e1")["trials"]
    assert (counts["waiting"], counts["stopped"], counts["failed"], counts["total"]) == (1, 0, 0, 1)
    # The resumed run (a new engine on the same database) sees the same, and the next attempt's
    # curve starts at step 0 with its own values (not skipped as a retry of the dropped ones).
    again = engine(tmp_path / "a.db", now=2.0)
    assert view(again, a.trial_id) == t
    again.started("e1", a.trial_id)
    again.report_intermediate("e1", a.trial_id, 0.4)
    again.report_intermediate("e1", a.trial_id, 0.6)
    again.report_final("e1", a.trial_id, 0.6)
    assert again.end("e1", a.trial_id, 0) is TrialState.SUCCEEDED
    t = view(again, a.trial_id)
    assert (t["value"], t["intermediate"], t["message"]) == (0.6, [0.4, 0.6], None)
    assert [r.intermediate for r in again.get("e1").history()] == [[0.4, 0.6]]


def test_an_interrupted_trial_is_not_counted_by_decide(tmp_path: Path) -> None:
    """maxTrialNum 2, maxFailedTrialNum 1: with one trial requeued the search goes on."""
    e = engine(tmp_path / "a.db")
    done, cut = issue(e, 0), issue(e, 1)
    e.report_final("e1", done.trial_id, 0.5)
    e.end("e1", done.trial_id, 0)
    e.requeue("e1", cut.trial_id, WHY)
    c = e.summary("e1")["trials"]
    obs = Observed(0, issued=c["total"], active=c["waiting"] + c["running"], failed=c["failed"])
    d = decide(Limits(2, 2, None, max_failed=1), obs)
    assert d.phase is Phase.RUNNING and not d.finished


def test_a_trial_the_assessor_stopped_ends_early_stopped_and_an_ended_one_stays(tmp_path: Path) -> None:
    e = engine(tmp_path / "a.db")
    a, b = issue(e, 0), issue(e, 1)
    e.report_intermediate("e1", a.trial_id, 0.2)
    e.request_stop("e1", a.trial_id, "assessor")
    assert e.requeue("e1", a.trial_id, WHY) is TrialState.EARLY_STOPPED
    e.report_final("e1", b.trial_id, 0.9)
    e.end("e1", b.trial_id, 0)
    assert e.requeue("e1", b.trial_id, WHY) is TrialState.SUCCEEDED
    assert view(e, b.trial_id)["value"] == 0.9


def test_resuming_a_run_cut_at_its_last_trials_says_it_resumes(tmp_path: Path) -> None:
    """Ctrl-C with all maxTrialNum trials issued, two of them cut (WAITING): the resume runs
    them, and its first line says so instead of 'has already ended' (they are not ended)."""
    import json

    from autotune_operator.local_resume import check_output, save_spec
    from autotune_operator.spec import load_experiment_text
    from tests.unit.test_resume import MANIFEST, T0, status

    exp = load_experiment_text(MANIFEST)  # maxTrialNum 16
    save_spec(tmp_path, exp)
    st = status("ERROR", total=16, message="interrupted by the user")
    st["trials"].update(succeeded=14, waiting=2)
    (tmp_path / "status.json").write_text(json.dumps(st))
    assert check_output(tmp_path, exp, T0 + 500).line == "resuming e: 16 trials so far (it ended ERROR: interrupted by the user)"
