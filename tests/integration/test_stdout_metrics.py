"""Trials that only print their metrics (Katib's StdOut collector) are tuned unchanged.

Real parts: `autotune run` with its embedded tuner server, trial processes training
scikit-learn's SGDClassifier on digits that print ``epoch=3 accuracy=0.95 loss=0.2`` and
nothing else (no SDK, no MLflow), the Medianstop assessor stopping a bad trial by having it
killed, and `autotune run` itself SIGKILLed mid-run and started again.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, read_records, read_status, write_manifest
from tests.integration.kill_harness import db_query

# GOOD_A (the better one) runs after GOOD_B, so Medianstop never stops it (its running best
# stays above GOOD_B's running average at every step).
GOOD_A = {"eta0": 0.01, "alpha": 0.0001, "epoch_seconds": 0}
GOOD_B = {"eta0": 0.003, "alpha": 0.001, "epoch_seconds": 0}
# Barely learns; each epoch lasts 4 s, so it is still running when Medianstop judges it
# at its 3rd value and it can only end early by being killed.
BAD = {"eta0": 1e-7, "alpha": 0.0001, "epoch_seconds": 4}
EPOCHS = 6


def stdout_manifest(name: str, record: Path, configs: list[dict[str, Any]], concurrency: int = 1,
                    epochs: int = EPOCHS) -> dict[str, Any]:
    command = [sys.executable, str(TRIALS / "stdout_sgd.py"), "--eta0", "${parameters.eta0}", "--alpha",
               "${parameters.alpha}", "--epochs", str(epochs), "--epoch-seconds", "${parameters.epoch_seconds}"]
    doc = manifest(name=name, space={"config": {"_type": "choice", "_value": configs}}, command=command,
                   tuner="Batch", max_trials=len(configs), concurrency=concurrency,
                   env=[{"name": "STDOUT_SGD_RECORD", "value": str(record)}],
                   assessor={"builtinAssessorName": "Medianstop",
                             "classArgs": json.dumps({"optimize_mode": "maximize", "start_step": 3})})
    doc["spec"].update({"primaryMetric": "accuracy",
                        "metricsCollector": {"kind": "StdOut", "additionalMetricNames": ["loss"]}})
    return doc


def table(out: Path, name: str) -> dict[str, dict[str, str]]:
    with open(out / name / "trials.csv") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def printed(out: Path, name: str, trial: str) -> list[dict[str, float]]:
    """The epochs the trial printed, read back from its log (independently of AutoTune's parser)."""
    lines = (out / name / "trials" / trial / "trial.log").read_text().splitlines()
    rows = []
    for line in lines:
        if line.startswith("epoch="):
            kv = dict(part.split("=") for part in line.split())
            rows.append({"accuracy": float(kv["accuracy"]), "loss": float(kv["loss"])})
    return rows


def recorded_steps(db: Path, trials: set[str]) -> int:
    """The fewest steps the tuner server has recorded for any of ``trials`` (0 if none yet)."""
    rows = dict(db_query(db, "SELECT trial_id, COUNT(*) FROM intermediate GROUP BY trial_id"))
    return min((rows.get(t, 0) for t in trials), default=0)


def by_trial(record: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for x in read_records(record):
        out.setdefault(x["trial"], []).append(x)
    return out


def test_printed_metrics_tune_and_a_bad_trial_is_killed_early(tmp_path: Path) -> None:
    record, out = tmp_path / "epochs.jsonl", tmp_path / "out"
    doc = stdout_manifest("digits-stdout", record, [GOOD_B, GOOD_A, BAD])
    r = subprocess.run(autotune_cmd() + ["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(out, "digits-stdout")
    assert s["phase"] == "DONE"
    assert s["trials"]["succeeded"] == 2 and s["trials"]["earlyStopped"] == 1 and s["trials"]["failed"] == 0, s["trials"]

    logged = by_trial(record)
    rows = table(out, "digits-stdout")
    assert set(rows) == set(logged) == {"digits-stdout-0", "digits-stdout-1", "digits-stdout-2"}
    for tid in ("digits-stdout-0", "digits-stdout-1"):
        row, epochs = rows[tid], logged[tid]
        assert row["state"] == "SUCCEEDED" and row["exit_code"] == "0", row
        assert len(epochs) == EPOCHS and printed(out, "digits-stdout", tid) == [
            {"accuracy": e["accuracy"], "loss": e["loss"]} for e in epochs]
        # Every printed accuracy is an intermediate result, in order; the last is the final result.
        assert json.loads(row["intermediate"]) == [e["accuracy"] for e in epochs]
        metrics = json.loads(row["metrics"])
        assert float(row["value"]) == epochs[-1]["accuracy"] == metrics["default"] == metrics["accuracy"]
        # The additional metric is kept; the printed names that are neither (epoch, eta0) are not.
        assert metrics["loss"] == epochs[-1]["loss"] and set(metrics) == {"default", "accuracy", "loss"}

    finals = {tid: logged[tid][-1]["accuracy"] for tid in ("digits-stdout-0", "digits-stdout-1")}
    best = max(finals, key=lambda k: finals[k])
    assert s["bestTrial"]["name"] == best and s["bestTrial"]["value"] == finals[best]

    # The bad trial: Medianstop stopped it from what it printed, its process was killed
    # before its 6 slow epochs ended, and its last printed accuracy is kept.
    bad = rows["digits-stdout-2"]
    assert bad["state"] == "EARLY_STOPPED", bad
    curve = json.loads(bad["intermediate"])
    assert 3 <= len(curve) < EPOCHS and curve == [e["accuracy"] for e in logged["digits-stdout-2"]][: len(curve)]
    assert float(bad["value"]) == curve[-1] and "assessor" in bad["message"]
    assert "training finished" not in (out / "digits-stdout" / "trials" / "digits-stdout-2" / "trial.log").read_text()


@pytest.mark.parametrize("ended_meanwhile", [False, True], ids=["adopted-running", "ended-meanwhile"])
def test_a_killed_run_started_again_loses_and_duplicates_no_step(tmp_path: Path, ended_meanwhile: bool) -> None:
    """`autotune run` SIGKILLed while its trials print: the trials keep running; the next run
    adopts them (or, if they ended meanwhile, takes their recorded exit), reads their logs from
    the start, and the tuner server keeps each step once."""
    record, out = tmp_path / "epochs.jsonl", tmp_path / "out"
    slow_a, slow_b = {**GOOD_A, "epoch_seconds": 1.5}, {**GOOD_B, "epoch_seconds": 1.5}
    path = write_manifest(tmp_path / "e.yaml", stdout_manifest("restart", record, [slow_a, slow_b], concurrency=2))
    cmd = autotune_cmd() + ["run", str(path), "--output", str(out), "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # Killed once both trials printed 2 epochs and the tuner server recorded them (polled,
        # not a pause hoped to be long enough: the next run must meet steps already kept).
        while not (len(logs := by_trial(record)) == 2 and all(len(v) >= 2 for v in logs.values())
                   and recorded_steps(out / "restart" / "autotune.db", set(logs)) >= 2):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    if ended_meanwhile:  # both trials print their 6 epochs and exit while no autotune runs
        deadline = time.monotonic() + 60
        while not all(len(v) == EPOCHS for v in by_trial(record).values()) or any(
                "training finished" not in (out / "restart" / "trials" / t / "trial.log").read_text()
                for t in by_trial(record)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(out, "restart")
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 2, s
    logged = by_trial(record)
    for tid, row in table(out, "restart").items():
        epochs = logged[tid]
        assert len(epochs) == EPOCHS, f"{tid} ran again or was cut short: {epochs}"
        assert json.loads(row["intermediate"]) == [e["accuracy"] for e in epochs], tid
        assert float(row["value"]) == epochs[-1]["accuracy"] and json.loads(row["metrics"])["loss"] == epochs[-1]["loss"]


def test_the_example_runs_as_the_readme_says(tmp_path: Path) -> None:
    """examples/digits-stdout.yaml (fewer trials): its script only prints, and every trial
    gets its curve and final value from that output."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "examples" / "digits-stdout.yaml").read_text())
    doc["spec"]["maxTrialNum"] = 3
    path = write_manifest(tmp_path / "e.yaml", doc)
    r = subprocess.run(autotune_cmd() + ["run", str(path), "--output", str(tmp_path / "out"), "--workdir",
                                         str(repo / "examples"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_status(tmp_path / "out", "digits-stdout")["trials"]["succeeded"] >= 2
    for tid, row in table(tmp_path / "out", "digits-stdout").items():
        epochs = printed(tmp_path / "out", "digits-stdout", tid)
        assert json.loads(row["intermediate"]) == [e["accuracy"] for e in epochs], tid
        if row["state"] == "SUCCEEDED":
            assert len(epochs) == 15 and json.loads(row["metrics"]) == {
                "accuracy": epochs[-1]["accuracy"], "loss": epochs[-1]["loss"], "default": epochs[-1]["accuracy"]}
