"""Trials that write their metrics to a file or to TensorBoard event files (Katib's File and
TensorFlowEvent collectors) are tuned unchanged, locally.

Real parts: `autotune run` on examples/digits-file.yaml and examples/digits-tfevents.yaml,
whose trial processes train scikit-learn MLPs on digits and write JSON or TEXT lines, or event
files with their own writer; two trials at a time, both given the same spec path in their
command. Each trial's file is read back here, apart from AutoTune's collection, and the
values AutoTune recorded must be exactly what the trial wrote there.
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
import yaml

from autotune_operator.tfevents import event_scalars, split_records
from tests.integration.conftest import TRIALS, autotune_cmd, exit_code_for, manifest, read_status, run_autotune, write_manifest
from tests.integration.kill_harness import db_query

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EPOCHS = 6
SPEC_FILE = "/var/log/katib/metrics.log"
SPEC_DIR = "/var/log/katib/tfevent"


def example(name: str, trials: int, epochs: int = EPOCHS) -> dict[str, Any]:
    """The example as it is, smaller: fewer trials and epochs, no assessor (every trial runs
    to its end, so each one's last written value is its result), and this Python."""
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    spec = doc["spec"]
    spec["maxTrialNum"] = trials
    spec.pop("assessor", None)
    container = spec["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    cmd = container["command"]
    cmd[0] = sys.executable
    cmd[cmd.index("--epochs") + 1] = str(epochs)
    assert spec["trialConcurrency"] == 2
    return doc


def run(tmp_path: Path, doc: dict[str, Any]) -> Path:
    out = tmp_path / "out"
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out),
                      "--workdir", str(EXAMPLES)], timeout=300)
    assert r.returncode == exit_code_for(out / doc["metadata"]["name"]), r.stderr[-3000:]
    return out / doc["metadata"]["name"]


def trials(exp: Path) -> dict[str, dict[str, str]]:
    with open(exp / "trials.csv") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def check_best(exp: Path, written: dict[str, list[float]]) -> None:
    """Every trial succeeded with its last written value as its result and all its values as
    its curve; the experiment's best is the best of them."""
    rows = trials(exp)
    assert set(rows) == set(written)
    for tid, row in rows.items():
        assert row["state"] == "SUCCEEDED", row
        assert len(written[tid]) == EPOCHS
        assert float(row["value"]) == written[tid][-1], tid
        assert json.loads(row["intermediate"]) == written[tid], tid
    s = read_status(exp.parent, exp.name)
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == len(rows)
    assert s["bestTrial"]["value"] == max(v[-1] for v in written.values())


def test_json_file_metrics_each_trial_its_own_file(tmp_path: Path) -> None:
    exp = run(tmp_path, example("digits-file.yaml", trials=4))
    rows = trials(exp)
    written: dict[str, list[float]] = {}
    for tid, row in rows.items():
        f = exp / "trials" / tid / "metrics" / "metrics.log"
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        # Its own file: only its own epochs, written with its own parameters (two trials ran at
        # a time, both told to write /var/log/katib/metrics.log).
        params = json.loads(row["parameters"])
        assert [x["epoch"] for x in lines] == list(range(EPOCHS)), tid
        assert all((x["hidden_units"], x["lr"], x["alpha"]) == (params["hidden_units"], params["lr"], params["alpha"])
                   for x in lines), tid
        written[tid] = [x["accuracy"] for x in lines]
        assert json.loads(row["metrics"])["loss"] == lines[-1]["loss"]  # the additional metric
    check_best(exp, written)


def test_text_file_metrics(tmp_path: Path) -> None:
    doc = example("digits-file.yaml", trials=2)
    mc = doc["spec"]["metricsCollector"]
    mc["format"] = "TEXT"
    cmd = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"]
    cmd[cmd.index("--format") + 1] = "text"
    exp = run(tmp_path, doc)
    written = {}
    for tid in trials(exp):
        lines = (exp / "trials" / tid / "metrics" / "metrics.log").read_text().splitlines()
        kv = [dict(part.split("=") for part in line.split()) for line in lines]
        assert [int(x["epoch"]) for x in kv] == list(range(EPOCHS)), tid
        written[tid] = [float(x["accuracy"]) for x in kv]
    check_best(exp, written)


