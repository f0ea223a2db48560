"""Advisors in the engine: budgets persisted (and migrated into an old database), a
restarted engine continues the same brackets, and final training's decisions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from autotune_operator.decide import Limits, Observed, Phase, decide
from autotune_operator.executors.base import trial_env
from tuner_server.engine import Assignment, Engine, ExperimentConfig, NotNow
from tuner_server.store import Store

SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'


def config(name: str = "Hyperband", args: dict | None = None) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": name, "classArgs": args or {"R": 9, "eta": 3, "exec_mode": "serial"}}}
    )


def test_budgets_survive_a_restart_and_the_bracket_continues(tmp_path: Path):
    db = tmp_path / "a.db"
    e = Engine(Store(db), clock=lambda: 1.0)
    e.register("e1", "e1", config())
    got = [e.suggest("e1", i) for i in range(9)]
    assert all(isinstance(a, Assignment) and a.budget == 1 and a.resume is None for a in got)
    assert isinstance(e.suggest("e1", 9), NotNow)  # serial: rung 0 must end first
    for i, a in enumerate(got):
        e.report_final("e1", a.trial_id, i / 10)
        e.end("e1", a.trial_id, 0)
    e2 = Engine(Store(db), clock=lambda: 2.0)  # a restarted server
    a = e2.suggest("e1", 9)
    assert isinstance(a, Assignment)
    assert (a.budget, a.resume, a.parameters) == (3, got[8].trial_id, got[8].parameters)
    assert e2.suggest("e1", 9) == a  # asking again gives the same trial
    assert e2.trials_view("e1")[9]["info"]["rung"] == 1


def test_an_old_database_gains_the_budget_columns(tmp_path: Path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE trials (exp_id TEXT NOT NULL, trial_id TEXT NOT NULL, sequence INTEGER NOT NULL, "
        "parameters TEXT NOT NULL, state TEXT NOT NULL, value REAL, metrics TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, "
        "created REAL NOT NULL, started REAL, ended REAL, exit_code INTEGER, message TEXT, "
        "PRIMARY KEY (exp_id, trial_id), UNIQUE (exp_id, sequence));"
        "INSERT INTO trials (exp_id, trial_id, sequence, parameters, state, created) VALUES ('e', 't0', 0, '{}', 'WAITING', 1);"
    )
    con.commit()
    con.close()
    trials = Store(db).trials("e")
    assert trials[0].record.budget is None and trials[0].record.kind == "search"


def test_best_trial_is_taken_at_the_largest_budget_and_final_trials_stay_apart(tmp_path: Path):
    e = Engine(Store(tmp_path / "b.db"))
    e.register("e1", "e1", config("SuccessiveHalving", {"max_budget": 3, "eta": 3, "exec_mode": "serial"}))
    low = [e.suggest("e1", i) for i in range(3)]
    for a, v in zip(low, (0.99, 0.5, 0.4)):
        e.report_final("e1", a.trial_id, v)
        e.end("e1", a.trial_id, 0)
    up = e.suggest("e1", 3)
    assert isinstance(up, Assignment) and up.budget == 3
    e.report_final("e1", up.trial_id, 0.9)
    e.end("e1", up.trial_id, 0)
    s = e.summary("e1")
    assert s["bestTrial"]["name"] == up.trial_id and s["bestTrial"]["budget"] == 3  # not the 0.99 at 1 epoch
    assert s["maxBudget"] == 3
    f = e.final_trial("e1", 4, up.parameters, 3)
    assert f.kind == "final" and e.final_trial("e1", 4, up.parameters, 3) == f
    e.report_final("e1", f.trial_id, 0.95)
    e.end("e1", f.trial_id, 0)
    s = e.summary("e1")
    assert s["bestTrial"]["name"] == up.trial_id
    assert [(t["name"], t["state"], t["value"]) for t in s["finalTrials"]] == [(f.trial_id, "SUCCEEDED", 0.95)]
    assert all(t.kind == "search" for t in e.get("e1").history())


def test_trial_env_carries_budget_checkpoints_and_seed_000_pipestep():
    env = trial_env("u", "tok", "e", "t3", 3, {"x": 1}, budget=9, checkpoint_dir="/c/t3", resume_dir="/c/t1")
    assert (env["EPOCHS"], env["AUTOTUNE_BUDGET"], env["PIPESTEP"]) == ("9", "9", "hpo")
    assert (env["AUTOTUNE_SAVE_DIR"], env["AUTOTUNE_RESUME_DIR"]) == ("/c/t3", "/c/t1")
    final = trial_env("u", "tok", "e", "t9", 9, {"x": 1}, budget=27, kind="final")
    assert "EPOCHS" not in final and final["AUTOTUNE_BUDGET"] == "27" and final["PIPESTEP"] == "fullytrain"
    plain = trial_env("u", "tok", "e", "t0", 0, {"x": 1})
    assert "EPOCHS" not in plain and "AUTOTUNE_BUDGET" not in plain and "AUTOTUNE_RESUME_DIR" not in plain


def test_final_training_runs_once_after_a_done_search():
    lim = Limits(10, 2, None, None, final_training=True)
    # search done but a search trial still runs: wait
    assert decide(lim, Observed(0, 10, 1)).launch_final is False
    d = decide(lim, Observed(0, 10, 0))
    assert d.launch_final and d.phase is Phase.RUNNING and not d.finished
    d = decide(lim, Observed(0, 10, 0, final_issued=1, final_active=1))
    assert not d.launch_final and d.phase is Phase.RUNNING and d.launch == 0
    d = decide(lim, Observed(0, 10, 0, final_issued=1, final_active=0))
    assert d.phase is Phase.DONE and d.finished
    # never after a timeout; a timeout during final training stops it
    assert not decide(Limits(10, 2, 5, None, True), Observed(6, 4, 0)).launch_final
    d = decide(Limits(10, 2, 5, None, True), Observed(6, 10, 0, final_issued=1, final_active=1))
    assert d.phase is Phase.TIMEOUT and d.stop_active and not d.finished
    assert not decide(Limits(10, 2, None, None, False), Observed(0, 10, 0)).launch_final


def test_operator_keeps_final_training_and_takes_a_checkpoint_root():
    from autotune_operator.runtime import Settings, _limits

    assert _limits({"maxTrialNum": 5, "finalTraining": {"budget": 9}}, None).final_training is True
    assert _limits({"maxTrialNum": 5, "finalTraining": {"enabled": False}}, None).final_training is False
    assert _limits({"maxTrialNum": 5}, None).final_training is False
    env = {"AUTOTUNE_ADMIN_TOKEN": "t" * 20, "AUTOTUNE_TRIAL_CHECKPOINT_ROOT": "/shared/ckpt"}
    assert Settings.from_env(env).checkpoint_root == "/shared/ckpt"
    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20}).checkpoint_root is None
