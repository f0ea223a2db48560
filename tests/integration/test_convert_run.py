"""An NNI config for a real scikit-learn trial, converted by `autotune convert` and run by
`autotune run` to DONE: the switch is one command (plus NNI's import line)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import yaml

from tests.integration.conftest import TRIALS, read_status, run_autotune

NNI_CONFIG = {
    "experimentName": "digits_sgd",
    "searchSpaceFile": "search_space.json",
    "trialCommand": "python3 nni_digits.py",
    "trialCodeDirectory": "code",
    "trialConcurrency": 2,
    "maxTrialNumber": 6,
    "maxExperimentDuration": "10m",
    "maxTrialDuration": "5m",
    "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "maximize", "seed": 3}},
    "assessor": {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize", "start_step": 3}},
    "trainingService": {"platform": "local"},
}
SPACE = {
    "alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
    "eta0": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "epochs": {"_type": "choice", "_value": [4, 6]},
}


def test_nni_config_converts_and_runs_to_done(tmp_path: Path) -> None:
    nni = tmp_path / "nni"
    (nni / "code").mkdir(parents=True)
    shutil.copy(TRIALS / "nni_digits.py", nni / "code" / "nni_digits.py")
    (nni / "config.yml").write_text(yaml.safe_dump(NNI_CONFIG))
    (nni / "search_space.json").write_text(json.dumps(SPACE))
    converted = tmp_path / "autotune" / "digits.yaml"
    converted.parent.mkdir()

    c = run_autotune(["convert", str(nni / "config.yml"), "-o", str(converted)])
    assert c.returncode == 0, c.stderr
    assert "experimentName 'digits_sgd'" in c.stderr and "maxExperimentDuration" in c.stderr
    doc = yaml.safe_load(converted.read_text())
    assert doc["spec"]["maxTrialSeconds"] == 300 and doc["spec"]["seed"] == 3

    r = run_autotune(["run", str(converted), "--output", str(tmp_path / "runs"), "--quiet"], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "runs", "digits-sgd")
    assert s["phase"] == "DONE"
    assert s["trials"]["total"] == 6 and s["trials"]["failed"] == 0
    assert s["bestTrial"]["value"] > 0.8  # logistic regression on digits
    with open(tmp_path / "runs" / "digits-sgd" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    done = [t for t in rows if t["state"] in ("SUCCEEDED", "EARLY_STOPPED")]
    assert done and all(json.loads(t["intermediate"]) for t in done)  # per-epoch reports arrived
    assert {json.loads(t["parameters"])["epochs"] for t in rows} <= {4, 6}
