"""`autotune run` end to end: real processes, real reports over HTTP, real files."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import (
    TRIALS,
    autotune_cmd,
    manifest,
    pid_alive,
    read_records,
    read_status,
    run_autotune,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]


def toy(*args: str) -> list[str]:
    return [sys.executable, str(TRIALS / "toy.py"), *args]


def rows(out: Path, name: str) -> list[dict[str, str]]:
    with open(out / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_example_trains_real_models_and_ends_done(tmp_path: Path) -> None:
    r = run_autotune(["run", str(REPO / "examples" / "digits-mlp.yaml"), "--output", str(tmp_path)], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path, "digits-mlp")
    assert s["phase"] == "DONE"
    assert s["trials"]["total"] == 16 and s["trials"]["running"] == 0
    assert s["trials"]["failed"] == 0
    best = s["bestTrial"]
    assert best is not None and best["value"] > 0.9  # an MLP on digits reaches > 90% accuracy
    table = rows(tmp_path, "digits-mlp")
    assert len(table) == 16
    succeeded = [t for t in table if t["state"] == "SUCCEEDED"]
    assert best["value"] == max(float(t["value"]) for t in succeeded)
    # per-epoch curves reached the server: every succeeded trial reported all 20 epochs
    assert all(len(json.loads(t["intermediate"])) == 20 for t in succeeded)
    log = (tmp_path / "digits-mlp" / "trials" / best["name"] / "trial.log").read_text()
    assert "epoch 20: validation accuracy" in log


def test_status_counts_best_trial_and_csv(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    doc = manifest(max_trials=6, concurrency=3, env=[{"name": "TOY_RECORD", "value": str(rec)}, {"name": "TOY_FROM_SPEC", "value": "${parameters.y}"}])
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "toy")
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 6 and s["trials"]["total"] == 6
    records = read_records(rec)
    assert len(records) == 6
    values = {x["trial"]: -((x["params"]["x"] - 1) ** 2) - (x["params"]["y"] + 0.5) ** 2 for x in records}
    best_trial = max(values, key=values.get)
    assert s["bestTrial"]["name"] == best_trial
    assert abs(s["bestTrial"]["value"] - values[best_trial]) < 1e-9
    # env values get placeholders substituted too
    assert all(x["env"]["TOY_FROM_SPEC"] == str(x["params"]["y"]) for x in records)
    table = rows(tmp_path / "out", "toy")
    assert [int(t["sequence"]) for t in table] == list(range(6))
    assert all(float(t["duration_s"]) >= 0 and t["exit_code"] == "0" for t in table)
    assert json.loads(table[0]["metrics"])["x"] == json.loads(table[0]["parameters"])["x"]
    assert "best" in r.stderr and "trials 6/6 done" in r.stderr  # the progress display


def test_failed_and_silent_trials_are_counted_not_dropped(tmp_path: Path) -> None:
    space = {"mode": {"_type": "choice", "_value": ["ok", "fail", "nofinal"]}}
    doc = manifest(space=space, tuner="GridSearch", command=toy("--mode", "${parameters.mode}"), max_trials=10)
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path, "toy")
    # the grid has three points: the experiment ends DONE after them, below maxTrialNum
    assert s["phase"] == "DONE" and "no new configurations" in s["message"]
    assert s["trials"] == {"total": 3, "succeeded": 1, "failed": 2, "earlyStopped": 0, "stopped": 0, "running": 0, "waiting": 0}
    by_mode = {json.loads(t["parameters"])["mode"]: t for t in rows(tmp_path, "toy")}
    assert by_mode["fail"]["message"] == "exited with code 3" and by_mode["fail"]["exit_code"] == "3"
    assert by_mode["nofinal"]["message"] == "exited 0 without reporting a final metric"
    assert "failing on purpose" in (tmp_path / "toy" / "trials" / by_mode["fail"]["id"] / "trial.log").read_text()


def test_max_failed_trials_ends_error_naming_the_last_failure(tmp_path: Path) -> None:
    doc = manifest(command=toy("--mode", "fail"), max_trials=20, concurrency=1)
    doc["spec"]["maxFailedTrialNum"] = 3
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path)])
    assert r.returncode == 1, r.stderr  # ERROR, not the 20 failing trials maxTrialNum would allow
    s = read_status(tmp_path, "toy")
    assert s["phase"] == "ERROR" and s["trials"]["failed"] == 3 and s["trials"]["total"] == 3
    last = max(rows(tmp_path, "toy"), key=lambda t: int(t["sequence"]))["id"]
    assert s["message"] == f"maxFailedTrialNum (3) reached: 3 trial(s) failed; last: {last}: exited with code 3"
    assert "experiment ERROR: maxFailedTrialNum (3) reached" in r.stdout


def test_objective_goal_ends_the_search_done_at_the_first_trial_that_reaches_it(tmp_path: Path) -> None:
    # toy's value is -(x-1)^2 - (y+0.5)^2: only x = 1 (value 0) reaches the goal -0.5.
    space = {"x": {"_type": "choice", "_value": [3, 5, 1, 7, 9]}, "y": {"_type": "choice", "_value": [-0.5]}}
    doc = manifest(space=space, tuner="GridSearch", max_trials=5, concurrency=1)
    doc["spec"]["objectiveGoal"] = -0.5
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path, "toy")
    table = sorted(rows(tmp_path, "toy"), key=lambda t: int(t["sequence"]))
    assert s["phase"] == "DONE" and s["trials"]["total"] == len(table) < 5, s  # not all five
    last = table[-1]
    assert json.loads(last["parameters"])["x"] == 1 and s["bestTrial"]["name"] == last["id"]
    assert all(float(t["value"]) < -0.5 for t in table[:-1])
    assert s["message"] == f"objectiveGoal (-0.5) reached by {last['id']} (0)" and s["reason"] == "GoalReached"
    assert f"objectiveGoal (-0.5) reached by {last['id']}" in r.stdout


def test_a_trial_past_max_trial_seconds_is_stopped_and_failed(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    doc = manifest(command=toy("--mode", "sleep", "--sleep", "60"), max_trials=2, concurrency=2,
                   env=[{"name": "TOY_RECORD", "value": str(rec)}])
    doc["spec"]["maxTrialSeconds"] = 2
    # The trials' 3 x 60 s of sleep outlast run_autotune's 180 s timeout: the run ends only by stopping them.
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path)])
    assert r.returncode == 1 and "no trial succeeded" in r.stderr, r.stderr  # f92d75c: no result, exit 1
    s = read_status(tmp_path, "toy")
    assert s["phase"] == "DONE" and s["trials"]["failed"] == 2 and s["trials"]["stopped"] == 0, s
    table = rows(tmp_path, "toy")
    assert [t["message"] for t in table] == ["ran longer than maxTrialSeconds (2s) and was stopped"] * 2
    assert all(float(t["duration_s"]) >= 2 for t in table)
    assert read_records(rec) == []  # killed before they could finish


def test_timeout_stops_running_trials(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    doc = manifest(command=toy("--mode", "sleep", "--sleep", "30"), max_trials=10, max_seconds=3,
                   env=[{"name": "TOY_RECORD", "value": str(rec)}])
    # The trials' 3 x 30 s of sleep: they cannot end by themselves before maxExecSeconds stops them.
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path)])
    assert r.returncode == 1 and "no trial succeeded" in r.stderr, r.stderr  # f92d75c: no result, exit 1
    s = read_status(tmp_path, "toy")
    assert s["phase"] == "TIMEOUT" and "maxExecSeconds" in s["message"]
    assert s["trials"]["stopped"] == 2 and s["trials"]["running"] == 0 and s["trials"]["total"] == 2
    assert read_records(rec) == []  # killed before they could finish


def test_devices_one_trial_per_device(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    doc = manifest(command=toy("--sleep", "0.2"), max_trials=6, concurrency=4, env=[{"name": "TOY_RECORD", "value": str(rec)}])
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path), "--devices", "0,1"])
    assert r.returncode == 0, r.stderr
    records = read_records(rec)
    assert len(records) == 6
    for x in records:
        assert x["env"]["CUDA_VISIBLE_DEVICES"] == x["env"]["ASCEND_RT_VISIBLE_DEVICES"] == x["env"]["DEVICE_ID"]
        assert x["env"]["DEVICE_ID"] in ("0", "1")
    for dev in ("0", "1"):
        spans = sorted((x["start"], x["end"]) for x in records if x["env"]["DEVICE_ID"] == dev)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"two trials overlapped on device {dev}"


def test_missing_working_dir_needs_workdir(tmp_path: Path) -> None:
    doc = manifest(working_dir="/mnt/mnist-distributed", command=["python3", "-c", "import autotune; autotune.report_final_result(1)"], max_trials=1)
    path = write_manifest(tmp_path / "e.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out")])
    assert r.returncode == 2 and "--workdir" in r.stderr and "/mnt/mnist-distributed" in r.stderr
    assert not (tmp_path / "out").exists()
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--workdir", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert read_status(tmp_path / "out", "toy")["trials"]["succeeded"] == 1


def test_ctrl_c_stops_every_trial_and_a_rerun_finishes(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    doc = manifest(command=toy("--sleep", "1.5", "--steps", "2"), max_trials=6, env=[{"name": "TOY_RECORD", "value": str(rec)}])
    path = write_manifest(tmp_path / "e.yaml", doc)
    out = tmp_path / "out"
    proc = subprocess.Popen(autotune_cmd() + ["run", str(path), "--output", str(out)], stderr=subprocess.PIPE, text=True)
    trials_dir = out / "toy" / "trials"
    deadline = time.monotonic() + 30
    pids: list[int] = []
    while time.monotonic() < deadline and len(pids) < 2:
        pids = [int(p.read_text()) for p in trials_dir.glob("*/pid")] if trials_dir.exists() else []
        time.sleep(0.1)
    assert len(pids) == 2, "two trials should be running"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not any(pid_alive(p) for p in pids), "a trial process outlived Ctrl-C"
    s = read_status(out, "toy")
    # The two interrupted trials wait to run again: not stopped, not counted as ended.
    assert s["trials"]["running"] == 0 and s["trials"]["waiting"] == 2 and s["trials"]["stopped"] == 0
    assert s["phase"] == "ERROR" and "interrupted" in s["message"]
    # Running the same command again continues the experiment to exactly maxTrialNum, all finished.
    r = run_autotune(["run", str(path), "--output", str(out)])
    assert r.returncode == 0, r.stderr
    s = read_status(out, "toy")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 6 and s["trials"]["succeeded"] == 6
    assert len(rows(out, "toy")) == 6


def test_sdk_outside_an_experiment_returns_false_and_prints(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")}
    r = subprocess.run(toy("--steps", "2"), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "[autotune] intermediate result 1" in r.stderr and "[autotune] final result" in r.stderr


def test_pbt_waits_for_each_generation(tmp_path: Path) -> None:
    """PBT's tuner says 'try later' until a generation ends: the controller waits, not ends."""
    rec = tmp_path / "records.jsonl"
    space = {"x": {"_type": "uniform", "_value": [-2, 2]}}
    args = {"optimize_mode": "maximize", "population_size": 2, "all_checkpoint_dir": str(tmp_path / "ckpt")}
    doc = manifest(space=space, tuner="PBTTuner", class_args=args, command=toy("--sleep", "0.2"), max_trials=6,
                   concurrency=4, env=[{"name": "TOY_RECORD", "value": str(rec)}])
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "toy")
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 6
    records = sorted(read_records(rec), key=lambda x: x["sequence"])
    for gen in (1, 2):
        prev_end = max(x["end"] for x in records if x["sequence"] // 2 == gen - 1)
        assert all(x["start"] >= prev_end for x in records if x["sequence"] // 2 == gen)
    assert all(x["params"]["save_checkpoint_dir"] for x in records)
