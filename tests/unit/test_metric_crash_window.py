"""A tuner server killed while recording a logged metric loses no curve point.

A value logged through MLflow, or read from a trial's output by the controller, is recorded
as an event (replayed into the run's state after a restart: what a retried call is checked
against) and, when it is the objective, as a point of the trial's curve (what assessors
judge, trials.csv and the UI show). Written in two transactions, a server killed between the
commits came back with the value "recorded" and the point missing for ever: the retried call
and the re-read log were skipped as done. Here a real tuner-server process is killed with
SIGKILL semantics (``os._exit`` from SQLite's statement trace, a hook only this test
installs) just before the n-th curve point's transaction commits; a new server on the same
database then gets the same call again, over HTTP, as the MLflow client's retry or the
restarted controller's re-read sends it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Assignment, Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.mlflow_names import run_id_of, tracking_uri
from tuner_server.store import Store

from tests.unit.dying_server import ADMIN, SPACE, dying_server, prepare

ACCURACY = [0.5, 0.6, 0.7, 0.8]
LOSS = [0.9, 0.7, 0.5, 0.3]

# Exit when the transaction holding the n-th curve point (the n-th INSERT into
# `intermediate`) is about to commit: that COMMIT never happens.
_HOOK = """
nth = int(args[0])
points = 0

def hook(sql: str) -> None:
    global points
    if sql.startswith("INSERT OR REPLACE INTO intermediate"):
        points += 1
    elif sql == "COMMIT" and points == nth:
        os._exit(137)
