"""A trial's final result is its current run's (report_session.py), against a real tuner server
process and real SDK processes: a process a newer one replaced (a pod still running beside its
replacement) reports its final result after the replacement's and must not overwrite it, even
across a server restart; and a process that starts again after the trial's final report (before
the trial ended) takes over the curve and drops the replaced run's result."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, ServerProcess
from tests.integration.test_sdk_restarted_process import new_trial, run, trial, trial_env


def held(env: dict[str, str], ready: Path) -> subprocess.Popen[bytes]:
    """rerun_trial.py, once its reports are answered and it holds ($RUN_READY)."""
    proc = subprocess.Popen([sys.executable, str(TRIALS / "rerun_trial.py")], env={**env, "RUN_READY": str(ready)})
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the trial process exited with {proc.returncode} before holding")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out after 120s waiting for the trial process's reports")
        time.sleep(0.05)
    return proc


def events(server: ServerProcess, tid: str, kind: str) -> list[dict[str, Any]]:
    """The trial's stored events of ``kind``, read from the server's database (no API lists them)."""
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM events WHERE trial_id = ? AND kind = ? ORDER BY id", (tid, kind))
        return [json.loads(r[0]) for r in rows]


def restart(server: ServerProcess) -> None:
    server.kill()
    server.start()


def test_a_replaced_processs_late_final_result_does_not_overwrite_its_replacements(
        server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    release = tmp_path / "release"
    old = held(trial_env(server, token, tid, RUN_VALUES="0.1,0.2,0.3", RUN_RELEASE=str(release)), tmp_path / "ready")
    try:
        run(trial_env(server, token, tid, RUN_VALUES="0.5,0.6"))  # the replacement: curve and result
        assert (trial(server, tid)["intermediate"], trial(server, tid)["value"]) == ([0.5, 0.6], 0.6)
        restart(server)  # the replaced session is known from the stored events
        release.touch()  # the old process goes on: its final report is answered (exit 0) ...
        assert old.wait(timeout=120) == 0
    finally:
        if old.poll() is None:
            old.send_signal(signal.SIGKILL)
            old.wait()
    # ... but not recorded. Before, the last final report won: ([0.5, 0.6], 0.3).
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.5, 0.6], 0.6)
    [note] = events(server, tid, "stale_final_ignored")
    assert note["value"] == 0.3 and note["current"] is not None and note["session"] != note["current"]
    assert "replaced" in note["note"]

    path = f"/api/v1/experiments/e1/trials/{tid}/final"
    with server.client(token) as sdk:
        bad = sdk.post(path, json={"metric": 0.9}, headers={"X-AutoTune-Session": "a b"})
        assert bad.status_code == 400 and "X-AutoTune-Session" in bad.json()["detail"], bad.text
        # A result without a session (an SDK older than sessions) is recorded as before.
        assert sdk.post(path, json={"metric": 0.7}).status_code == 200
    assert trial(server, tid)["value"] == 0.7
    with server.client() as admin:
        assert admin.post(f"/api/v1/experiments/e1/trials/{tid}/end", json={"exitCode": 0}).json()["state"] == "SUCCEEDED"
    assert trial(server, tid)["value"] == 0.7


def test_a_process_started_again_after_the_final_report_drops_the_replaced_runs_result(
        server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    run(trial_env(server, token, tid, RUN_VALUES="0.1,0.2"))  # reports its result; its end is not seen
    assert (trial(server, tid)["intermediate"], trial(server, tid)["value"]) == ([0.1, 0.2], 0.2)

    again = held(trial_env(server, token, tid, RUN_VALUES="0.5"), tmp_path / "ready")
    try:
        # A new run took over the curve: the result it replaced is no longer the trial's.
        # Before, the trial kept 0.2, the result of a run its curve no longer showed.
        t = trial(server, tid)
        assert (t["intermediate"], t["value"]) == ([0.5], None)
        restart(server)
        t = trial(server, tid)
        assert (t["intermediate"], t["value"]) == ([0.5], None)
    finally:
        again.send_signal(signal.SIGKILL)
        again.wait()
    [note] = events(server, tid, "curve_restarted")
    assert (note["step"], note["dropped"], note["droppedFinal"]) == (0, 2, 0.2)
    assert "final result 0.2" in note["note"]

    run(trial_env(server, token, tid, RUN_VALUES="0.6,0.7"))  # the next run reports its own
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.6, 0.7], 0.7)
