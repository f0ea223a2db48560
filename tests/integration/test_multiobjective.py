"""Multi-objective experiments end to end: `autotune run` of real scikit-learn trials, a
trial whose report lacks an objective, and the tuner server over HTTP."""

from __future__ import annotations

import csv
import json
import sys
import xml.dom.minidom
from pathlib import Path

import yaml

from tests.integration.conftest import TRIALS, ServerProcess, exit_code_for, manifest, read_status, run_autotune, write_manifest
from tuner_server.history import OptimizeMode
from tuner_server.pareto import pareto_front, to_losses

REPO = Path(__file__).resolve().parents[2]
OBJS = [{"name": "score", "optimizeMode": "maximize"}, {"name": "cost", "optimizeMode": "minimize"}]


def rows(out: Path, name: str) -> list[dict[str, str]]:
    with open(out / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_digits_mlp_accuracy_against_size(tmp_path: Path) -> None:
    """The example, shortened: real MLPs on digits; the front in status.json is exactly the
    non-dominated set of the succeeded trials in trials.csv, and it is drawn."""
    doc = yaml.safe_load((REPO / "examples" / "digits-multiobjective.yaml").read_text())
    doc["spec"]["maxTrialNum"] = 12
    container = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "digits_mlp_size.py", "--epochs", "15"]
    path = write_manifest(tmp_path / "mo.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--workdir", str(REPO / "examples"), "--quiet"],
                     timeout=600)
    assert r.returncode == 0, r.stderr
    name = doc["metadata"]["name"]
    s = read_status(tmp_path / "out", name)
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 12
    assert s["bestTrial"] is None
    table = {t["id"]: json.loads(t["metrics"]) for t in rows(tmp_path / "out", name) if t["state"] == "SUCCEEDED"}
    names = list(table)
    losses = [to_losses((table[n]["accuracy"], table[n]["n_params"]), (OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE))
              for n in names]
    expected = {names[i] for i in pareto_front(losses)}
    front = {p["name"]: p for p in s["paretoFront"]}
    assert set(front) == expected and len(front) >= 2  # size and accuracy do trade off
    for n, p in front.items():
        assert p["values"] == {"accuracy": table[n]["accuracy"], "n_params": table[n]["n_params"]}
        assert set(p["parameters"]) == {"hidden_units", "layers", "learning_rate", "alpha"}
    best = {b["objective"]: b for b in s["bestTrials"]}
    assert best["accuracy"]["values"]["accuracy"] == max(m["accuracy"] for m in table.values())
    assert best["n_params"]["values"]["n_params"] == min(m["n_params"] for m in table.values())
    assert best["accuracy"]["values"]["accuracy"] > 0.9  # a real network learned the digits
    svg = xml.dom.minidom.parse(str(tmp_path / "out" / name / "pareto.svg"))
    assert len(svg.getElementsByTagName("circle")) == 12
    assert "pareto front:" in r.stdout and "pareto.svg" in r.stdout


