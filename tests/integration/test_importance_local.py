"""`autotune run` ends with which parameters mattered: importance.json and a summary line,
from real trial processes (the toy trial: value = -(x - 1)^2 - (y + 0.5)^2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.integration.conftest import manifest, run_autotune, write_manifest


def test_run_prints_and_writes_the_importance_of_each_parameter(tmp_path: Path) -> None:
    # y's range is so narrow that it moves the value by at most 0.01; x moves it by up to 16.
    space = {"x": {"_type": "uniform", "_value": [-3, 5]}, "y": {"_type": "uniform", "_value": [-0.6, -0.4]}}
    doc = manifest(space=space, max_trials=20, concurrency=4)
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "toy" / "importance.json").read_text())
    (res,) = report["results"]
    assert report["method"] == "PED-ANOVA" and res["trials"] == 20 and res["reason"] is None
    first, second = res["importances"]
    assert first["parameter"] == "x" and first["importance"] > 0.8
    assert math.isclose(first["importance"] + second["importance"], 1.0)
    line = next(x for x in r.stdout.splitlines() if x.startswith("importance"))
    assert line.startswith("importance (PED-ANOVA, 20 trials): x 0.") and ", y 0." in line
    assert "importance.json" in r.stdout


def test_too_few_trials_say_why_there_is_no_importance(tmp_path: Path) -> None:
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", manifest(max_trials=4))), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 0, r.stderr
    assert "importance (PED-ANOVA, 4 trials): none (needs at least 10 succeeded trials, has 4)" in r.stdout
    (res,) = json.loads((tmp_path / "out" / "toy" / "importance.json").read_text())["results"]
    assert res["importances"] == [] and res["trials"] == 4
