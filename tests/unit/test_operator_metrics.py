"""The operator's Prometheus metrics: counting from status writes, the metered tuner client
(against a real tuner server over HTTP), and the metrics HTTP endpoint."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autotune_operator.metrics import OperatorMetrics, metered
from autotune_operator.metrics_server import MetricsServer, parse_endpoint
from autotune_operator.runtime import Settings
from tuner_server.client import HttpClient, TunerClient, TunerServerError
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store

ADMIN = "unit-admin-token-0123456789"


def samples(m: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, as Prometheus would parse it."""
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: OperatorMetrics, name: str, **labels: str) -> float:
    return samples(m).get((name, tuple(sorted(labels.items()))), 0.0)


def status(phase: str | None, **trials: int) -> dict[str, Any]:
    return {**({"phase": phase} if phase else {}), "trials": trials}


def test_a_new_experiment_is_counted_once_created_and_once_finished():
    m = OperatorMetrics()
    key = ("team", "exp")
    m.experiment_loaded(key, {})
    m.status_written(key, status("PENDING"))
    m.status_written(key, status("RUNNING", total=2, running=2))
    m.status_written(key, status("RUNNING", total=3, succeeded=1, failed=1, running=1))
    assert value(m, "autotune_operator_experiments", phase="RUNNING") == 1
    m.status_written(key, status("DONE", total=4, succeeded=2, failed=1, earlyStopped=1))
    m.status_written(key, {**status("DONE", total=4, succeeded=2, failed=1, earlyStopped=1), "message": "again"})
    assert value(m, "autotune_operator_experiments_created_total") == 1
    assert value(m, "autotune_operator_experiments_finished_total", phase="DONE") == 1
    assert value(m, "autotune_operator_experiments_finished_total", phase="ERROR") == 0
    assert value(m, "autotune_operator_trials_created_total") == 4
    assert value(m, "autotune_operator_trials_finished_total", state="SUCCEEDED") == 2
    assert value(m, "autotune_operator_trials_finished_total", state="FAILED") == 1
    assert value(m, "autotune_operator_trials_finished_total", state="EARLY_STOPPED") == 1
    assert value(m, "autotune_operator_trials_finished_total", state="STOPPED") == 0
    assert value(m, "autotune_operator_experiments", phase="DONE") == 1
    assert value(m, "autotune_operator_experiments", phase="RUNNING") == 0


def test_after_an_operator_restart_only_what_changes_is_counted():
    m = OperatorMetrics()
    running, done = ("ns", "running"), ("ns", "done")
    m.experiment_loaded(running, status("RUNNING", total=7, succeeded=5, running=2))
    m.experiment_loaded(done, status("TIMEOUT", total=3, stopped=3))
    m.status_written(running, status("RUNNING", total=8, succeeded=6, running=2))
    assert value(m, "autotune_operator_experiments_created_total") == 0
    assert value(m, "autotune_operator_trials_created_total") == 1
    assert value(m, "autotune_operator_trials_finished_total", state="SUCCEEDED") == 1
    assert value(m, "autotune_operator_experiments_finished_total", phase="TIMEOUT") == 0  # it ended before
    assert value(m, "autotune_operator_experiments", phase="TIMEOUT") == 1
    assert value(m, "autotune_operator_experiments", phase="RUNNING") == 1
    m.status_written(running, status("ERROR", total=8, succeeded=6, failed=2))
    assert value(m, "autotune_operator_experiments_finished_total", phase="ERROR") == 1
    assert value(m, "autotune_operator_trials_finished_total", state="FAILED") == 2
    m.experiment_forgotten(done)
    assert value(m, "autotune_operator_experiments", phase="TIMEOUT") == 0


def test_an_invalid_experiment_counts_as_created_and_finished_error():
    m = OperatorMetrics()
    m.experiment_loaded(("ns", "bad"), {})
    m.status_written(("ns", "bad"), status("PENDING"))
    m.status_written(("ns", "bad"), {"phase": "ERROR", "message": "spec.searchSpace: ..."})
    assert value(m, "autotune_operator_experiments_created_total") == 1
    assert value(m, "autotune_operator_experiments_finished_total", phase="ERROR") == 1


