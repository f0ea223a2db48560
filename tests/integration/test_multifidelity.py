"""`autotune run` with multi-fidelity advisors: a real SGDClassifier trained epoch by epoch
on digits, budgets arriving as EPOCHS, promotions resuming from the trial's checkpoint,
and final training rerunning the best configuration at full budget."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, manifest, read_records, read_status, run_autotune, write_manifest

REPO = Path(__file__).resolve().parents[2]

SPACE = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]}, "eta0": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}


def advisor_manifest(name: str, advisor: str, args: dict[str, Any], max_trials: int, record: Path,
                     final: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = manifest(name=name, space=SPACE, command=[sys.executable, str(TRIALS / "sgd_epochs.py")], max_trials=max_trials,
                   concurrency=2, env=[{"name": "SGD_RECORD", "value": str(record)}])
    spec = doc["spec"]
    del spec["tuner"]
    spec["advisor"] = {"builtinAdvisorName": advisor, "classArgs": json.dumps(args)}
    if final is not None:
        spec["finalTraining"] = final
    return doc


def trials_csv(out: Path, name: str) -> list[dict[str, str]]:
    with open(out / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_hyperband_budgets_resume_and_final_training(tmp_path: Path) -> None:
    rec = tmp_path / "runs.jsonl"
    args = {"optimize_mode": "maximize", "R": 9, "eta": 3, "max_brackets": 1}
    doc = advisor_manifest("hb", "Hyperband", args, 20, rec, final={"enabled": True})
    r = run_autotune(["run", str(write_manifest(tmp_path / "hb.yaml", doc)), "--output", str(tmp_path / "out")], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "hb")
    assert s["phase"] == "DONE", s["message"]
    runs = read_records(rec)
    search = [x for x in runs if not x["final"]]
    # one bracket with s = 2: 9 configs x 1 epoch, 3 x 3 epochs, 1 x 9 epochs
    assert Counter(x["budget"] for x in search) == {1: 9, 3: 3, 9: 1}
    assert all(x["EPOCHS"] == str(x["budget"]) and x["PIPESTEP"] == "hpo" for x in search)
    # promotions resumed from the lower rung's checkpoint: they trained only the missing epochs
    promoted = [x for x in search if x["budget"] > 1]
    assert [x["start"] for x in promoted if x["budget"] == 3] == [1, 1, 1]
    assert [x["start"] for x in promoted if x["budget"] == 9] == [3]
    assert all(x["epochs"] == x["budget"] for x in search)
    # the best trial is the one trained for the full budget, then rerun once in final training
    assert s["bestTrial"]["budget"] == 9
    final = [x for x in runs if x["final"]]
    assert len(final) == 1 and final[0]["budget"] == 9 and final[0]["start"] == 0 and final[0]["EPOCHS"] is None
    assert final[0]["PIPESTEP"] == "fullytrain"
    assert len(s["finalTraining"]) == 1 and s["finalTraining"][0]["state"] == "SUCCEEDED"
    assert s["finalTraining"][0]["parameters"] == s["bestTrial"]["parameters"]
    assert s["finalTraining"][0]["value"] > 0.85  # a linear model on digits
    table = trials_csv(tmp_path / "out", "hb")
    assert len(table) == 14
    assert Counter((t["kind"], t["budget"]) for t in table) == {("search", "1"): 9, ("search", "3"): 3, ("search", "9"): 1,
                                                                 ("final", "9"): 1}


def test_hyperband_example_resumes_promotions_and_trains_the_best_once_more(tmp_path: Path) -> None:
    """examples/digits-hyperband.yaml as shipped (22 search trials, R = 9, eta = 3)."""
    r = run_autotune(["run", str(REPO / "examples" / "digits-hyperband.yaml"), "--output", str(tmp_path)], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path, "digits-hyperband")
    assert s["phase"] == "DONE" and s["trials"]["failed"] == 0, s["message"]
    table = trials_csv(tmp_path, "digits-hyperband")
    search = [t for t in table if t["kind"] == "search"]
    assert len(search) == 22 and {t["budget"] for t in search} == {"1", "3", "9"}
    lower = {3: 1, 9: 3}  # the rung a promotion resumes from
    resumed = 0
    for t in search:
        budget, epochs = int(t["budget"]), len(json.loads(t["intermediate"]))
        log = (tmp_path / "digits-hyperband" / "trials" / t["id"] / "trial.log").read_text()
        if epochs < budget:  # a promotion: it trained only the epochs its checkpoint lacked
            assert epochs == budget - lower[budget] and f"resuming after epoch {lower[budget]}" in log
            resumed += 1
        else:
            assert epochs == budget and "resuming" not in log
        assert f"epoch {budget}/{budget}: validation accuracy" in log
    assert resumed >= 2  # bracket s = 2 promotes 3 configs to 3 epochs and 1 to 9
    assert s["bestTrial"]["budget"] == 9
    [final] = [t for t in table if t["kind"] == "final"]
    assert final["budget"] == "9" and len(json.loads(final["intermediate"])) == 9 and final["state"] == "SUCCEEDED"
    assert json.loads(final["parameters"]) == s["bestTrial"]["parameters"]
    assert s["finalTraining"][0]["name"] == final["id"] and s["finalTraining"][0]["value"] > 0.85
    log = (tmp_path / "digits-hyperband" / "trials" / final["id"] / "trial.log").read_text()
    assert "final training: 9 epochs" in log and "resuming" not in log
    # the progress line counts the search against maxTrialNum and the rerun apart
    assert "trials 22/22 done" in r.stderr and "final 1/1 done" in r.stderr and "23/22" not in r.stderr


def test_asha_runs_with_any_concurrency_and_stops_at_max_trial_num(tmp_path: Path) -> None:
    rec = tmp_path / "runs.jsonl"
    doc = advisor_manifest("asha", "ASHA", {"optimize_mode": "maximize", "min_budget": 1, "max_budget": 9, "eta": 3}, 14, rec)
    r = run_autotune(["run", str(write_manifest(tmp_path / "asha.yaml", doc)), "--output", str(tmp_path / "out")], timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "asha")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 14 and s["trials"]["failed"] == 0
    runs = read_records(rec)
    budgets = Counter(x["budget"] for x in runs)
    assert set(budgets) <= {1, 3, 9} and budgets[3] >= 1  # something was promoted
    assert budgets[1] > budgets[3] >= budgets[9]
    assert all(x["start"] in (0, 1, 3) and x["epochs"] == x["budget"] for x in runs)
    assert all(x["start"] > 0 for x in runs if x["budget"] > 1)  # promotions resumed
    assert s.get("finalTraining") is None


def test_http_client_carries_budget_resume_and_final_trials(server) -> None:  # noqa: ANN001 (fixture)
    from tuner_server.client import HttpClient
    from tuner_server.engine import Assignment, ExperimentConfig, NotNow

    from tests.integration.conftest import ADMIN

    c = HttpClient(server.url, ADMIN)
    cfg = ExperimentConfig.model_validate({"searchSpace": json.dumps(SPACE), "tuner": {
        "name": "SuccessiveHalving", "classArgs": {"max_budget": 3, "eta": 3, "exec_mode": "serial"}}})
    c.register("mf", "mf", cfg)
    first = [c.suggest("mf", i) for i in range(3)]
    assert all(isinstance(a, Assignment) and a.budget == 1 and a.resume is None for a in first)
    assert isinstance(c.suggest("mf", 3), NotNow)
    for a, v in zip(first, (0.2, 0.9, 0.5)):
        with server.client() as h:
            h.post(f"/api/v1/experiments/mf/trials/{a.trial_id}/final", json={"metric": v}).raise_for_status()
        c.end("mf", a.trial_id, 0)
    up = c.suggest("mf", 3)
    assert isinstance(up, Assignment) and (up.budget, up.resume) == (3, first[1].trial_id)
    s = c.summary("mf")
    assert s["maxBudget"] == 3
    f = c.final_trial("mf", 4, dict(first[1].parameters), 3)
    assert (f.kind, f.budget, f.trial_id) == ("final", 3, "mf-final-4")
    assert c.trials("mf")[4]["kind"] == "final"
