"""MLflow's refusal of a changed param, and AutoTune's cap on a run's metric values, as MLflow's
own client meets them over real HTTP (a real tuner server on loopback; the cap made small
here, as the real one of 1,000,000 values would take minutes to reach), and how the
controller's path for printed metrics (collected-metrics) meets the cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tuner_server import mlflow_runs
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.mlflow_names import run_id_of, tracking_uri
from tuner_server.store import Store

mlflow = pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})
API = "/api/2.0/mlflow/"
CAP = 50


class Server:
    """A tuner server over a database, with one running trial; restartable on the same database."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.engine = Engine(Store(db))
        h = self.engine.register("exp", "exp", ExperimentConfig.model_validate(
            {"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"}))
        self.token = h.stored.token
        self.trial_id = self.engine.suggest("exp").trial_id
        self.engine.started("exp", self.trial_id)
        self.run_id = run_id_of(self.trial_id)
        self.srv = EmbeddedServer(self.engine, ADMIN).__enter__()

    def restart(self) -> None:
        self.srv.__exit__(None, None, None)
        self.engine.store.close()
        self.engine = Engine(Store(self.db))
        self.srv = EmbeddedServer(self.engine, ADMIN).__enter__()

    @property
    def uri(self) -> str:
        return tracking_uri(self.srv.url, "exp", self.trial_id)

    def client(self) -> Any:
        return mlflow.MlflowClient(tracking_uri=self.uri)

    def raw(self, call: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.uri + API + call, json={"run_id": self.run_id, **body},
                          headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def data(self) -> dict[str, Any]:
        return dict(self.client().get_run(self.run_id).data.__dict__)

    def close(self) -> None:
        self.srv.__exit__(None, None, None)
        self.engine.store.close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    s = Server(tmp_path / "t.db")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", s.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(mlflow_runs, "MAX_METRIC_VALUES_PER_RUN", CAP)
    yield s
    s.close()


def param_events(s: Server) -> int:
    return len(s.engine.store.trial_events("exp", s.trial_id, "mlflow_params"))


def test_a_param_logged_again_is_accepted_with_its_value_and_refused_with_another(server: Server) -> None:
    client = server.client()
    client.log_param(server.run_id, "lr", "0.1")
    client.log_param(server.run_id, "lr", "0.1")  # the same value again: accepted, nothing written
    client.log_batch(server.run_id, params=[Param("lr", "0.1"), Param("depth", "3")])
    assert param_events(server) == 2
    with pytest.raises(MlflowException) as e:
        client.log_param(server.run_id, "lr", "0.2")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE" and e.value.get_http_status_code() == 400
    assert "Changing param values is not allowed" in str(e.value)
    assert "param 'lr' was logged with value '0.1', this request logs '0.2'" in str(e.value)
    assert f"run '{server.run_id}'" in str(e.value)
    # A batch holding a changed param keeps nothing of itself: not its new param, nor its metrics.
    with pytest.raises(MlflowException):
        client.log_batch(server.run_id, params=[Param("lr", "0.3"), Param("seed", "1")],
                         metrics=[Metric("accuracy", 0.5, 1, 0)])
    assert server.data()["_params"] == {"lr": "0.1", "depth": "3"} and server.data()["_metrics"] == {}
    # The same key twice in one request with two values (MLflow's client refuses it before
    # sending; a raw request reaches the server).
    r = server.raw("runs/log-batch", {"params": [{"key": "opt", "value": "sgd"}, {"key": "opt", "value": "adam"}]})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "param 'opt' appears twice in this request, with values 'sgd' and 'adam'" in r.json()["message"]
    server.restart()  # the kept params are replayed: the refusal holds after a restart too
    r = server.raw("runs/log-parameter", {"key": "lr", "value": "0.2"})
    assert r.status_code == 400 and "'0.1'" in r.json()["message"] and "'0.2'" in r.json()["message"]
    assert server.raw("runs/log-parameter", {"key": "lr", "value": "0.1"}).status_code == 200


def metrics(n: int, first_step: int = 0, key: str = "accuracy") -> list[Any]:
    return [Metric(key, 0.5 + 0.001 * i, 1_700_000_000_000 + i, i) for i in range(first_step, first_step + n)]


def test_a_runs_metric_values_stop_at_the_cap_with_a_clear_error(server: Server) -> None:
    client = server.client()
    first = metrics(40)
    client.log_batch(server.run_id, metrics=first)
    client.log_batch(server.run_id, metrics=first)  # a retry: nothing new, not counted
    with pytest.raises(MlflowException) as e:
        client.log_batch(server.run_id, metrics=metrics(20, 40), params=[Param("lr", "0.1")])
    # (The client's get_http_status_code() maps codes by its own table; the status on the wire is below.)
    assert e.value.error_code == "RESOURCE_LIMIT_EXCEEDED"
    assert f"run '{server.run_id}' has 40 metric values and this request adds 20" in str(e.value)
    assert f"at most {CAP} metric values per run" in str(e.value)
    # Nothing of the refused request was kept: not its params, not its values, no curve point.
    assert server.data()["_params"] == {} and server.data()["_metrics"]["accuracy"] == pytest.approx(0.539)
    assert len(server.engine.trial("exp", server.trial_id).record.intermediate) == 40
    client.log_batch(server.run_id, metrics=metrics(10, 40))  # exactly up to the cap
    with pytest.raises(MlflowException) as e:
        client.log_metric(server.run_id, "loss", 0.1, step=0)
    assert e.value.error_code == "RESOURCE_LIMIT_EXCEEDED"
    r = server.raw("runs/log-metric", {"key": "loss", "value": 0.1, "timestamp": 1, "step": 0})
    assert r.status_code == 400 and r.json()["error_code"] == "RESOURCE_LIMIT_EXCEEDED"  # not retried: not a 429/5xx
    client.log_param(server.run_id, "lr", "0.1")  # params and tags are not metric values
    server.restart()  # the count is rebuilt from the store
    with pytest.raises(MlflowException) as e:
        server.client().log_metric(server.run_id, "loss", 0.1, step=0)
    assert f"has {CAP} metric values and this request adds 1" in str(e.value)
    # The run's values up to the cap make its result as usual.
    assert server.engine.end("exp", server.trial_id, 0) is TrialState.SUCCEEDED
    assert server.engine.trial("exp", server.trial_id).record.value == pytest.approx(0.549)


def test_printed_metrics_past_the_cap_are_refused_to_the_controller(server: Server) -> None:
    url = server.srv.url + f"/api/v1/experiments/exp/trials/{server.trial_id}/collected-metrics"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(url, json={"metrics": [{"key": "accuracy", "value": 0.5, "step": i} for i in range(CAP)]},
                   headers=admin, timeout=30)
    assert r.status_code == 200 and r.json()["recorded"] == CAP
    r = httpx.post(url, json={"metrics": [{"key": "accuracy", "value": 0.9, "step": CAP}]}, headers=admin, timeout=30)
    assert r.status_code == 400 and f"at most {CAP} metric values per run" in r.json()["detail"]
    # The controller re-reading the log from its start (steps it has) is still no error.
    r = httpx.post(url, json={"metrics": [{"key": "accuracy", "value": 0.5, "step": 0}]}, headers=admin, timeout=30)
    assert r.status_code == 200 and r.json()["recorded"] == 0