def test_two_operators_in_one_process_have_separate_registries():
    a, b = OperatorMetrics(), OperatorMetrics()
    a.workload_created("job")
    a.error("reconcile")
    assert value(a, "autotune_operator_workloads_created_total", family="job") == 1
    assert value(b, "autotune_operator_workloads_created_total", family="job") == 0
    assert value(a, "autotune_operator_errors_total", source="reconcile") == 1
    assert value(b, "autotune_operator_errors_total", source="reconcile") == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    with EmbeddedServer(Engine(Store(tmp_path / "tuner.db")), ADMIN) as s:
        yield s


def test_metered_client_times_calls_and_counts_failures_by_reason(server):
    m = OperatorMetrics()
    c = metered(HttpClient(server.url, ADMIN, retry_seconds=0), m)
    config = ExperimentConfig.model_validate({"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}),
                                              "tuner": {"name": "Random"}})
    c.register("e1", "e1", config)
    for seq in range(3):
        c.suggest("e1", seq)
    with pytest.raises(TunerServerError):
        c.summary("no-such-experiment")
    down = metered(HttpClient(f"http://127.0.0.1:{free_port()}", ADMIN, retry_seconds=0), m)
    with pytest.raises(OSError):
        down.summary("e1")
    assert value(m, "autotune_operator_tuner_call_duration_seconds_count", method="register") == 1
    assert value(m, "autotune_operator_tuner_call_duration_seconds_count", method="suggest") == 3
    assert value(m, "autotune_operator_tuner_call_duration_seconds_count", method="summary") == 2
    assert value(m, "autotune_operator_tuner_call_errors_total", method="summary", reason="4xx") == 1
    assert value(m, "autotune_operator_tuner_call_errors_total", method="summary", reason="unreachable") == 1
    assert value(m, "autotune_operator_tuner_call_errors_total", method="suggest", reason="4xx") == 0


def test_metered_client_passes_every_protocol_method_through(server):
    inner = HttpClient(server.url, ADMIN, retry_seconds=0)
    c = metered(inner, OperatorMetrics())
    methods = [n for n in vars(TunerClient) if not n.startswith("_") and callable(getattr(TunerClient, n))]
    assert "suggest" in methods and "list_experiments" in methods
    for name in methods:
        assert callable(getattr(c, name)), name
    assert c.list_experiments() == []
    assert getattr(c, "url") == server.url  # plain attributes too


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_metrics_server_serves_its_path_and_releases_the_port_on_stop():
    m = OperatorMetrics()
    m.experiment_loaded(("ns", "e"), {})
    port = free_port()
    srv = MetricsServer(parse_endpoint(f"http://127.0.0.1:{port}/metrics"), m.exposition).start()
    try:
        code, ctype, body = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
        assert "autotune_operator_experiments_created_total 1.0" in body
        assert 'autotune_operator_experiments{phase="PENDING"} 1.0' in body
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        srv.stop()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/metrics")
    again = MetricsServer(parse_endpoint(f"http://127.0.0.1:{port}/metrics"), m.exposition).start()  # the port is free
    try:
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        again.stop()


def test_metrics_server_on_a_taken_port_fails_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError):
            MetricsServer(parse_endpoint(f"http://127.0.0.1:{s.getsockname()[1]}/metrics"), bytes)


@pytest.mark.parametrize("url, problem", [
    ("https://0.0.0.0:9090/metrics", "http://"),
    ("0.0.0.0:9090", "http://"),
    ("http://0.0.0.0/metrics", "needs a port"),
    ("http://0.0.0.0:99999/metrics", "needs a port"),
])
def test_bad_metrics_endpoints_are_refused_naming_the_problem(url, problem):
    with pytest.raises(ValueError, match=problem):
        parse_endpoint(url)
    with pytest.raises(SystemExit, match="AUTOTUNE_METRICS_ENDPOINT"):
        Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20, "AUTOTUNE_METRICS_ENDPOINT": url})


def test_metrics_endpoint_setting_defaults_to_off():
    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20}).metrics_endpoint is None
    e = parse_endpoint(Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20,
                                          "AUTOTUNE_METRICS_ENDPOINT": "http://0.0.0.0:9090"}).metrics_endpoint or "")
    assert (e.host, e.port, e.path) == ("0.0.0.0", 9090, "/metrics")