def event_values(directory: Path, tag: str) -> list[float]:
    """The scalars tagged ``tag`` in the event files of ``directory``, by step."""
    out: dict[int, float] = {}
    for f in sorted(directory.glob("events.out.tfevents.*")):
        data = f.read_bytes()
        records = split_records(data, 0, len(data), final=True)
        assert records.end == len(data) and not records.skipped  # whole, intact files
        for payload in records.payloads:
            for s in event_scalars(payload):
                if s.tag == tag:
                    out[s.step] = s.value
    return [out[k] for k in sorted(out)]


def test_tfevent_metrics_each_trial_its_own_directory(tmp_path: Path) -> None:
    exp = run(tmp_path, example("digits-tfevents.yaml", trials=4))
    written = {}
    for tid, row in trials(exp).items():
        logs = exp / "trials" / tid / "metrics" / "tfevent"
        # One writer per directory: two trials sharing /var/log/katib/tfevent would leave two.
        assert len(list((logs / "test").glob("events.out.tfevents.*"))) == 1, tid
        written[tid] = event_values(logs / "test", "accuracy")  # 'test/accuracy', the objective
        metrics = json.loads(row["metrics"])
        assert metrics["train/accuracy"] == event_values(logs / "train", "accuracy")[-1]
        assert metrics["test/loss"] == event_values(logs / "test", "loss")[-1]
    check_best(exp, written)


def test_a_path_the_trial_is_not_given_is_refused_and_one_never_written_fails_the_trial(tmp_path: Path) -> None:
    doc = example("digits-file.yaml", trials=1)
    container = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", "print('accuracy=0.5')"]
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out")])
    assert r.returncode == 2 and "spec.metricsCollector.path '/var/log/katib/metrics.log'" in r.stderr
    assert "AUTOTUNE_METRICS_PATH" in r.stderr and not (tmp_path / "out" / "digits-file" / "trials").exists()
    # Given the path, but writing elsewhere: the trial fails saying nothing was written there.
    container["command"] = [sys.executable, "-c", "import sys; open(sys.argv[1] + '.other', 'w').write('{}\\n')",
                            SPEC_FILE]
    exp = run(tmp_path, doc)
    (row,) = trials(exp).values()
    assert row["state"] == "FAILED"
    assert row["message"].startswith(f"exited 0, but no value of 'accuracy' was read from the metrics file {SPEC_FILE}")
    assert row["message"].endswith("it wrote nothing there")


def test_a_script_reading_autotune_metrics_path(tmp_path: Path) -> None:
    """No path in the command: the script writes where $AUTOTUNE_METRICS_PATH says (here also
    passed as $(AUTOTUNE_METRICS_PATH), expanded as Kubernetes would)."""
    doc = example("digits-file.yaml", trials=1)
    container = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    script = ("import json, os, sys; p = os.environ['AUTOTUNE_METRICS_PATH']; assert p == sys.argv[1], sys.argv; "
              "f = open(p, 'a'); [f.write(json.dumps({'accuracy': a}) + '\\n') for a in (0.25, 0.5)]")
    container["command"] = [sys.executable, "-c", script, "$(AUTOTUNE_METRICS_PATH)"]
    exp = run(tmp_path, doc)
    (row,) = trials(exp).values()
    assert row["state"] == "SUCCEEDED" and float(row["value"]) == 0.5, row
    assert (exp / "trials" / row["id"] / "metrics" / "metrics.log").read_text() == '{"accuracy": 0.25}\n{"accuracy": 0.5}\n'


def written_values(trial_metrics: Path, kind: str) -> list[float]:
    if kind == "json":
        return [json.loads(x)["accuracy"] for x in trial_metrics.read_text().splitlines()]
    return event_values(trial_metrics, "accuracy")


