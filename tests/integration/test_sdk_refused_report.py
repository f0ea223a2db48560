"""A report the tuner server refuses (422: the metric is not what the experiment takes)
does not use up its step: a trial that catches the ReportError and reports again goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.integration.conftest import ServerProcess

TRIAL = textwrap.dedent("""
    import autotune
    from sklearn.datasets import load_iris
    from sklearn.linear_model import SGDClassifier

    X, y = load_iris(return_X_y=True)
    model = SGDClassifier(random_state=0)
    for epoch in range(3):
        model.partial_fit(X, y, classes=[0, 1, 2])
        acc = float(model.score(X, y))
        try:  # the first epoch's report names a metric the experiment does not optimize
            autotune.report_intermediate_result({"loss": 1.0 - acc} if epoch == 0 else {"accuracy": acc})
        except autotune.ReportError as e:
            print("refused:", e, flush=True)
            autotune.report_intermediate_result({"accuracy": acc})
    autotune.report_final_result({"accuracy": acc, "size": 4.0})
""")


def test_a_refused_intermediate_report_leaves_its_step_to_the_next(server: ServerProcess) -> None:
    config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), "tuner": {"name": "Random"},
              "objectives": [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/mo", json={"name": "mo", "config": config})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        tid = admin.post("/api/v1/experiments/mo/trials", json={}).json()["trialId"]
    env = {**os.environ, "AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_TOKEN": token, "AUTOTUNE_EXPERIMENT_ID": "mo",
           "AUTOTUNE_TRIAL_ID": tid}
    run = subprocess.run([sys.executable, "-c", TRIAL], env=env, capture_output=True, text=True, timeout=120)
    assert "refused:" in run.stdout and "422" in run.stdout
    # Before the fix the refused report had taken step 0: the retry sent step 1 and got
    # 409 'intermediate step 1 reported but the next step is 0', and so did every later one.
    assert run.returncode == 0, run.stderr[-2000:]
    trial = server.get(f"/api/v1/experiments/mo/trials/{tid}").json()
    assert len(trial["intermediate"]) == 3
