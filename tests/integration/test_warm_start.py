"""Warm start end to end: real `autotune run` processes and trial processes, and a real
tuner server over HTTP that is killed and restarted between imports."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, ServerProcess, manifest, read_status, run_autotune, write_manifest
from tuner_server.client import HttpClient, TunerServerError
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store
from tuner_server.warm_start import ImportRequest

# Numeric only, so TPE starts with 10 random trials (10 < the 16 the first run leaves).
SPACE = {"x": {"_type": "uniform", "_value": [-2, 2]}, "y": {"_type": "uniform", "_value": [-2, 2]}}
OPTIMUM = (1.0, -0.5)  # toy.py's value is -((x - 1)^2) - (y + 0.5)^2


def tpe(name: str, max_trials: int, concurrency: int, warm: list[str] | None = None, mode: str = "maximize") -> dict[str, Any]:
    doc = manifest(name=name, space=SPACE, tuner="TPE", class_args={"optimize_mode": mode}, max_trials=max_trials,
                   concurrency=concurrency, command=[sys.executable, str(TRIALS / "toy.py"), "--steps", "1"])
    if warm is not None:
        doc["spec"]["warmStart"] = {"experiments": warm}
    return doc


def params_of(out: Path, name: str) -> list[dict[str, float]]:
    with open(out / name / "trials.csv") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["sequence"]))
    return [json.loads(r["parameters"]) for r in rows]


def distance(p: dict[str, float]) -> float:
    return math.hypot(p["x"] - OPTIMUM[0], p["y"] - OPTIMUM[1])


def test_second_run_learns_from_the_first(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # One at a time, so the first run's history (and all that follows) is the same every time.
    first = run_autotune(["run", str(write_manifest(tmp_path / "first.yaml", tpe("first", 16, 1))), "--output", str(out)])
    assert first.returncode == 0, first.stderr
    assert read_status(out, "first")["trials"]["succeeded"] == 16

    # The same search, cold and warm (same seed): cold, TPE's first 4 trials are random;
    # warm, its model already holds the first run's 16 results.
    cold = run_autotune(["run", str(write_manifest(tmp_path / "cold.yaml", tpe("cold", 4, 1))), "--output", str(out)])
    assert cold.returncode == 0, cold.stderr
    warm_doc = tpe("warm", 4, 1, warm=["first", "gone"])
    warm = run_autotune(["run", str(write_manifest(tmp_path / "warm.yaml", warm_doc)), "--output", str(out)])
    assert warm.returncode == 0, warm.stderr
    assert "autotune: warm start: imported 16 trials from first, skipped 0" in warm.stderr
    assert "warning: warm start: experiment 'gone' not found" in warm.stderr  # a missing source does not stop it

    cold_p, warm_p = params_of(out, "cold"), params_of(out, "warm")
    # Without the imports TPE would draw exactly the cold run's first prior sample.
    assert warm_p[0] != cold_p[0]
    cold_d, warm_d = sum(map(distance, cold_p)) / 4, sum(map(distance, warm_p)) / 4
    print(f"mean distance to the optimum of the first 4 trials: cold {cold_d:.3f}, warm {warm_d:.3f}")
    assert warm_d < 0.75 * cold_d, (warm_d, cold_d)

    s = read_status(out, "warm")
    assert s["trials"]["total"] == 4  # the imports are not the experiment's trials
    assert s["warmStart"]["imported"] == 16 and s["warmStart"]["sources"] == {"first": 16}
    assert s["bestTrial"]["name"].startswith("warm-")  # never an imported trial

    # Running it again with a larger budget continues it without importing again.
    warm_doc["spec"]["maxTrialNum"] = 6
    again = run_autotune(["run", str(write_manifest(tmp_path / "warm.yaml", warm_doc)), "--output", str(out)])
    assert again.returncode == 0, again.stderr
    assert "warm start: 16 trials imported when the experiment started" in again.stderr
    s = read_status(out, "warm")
    assert s["trials"]["total"] == 6 and s["warmStart"]["imported"] == 16
    store = Store(out / "warm" / "autotune.db")
    assert len(store.imported("local.warm")) == 16
    store.close()


def test_a_source_with_another_objective_stops_the_run(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert run_autotune(["run", str(write_manifest(tmp_path / "a.yaml", tpe("a", 2, 2))), "--output", str(out)]).returncode == 0
    # Found by its folder this time, not by name.
    doc = tpe("b", 2, 1, warm=[str(out / "a")], mode="minimize")
    r = run_autotune(["run", str(write_manifest(tmp_path / "b.yaml", doc)), "--output", str(out)])
    assert r.returncode == 1, r.stderr
    assert "experiment ERROR: spec.warmStart: experiment" in r.stdout
    assert "it optimizes one objective (maximize) but this experiment one objective (minimize)" in r.stdout
    assert read_status(out, "b")["trials"]["total"] == 0


def test_import_over_http_survives_a_server_kill_without_duplicates(server: ServerProcess, tmp_path: Path) -> None:
    client = HttpClient(server.url, "test-admin-token-0123456789", retry_seconds=20)
    cfg = ExperimentConfig.model_validate({"searchSpace": json.dumps(SPACE), "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "maximize"}},
                                           "optimizeMode": "maximize"})
    client.register("e2", "e2", cfg)
    # The best imported trials lie around x = -1.4 (i = 3).
    trials = [{"id": f"old-{i}", "parameters": {"x": -2 + i * 0.2, "y": 0.0}, "metric": {"default": -abs(i - 3) * 0.1},
               "ended": 100.0 + i} for i in range(20)]
    trials.append({"id": "old-far", "parameters": {"x": 5.0, "y": 0.0}, "metric": 0.0})  # out of this space
    req = ImportRequest.model_validate({"sources": [{"name": "e1", "optimizeMode": "maximize", "trials": trials}]})
    r = client.import_trials("e2", req)
    assert r["imported"] == 20 and r["sources"][0]["skipped"] == 1
    assert "old-far: parameter 'x' = 5.0 is outside [-2, 2]" in r["sources"][0]["firstSkipReason"]

    server.kill()
    server.start()
    r = client.import_trials("e2", req)  # an operator restarted after the import
    assert (r["imported"], r["total"], r["sources"][0]["alreadyImported"]) == (0, 20, 20)
    summary = client.summary("e2")
    assert summary["imported"] == {"total": 20, "sources": {"e1": 20}} and summary["trials"]["total"] == 0
    # The restarted server rebuilt TPE with the imports: its first suggestion is model-based,
    # near the imported optimum x = -1.4, not the random draw a cold TPE makes first.
    cold = Engine(Store(":memory:"))
    cold.register("e2", "e2", cfg)
    cold_x = cold.suggest("e2", 0).parameters["x"]
    first = client.suggest("e2", 0)
    assert first is not None and abs(first.parameters["x"] + 1.4) < 0.6, first.parameters
    assert abs(cold_x + 1.4) > 1.5, cold_x  # so the check above could fail

    bad = ImportRequest.model_validate({"sources": [{"name": "e0", "optimizeMode": "minimize", "trials": trials}]})
    try:
        client.import_trials("e2", bad)
        raise AssertionError("an import with another objective was accepted")
    except TunerServerError as e:
        assert e.status == 422 and "warm start from 'e0'" in str(e)
    db = Engine(Store(tmp_path / "tuner.db"))
    assert len(db.get("e2").imported) == 20


def test_a_pbt_experiment_is_a_source(tmp_path: Path) -> None:
    """A real PBT run (scikit-learn's digits, checkpoints on disk) as the source of a TPE run.
    Its trials carry load_checkpoint_dir and save_checkpoint_dir, which PBTTuner adds and no
    search space has: every one was skipped and the TPE run imported nothing. Now they are
    taken without those keys; the second generation, which went on from the first's models,
    is skipped and counted (its accuracy is not its hyper-parameters' own from scratch)."""
    out = tmp_path / "runs"
    space = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]}}
    src = manifest(name="pbt-src", space=space, command=[sys.executable, str(TRIALS / "pbt_sgd.py")], tuner="PBTTuner",
                   class_args={"optimize_mode": "maximize", "population_size": 2, "fraction": 0.5}, max_trials=4,
                   concurrency=2, env=[{"name": "PBT_RECORD", "value": str(tmp_path / "pbt.jsonl")},
                                       {"name": "PBT_TAG", "value": "pbt-src"}])
    first = run_autotune(["run", str(write_manifest(tmp_path / "src.yaml", src)), "--output", str(out)], timeout=600)
    assert first.returncode == 0, first.stderr
    assert read_status(out, "pbt-src")["trials"]["succeeded"] == 4

    doc = manifest(name="tpe-new", space=space, tuner="TPE", max_trials=1, concurrency=1,
                   command=[sys.executable, str(TRIALS / "toy.py"), "--steps", "1"])
    doc["spec"]["warmStart"] = {"experiments": ["pbt-src"]}
    r = run_autotune(["run", str(write_manifest(tmp_path / "new.yaml", doc)), "--output", str(out)])
    assert r.returncode == 0, r.stderr
    assert "autotune: warm start: imported 2 trials from pbt-src, skipped 2 (first: pbt-src-" in r.stderr, r.stderr
    assert "went on training the model of an earlier PBT generation (load_checkpoint_dir '" in r.stderr, r.stderr
    assert ("; pbt-src's trials taken without the keys PBTTuner adds (load_checkpoint_dir, save_checkpoint_dir)"
            in r.stderr), r.stderr
    s = read_status(out, "tpe-new")
    assert s["warmStart"]["imported"] == 2 and s["warmStart"]["sources"] == {"pbt-src": 2}
    assert s["trials"]["total"] == 1
    store = Store(out / "tpe-new" / "autotune.db")
    held = store.imported("local.tpe-new")
    store.close()
    assert sorted(t.source_trial for t in held) == ["pbt-src-0", "pbt-src-1"]  # generation 0
    assert all(set(t.parameters) == {"alpha"} for t in held), held
