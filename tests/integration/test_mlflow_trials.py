"""Trials instrumented with MLflow report to AutoTune unchanged (seed 003's mlflow.log_metric).

Real parts: `autotune run` with its embedded tuner server, trial processes training
scikit-learn models on digits and reporting only through MLflow's own client (no
`import autotune`), and the Medianstop assessor stopping a bad trial by having it killed.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TRIALS, exit_code_for, manifest, read_records, read_status, run_autotune, write_manifest

pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")

GOOD_A = {"eta0": 0.01, "alpha": 0.0001, "epoch_seconds": 0}
GOOD_B = {"eta0": 0.003, "alpha": 0.001, "epoch_seconds": 0}
# Barely learns (0.85 where the others pass 0.93); each epoch lasts 20 s, so it is still
# running when Medianstop judges it at step 3 and can only end early by being killed.
BAD = {"eta0": 1e-7, "alpha": 0.0001, "epoch_seconds": 20}
EPOCHS = 6


def mlflow_manifest(record: Path, configs: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    command = [sys.executable, str(TRIALS / "mlflow_sgd.py"), "--eta0", "${parameters.eta0}", "--alpha",
               "${parameters.alpha}", "--epochs", str(EPOCHS), "--epoch-seconds", "${parameters.epoch_seconds}"]
    doc = manifest(name="digits-mlflow", space={"config": {"_type": "choice", "_value": configs}}, command=command,
                   tuner="Batch", max_trials=len(configs), concurrency=1,
                   env=[{"name": "MLFLOW_SGD_RECORD", "value": str(record)}],
                   assessor={"builtinAssessorName": "Medianstop", "classArgs": json.dumps({"optimize_mode": "maximize", "start_step": 3})})
    doc["spec"].update({"primaryMetric": "accuracy", **spec})
    return doc


def table(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "digits-mlflow" / "trials.csv") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_mlflow_only_trials_tune_and_a_bad_one_is_killed_early(tmp_path: Path) -> None:
    record = tmp_path / "epochs.jsonl"
    doc = mlflow_manifest(record, [GOOD_A, GOOD_B, BAD])
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(tmp_path / "out", "digits-mlflow")
    assert s["phase"] == "DONE"
    assert s["trials"]["succeeded"] == 2 and s["trials"]["earlyStopped"] == 1 and s["trials"]["failed"] == 0, s["trials"]

    # What each script logged, epoch by epoch (the run id is the trial's id).
    logged: dict[str, list[dict[str, Any]]] = {}
    for x in read_records(record):
        logged.setdefault(x["run"], []).append(x)
    rows = table(tmp_path / "out")
    assert set(rows) == set(logged) == {"digits-mlflow-0", "digits-mlflow-1", "digits-mlflow-2"}
    for tid in ("digits-mlflow-0", "digits-mlflow-1"):
        row, epochs = rows[tid], logged[tid]
        assert row["state"] == "SUCCEEDED" and row["exit_code"] == "0"
        # Every logged value of spec.primaryMetric is an intermediate report, in order.
        assert json.loads(row["intermediate"]) == [e["accuracy"] for e in epochs] and len(epochs) == EPOCHS
        # The last value is the final result; the other metric is kept beside it.
        metrics = json.loads(row["metrics"])
        assert float(row["value"]) == epochs[-1]["accuracy"] == metrics["default"] == metrics["accuracy"]
        assert metrics["train_accuracy"] == epochs[-1]["train_accuracy"]
        assert (tmp_path / "out" / "digits-mlflow" / "trials" / tid / "trial.log").read_text().count("training finished") == 1

    # The best trial is the one whose last logged accuracy is highest.
    finals = {tid: logged[tid][-1]["accuracy"] for tid in ("digits-mlflow-0", "digits-mlflow-1")}
    best = max(finals, key=lambda k: finals[k])
    assert s["bestTrial"]["name"] == best and s["bestTrial"]["value"] == finals[best]
    assert s["bestTrial"]["parameters"] == GOOD_B

    # The bad trial: stopped by the assessor at step 3, killed mid-run (the 20 s epochs never
    # all ran: its 4th epoch at most began), its last logged value kept.
    bad = rows["digits-mlflow-2"]
    assert bad["state"] == "EARLY_STOPPED", bad
    curve = json.loads(bad["intermediate"])
    assert 3 <= len(curve) < EPOCHS and curve == [e["accuracy"] for e in logged["digits-mlflow-2"]][: len(curve)]
    assert float(bad["value"]) == curve[-1] and "assessor" in bad["message"]
    assert "training finished" not in (tmp_path / "out" / "digits-mlflow" / "trials" / "digits-mlflow-2" / "trial.log").read_text()


def test_a_users_own_mlflow_server_wins(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_URI in the template: AutoTune sets none of its MLflow variables, so
    the script logs where its user said (here a local file store) and AutoTune gets no metric."""
    record = tmp_path / "epochs.jsonl"
    doc = mlflow_manifest(record, [GOOD_A])
    store = tmp_path / "their-mlruns"
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MLFLOW_TRACKING_URI", "value": store.as_uri()})
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MLFLOW_ALLOW_FILE_STORE", "value": "true"})  # MLflow 3 deprecates the file store
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")], timeout=300)
    assert r.returncode == exit_code_for(tmp_path / "out" / "digits-mlflow"), r.stderr[-3000:]
    row = table(tmp_path / "out")["digits-mlflow-0"]
    assert row["state"] == "FAILED" and "without reporting a final metric" in row["message"], row
    assert list(store.glob("*/*/metrics/accuracy")), "the script's own MLflow store got its metrics"
    # ... in a run of its own: AutoTune's MLFLOW_RUN_ID (which does not exist there) was not set.
    assert read_records(record)[0]["run"] is None


