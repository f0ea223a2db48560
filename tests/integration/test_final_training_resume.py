"""Final training cut short by maxExecSeconds, then the same command with the limit raised:
real `autotune run` processes, trials fitting scikit-learn models on iris."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.conftest import TRIALS, manifest, read_status, run_autotune, write_manifest

NAME = "iris-final"
# The first run's maxExecSeconds: the 3 search trials (5-7 s each, ~17 s in all with the run's
# start on an idle machine) must end within it for final training to start and be cut short.
# 30 s left ~13 s of margin, which a loaded 2-core machine can use up (the run then ends TIMEOUT
# with no final trial); the final trial sleeps 120 s, so only this test's length grows.
FIRST_LIMIT = 60


def spec(max_seconds: int) -> dict:
    doc = manifest(NAME, space={"C": {"_type": "loguniform", "_value": [0.01, 10]}}, tuner="Random",
                   command=[sys.executable, str(TRIALS / "iris_final_slow.py")], max_trials=3, concurrency=1,
                   max_seconds=max_seconds)
    doc["spec"]["finalTraining"] = {"enabled": True}
    return doc


def test_final_training_stopped_by_max_exec_seconds_runs_again_once_it_is_raised(tmp_path: Path) -> None:
    """maxExecSeconds stopped the final trial (STOPPED, no result) and the experiment ended
    TIMEOUT. Raising the limit and running the same command again said 'the experiment stays
    TIMEOUT (...; final training ended)', then wrote DONE and 'final training ended' with no
    final result: a stopped final trial counted as its configuration final-trained."""
    path = write_manifest(tmp_path / "e.yaml", spec(FIRST_LIMIT))
    out = tmp_path / "out"
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env={"FINAL_SLEEP": "120"}, timeout=300)
    assert r.returncode == 0, r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "TIMEOUT" and s["trials"]["succeeded"] == 3, s
    (stopped,) = s["finalTraining"]
    assert stopped["state"] == "STOPPED" and stopped["parameters"] == s["bestTrial"]["parameters"]
    # The run's summary says how final training went, not only the search's best.
    assert f"final training: {NAME}-final-3 STOPPED (maxExecSeconds ({FIRST_LIMIT}s) reached" in r.stdout, r.stdout

    write_manifest(path, spec(600))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env={"FINAL_SLEEP": "0"}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming iris-final" in r.stderr.splitlines()[0], r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["message"] == "all 3 trials ended; final training ended", s
    first, again = s["finalTraining"]
    assert first == stopped  # the stopped attempt stays in the history
    assert again["name"] == f"{NAME}-final-4" and again["state"] == "SUCCEEDED"
    assert again["parameters"] == s["bestTrial"]["parameters"] and 0.5 < again["value"] <= 1.0
    assert s["trials"]["total"] == 5
    assert f"final training: {NAME}-final-4 SUCCEEDED value={again['value']:.6g} parameters=" in r.stdout, r.stdout
    assert f"final training: {NAME}-final-3 STOPPED" in r.stdout
