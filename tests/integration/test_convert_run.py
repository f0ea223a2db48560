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


def katib_experiment(name: str, command: list[str], max_failed: int | None = None) -> dict:
    spec: dict = {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "grid"},
        "parallelTrialCount": 2,
        "maxTrialCount": 10,
        "parameters": [
            {"name": "num-layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
            {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
        ],
        "trialTemplate": {
            "primaryContainerName": "training",
            "trialParameters": [{"name": "layers", "reference": "num-layers"}, {"name": "opt", "reference": "optimizer"}],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                "containers": [{"name": "training", "image": "python:3.11", "command": command}],
                "restartPolicy": "Never"}}}},
        },
    }
    if max_failed is not None:
        spec["maxFailedTrialCount"] = max_failed
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}


def test_katib_grid_experiment_converts_and_runs_every_point(tmp_path: Path) -> None:
    """Katib's placeholders reach the trial's argv, and its int max (3) is tried."""
    import sys

    rec = tmp_path / "records.jsonl"
    command = [sys.executable, str(TRIALS / "toy.py"), "--echo=${trialParameters.layers}/${trialParameters.opt}"]
    src = tmp_path / "katib.yaml"
    src.write_text(yaml.safe_dump(katib_experiment("katib-grid", command)))
    out = tmp_path / "grid.yaml"
    c = run_autotune(["convert", str(src), "-o", str(out)])
    assert c.returncode == 0, c.stderr
    r = run_autotune(["run", str(out), "--output", str(tmp_path / "runs"), "--quiet"], env={"TOY_RECORD": str(rec)})
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "runs", "katib-grid")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 6  # the grid is used up before maxTrialCount 10
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    echoes = {r["echo"] for r in records}
    assert echoes == {f"{n}/{o}" for n in (1, 2, 3) for o in ("sgd", "adam")}
    assert all(r["echo"] == f"{r['params']['num-layers']}/{r['params']['optimizer']}" for r in records)


def test_katib_max_failed_trial_count_ends_after_one_more_failure(tmp_path: Path) -> None:
    """Katib fails the experiment when failed trials exceed maxFailedTrialCount (1): at the 2nd."""
    import sys

    src = tmp_path / "katib.yaml"
    command = [sys.executable, str(TRIALS / "toy.py"), "--mode=fail", "--echo=${trialParameters.layers}"]
    src.write_text(yaml.safe_dump(katib_experiment("katib-failing", command, max_failed=1)))
    out = tmp_path / "failing.yaml"
    assert run_autotune(["convert", str(src), "-o", str(out)]).returncode == 0
    doc = yaml.safe_load(out.read_text())
    doc["spec"]["trialConcurrency"] = 1  # one at a time, so no third trial is already running
    out.write_text(yaml.safe_dump(doc))
    r = run_autotune(["run", str(out), "--output", str(tmp_path / "runs"), "--quiet"])
    assert r.returncode == 1, r.stderr
    s = read_status(tmp_path / "runs", "katib-failing")
    assert s["phase"] == "ERROR" and s["trials"]["failed"] == 2 and s["trials"]["total"] == 2


def test_katib_hyperband_converts_and_runs_locally_with_its_budget(tmp_path: Path) -> None:
    """Katib's resource parameter becomes --num-epochs=$(EPOCHS), expanded by local mode as
    Kubernetes would, from the advisor's budget; one round of brackets, then DONE."""
    import sys

    rec = tmp_path / "runs.jsonl"
    exp = katib_experiment("katib-hb-local", [sys.executable, str(TRIALS / "katib_argv.py"),
                                              "--lr=${trialParameters.lr}", "--num-epochs=${trialParameters.layers}"])
    spec = exp["spec"]
    spec["algorithm"] = {"algorithmName": "hyperband", "algorithmSettings": [
        {"name": "resource_name", "value": "num-layers"}, {"name": "eta", "value": "3"}, {"name": "r_l", "value": "3"}]}
    spec["parameters"][1] = {"name": "lr", "parameterType": "double",
                             "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}}
    spec["trialTemplate"]["trialParameters"][1] = {"name": "lr", "reference": "lr"}
    spec["maxTrialCount"] = 20
    src = tmp_path / "katib.yaml"
    src.write_text(yaml.safe_dump(exp))
    out = tmp_path / "hb.yaml"
    c = run_autotune(["convert", str(src), "-o", str(out)])
    assert c.returncode == 0, c.stderr
    r = run_autotune(["run", str(out), "--output", str(tmp_path / "runs"), "--quiet"], env={"KATIB_RECORD": str(rec)},
                     timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "runs", "katib-hb-local")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 6 and s["trials"]["succeeded"] == 6
    runs = [json.loads(line) for line in rec.read_text().splitlines()]
    assert sorted(r["num_epochs"] for r in runs) == [1, 1, 1, 3, 3, 3]
    assert all(r["num_epochs"] == r["budget"] for r in runs)
