"""Deleting an experiment through the tuner-server clients: real HTTP, a real server
process that is stopped and started again, and the operator's background retry."""

from __future__ import annotations

import json
import time

import pytest

from autotune_operator.orphans import PendingDeletes, retry_delay
from tests.integration.conftest import ADMIN, ServerProcess
from tuner_server.client import HttpClient, InProcessClient
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store

CONFIG = ExperimentConfig.model_validate({
    "searchSpace": json.dumps({"x": {"_type": "choice", "_value": [1, 2]}}),
    "tuner": {"name": "Random", "classArgs": {}},
    "optimizeMode": "maximize",
})


def test_http_delete_existing_then_unknown(server: ServerProcess) -> None:
    c = HttpClient(server.url, ADMIN)
    c.register("e1", "e1", CONFIG)
    assert c.delete_experiment("e1") is True
    assert server.get("/api/v1/experiments/e1").status_code == 404
    assert c.delete_experiment("e1") is False  # already gone: not an error


def test_http_delete_gives_up_after_its_own_short_retry(server: ServerProcess) -> None:
    c = HttpClient(server.url, ADMIN, retry_seconds=3600, delete_retry_seconds=0.5)
    c.register("e1", "e1", CONFIG)
    server.stop()
    with pytest.raises(OSError):  # not the hour-long retry of the other calls
        c.delete_experiment("e1")
    server.start()
    assert server.get("/api/v1/experiments/e1").status_code == 200, "nothing was deleted while it was down"


def test_pending_delete_removes_the_state_once_the_server_is_back(server: ServerProcess) -> None:
    c = HttpClient(server.url, ADMIN, delete_retry_seconds=0.2)
    c.register("gone", "gone", CONFIG)
    server.stop()
    pending = PendingDeletes(c.delete_experiment, delay=lambda attempt: 0.3)
    pending.add("gone", "ns/gone")
    try:
        server.start()
        deadline = time.monotonic() + 30
        while pending.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pending.pending() == {}
        assert server.get("/api/v1/experiments/gone").status_code == 404
    finally:
        pending.stop()


def test_in_process_delete(tmp_path) -> None:
    c = InProcessClient(Engine(Store(tmp_path / "t.db")))
    c.register("e1", "e1", CONFIG)
    assert c.delete_experiment("e1") is True
    assert c.delete_experiment("e1") is False


def test_retry_delay_grows_to_a_cap() -> None:
    assert [retry_delay(i) for i in range(4)] == [5, 10, 20, 40]
    assert retry_delay(50) == 300
