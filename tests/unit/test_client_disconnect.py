"""A client that goes away before its request body arrived is no server error, on every
route that reads a body: the MLflow routes (97cc451: a trial's MLflow client killed by the
assessor mid-log_metric, as in examples/digits-mlflow.yaml), the login form, the JSON API.

Uncaught, starlette's ClientDisconnect made uvicorn print "Exception in ASGI application"
and a long traceback into the user's `autotune run` output. The app is driven through ASGI
directly: a real HTTP client cannot be made to vanish at one exact point of the server's read.
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
from tuner_server.ui import UiOptions

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})


def call_with_client_gone(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """POST ``path`` whose client closed its connection before sending the declared body;
    raises whatever escapes the app (what uvicorn would print as a traceback)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-length", b"120"), *headers],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def status_of(sent: list[dict[str, Any]]) -> int:
    return int(next(m for m in sent if m["type"] == "http.response.start")["status"])


def body_of(sent: list[dict[str, Any]]) -> Any:
    return json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def test_a_login_form_whose_client_left_is_answered_400(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    app = create_app(engine, ADMIN, UiOptions())

    sent = call_with_client_gone(app, "/ui/login", [
        (b"content-type", b"application/x-www-form-urlencoded"), (b"sec-fetch-site", b"same-origin")])

    assert status_of(sent) == 400
    assert "disconnected" in body_of(sent)["detail"]
    engine.store.close()


def test_a_metric_report_whose_client_left_is_answered_400(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    h = engine.register("exp", "exp", ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"}))
    trial = engine.suggest("exp").trial_id
    engine.started("exp", trial)
    app = create_app(engine, ADMIN)

    sent = call_with_client_gone(app, f"/api/v1/experiments/exp/trials/{trial}/intermediate", [
        (b"content-type", b"application/json"), (b"authorization", f"Bearer {h.stored.token}".encode())])

    # FastAPI reads a declared body model itself and turns any read error into this 400
    # (held here: a FastAPI change must not bring the traceback back).
    assert status_of(sent) == 400
    assert body_of(sent)["detail"] == "There was an error parsing the body"
    engine.store.close()


def test_an_mlflow_client_gone_before_its_body_is_answered_in_mlflow_s_format(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    h = engine.register("exp", "exp", ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"}))
    trial = engine.suggest("exp").trial_id
    engine.started("exp", trial)
    app = create_app(engine, ADMIN)

    sent = call_with_client_gone(app, f"{PREFIX}/exp/{trial}/api/2.0/mlflow/runs/log-metric", [
        (b"content-type", b"application/json"), (b"authorization", f"Bearer {h.stored.token}".encode())])

    assert status_of(sent) == 400
    assert "disconnected" in body_of(sent)["message"]  # MLflow's error shape, not FastAPI's detail
    engine.store.close()