@pytest.mark.parametrize("kind", ["json", "tfevents"])
def test_a_killed_run_started_again_loses_and_duplicates_no_value(tmp_path: Path, kind: str) -> None:
    """`autotune run` SIGKILLed while two trials write their files: the trials keep writing
    to their own paths; the next run adopts them, reads their files from the start, and the
    tuner server keeps each step once: every trial's curve is exactly what it wrote."""
    path = SPEC_FILE if kind == "json" else SPEC_DIR
    command = [sys.executable, str(TRIALS / "file_sgd.py"), "--eta0", "${parameters.eta0}", "--epochs", str(EPOCHS),
               "--epoch-seconds", "1.0", "--kind", kind, "--metrics-path", path]
    doc = manifest(name="restart", space={"eta0": {"_type": "choice", "_value": [0.01, 0.003]}}, command=command,
                   tuner="GridSearch", max_trials=2, concurrency=2)
    doc["spec"].update({"primaryMetric": "accuracy", "metricsCollector": (
        {"kind": "File", "path": path, "format": "JSON"} if kind == "json" else {"kind": "TensorFlowEvent", "path": path})})
    out = tmp_path / "out"
    cmd = autotune_cmd() + ["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out), "--quiet"]
    exp = out / "restart"
    name = "metrics.log" if kind == "json" else "tfevent"

    def recorded_steps(db: Path) -> int:
        """The fewest steps the tuner server has recorded for a trial (0 until both have some)."""
        counts = [n for _, n in db_query(db, "SELECT trial_id, COUNT(*) FROM intermediate GROUP BY trial_id")]
        return min(counts) if len(counts) == 2 else 0

    def progress() -> list[int]:
        return [len(written_values(d / "metrics" / name, kind)) for d in sorted((exp / "trials").glob("*"))
                if (d / "metrics" / name).exists()]

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # Both trials wrote 2 epochs and the tuner server recorded them (polled, not a pause
        # hoped to be long enough: the next run must meet steps already kept).
        while not ((p := progress()) and len(p) == 2 and min(p) >= 2 and recorded_steps(exp / "autotune.db") >= 2):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(out, "restart")
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 2, s
    for tid, row in trials(exp).items():
        values = written_values(exp / "trials" / tid / "metrics" / name, kind)
        assert len(values) == EPOCHS, f"{tid} ran again or was cut short: {values}"
        if kind == "tfevents":  # a second run of the trial would have opened a second event file
            assert len(list((exp / "trials" / tid / "metrics" / name).glob("events.out.tfevents.*"))) == 1, tid
        assert json.loads(row["intermediate"]) == values, tid
        assert float(row["value"]) == values[-1], tid


def test_a_directory_at_the_metrics_path_is_named_in_the_message_and_warned_of_once(tmp_path: Path) -> None:
    """The trial makes a directory where its metrics file should be: read like a missing file
    (no I/O warning on every read), one warning, and the failed trial's message names it."""
    doc = example("digits-file.yaml", trials=1)
    container = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    # It lives a while after making the directory, so the controller reads the path many times.
    container["command"] = [sys.executable, "-c",
                            "import os, sys, time; os.makedirs(sys.argv[1]); time.sleep(3)", SPEC_FILE]
    out = tmp_path / "out"
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out),
                      "--workdir", str(EXAMPLES)], timeout=300)
    exp = out / doc["metadata"]["name"]
    assert r.returncode == exit_code_for(exp), r.stderr[-3000:]
    (row,) = trials(exp).values()
    assert row["state"] == "FAILED"
    path = exp / "trials" / row["id"]
    assert row["message"].startswith("exited 0, but nothing could be read: "), row["message"]
    assert row["message"].endswith(" is a directory, not a metrics file"), row["message"]
    named = row["message"].removeprefix("exited 0, but nothing could be read: ").removesuffix(
        " is a directory, not a metrics file")
    assert Path(named).is_dir() and Path(named).is_relative_to(path)
    assert "Is a directory" not in r.stderr
    assert r.stderr.count("is a directory, not a metrics file") == 1, r.stderr[-3000:]
