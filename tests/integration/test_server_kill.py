"""SIGKILL the tuner server in the middle of an experiment: nothing may be lost.

`autotune run --server URL` drives real trial processes against an external tuner
server. The server is killed while trials are reporting and started again on the same
port and database; the trial SDK and the controller retry until it is back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import ADMIN, ServerProcess, autotune_cmd, manifest, read_status, write_manifest
from tests.integration.test_local_mode import rows, toy

MAX_TRIALS = 12
STEPS = 4


def test_experiment_survives_a_killed_tuner_server(server: ServerProcess, tmp_path: Path) -> None:
    doc = manifest(tuner="TPE", class_args={"optimize_mode": "maximize", "tpe_args": {"n_startup_jobs": 4}},
                   command=toy("--steps", str(STEPS), "--sleep", "0.15"), max_trials=MAX_TRIALS, concurrency=3)
    path = write_manifest(tmp_path / "e.yaml", doc)
    env = {"AUTOTUNE_ADMIN_TOKEN": ADMIN}
    proc = subprocess.Popen(
        autotune_cmd() + ["run", str(path), "--output", str(tmp_path / "out"), "--server", server.url],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    exp_id = "local.toy"
    # Wait until the experiment is well under way, with trials mid-report.
    deadline = time.monotonic() + 60
    with server.client() as c:
        while time.monotonic() < deadline:
            r = c.get(f"/api/v1/experiments/{exp_id}")
            if r.status_code == 200 and r.json()["trials"]["total"] >= 5:
                break
            time.sleep(0.05)
        before = c.get(f"/api/v1/experiments/{exp_id}/trials").json()
    assert len(before) >= 5
    server.kill()
    time.sleep(2.0)  # trials and the controller keep retrying meanwhile
    server.start()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    with server.client() as c:
        summary = c.get(f"/api/v1/experiments/{exp_id}").json()
        trials = c.get(f"/api/v1/experiments/{exp_id}/trials").json()
    # exactly maxTrialNum trials, every one ended, none twice
    assert summary["trials"]["total"] == MAX_TRIALS
    assert summary["trials"]["running"] == 0 and summary["trials"]["waiting"] == 0
    assert summary["trials"]["succeeded"] == MAX_TRIALS, [t["message"] for t in trials if t["state"] != "SUCCEEDED"]
    keys = {json.dumps(t["parameters"], sort_keys=True) for t in trials}
    assert len(keys) == MAX_TRIALS
    # no metric lost: every trial has all its intermediate reports and its final value
    assert all(len(t["intermediate"]) == STEPS and t["value"] is not None for t in trials)
    # what was recorded before the kill is still there, unchanged
    after = {t["name"]: t for t in trials}
    for t in before:
        assert after[t["name"]]["parameters"] == t["parameters"]
        assert after[t["name"]]["intermediate"][: len(t["intermediate"])] == t["intermediate"]
    s = read_status(tmp_path / "out", "toy")
    assert s["phase"] == "DONE" and s["trials"]["total"] == MAX_TRIALS
    assert len(rows(tmp_path / "out", "toy")) == MAX_TRIALS