"""


def _mlflow_call(trial_id: str) -> tuple[str, dict[str, Any]]:
    """One log-batch of four steps of the objective and of another metric, newest first
    (async logging's order): the curve must still be made in (step, timestamp) order."""
    rid = run_id_of(trial_id)
    metrics = [m for i in range(4) for m in (
        {"key": "accuracy", "value": ACCURACY[i], "timestamp": 1000 + i, "step": i},
        {"key": "loss", "value": LOSS[i], "timestamp": 1000 + i, "step": i},
    )]
    return (tracking_uri("{url}", "exp", trial_id) + "/api/2.0/mlflow/runs/log-batch",
            {"run_id": rid, "metrics": list(reversed(metrics))})


def _collected_call(trial_id: str) -> tuple[str, dict[str, Any]]:
    """The controller's read of the trial's output: each value the step-th of its name."""
    metrics = [m for i in range(4) for m in ({"key": "loss", "value": LOSS[i], "step": i},
                                              {"key": "accuracy", "value": ACCURACY[i], "step": i})]
    return "{url}" + f"/api/v1/experiments/exp/trials/{trial_id}/collected-metrics", {"metrics": metrics}


def _post(url: str, body: dict[str, Any], token: str) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _kill_during(db: Path, nth: int, url: str, body: dict[str, Any], token: str) -> None:
    """Send the call to a server that dies before committing the nth curve point."""
    with dying_server(db, _HOOK, str(nth)) as (proc, base):
        with pytest.raises(httpx.TransportError):  # no answer: the client will retry
            _post(url.replace("{url}", base), body, token)
        assert proc.wait(timeout=30) == 137, "the server was meant to die before the point's commit"


@pytest.mark.parametrize("nth", [1, 3])
@pytest.mark.parametrize("path", ["mlflow", "collected"])
def test_a_server_killed_before_a_points_commit_loses_no_point(tmp_path: Path, path: str, nth: int) -> None:
    db = tmp_path / "t.db"
    exp_token, trial_id = prepare(db)
    url, body = (_mlflow_call if path == "mlflow" else _collected_call)(trial_id)
    token = exp_token if path == "mlflow" else ADMIN
    _kill_during(db, nth, url, body, token)

    engine = Engine(Store(db))  # the restarted server
    before = engine.trial("exp", trial_id).record.intermediate
    assert before == ACCURACY[:nth - 1]  # the points committed before the kill, no more
    with EmbeddedServer(engine, ADMIN) as srv:
        r = _post(url.replace("{url}", srv.url), body, token)  # the retry / the re-read log
        assert r.status_code == 200, r.text
        if path == "collected":  # the values not recorded before the kill, and only those
            assert r.json()["recorded"] == 8 - 2 * (nth - 1)
        r = _post(url.replace("{url}", srv.url), body, token)  # and once more: nothing new
        assert r.status_code == 200, r.text
    assert engine.trial("exp", trial_id).record.intermediate == ACCURACY
    assert [p["step"] for p in engine.store.intermediate("exp", trial_id)] == [0, 1, 2, 3]
    # Every logged value is in the run's events exactly once.
    logged = [(m["key"], m["step"]) for e in engine.store.trial_events("exp", trial_id, "mlflow_")
              for m in e["payload"].get("metrics", [])]
    assert sorted(logged) == sorted((k, i) for k in ("accuracy", "loss") for i in range(4))
    engine.store.close()

    engine = Engine(Store(db))  # restarted again: the same curve, and the same run state
    assert engine.trial("exp", trial_id).record.intermediate == ACCURACY
    with EmbeddedServer(engine, ADMIN) as srv:
        if path == "mlflow":  # a late, older value still does not extend the curve
            late = {"run_id": run_id_of(trial_id), "key": "accuracy", "value": 0.1, "timestamp": 999, "step": 1}
            r = _post(tracking_uri(srv.url, "exp", trial_id) + "/api/2.0/mlflow/runs/log-metric", late, token)
            assert r.status_code == 200, r.text
        assert engine.end("exp", trial_id, 0) is TrialState.SUCCEEDED
    t = engine.trial("exp", trial_id)
    assert t.record.intermediate == ACCURACY
    assert t.record.metrics == {"default": 0.8, "accuracy": 0.8, "loss": 0.3}
    engine.store.close()


# ----- a write that fails (not a crash): the server lives on, the state it keeps must match the store -----
FAILURES = {
    # The point's own transaction fails: nothing of the value may be kept, the retry records it.
    "point": "CREATE TRIGGER fail BEFORE INSERT ON intermediate BEGIN SELECT RAISE(ABORT, 'injected'); END",
    # A write after the point's commit fails (marking the waiting trial running): the value is
    # recorded, and the retry must not add its point a second time.
    "after": "CREATE TRIGGER fail BEFORE UPDATE OF state ON trials BEGIN SELECT RAISE(ABORT, 'injected'); END",
}


@pytest.mark.parametrize("where", sorted(FAILURES))
def test_a_failed_write_leaves_the_value_recorded_with_its_point_or_not_at_all(tmp_path: Path, where: str) -> None:
    """A real SQLite failure (a trigger on the same database) while an MLflow value is recorded."""
    import sqlite3

    db = tmp_path / "t.db"
    engine = Engine(Store(db))
    cfg = ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}, "primaryMetric": "accuracy"})
    h = engine.register("exp", "exp", cfg)
    a = engine.suggest("exp")
    assert isinstance(a, Assignment)  # left WAITING: its first logged value marks it running
    other = sqlite3.connect(db)
    other.execute(FAILURES[where])
    other.commit()
    body = {"run_id": run_id_of(a.trial_id), "key": "accuracy", "value": 0.5, "timestamp": 1000, "step": 0}
    with EmbeddedServer(engine, ADMIN) as srv:
        url = tracking_uri(srv.url, "exp", a.trial_id) + "/api/2.0/mlflow/runs/log-metric"
        assert _post(url, body, h.stored.token).status_code == 500
        assert engine.trial("exp", a.trial_id).record.intermediate == ([0.5] if where == "after" else [])
        other.execute("DROP TRIGGER fail")
        other.commit()
        for _ in range(2):  # the client's retry, and another
            r = _post(url, body, h.stored.token)
            assert r.status_code == 200, r.text
    other.close()
    assert engine.trial("exp", a.trial_id).record.intermediate == [0.5]
    assert [p["value"] for p in engine.store.intermediate("exp", a.trial_id)] == [0.5]
    assert [m["value"] for e in engine.store.trial_events("exp", a.trial_id, "mlflow_metrics")
            for m in e["payload"]["metrics"]] == [0.5]
    engine.store.close()
