"""`autotune.tune()` end to end: real trial processes importing real functions, real
scikit-learn models on digits, the embedded tuner server, the output folder."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import yaml

import autotune
from autotune_operator.function_ref import FunctionRefError
from autotune_operator.spec import validate_manifest
from autotune_operator.tune import TuneError
from tests.integration.conftest import TRIALS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fns() -> Iterator[ModuleType]:
    """tests/integration/trials/tune_functions.py, imported as a user's module would be
    (its own name, from its file), so the trials import it the same way."""
    spec = importlib.util.spec_from_file_location("tune_functions", TRIALS / "tune_functions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune_functions"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("tune_functions", None)


def csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_real_sklearn_function_best_trial_is_the_runs(tmp_path: Path, fns: ModuleType) -> None:
    space = {"C": {"_type": "loguniform", "_value": [1e-4, 10.0]}}
    result = autotune.tune(fns.logistic_digits, space, max_trials=5, concurrency=2, output=tmp_path, quiet=True)
    out = tmp_path / "logistic-digits"
    assert result.phase == "DONE" and result.output == out
    assert len(result.trials) == 5 and all(t.state == "SUCCEEDED" for t in result.trials)
    values = [t.value for t in result.trials]
    assert result.best_value == max(values) and result.best_value > 0.9  # logistic regression on digits: ~0.97
    assert result.best_trial is not None and result.best_trial.value == result.best_value
    assert result.best_parameters == result.best_trial.parameters and 1e-4 <= result.best_parameters["C"] <= 10
    # the object is what the run's files say
    status = json.loads((out / "status.json").read_text())
    assert status["bestTrial"]["name"] == result.best_trial.name and status["bestTrial"]["value"] == result.best_value
    assert [(r["id"], float(r["value"]), json.loads(r["parameters"])) for r in csv_rows(out)] == [
        (t.name, t.value, t.parameters) for t in result.trials]
    # the manifest it ran is kept, valid, and runnable with `autotune run`
    kept = validate_manifest(yaml.safe_load((out / "tune.yaml").read_text()))
    assert kept.spec.maxTrialNum == 5 and kept.algorithm == "TPE"

    # The same call again resumes the same run: it has ended, so no trial runs and the result is the same.
    again = autotune.tune(fns.logistic_digits, space, max_trials=5, concurrency=2, output=tmp_path, quiet=True)
    assert again.best_trial == result.best_trial and len(again.trials) == 5
    # A different search in the same folder is refused, in tune()'s own terms.
    with pytest.raises(TuneError, match=r"spec.searchSpace changed since the run in .*use another output= or name="):
        autotune.tune(fns.logistic_digits, {"C": {"_type": "uniform", "_value": [0.1, 1.0]}}, max_trials=5,
                      output=tmp_path, quiet=True)


def test_intermediate_results_and_medianstop_stop_the_bad_trial(tmp_path: Path, fns: ModuleType) -> None:
    # Grid order, one at a time: two good learning rates finish first, then a hopeless one,
    # which Medianstop stops at its first epoch (its accuracy is far below theirs).
    space = {"eta0": {"_type": "choice", "_value": [0.01, 0.02, 1e-9]}}
    result = autotune.tune(fns.sgd_epochs, space, tuner="GridSearch", assessor="Medianstop",
                           assessor_args={"start_step": 1}, concurrency=1, output=tmp_path, quiet=True)
    assert result.phase == "DONE", result.message
    by_eta = {t.parameters["eta0"]: t for t in result.trials}
    for eta in (0.01, 0.02):
        assert by_eta[eta].state == "SUCCEEDED"
        assert len(by_eta[eta].intermediate) == fns.EPOCHS and by_eta[eta].value == by_eta[eta].intermediate[-1]
    bad = by_eta[1e-9]
    assert bad.state == "EARLY_STOPPED" and 1 <= len(bad.intermediate) < fns.EPOCHS, bad
    assert result.best_parameters is not None and result.best_parameters["eta0"] in (0.01, 0.02)


def test_what_a_function_returns_or_raises_decides_its_trial(tmp_path: Path, fns: ModuleType) -> None:
    modes = ["ok", "raise", "none", "self", "dict", "text", "child", "arrays", "exit"]
    space = {"mode": {"_type": "choice", "_value": modes}}
    result = autotune.tune(fns.modes, space, tuner="GridSearch", concurrency=2, output=tmp_path, name="modes",
                           quiet=True)
    assert result.phase == "DONE" and len(result.trials) == len(modes)
    t = {r.parameters["mode"]: r for r in result.trials}
    assert (t["ok"].state, t["ok"].value) == ("SUCCEEDED", 0.5)
    assert t["raise"].state == "FAILED"
    assert t["raise"].message == "exited with code 1: modes() raised ValueError: the learning rate 1.5 diverged"
    assert t["none"].state == "FAILED" and "modes() returned None and reported no final result" in t["none"].message
    assert (t["self"].state, t["self"].value) == ("SUCCEEDED", 0.7)  # its own report, not the 123 it returned
    assert (t["dict"].state, t["dict"].value, t["dict"].metrics) == ("SUCCEEDED", 0.6, {"default": 0.6, "loss": 0.25})
    assert t["text"].state == "FAILED" and "modes() returned 'high', which is not a metric" in t["text"].message
    # a script the function ran reported as the trial, and the function returned None
    assert (t["child"].state, t["child"].value) == ("SUCCEEDED", 0.65), t["child"]
    assert (t["arrays"].state, t["arrays"].metrics) == ("SUCCEEDED", {"default": 0.55, "per_class": [0.5, 0.6]})
    assert t["exit"].state == "FAILED" and "modes() called sys.exit(0) and reported no final result" in t["exit"].message
    assert result.best_parameters == {"mode": "self"} and result.best_value == 0.7
    # the traceback is in the trial's log
    log = (tmp_path / "modes" / "trials" / t["raise"].name / "trial.log").read_text()
    assert "Traceback" in log and "in _check" in log


def test_a_run_that_ends_error_is_returned_with_its_reason(tmp_path: Path, fns: ModuleType) -> None:
    result = autotune.tune(fns.modes, {"mode": {"_type": "choice", "_value": ["raise", "raise2"]}}, tuner="GridSearch",
                           output=tmp_path, name="broken", extra_spec={"maxFailedTrialNum": 1}, quiet=True)
    assert (result.phase, result.reason, result.best_trial) == ("ERROR", "MaxFailedTrialsReached", None)
    assert "modes() raised ValueError: the learning rate 1.5 diverged" in result.message
    assert [t.state for t in result.trials] == ["FAILED"]


def test_devices_and_env_reach_the_trials(tmp_path: Path, fns: ModuleType) -> None:
    result = autotune.tune(fns.where, {"x": {"_type": "choice", "_value": [1, 2, 3, 4]}}, tuner="GridSearch",
                           devices=[5, 7], concurrency=4, env={"TUNE_FACTOR": "2.5"}, output=tmp_path, quiet=True)
    assert result.phase == "DONE" and len(result.trials) == 4
    assert {t.value for t in result.trials} <= {5.0, 7.0}  # one trial per device, at most two at a time
    assert all(t.metrics == {"default": t.value, "factor": 2.5} for t in result.trials)


def test_several_objectives_and_a_search_space_file(tmp_path: Path, fns: ModuleType) -> None:
    space = tmp_path / "search_space.json"
    space.write_text(json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}))
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    result = autotune.tune(fns.two_objectives, space, tuner="Random", max_trials=4, concurrency=2,
                           output=tmp_path / "runs", extra_spec={"objectives": objectives}, quiet=True)
    assert result.phase == "DONE" and len(result.trials) == 4
    assert result.best_value is None and result.best_parameters is None  # no one trial is best
    front = json.loads((result.output / "status.json").read_text())["paretoFront"]
    assert [t.name for t in result.pareto_front] == [p["name"] for p in front] and front
    assert all(t.metrics is not None and set(t.metrics) == {"accuracy", "size"} for t in result.pareto_front)


def test_lambda_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(FunctionRefError, match="cannot use a lambda"):
        autotune.tune(lambda params: 1.0, {"x": {"_type": "uniform", "_value": [0, 1]}}, output=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_script_without_main_guard_fails_clearly_instead_of_recursing(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, str(TRIALS / "tune_unguarded.py")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env={**os.environ, "TUNE_OUTPUT": str(out)})
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("autotune_operator.function_ref.FunctionRefError: importing ") and "tune_unguarded.py failed: " \
        "RuntimeError: autotune.tune() was called inside a trial process" in last
    assert "put the tune() call under 'if __name__ == \"__main__\":'" in last
    assert "tune() returned" not in r.stdout
    assert not out.exists()  # no experiment started, no trial ran


def test_example_script_reports_the_best(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "examples" / "tune_function.py"), "--max-trials", "4",
                        "--output", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    status = json.loads((tmp_path / "tune-function" / "status.json").read_text())
    best = status["bestTrial"]
    assert status["phase"] == "DONE" and status["trials"]["total"] == 4
    assert r.stdout.strip().splitlines()[-1] == (f"best accuracy {best['value']:.4f} with {best['parameters']} "
                                                 f"({best['name']})")
    assert best["value"] > 0.8
