"""tune()'s result is read from the files local mode writes (status.json, trials.csv), and
a trial's own failure reason ($AUTOTUNE_FAILURE_FILE) reaches its message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotune_operator.decide import Phase
from autotune_operator.executors.local import FAILURE_FILE, MAX_FAILURE_CHARS, _exit_of
from autotune_operator.results import write_status, write_trials_csv
from autotune_operator.status import BestTrial, ExperimentStatus, TrialCounts
from autotune_operator.tune_result import read_result


def trial(name: str, seq: int, state: str, value: float | None, kind: str = "search", **kw: Any) -> dict[str, Any]:
    return {"name": name, "sequence": seq, "state": state, "value": value, "parameters": {"lr": 0.1 * (seq + 1)},
            "metrics": kw.get("metrics"), "intermediate": kw.get("intermediate", []), "started": 1.0, "ended": 2.0,
            "exitCode": kw.get("exit_code", 0), "message": kw.get("message"), "kind": kind, "budget": None}


def test_result_is_what_status_json_and_trials_csv_say(tmp_path: Path) -> None:
    status = ExperimentStatus(phase=Phase.DONE, message="all 3 trials ended", reason="MaxTrialsReached",
                              optimizeMode="minimize", trials=TrialCounts(total=3, succeeded=2, failed=1),
                              bestTrial=BestTrial(name="t-1", sequence=1, parameters={"lr": 0.2}, value=0.25))
    write_status(tmp_path, status)
    write_trials_csv(tmp_path, [
        trial("t-0", 0, "SUCCEEDED", 0.5, intermediate=[0.9, 0.5]),
        trial("t-1", 1, "SUCCEEDED", 0.25, metrics={"default": 0.25, "loss": 1.5}),
        trial("t-2", 2, "FAILED", None, exit_code=1, message="exited with code 1: f() raised ValueError: x"),
        trial("t-final", 3, "SUCCEEDED", 0.1, kind="final"),  # final training is not a search trial
    ])
    r = read_result(tmp_path)
    assert (r.phase, r.message, r.reason, r.optimize_mode) == ("DONE", "all 3 trials ended", "MaxTrialsReached", "minimize")
    # the best is status.json's choice, not recomputed (t-final's 0.1 is lower but not a search trial)
    assert (r.best_value, r.best_parameters) == (0.25, {"lr": 0.2})
    assert r.best_trial is not None and r.best_trial.name == "t-1" and r.best_trial.metrics == {"default": 0.25, "loss": 1.5}
    assert [t.name for t in r.trials] == ["t-0", "t-1", "t-2"]
    assert r.trials[0].intermediate == [0.9, 0.5] and r.trials[0].parameters == {"lr": 0.1}
    assert (r.trials[2].state, r.trials[2].value, r.trials[2].message) == (
        "FAILED", None, "exited with code 1: f() raised ValueError: x")
    assert r.output == tmp_path and "best_value=0.25" in repr(r)


def test_no_succeeded_trial_gives_no_best(tmp_path: Path) -> None:
    write_status(tmp_path, ExperimentStatus(phase=Phase.ERROR, message="3 trials failed"))
    write_trials_csv(tmp_path, [trial("t-0", 0, "FAILED", None, exit_code=1)])
    r = read_result(tmp_path)
    assert (r.phase, r.best_value, r.best_parameters, r.best_trial) == ("ERROR", None, None, None)


def test_a_trials_failure_file_is_its_message_when_it_exits_non_zero(tmp_path: Path) -> None:
    assert _exit_of("t", 1, None, tmp_path).message is None  # nothing written: the engine says "exited with code 1"
    (tmp_path / FAILURE_FILE).write_text("\ntrain() raised KeyError: 'lr'\nmore\n")
    assert _exit_of("t", 1, None, tmp_path).message == "exited with code 1: train() raised KeyError: 'lr'"
    assert _exit_of("t", 0, None, tmp_path).message is None  # a success is not a failure
    assert _exit_of("t", -9, None, tmp_path).message == "killed by signal 9"
    (tmp_path / FAILURE_FILE).write_text("x" * (MAX_FAILURE_CHARS + 100))
    message = _exit_of("t", 2, None, tmp_path).message
    assert message is not None and message.endswith("x...") and len(message) < MAX_FAILURE_CHARS + 40
