"""A multi-fidelity advisor (spec.advisor: Hyperband) through the operator on a real
kube-apiserver + controller-manager: each trial's batch/v1 Job carries its budget in the pod
template (EPOCHS and AUTOTUNE_BUDGET, seed 000's contract), the promoted trial resumes from
the lower rung's checkpoint, and final training reruns the best configuration without
EPOCHS. The harness's fake nodes run the pods as local processes, so a local directory plays
the shared checkpoint volume (AUTOTUNE_TRIAL_CHECKPOINT_ROOT) and the trials train a real
SGDClassifier on digits (tests/integration/trials/sgd_epochs.py)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kube_harness.experiments import ENDED, experiment_manifest, task, wait_for_phase
from tests.e2e.test_operator_helpers import ROOT, apply_manifest, jobs, operator_env

SCRIPT = ROOT / "tests" / "integration" / "trials" / "sgd_epochs.py"
SPACE = json.dumps({"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
                    "eta0": {"_type": "loguniform", "_value": [1e-4, 1e-1]}})
# R = 3, eta = 3, one bracket (s = 1): three configurations for 1 epoch, the best of them
# promoted to 3 epochs; then final training reruns it for the largest budget, 3.
ADVISOR_ARGS = json.dumps({"optimize_mode": "maximize", "R": 3, "eta": 3, "max_brackets": 1})


def hyperband_experiment(name: str, record: Path) -> dict[str, Any]:
    """The trial records each run in `record` (SGD_RECORD, next to the injected env)."""
    return experiment_manifest(
        name, space=SPACE, max_trials=20, concurrency=2, seed=3,
        tasks=[task("master", [sys.executable, SCRIPT], env={"SGD_RECORD": str(record)})],
        tuner=None, advisor={"builtinAdvisorName": "Hyperband", "classArgs": ADVISOR_ARGS},
        finalTraining={"enabled": True})


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("advisor-operator")
    ckpt = tmp / "checkpoints"
    ckpt.mkdir()
    extra_env = {"AUTOTUNE_WORKLOAD_KIND": "auto", "AUTOTUNE_TRIAL_CHECKPOINT_ROOT": str(ckpt)}
    with operator_env(kube_cluster, tmp, "adv-op", extra_env, script=None) as e:
        yield {**e, "ckpt": ckpt}


def container_env(job: dict[str, Any]) -> dict[str, str | None]:
    c = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c.get("env") or []}


def test_hyperband_trial_jobs_carry_their_budget(kube_cluster, env):
    ns, name = env["ns"], "hyperband"
    record = env["tmp"] / "runs.jsonl"
    apply_manifest(kube_cluster, ns, hyperband_experiment(name, record))
    ate = wait_for_phase(kube_cluster, ns, name, *ENDED, timeout=300, log=env["op"].output)
    st = ate["status"]
    assert st["phase"] == "DONE", st

    server_trials = {t["name"]: t for t in env["server"].get(f"/api/v1/experiments/{ate['metadata']['uid']}/trials").json()}
    search = {n: t for n, t in server_trials.items() if t.get("kind", "search") == "search"}
    final = {n: t for n, t in server_trials.items() if t.get("kind") == "final"}
    assert Counter(t["budget"] for t in search.values()) == {1: 3, 3: 1}, server_trials
    assert len(final) == 1, server_trials
    assert all(t["state"] == "SUCCEEDED" for t in server_trials.values()), server_trials

    js = jobs(kube_cluster, ns, name)
    assert sorted(j["metadata"]["name"] for j in js) == sorted(server_trials), "one Job per trial"
    by_name = {j["metadata"]["name"]: container_env(j) for j in js}
    for trial, t in search.items():
        e = by_name[trial]
        # The budget rides in the pod template, next to the user's own env (kept).
        assert e["EPOCHS"] == e["AUTOTUNE_BUDGET"] == str(t["budget"]), (trial, e)
        assert e["PIPESTEP"] == "hpo" and e["AUTOTUNE_TRIAL_KIND"] == "search", e
        assert e["SGD_RECORD"] == str(record)
        assert e["AUTOTUNE_SAVE_DIR"] == str(env["ckpt"] / trial), e
    [promoted] = [n for n, t in search.items() if t["budget"] == 3]
    resume = by_name[promoted].get("AUTOTUNE_RESUME_DIR")
    assert resume and Path(resume).parent == env["ckpt"] and Path(resume).name in search, by_name[promoted]
    assert search[Path(resume).name]["budget"] == 1, "resumes from the lower rung's run"
    assert all("AUTOTUNE_RESUME_DIR" not in e for n, e in by_name.items() if n in search and n != promoted)
    [(final_name, final_trial)] = final.items()
    fe = by_name[final_name]
    assert "EPOCHS" not in fe and fe["AUTOTUNE_BUDGET"] == "3", fe  # seed 000: final training runs without EPOCHS
    assert fe["PIPESTEP"] == "fullytrain" and fe["AUTOTUNE_TRIAL_KIND"] == "final", fe
    assert final_trial["parameters"] == search[promoted]["parameters"]

    # What the trial processes saw and did: trained as many epochs as their budget, the
    # promotion only the two it lacked (it loaded the 1-epoch model from the checkpoint).
    runs = {r["trial"]: r for r in (json.loads(line) for line in record.read_text().splitlines())}
    assert set(runs) == set(server_trials), runs
    for trial, r in runs.items():
        assert r["epochs"] == r["budget"] == server_trials[trial]["budget"], r
    assert runs[promoted]["start"] == 1 and runs[promoted]["EPOCHS"] == "3", runs[promoted]
    assert all(runs[n]["start"] == 0 for n in search if n != promoted)
    assert runs[final_name]["final"] and runs[final_name]["EPOCHS"] is None and runs[final_name]["start"] == 0

    # The status: the best search trial is the one trained for the full budget, and the
    # final rerun is listed with its own budget.
    assert st["bestTrial"]["name"] == promoted, st["bestTrial"]
    assert st["bestTrial"]["budget"] == 3, st["bestTrial"]
    [ft] = st["finalTraining"]
    assert (ft["name"], ft["state"], ft["budget"]) == (final_name, "SUCCEEDED", 3), ft
