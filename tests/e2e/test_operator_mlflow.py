"""An MLflow-instrumented trial on a cluster: the operator gives each trial pod the MLflow
variables (the token from the experiment's Secret, never in clear), the script logs only
with mlflow.log_metric, and spec.primaryMetric makes that the objective; Medianstop's stop
is carried out by deleting the trial's Job. Real kube-apiserver, fake nodes running the
pods as local processes, the tuner server and the operator as local processes."""

from __future__ import annotations

import pytest

from kube_harness.experiments import MAXIMIZE, get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, jobs, operator_env, stopped_in_place, trial_experiment, wait_for

pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")

MLFLOW_SCRIPT = '''\
import argparse
import time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
x = p.parse_args().x
mlflow.log_param("x", x)
for step in range(4):
    # The poor trial (x=1), judged at its first value, then trains on slowly: only its stop
    # ends it, however late the operator looks; it cannot finish first on a slow machine.
    time.sleep(1.5 if x >= 2 or step == 0 else 600)
    mlflow.log_metric("accuracy", x * (step + 1), step=step)
mlflow.log_metric("loss", 1 / x)
'''


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("operator"), "mlflow", script=MLFLOW_SCRIPT) as e:
        yield e


def test_mlflow_trials_report_and_are_stopped_early_on_a_cluster(kube_cluster, env):
    ns, name = env["ns"], "mlflow"
    apply_manifest(kube_cluster, ns, trial_experiment(
        name, env["script"], max_trials=2, concurrency=1, space='{"x": {"_type": "choice", "_value": [4, 1]}}',
        tuner="Batch", assessor={"builtinAssessorName": "Medianstop", "classArgs": MAXIMIZE}, primaryMetric="accuracy"))
    (job,) = wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the first trial's Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    menv = {e["name"]: e for e in container["env"] if e["name"].startswith("MLFLOW_")}
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    assert menv["MLFLOW_TRACKING_URI"]["value"] == f"{env['server'].url}/mlflow/{uid}/{name}-0"
    assert menv["MLFLOW_RUN_ID"]["value"] == f"{name}-0"
    assert menv["MLFLOW_TRACKING_TOKEN"] == {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": f"{name}-autotune-token", "key": "token"}}}

    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1 and st["trials"]["earlyStopped"] == 1, st
    assert st["bestTrial"]["parameters"] == {"x": 4} and st["bestTrial"]["value"] == 16
    trials = {t["name"]: t for t in env["server"].get(f"/api/v1/experiments/{uid}/trials").json()}
    good, bad = trials[f"{name}-0"], trials[f"{name}-1"]
    assert good["intermediate"] == [4, 8, 12, 16] and good["metrics"] == {"default": 16, "accuracy": 16, "loss": 0.25}
    assert bad["state"] == "EARLY_STOPPED" and len(bad["intermediate"]) < 4
    # Its Job stays, its pod stopped and kept with its logs (stop_in_place.py).
    wait_for(lambda: stopped_in_place(kube_cluster, ns, f"{name}-1"), 30, "the stopped trial's pod stopped and kept")
    assert sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)) == [f"{name}-0", f"{name}-1"]
