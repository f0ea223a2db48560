"""A trial's last output line without a newline counts only when the trial exited by itself
(operator/cut_lines.py): a killed trial's may be half a line, ``accuracy=0.9`` of
``accuracy=0.9734``, and was recorded as its last value.

Real parts: `autotune run` with its embedded tuner server and real trial processes that
write the line in two flushed pieces, then SIGKILL themselves, hang until maxTrialSeconds
kills them, or exit 0; read from their stdout (StdOut) and from their metrics file (File).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, write_manifest

MODES = ["selfkill", "hang", "exit"]


@pytest.mark.parametrize("kind", ["StdOut", "File"])
def test_a_killed_trials_unterminated_last_line_is_dropped_and_said(tmp_path: Path, kind: str) -> None:
    path = "/var/log/katib/metrics.log"
    command = [sys.executable, str(TRIALS / "cut_line.py"), "${parameters.mode}", *(["--file"] if kind == "File" else [])]
    doc = manifest(name="cut", space={"mode": {"_type": "choice", "_value": MODES}}, command=command,
                   tuner="GridSearch", max_trials=3, concurrency=3,
                   env=[{"name": "AUTOTUNE_METRICS_PATH", "value": path}] if kind == "File" else None)
    doc["spec"].update({"primaryMetric": "accuracy", "maxTrialSeconds": 3, "metricsCollector": (
        {"kind": "StdOut"} if kind == "StdOut" else {"kind": "File", "path": path})})
    out = tmp_path / "out"
    r = subprocess.run(autotune_cmd() + ["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out),
                                         "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "cut" / "trials.csv") as f:
        rows = {json.loads(row["parameters"])["mode"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(MODES)
    for mode in ("selfkill", "hang"):
        row = rows[mode]
        assert row["state"] == "FAILED", row
        assert json.loads(row["intermediate"]) == [0.5], row  # not [0.5, 0.9]
        assert "its last line 'accuracy=0.9' had no newline when it was killed" in row["message"], row
    assert "maxTrialSeconds" in rows["hang"]["message"] and "signal 9" in rows["selfkill"]["message"]
    # Exited by itself: its process wrote what it meant, newline or not.
    done = rows["exit"]
    assert done["state"] == "SUCCEEDED" and float(done["value"]) == 0.9, done
    assert json.loads(done["intermediate"]) == [0.5, 0.9] and "newline" not in done["message"], done