def test_without_primary_metric_mlflow_is_left_where_it_was(tmp_path: Path) -> None:
    """No spec.primaryMetric (nor spec.objectives): the objective is not read from MLflow, so
    AutoTune sets no MLFLOW_* variable. A script reporting with the SDK that also keeps a
    model with MLflow (here in a store its user exported in the shell) succeeds: AutoTune's
    subset refuses artifacts, and every such trial failed. An MLflow-only script logs where
    its user said, and fails for want of a final result."""
    store = tmp_path / "their-mlruns"
    shell = {"MLFLOW_TRACKING_URI": store.as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 deprecates the file store
    doc = manifest(name="sdk-mlflow", space={"x": {"_type": "uniform", "_value": [0, 1]}}, max_trials=2, concurrency=1,
                   command=[sys.executable, str(TRIALS / "sdk_keeps_mlflow_model.py")])
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")],
                     env=shell, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "out" / "sdk-mlflow" / "trials" / "sdk-mlflow-0" / "trial.log").read_text()
    assert read_status(tmp_path / "out", "sdk-mlflow")["trials"]["succeeded"] == 2, log[-2000:]
    assert f"tracking uri: {store.as_uri()}" in log
    assert len(list(store.rglob("model.txt"))) == 2, "each trial's model is in its user's MLflow store"

    record = tmp_path / "epochs.jsonl"
    doc = mlflow_manifest(record, [GOOD_A])
    del doc["spec"]["primaryMetric"]
    r = run_autotune(["run", str(write_manifest(tmp_path / "e2.yaml", doc)), "--output", str(tmp_path / "out")],
                     env=shell, timeout=300)
    assert r.returncode == exit_code_for(tmp_path / "out" / "digits-mlflow"), r.stderr[-3000:]
    row = table(tmp_path / "out")["digits-mlflow-0"]
    assert row["state"] == "FAILED" and "without reporting a final metric" in row["message"], row["message"]
    assert read_records(record)[0]["run"] is None  # no MLFLOW_RUN_ID of ours
    assert list(store.glob("*/*/metrics/accuracy")), "the script's own MLflow store got its metrics"
