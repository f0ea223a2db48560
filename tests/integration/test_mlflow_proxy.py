"""MLflow-instrumented trials of `autotune run` from a shell with a proxy set (http_proxy,
as behind a corporate proxy) and no no_proxy for 127.0.0.1: their MLflow client still
reaches the run's own tuner server on this machine's loopback, where no proxy could reach
(the SDK's own reports bypass the proxy there since eb3f157). Real MLflow client, real
scikit-learn trials on digits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TRIALS, free_port, manifest, read_status, run_autotune, write_manifest
from tests.integration.test_local_mode import rows

pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")


def test_mlflow_trials_of_a_local_run_bypass_the_proxy_for_the_loopback_server(tmp_path: Path) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # a proxy that is not there: anything sent to it fails
    configs = [{"eta0": 0.01, "alpha": 0.0001, "epoch_seconds": 0}, {"eta0": 0.003, "alpha": 0.001, "epoch_seconds": 0}]
    command = [sys.executable, str(TRIALS / "mlflow_sgd.py"), "--eta0", "${parameters.eta0}", "--alpha",
               "${parameters.alpha}", "--epochs", "3", "--epoch-seconds", "${parameters.epoch_seconds}"]
    doc = manifest(name="mlflow-proxied", space={"config": {"_type": "choice", "_value": configs}}, command=command,
                   tuner="Batch", max_trials=2, concurrency=1,
                   env=[{"name": "MLFLOW_SGD_RECORD", "value": str(tmp_path / "record.jsonl")}])
    doc["spec"]["primaryMetric"] = "accuracy"
    path = write_manifest(tmp_path / "e.yaml", doc)
    # (MLflow's retries of an unreachable server would take minutes: none here)
    env = {"http_proxy": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy,
           "no_proxy": "", "NO_PROXY": "", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"], env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_status(tmp_path / "out", "mlflow-proxied")
    assert s["trials"]["succeeded"] == 2, [t["message"] for t in rows(tmp_path / "out", "mlflow-proxied")]
    assert all(len(json.loads(t["intermediate"])) == 3 for t in rows(tmp_path / "out", "mlflow-proxied"))
