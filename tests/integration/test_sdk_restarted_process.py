"""A trial's process killed and started again (a pod the Job re-created, a script rerun) against
a real tuner server process: the new process numbers its reports from step 0 again, and its
values must make the curve and the result, not be dropped as retries of the killed one's. And
the processes of a distributed trial (RANK/WORLD_SIZE): rank 0 alone records metrics, every
rank gets the trial's stop decision."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, ServerProcess
from tests.integration.test_tuner_server_http import register

RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                  "PMI_RANK", "PMI_SIZE", "HOROVOD_RANK", "HOROVOD_SIZE")


def new_trial(server: ServerProcess) -> tuple[str, str]:
    token = register(server, space={"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-2]}})
    with server.client() as admin:
        tid = admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"]
    return token, tid


def trial_env(server: ServerProcess, token: str, tid: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    return {**env, "AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_TOKEN": token, "AUTOTUNE_EXPERIMENT_ID": "e1",
            "AUTOTUNE_TRIAL_ID": tid, **extra}


def run(env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, str(TRIALS / "rerun_trial.py")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def trial(server: ServerProcess, tid: str) -> dict[str, Any]:
    return server.get(f"/api/v1/experiments/e1/trials/{tid}").json()


def test_a_killed_and_restarted_process_makes_the_curve_and_the_result(server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    ready = tmp_path / "ready"
    first = subprocess.Popen([sys.executable, str(TRIALS / "rerun_trial.py")],
                             env=trial_env(server, token, tid, RUN_VALUES="0.1,0.2,0.3", RUN_READY=str(ready)))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():  # its three reports are answered, then it sleeps until killed
            assert first.poll() is None, f"the first process exited with {first.returncode}"
            assert time.monotonic() < deadline, "timed out after 120s waiting for the first process's reports"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert trial(server, tid)["intermediate"] == [0.1, 0.2, 0.3]

    run(trial_env(server, token, tid, RUN_VALUES="0.5,0.6"))
    # Before the fix the second process's steps 0 and 1 were taken as retries of the first's:
    # the curve stayed [0.1, 0.2, 0.3], which the assessor judged.
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.5, 0.6], 0.6)
    with server.client() as admin:
        assert admin.post(f"/api/v1/experiments/e1/trials/{tid}/end", json={"exitCode": 0}).json()["state"] == "SUCCEEDED"

    # A client without a session (an SDK older than sessions) keeps the old rule: a held step
    # is a retry. A malformed session is refused, naming the header.
    path = f"/api/v1/experiments/e1/trials/{tid}/intermediate"
    with server.client(token) as sdk:
        assert sdk.post(path, json={"metric": 0.9, "step": 0}).status_code == 200
        bad = sdk.post(path, json={"metric": 0.9, "step": 0}, headers={"X-AutoTune-Session": "a b"})
    assert bad.status_code == 400 and "X-AutoTune-Session" in bad.json()["detail"], bad.text
    assert trial(server, tid)["intermediate"] == [0.5, 0.6]


def test_only_rank_0_records_metrics_and_every_rank_gets_the_stop(server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    answers = tmp_path / "answers.json"
    # Rank 1 first: before, its values made the curve and rank 0's same steps were dropped.
    run(trial_env(server, token, tid, RUN_VALUES="0.7,0.8", RANK="1", WORLD_SIZE="2", RUN_ANSWERS=str(answers)))
    assert json.loads(answers.read_text()) == [False, False]
    run(trial_env(server, token, tid, RUN_VALUES="0.1,0.2", RANK="0", WORLD_SIZE="2"))
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.1, 0.2], 0.2)

    with server.client() as admin:
        assert admin.post(f"/api/v1/experiments/e1/trials/{tid}/stop", json={"reason": "test"}).status_code == 200
    run(trial_env(server, token, tid, RUN_VALUES="0.9", RANK="1", WORLD_SIZE="2", RUN_ANSWERS=str(answers)))
    assert json.loads(answers.read_text()) == [True]  # rank 0's answer would say stop: so does rank 1's
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.1, 0.2], 0.2)