def test_missing_objective_fails_the_trial_with_the_reason(tmp_path: Path) -> None:
    doc = manifest("mo-missing", space={"x": {"_type": "uniform", "_value": [0, 2]}},
                   command=[sys.executable, str(TRIALS / "mo_report.py"), "--mode", "missing"],
                   tuner="MOTPE", class_args={}, max_trials=2, concurrency=1)
    doc["spec"]["objectives"] = OBJS
    doc["spec"]["tuner"]["classArgs"] = "{}"  # the directions come from spec.objectives
    path = write_manifest(tmp_path / "m.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == exit_code_for(tmp_path / "out" / "mo-missing"), r.stderr
    s = read_status(tmp_path / "out", "mo-missing")
    assert s["trials"]["failed"] == 2 and s["paretoFront"] == []
    for t in rows(tmp_path / "out", "mo-missing"):
        assert t["state"] == "FAILED"
        assert "bad final metric: the final metric misses objective(s) ['cost']" in t["message"]


def test_tuner_server_over_http(server: ServerProcess) -> None:
    config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 2]}}),
              "tuner": {"name": "MOTPE", "classArgs": {"tpe_args": {"n_startup_jobs": 3}}}, "objectives": OBJS, "seed": 3}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/mo", json={"name": "mo", "config": config})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        bad = {**config, "tuner": {"name": "TPE", "classArgs": {}}}
        r = admin.put("/api/v1/experiments/mo2", json={"name": "mo2", "config": bad})
        assert r.status_code == 422 and "optimizes a single objective" in r.text
    reported = {}
    for _ in range(8):
        with server.client() as admin:
            t = admin.post("/api/v1/experiments/mo/trials", json={}).json()
            admin.post(f"/api/v1/experiments/mo/trials/{t['trialId']}/start")
        x = t["parameters"]["x"]
        metric = {"score": 1.0 - (x - 1.0) ** 2, "cost": x * x}
        with server.client(token=token) as trial:
            r = trial.post(f"/api/v1/experiments/mo/trials/{t['trialId']}/final", json={"metric": metric})
            assert r.status_code == 200, r.text
        with server.client() as admin:
            assert admin.post(f"/api/v1/experiments/mo/trials/{t['trialId']}/end", json={"exitCode": 0}).json() == {"state": "SUCCEEDED"}
        reported[t["trialId"]] = metric
    # A report without an objective is refused with the reason, and the trial fails.
    with server.client() as admin:
        t = admin.post("/api/v1/experiments/mo/trials", json={}).json()
    with server.client(token=token) as trial:
        r = trial.post(f"/api/v1/experiments/mo/trials/{t['trialId']}/final", json={"metric": {"score": 0.5}})
        assert r.status_code == 422 and "misses objective(s) ['cost']" in r.text
    with server.client() as admin:
        s = admin.get("/api/v1/experiments/mo").json()
        assert admin.get(f"/api/v1/experiments/mo/trials/{t['trialId']}").json()["state"] == "FAILED"
    summary = s
    names = list(reported)
    losses = [to_losses((m["score"], m["cost"]), (OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE)) for m in reported.values()]
    assert {p["name"] for p in summary["paretoFront"]} == {names[i] for i in pareto_front(losses)}
    assert [b["objective"] for b in summary["bestTrials"]] == ["score", "cost"]
    # A restarted server rebuilds the same front from its database.
    server.kill()
    server.start()
    with server.client() as admin:
        again = admin.get("/api/v1/experiments/mo").json()
    assert again["paretoFront"] == summary["paretoFront"]


