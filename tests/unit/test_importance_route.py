"""The web UI's importance route over the engine: one result per objective, recomputed when
the experiment changes (its revision), refused without a viewer token."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tuner_server.api import create_app
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store
from tuner_server.ui import UiOptions

VIEWER = "viewer-token-0123456789abcdef"
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def _run(e: Engine, exp: str, metric: object) -> None:
    a = e.suggest(exp)
    e.started(exp, a.trial_id)
    e.report_final(exp, a.trial_id, metric(a.parameters) if callable(metric) else metric)
    e.end(exp, a.trial_id, 0)


def test_importance_per_objective_follows_new_trials() -> None:
    e = Engine(Store(":memory:"))
    cfg = ExperimentConfig(searchSpace=json.dumps(SPACE), tuner={"name": "Random"},
                           objectives=[{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}])
    e.register("mo", "mo", cfg)
    client = TestClient(create_app(e, "admin-token-0123456789abcdef", UiOptions(viewer_token=VIEWER)))
    headers = {"Authorization": f"Bearer {VIEWER}"}
    assert client.get("/ui/api/experiments/mo/importance").status_code == 401
    for _ in range(8):
        _run(e, "mo", lambda p: {"accuracy": -(p["x"] - 0.7) ** 2, "size": 1000 * p["y"]})
    few = client.get("/ui/api/experiments/mo/importance", headers=headers).json()
    assert [r["reason"] for r in few["results"]] == ["needs at least 10 succeeded trials, has 8"] * 2
    for _ in range(32):
        _run(e, "mo", lambda p: {"accuracy": -(p["x"] - 0.7) ** 2, "size": 1000 * p["y"]})
    body = client.get("/ui/api/experiments/mo/importance", headers=headers).json()
    acc, size = body["results"]
    assert body["method"] == "PED-ANOVA" and body["revision"] != few["revision"]
    assert (acc["objective"], acc["trials"], size["objective"], size["optimizeMode"]) == ("accuracy", 40, "size", "minimize")
    assert acc["importances"][0]["parameter"] == "x" and size["importances"][0]["parameter"] == "y"
    assert client.get("/ui/api/experiments/nope/importance", headers=headers).status_code == 404
