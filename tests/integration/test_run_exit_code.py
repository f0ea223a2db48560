"""`autotune run` exits 1 when the experiment ended with no result: no trial succeeded, so
there is no best trial (nor Pareto front) to use. The experiment's phase is unchanged (DONE:
every trial ended, as NNI's DONE and Katib's Succeeded on MaxTrialsReached), but a script or
CI job that runs it must not take 'every trial failed' for success."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.conftest import manifest, read_status, run_autotune, write_manifest


def test_run_exits_1_when_every_trial_failed(tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(name="allfail", max_trials=3, concurrency=1,
                                                     command=[sys.executable, "-c", "import sys; sys.exit(1)"]))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    # Before: exit 0, as for an experiment that found its best trial.
    assert r.returncode == 1, r.stdout + r.stderr
    s = read_status(tmp_path / "out", "allfail")
    assert s["phase"] == "DONE" and s["bestTrial"] is None and s["trials"]["failed"] == 3, s
    assert "experiment DONE: all 3 trials ended" in r.stdout
    assert r.stderr.strip().splitlines()[-1] == ("autotune: no trial succeeded (3 failed, 0 early-stopped, 0 stopped): "
                                                "the experiment has no result; exit code 1")


def test_run_exits_0_when_one_trial_succeeded_and_the_others_failed(tmp_path: Path) -> None:
    script = tmp_path / "half.py"  # fails for x < 0, else reports x as its result
    script.write_text("import sys, autotune\n"
                      "x = autotune.get_next_parameter()['x']\n"
                      "sys.exit(1) if x < 0 else autotune.report_final_result(float(x))\n")
    m = write_manifest(tmp_path / "e.yaml", manifest(name="half", max_trials=4, concurrency=1, tuner="GridSearch",
                                                     space={"x": {"_type": "choice", "_value": [-1, 1, -2, -3]}},
                                                     command=[sys.executable, str(script)]))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = read_status(tmp_path / "out", "half")
    assert s["trials"]["succeeded"] == 1 and s["trials"]["failed"] == 3, s["trials"]