def test_extreme_finite_results_do_not_break_motpe(server: ServerProcess) -> None:
    """Results are refused only when not finite; 1e308 (a script's "worst" sentinel) is finite.
    MOTPE's reference point (the worst loss plus a margin) overflowed to inf on such results,
    and then every suggestion was a 500 ("the reference point must be a finite vector"):
    one trial's result ended the experiment."""
    space = {"a": {"_type": "uniform", "_value": [0, 1]}, "b": {"_type": "choice", "_value": ["x", "y"]}}
    cfg = {"searchSpace": json.dumps(space), "tuner": {"name": "MOTPE"}, "optimizeMode": "minimize", "seed": 3,
           "objectives": [{"name": "acc", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]}
    with server.client() as admin:
        assert admin.put("/api/v1/experiments/mo", json={"name": "mo", "config": cfg}).status_code == 200
        for seq in range(30):
            r = admin.post("/api/v1/experiments/mo/trials", json={"sequence": seq})
            assert r.status_code == 200, (seq, r.text)
            trial = r.json()["trialId"]
            acc = (-1e308, 1e308, 0.5)[seq % 3]
            metric = {"acc": acc, "size": seq / 30}
            assert admin.post(f"/api/v1/experiments/mo/trials/{trial}/final", json={"metric": metric}).status_code == 200
            assert admin.post(f"/api/v1/experiments/mo/trials/{trial}/end", json={"exitCode": 0}).json() == {
                "state": "SUCCEEDED"}
        front = admin.get("/api/v1/experiments/mo").json()["paretoFront"]
        assert {"acc": 1e308, "size": 1 / 30} in [p["values"] for p in front]


def test_objectives_named_twice_are_refused_by_the_server(server: ServerProcess) -> None:
    """spec.objectives is checked by the operator and the CLI, but the tuner server's own API
    took [acc maximize, acc minimize]: every trial was then on the Pareto front (one metric
    both maximized and minimized) and the search optimized nothing."""
    space = {"a": {"_type": "uniform", "_value": [0, 1]}}
    cfg = {"searchSpace": json.dumps(space), "tuner": {"name": "MOTPE"},
           "objectives": [{"name": "acc", "optimizeMode": "maximize"}, {"name": "acc", "optimizeMode": "minimize"}]}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/dup", json={"name": "dup", "config": cfg})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "config", "objectives"]
        assert "['acc']" in err["msg"] and "more than once" in err["msg"]
        assert admin.get("/api/v1/experiments/dup").status_code == 404


def test_final_training_leaves_the_front_to_search_trials(tmp_path: Path) -> None:
    """spec.finalTraining with objectives reruns each front member once; the reruns are in
    status.finalTraining, not on the front. The front counted them too: a deterministic
    trial's rerun has its search trial's values, so every member was listed twice (the
    front of 2 showed 4, FRONT in `kubectl get ate` doubled), and a rerun that did better
    at its final budget pushed search trials off the front that final training had chosen."""
    doc = manifest("mo-final", space={"x": {"_type": "uniform", "_value": [0, 2]}},
                   command=[sys.executable, str(TRIALS / "mo_report.py")], tuner="Random", class_args={},
                   max_trials=6, concurrency=2)
    doc["spec"]["objectives"] = OBJS
    doc["spec"]["tuner"]["classArgs"] = "{}"
    doc["spec"]["finalTraining"] = {"enabled": True}
    path = write_manifest(tmp_path / "m.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "mo-final")
    table = {t["id"]: json.loads(t["metrics"]) for t in rows(tmp_path / "out", "mo-final")
             if t["state"] == "SUCCEEDED" and t["kind"] == "search"}
    assert len(table) == 6
    names = list(table)
    losses = [to_losses((m["score"], m["cost"]), (OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE)) for m in table.values()]
    expected = {names[i] for i in pareto_front(losses)}
    assert {p["name"] for p in s["paretoFront"]} == expected
    assert s["paretoFrontSize"] == len(expected) >= 1
    assert {b["name"] for b in s["bestTrials"]} <= expected
    finals = s["finalTraining"]
    assert not {f["name"] for f in finals} & {p["name"] for p in s["paretoFront"]}
    assert len(finals) == len(expected) and all(f["state"] == "SUCCEEDED" for f in finals)
    assert sorted(json.dumps(f["parameters"]) for f in finals) == sorted(json.dumps(p["parameters"]) for p in s["paretoFront"])
    # The status and the summary give each rerun's objectives, as they give the front's.
    for f in finals:
        m = table[next(p["name"] for p in s["paretoFront"] if p["parameters"] == f["parameters"])]
        assert f["values"] == {"score": m["score"], "cost": m["cost"]}  # a deterministic rerun
        assert f"final training: {f['name']} SUCCEEDED score={m['score']:.6g} cost={m['cost']:.6g}" in r.stdout, r.stdout
    # pareto.svg draws the search trials, as the front and importance count them.
    svg = xml.dom.minidom.parse(str(tmp_path / "out" / "mo-final" / "pareto.svg"))
    assert len(svg.getElementsByTagName("circle")) == 6
    assert f"Pareto front ({len(expected)} of 6 trials)" in (tmp_path / "out" / "mo-final" / "pareto.svg").read_text()


def test_final_training_of_a_front_waits_for_a_free_device(tmp_path: Path) -> None:
    """Final training of a front larger than the slots (trialConcurrency, --devices) runs the
    reruns a slot at a time, as the search's trials. All were started at once: with one
    device the second got no device and ended FAILED ('could not start: no free device'), and
    on a cluster a front of dozens was dozens of Jobs at once whatever trialConcurrency said."""
    doc = manifest("mo-devices", space={"x": {"_type": "choice", "_value": [0.25, 0.5, 0.75, 1.5]}},
                   command=[sys.executable, str(TRIALS / "mo_report.py")], tuner="GridSearch", class_args={},
                   max_trials=4, concurrency=2)
    doc["spec"]["objectives"] = OBJS
    doc["spec"]["tuner"]["classArgs"] = "{}"
    doc["spec"]["finalTraining"] = {"enabled": True}
    path = write_manifest(tmp_path / "m.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--quiet", "--devices", "0"])
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "out", "mo-devices")
    # x in (0, 1]: more score needs more cost, so 0.25, 0.5 and 0.75 are the front; 1.5 is beaten by 0.75.
    assert sorted(p["parameters"]["x"] for p in s["paretoFront"]) == [0.25, 0.5, 0.75]
    finals = s["finalTraining"]
    assert sorted(f["parameters"]["x"] for f in finals) == [0.25, 0.5, 0.75]
    assert [f["state"] for f in finals] == ["SUCCEEDED"] * 3, [t["message"] for t in rows(tmp_path / "out", "mo-devices")]
    assert s["phase"] == "DONE" and s["trials"]["failed"] == 0
