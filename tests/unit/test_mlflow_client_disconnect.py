"""A trial's MLflow client that goes away before its request body arrived (the assessor
killed the trial mid-log_metric, as in examples/digits-mlflow.yaml) is no server error.

Before, `await request.body()` raised starlette's ClientDisconnect out of the MLflow route,
and uvicorn printed "Exception in ASGI application" with a 50-line traceback into the
user's `autotune run` output. The app is driven through ASGI directly: a real HTTP client
cannot be made to vanish at one exact point of the server's read.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tuner_server.api import create_app
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.mlflow_names import PREFIX
from tuner_server.store import Store

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})


def call_with_client_gone(app: Any, path: str, token: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the client closed its connection mid-body

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode()),
                    (b"content-type", b"application/json"), (b"content-length", b"120")],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_an_mlflow_client_gone_before_its_body_is_answered_not_raised(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    h = engine.register("exp", "exp", ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"}))
    trial = engine.suggest("exp").trial_id
    engine.started("exp", trial)
    app = create_app(engine, ADMIN)

    sent = call_with_client_gone(app, f"{PREFIX}/exp/{trial}/api/2.0/mlflow/runs/log-metric", h.stored.token)

    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert "disconnected" in body["message"]
    engine.store.close()
