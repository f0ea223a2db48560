"""Request body limits over real HTTP (a `python -m tuner_server` process): an oversized body
is refused with 413 naming the limit and the size, and nothing of it is stored; MLflow's
batch limits and the per-run cap answer in MLflow's error shape, which its own client raises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.integration.conftest import ADMIN, ServerProcess, free_port
from tests.integration.test_tuner_server_http import config, register
from tuner_server.body_limit import KiB, MiB
from tuner_server.client import HttpClient, TunerServerError
from tuner_server.mlflow_names import run_id_of, tracking_uri
from tuner_server.warm_start import ImportRequest

SMALL = {"default": 64 * KiB, "registration": 256 * KiB, "imports": 512 * KiB, "mlflow": 128 * KiB}
API = "/api/2.0/mlflow/"


@pytest.fixture
def small(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose limits are set small through $AUTOTUNE_MAX_BODY (the setting's own path)."""
    s = ServerProcess(tmp_path / "tuner.db", free_port(),
                      extra_env={"AUTOTUNE_MAX_BODY": ",".join(f"{k}={v // KiB}KiB" for k, v in SMALL.items())})
    s.start()
    yield s
    s.stop()


def started_trial(server: ServerProcess, exp_id: str = "e1") -> str:
    with server.client() as admin:
        trial = admin.post(f"/api/v1/experiments/{exp_id}/trials", json={}).json()["trialId"]
        assert admin.post(f"/api/v1/experiments/{exp_id}/trials/{trial}/start").status_code == 200
    return str(trial)


def padded(doc: dict[str, Any], size: int) -> bytes:
    """``doc`` as JSON of exactly ``size`` bytes (trailing whitespace is valid JSON)."""
    raw = json.dumps(doc).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def refused(r: httpx.Response, limit: int, family: str, size: int | None = None) -> dict[str, Any]:
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["limitBytes"] == limit and body["family"] == family
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["message"] == body["detail"]
    assert f"limit for this route ({family}) is {limit} bytes" in body["detail"]
    if size is not None:
        assert body["bodyBytes"] == size and f"{size} bytes" in body["detail"]
    return body


