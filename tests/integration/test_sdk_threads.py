"""The SDK used from several threads of one trial, against a real tuner server process:
every intermediate report arrives, none is refused, the trial succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.integration.conftest import TRIALS, ServerProcess
from tests.integration.test_tuner_server_http import register


def test_reports_from_concurrent_threads_all_arrive_in_order(server: ServerProcess, tmp_path: Path) -> None:
    token = register(server, space={"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-2]}})
    with server.client() as admin:
        tid = admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"]
    record = tmp_path / "reported.json"
    env = {**os.environ, "AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_TOKEN": token, "AUTOTUNE_EXPERIMENT_ID": "e1",
           "AUTOTUNE_TRIAL_ID": tid, "FOLDS_RECORD": str(record)}
    run = subprocess.run([sys.executable, str(TRIALS / "threaded_folds.py")], env=env, capture_output=True, text=True, timeout=300)
    # Before the fix the threads raced for the step counter: the server refused the steps
    # that overtook each other (409, a thread died) and dropped a step taken twice.
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ReportError" not in run.stderr
    reported = json.loads(record.read_text())
    assert len(reported) == 4 * 8
    trial = server.get(f"/api/v1/experiments/e1/trials/{tid}").json()
    assert Counter(trial["intermediate"]) == Counter(reported)
    assert trial["value"] is not None
