"""An Azure ML sweep job whose trial is a real scikit-learn script logging with MLflow
(examples/digits_mlflow.py, Azure's convention: mlflow.log_metric, no `import autotune`),
converted by `autotune convert` with no flags and run by `autotune run` to DONE.

Real parts: the converter, `autotune run` with its embedded tuner server, the Random tuner's
Sobol rule and the Bandit assessor, trial processes training on digits.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import read_status, run_autotune

pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Azure's loguniform takes the logarithms of its bounds.
LR, ALPHA = (1e-4, 1e-1), (1e-6, 1e-2)
SWEEP = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
    "type": "sweep",
    "experiment_name": "digits_sweep",
    "trial": {
        "code": "src",
        "command": (f"{sys.executable} digits_mlflow.py --epochs ${{{{inputs.epochs}}}} "
                    "--learning-rate ${{search_space.learning_rate}} --alpha ${{ search_space.alpha }} "
                    "&& touch ${{outputs.model}}/done"),
        "environment": "azureml:AzureML-sklearn-1.5@latest",
    },
    "inputs": {"epochs": 4},
    "outputs": {"model": {"type": "uri_folder"}},
    "compute": "azureml:cpu-cluster",
    "sampling_algorithm": {"type": "random", "seed": 7, "rule": "sobol"},
    "search_space": {
        "learning_rate": {"type": "loguniform", "min_value": math.log(LR[0]), "max_value": math.log(LR[1])},
        "alpha": {"type": "loguniform", "min_value": math.log(ALPHA[0]), "max_value": math.log(ALPHA[1])},
    },
    "objective": {"goal": "maximize", "primary_metric": "accuracy"},
    "early_termination": {"type": "bandit", "slack_factor": 0.5, "delay_evaluation": 2},
    "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 600, "trial_timeout": 300},
}


def test_azure_sweep_job_converts_and_runs_to_done(tmp_path: Path) -> None:
    azure = tmp_path / "azure"
    (azure / "src").mkdir(parents=True)
    shutil.copy(EXAMPLES / "digits_mlflow.py", azure / "src" / "digits_mlflow.py")
    (azure / "job-sweep.yml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    converted = tmp_path / "autotune" / "digits.yaml"
    converted.parent.mkdir()

    c = run_autotune(["convert", str(azure / "job-sweep.yml"), "-o", str(converted)])
    assert c.returncode == 0, c.stderr
    assert "experiment_name 'digits_sweep'" in c.stderr and "trial.environment" in c.stderr
    spec = yaml.safe_load(converted.read_text())["spec"]
    assert spec["primaryMetric"] == "accuracy" and spec["seed"] == 7
    assert spec["maxTrialNum"] == 4 and spec["trialConcurrency"] == 2 and spec["maxTrialSeconds"] == 300
    assert json.loads(spec["tuner"]["classArgs"]) == {"optimize_mode": "maximize", "rule": "sobol"}
    assert spec["assessor"]["builtinAssessorName"] == "Bandit"

    r = run_autotune(["run", str(converted), "--output", str(tmp_path / "runs"), "--quiet"], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "runs", "digits-sweep")
    assert s["phase"] == "DONE", s
    assert s["trials"]["total"] == 4 and s["trials"]["failed"] == 0
    assert s["bestTrial"]["value"] > 0.8  # a linear model on digits
    with open(tmp_path / "runs" / "digits-sweep" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and any(t["state"] == "SUCCEEDED" for t in rows)
    for t in rows:
        p = json.loads(t["parameters"])
        # the log-space bounds reached the trials as the values themselves
        assert LR[0] <= p["learning_rate"] <= LR[1] and ALPHA[0] <= p["alpha"] <= ALPHA[1], p
        assert len(json.loads(t["intermediate"])) >= 1  # each epoch's mlflow.log_metric arrived
        if t["state"] == "SUCCEEDED":  # ${{outputs.model}}: a folder of the trial's own, made before the command
            assert (azure / "src" / "outputs" / t["id"] / "model" / "done").is_file(), t["id"]
