"""A deleted experiment's events (its MLflow runs, collected metrics, final results) over real
HTTP and a real server process: an experiment registered again under the same id (as
`autotune run --server` does: its id is ``local.<name>``) sees none of them, before and after a
restart, and the server purges them after ``--deleted-retention``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import ADMIN, ServerProcess, free_port
from tuner_server.mlflow_names import run_id_of, tracking_uri

EXP = "local.same-name"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})
CONFIG = {"searchSpace": SPACE, "tuner": {"name": "Random"}, "optimizeMode": "maximize", "primaryMetric": "accuracy"}
API = "/api/2.0/mlflow/"


def register(s: ServerProcess) -> str:
    with s.client() as c:
        r = c.put(f"/api/v1/experiments/{EXP}", json={"name": "same-name", "config": CONFIG})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def issue(s: ServerProcess) -> str:
    with s.client() as c:
        r = c.post(f"/api/v1/experiments/{EXP}/trials", json={"sequence": 0})
        assert r.status_code == 200, r.text
        tid = str(r.json()["trialId"])
        assert c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/start", json={}).status_code == 200
        return tid


def mlflow_call(s: ServerProcess, token: str, trial: str, call: str, body: dict[str, Any]) -> httpx.Response:
    uri = tracking_uri(s.url, EXP, trial)
    return httpx.post(uri + API + call, json={"run_id": run_id_of(trial), **body},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)


def run_data(s: ServerProcess, token: str, trial: str) -> dict[str, Any]:
    uri = tracking_uri(s.url, EXP, trial)
    r = httpx.get(uri + API + "runs/get", params={"run_id": run_id_of(trial)},
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json()["run"])


def old_generation(s: ServerProcess, delete: bool = True) -> str:
    """Register, log through MLflow and the collected-metrics path, finish the run (a final
    result taken from MLflow), end the trial, delete the experiment. Returns the trial id."""
    token = register(s)
    tid = issue(s)
    metrics = [{"key": "accuracy", "value": 0.5 + i / 10, "timestamp": 1000 + i, "step": i} for i in range(3)]
    metrics.append({"key": "loss", "value": 0.25, "timestamp": 1003, "step": 2})
    r = mlflow_call(s, token, tid, "runs/log-batch", {"metrics": metrics, "params": [{"key": "lr", "value": "0.1"}],
                                                     "tags": [{"key": "team", "value": "old"}]})
    assert r.status_code == 200, r.text
    with s.client() as c:
        r = c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/collected-metrics",
                   json={"metrics": [{"key": "printed", "value": 7.0, "step": 0}, {"key": "printed", "value": 8.0, "step": 1}]})
        assert r.json() == {"recorded": 2}
    assert mlflow_call(s, token, tid, "runs/update", {"status": "FINISHED", "end_time": 5000}).status_code == 200
    with s.client() as c:
        assert c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/end", json={"exitCode": 0}).json()["state"] == "SUCCEEDED"
        assert c.get(f"/api/v1/experiments/{EXP}/trials/{tid}").json()["value"] == 0.7
        if delete:
            assert c.delete(f"/api/v1/experiments/{EXP}").status_code == 200
    return tid


def events_of(db: Path, exp_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return [(int(r[0]), str(r[1])) for r in con.execute("SELECT id, kind FROM events WHERE exp_id = ? ORDER BY id",
                                                             (exp_id,))]


def test_a_re_registered_experiment_sees_nothing_of_the_deleted_one_before_and_after_a_restart(tmp_path: Path) -> None:
    s = ServerProcess(tmp_path / "tuner.db", free_port())
    s.start()
    try:
        old = old_generation(s)
        token = register(s)
        tid = issue(s)
        assert tid == old  # the same trial name, so the same MLflow run id: only the generation tells them apart
        for phase in ("before restart", "after restart"):
            run = run_data(s, token, tid)
            assert run["info"]["status"] == "RUNNING", phase
            assert run["data"] == {"metrics": [], "params": [], "tags": []}, phase
            with s.client() as c:
                view = c.get(f"/api/v1/experiments/{EXP}/trials/{tid}").json()
            assert (view["value"], view["metrics"], view["intermediate"], view["state"]) == (None, None, [], "RUNNING"), phase
            if phase == "before restart":
                s.stop()
                s.start()
        # The old run's param, its collected steps and its logged values do not constrain the new run.
        r = mlflow_call(s, token, tid, "runs/log-batch", {"params": [{"key": "lr", "value": "0.2"}],
                                                          "metrics": [{"key": "accuracy", "value": 0.3, "timestamp": 1000, "step": 0}]})
        assert r.status_code == 200, r.text
        with s.client() as c:
            r = c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/collected-metrics",
                       json={"metrics": [{"key": "printed", "value": 1.0, "step": 0}]})
            assert r.json() == {"recorded": 1}
        s.stop()
        s.start()
        with s.client() as c:
            assert c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/end", json={"exitCode": 0}).json()["state"] == "SUCCEEDED"
            view = c.get(f"/api/v1/experiments/{EXP}/trials/{tid}").json()
        assert view["intermediate"] == [0.3]
        assert view["metrics"] == {"accuracy": 0.3, "printed": 1.0, "default": 0.3}
        run = run_data(s, token, tid)
        assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"lr": "0.2"}
        assert run["data"]["tags"] == []
    finally:
        s.stop()


# ----- purging after --deleted-retention -----
def purged_total(s: ServerProcess) -> float:
    text = s.get("/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("autotune_events_purged_total ")]
    return float(line.split()[1])


def wait_purged(s: ServerProcess, n: int) -> None:
    deadline = time.monotonic() + 60  # a bound on waiting, not a speed target
    while purged_total(s) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert purged_total(s) == n


def test_retention_0_purges_at_deletion_and_a_re_registered_experiment_keeps_its_own(tmp_path: Path) -> None:
    db = tmp_path / "tuner.db"
    s = ServerProcess(db, free_port(), extra_env={"AUTOTUNE_DELETED_RETENTION": "0"})
    s.start()
    try:
        old_generation(s, delete=False)
        n = len(events_of(db, EXP))
        assert n > 8 and purged_total(s) == 0
        with s.client() as c:
            assert c.delete(f"/api/v1/experiments/{EXP}").status_code == 200
        wait_purged(s, n + 1)  # and its deletion event
        assert events_of(db, EXP) == []
        token = register(s)
        tid = issue(s)
        r = mlflow_call(s, token, tid, "runs/log-batch", {"params": [{"key": "lr", "value": "0.2"}]})
        assert r.status_code == 200, r.text
        mine = events_of(db, EXP)
        assert [k for _, k in mine] == ["experiment_registered", "trial_issued", "trial_started", "mlflow_params"]
        s.stop()
        s.start()
        assert purged_total(s) == 0  # a counter of this process
        run = run_data(s, token, tid)
        assert run["data"]["params"] == [{"key": "lr", "value": "0.2"}]
        assert events_of(db, EXP) == mine
    finally:
        s.stop()


def test_deletions_made_under_a_long_retention_are_purged_by_a_later_server(tmp_path: Path) -> None:
    """The deletion time is the stored event's: a server started later (here with 0) purges what
    is due then, and the other experiments' events stay as they were."""
    db = tmp_path / "tuner.db"
    s = ServerProcess(db, free_port())  # the default: 7 days
    s.start()
    try:
        old_generation(s)
        with s.client() as c:
            assert c.put("/api/v1/experiments/other", json={"name": "other", "config": CONFIG}).status_code == 200
        n = len(events_of(db, EXP))
        other = events_of(db, "other")
        assert n > 8 and events_of(db, EXP)[-1][1] == "experiment_deleted"
        s.stop()
        s.extra_env["AUTOTUNE_DELETED_RETENTION"] = "0"
        s.start()
        wait_purged(s, n)
        assert events_of(db, EXP) == [] and events_of(db, "other") == other
    finally:
        s.stop()


def test_a_bad_retention_is_refused_naming_the_setting(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tuner_server", "--db", str(tmp_path / "t.db"), "--port", str(free_port())],
                       env={"AUTOTUNE_ADMIN_TOKEN": ADMIN, "AUTOTUNE_DELETED_RETENTION": "7 days", "PATH": "/usr/bin:/bin",
                            "PYTHONSAFEPATH": "1"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--deleted-retention / AUTOTUNE_DELETED_RETENTION: '7 days' is not a duration" in r.stderr