def test_default_limit_a_body_of_exactly_the_limit_works_and_one_byte_more_is_413(server: ServerProcess) -> None:
    token = register(server)
    trial = started_trial(server)
    path = f"/api/v1/experiments/e1/trials/{trial}/intermediate"
    with server.client(token=token) as own:
        r = own.post(path, content=padded({"metric": 0.25, "step": 0}, MiB), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        refused(own.post(path, content=padded({"metric": 0.75, "step": 1}, MiB + 1),
                         headers={"Content-Type": "application/json"}), MiB, "default", MiB + 1)
        # Nothing of it was kept (step 1 is still the next one), and the server goes on.
        assert own.post(path, json={"metric": 0.5, "step": 1}).status_code == 200
    with server.client() as admin:
        assert admin.get(f"/api/v1/experiments/e1/trials/{trial}").json()["intermediate"] == [0.25, 0.5]


def test_oversized_registration_is_413_and_nothing_is_stored(small: ServerProcess) -> None:
    huge = {"x": {"_type": "choice", "_value": list(range(60_000))}}  # ~400 KB as a JSON string
    body = json.dumps({"name": "e1", "config": config(space=huge)}).encode()
    with small.client() as admin:
        refused(admin.put("/api/v1/experiments/e1", content=body, headers={"Content-Type": "application/json"}),
                SMALL["registration"], "registration", len(body))
        assert admin.get("/api/v1/experiments").json() == []
        # Under the registration limit but over the default one: the admin registers it.
        fits = {"x": {"_type": "choice", "_value": list(range(20_000))}}
        r = admin.put("/api/v1/experiments/e1", json={"name": "e1", "config": config(space=fits)})
        assert r.status_code == 200, r.text


def test_chunked_body_is_counted_as_it_arrives(small: ServerProcess) -> None:
    """httpx sends a generator's body chunked (no Content-Length)."""
    token = register(small)
    trial = started_trial(small)
    path = f"/api/v1/experiments/e1/trials/{trial}/intermediate"

    def chunked(doc: dict[str, Any], pad_chunks: int) -> Iterator[bytes]:
        yield json.dumps(doc).encode()
        for _ in range(pad_chunks):
            yield b" " * (8 * KiB)

    with small.client(token=token) as own:
        r = own.post(path, content=chunked({"metric": 0.25, "step": 0}, 6), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text  # ~48 KiB chunked: within 64 KiB
        body = refused(own.post(path, content=chunked({"metric": 0.75, "step": 1}, 1000),  # ~8 MiB
                                headers={"Content-Type": "application/json"}), SMALL["default"], "default")
        # Refused at the first piece past the limit (uvicorn hands over what it buffered: its
        # 64 KiB high-water mark plus one socket read of up to 256 KiB), not after the 8 MiB.
        assert SMALL["default"] < body["bodyBytes"] <= SMALL["default"] + 512 * KiB
        assert f"more than {SMALL['default']} bytes" in body["detail"]
    with small.client() as admin:
        assert admin.get(f"/api/v1/experiments/e1/trials/{trial}").json()["intermediate"] == [0.25]


def import_request(n: int) -> ImportRequest:
    trials = [{"id": f"old-{i}", "parameters": {"a": 1, "b": "x"}, "metric": 0.5, "intermediate": [0.1] * 20} for i in range(n)]
    return ImportRequest.model_validate({"sources": [{"name": "old", "trials": trials}]})


def test_warm_start_import_over_its_limit_is_a_clear_error_for_autotunes_own_client(small: ServerProcess) -> None:
    """HttpClient (urllib) writes the whole body before reading the answer: it must get the
    413's reason, not a reset connection that it would retry for two minutes."""
    token = register(small)
    client = HttpClient(small.url, ADMIN, retry_seconds=5)
    big = import_request(3000)  # ~1 MB of JSON
    with pytest.raises(TunerServerError) as e:
        client.import_trials("e1", big)
    assert e.value.status == 413
    assert f"the limit for this route (imports) is {SMALL['imports']} bytes" in str(e.value)
    assert "imported" not in client.summary("e1")
    # Over the default limit but within the imports one: allowed with the admin token only.
    medium = import_request(1000)
    body = json.dumps(medium.model_dump(mode="json")).encode()
    assert SMALL["default"] < len(body) < SMALL["imports"]
    with small.client(token=token) as own:  # the experiment's own token: the default limit, then 403 anyway
        refused(own.post("/api/v1/experiments/e1/imported-trials", content=body, headers={"Content-Type": "application/json"}),
                SMALL["default"], "imports", len(body))
    assert client.import_trials("e1", medium)["imported"] == 1000


# ----- MLflow -----
class MlflowTrial:
    def __init__(self, server: ServerProcess) -> None:
        self.token = register(server)
        self.trial = started_trial(server)
        self.uri = tracking_uri(server.url, "e1", self.trial)
        self.run_id = run_id_of(self.trial)
        self.http = httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def batch(self, **body: Any) -> httpx.Response:
        return self.http.post(self.uri + API + "runs/log-batch", json={"run_id": self.run_id, **body})

    def data(self) -> dict[str, Any]:
        r = self.http.get(self.uri + API + "runs/get", params={"run_id": self.run_id})
        assert r.status_code == 200, r.text
        return dict(r.json()["run"]["data"])


def metrics(n: int) -> list[dict[str, Any]]:
    return [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": 1_700_000_000_000 + i, "step": i} for i in range(n)]


def pairs(n: int, prefix: str) -> list[dict[str, str]]:
    return [{"key": f"{prefix}{i}", "value": str(i)} for i in range(n)]


@pytest.mark.parametrize("body, what", [
    ({"metrics": metrics(1001)}, "at most 1000 metrics, this one has 1001"),
    ({"params": pairs(101, "p")}, "at most 100 params, this one has 101"),
    ({"tags": pairs(101, "t")}, "at most 100 tags, this one has 101"),
    ({"metrics": metrics(901), "params": pairs(100, "p")}, "at most 1000 metrics, params and tags together, this one has 1001"),
])
def test_mlflow_batch_over_mlflows_limits_is_400_in_mlflows_shape(server: ServerProcess, body: dict[str, Any], what: str) -> None:
    t = MlflowTrial(server)
    r = t.batch(**body)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and what in r.json()["message"]
    d = t.data()
    assert d["metrics"] == [] and d["params"] == [] and d["tags"] == []  # nothing of it was kept
    assert t.batch(metrics=metrics(1000)).status_code == 200  # the limit itself is fine


def test_mlflow_client_gets_clear_errors_for_an_oversized_body_and_the_per_run_cap(
        small: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    t = MlflowTrial(small)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", t.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = mlflow.MlflowClient(tracking_uri=t.uri)
    # 30 params of 5000 characters: ~150 KB, within MLflow's own limits but over this server's 128 KiB.
    with pytest.raises(MlflowException) as e:
        client.log_batch(t.run_id, params=[Param(f"big{i}", "x" * 5000) for i in range(30)])
    assert "request body too large" in str(e.value) and f"limit for this route (mlflow) is {SMALL['mlflow']} bytes" in str(e.value)
    assert t.data()["params"] == []
    # The client sends 100 params a request; the 17th request would pass 1600 params.
    with pytest.raises(MlflowException) as e:
        client.log_batch(t.run_id, params=[Param(f"p{i:04d}", "v") for i in range(1700)])
    assert "INVALID_PARAMETER_VALUE" in str(e.value)
    assert "has 1600 params and this request adds 100 new ones" in str(e.value) and "at most 1600 params per run" in str(e.value)
    assert len(t.data()["params"]) == 1600
    client.log_batch(t.run_id, params=[Param("p0000", "v")])  # logging a kept param again is fine
    client.set_tag(t.run_id, "phase", "done")  # tags have their own cap
    assert {x["key"] for x in t.data()["tags"]} >= {"phase"}


def test_a_bad_max_body_setting_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tuner_server", "--db", str(tmp_path / "t.db"), "--port", str(free_port())],
                       env={**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN, "AUTOTUNE_MAX_BODY": "default=64KiB,uploads=1GiB"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--max-body / AUTOTUNE_MAX_BODY: 'uploads=1GiB': expected family=size with a family of default" in r.stderr
