"""A tuner server killed while recording an MLflow run's final result leaves the run able to
update it.

When a run ends FINISHED, the last logged values become the trial's final result
(``Engine.report_final``) and an ``mlflow_final`` event records that this final result came
from MLflow (mlflow_runs.py), not from the SDK, whose final report always wins. Written in two
transactions, a server killed between the commits came back with a final result and no
``mlflow_final``: the result then looked like the SDK's, so values the script logged after
reopening the run (``mlflow.start_run(run_id=...)`` after an ``end_run()``) never updated it,
and the trial ended with an old value. Here a real tuner-server process dies just before, or
just after, each commit of a script's calls (``os._exit`` from SQLite's statement trace, a
hook only this test installs: as a SIGKILL would); a new server on the same database gets the
unanswered call again and the rest, as the MLflow client's retry and the script send them.
(tests/unit/dying_server.py; the same approach as tests/unit/test_metric_crash_window.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine
from tuner_server.history import TrialState
from tuner_server.mlflow_names import run_id_of, tracking_uri
from tuner_server.store import Store

from tests.unit.dying_server import ADMIN, dying_server, prepare

API = "/api/2.0/mlflow/"
COMMITS = 7  # the script's calls below make 7 commits (each final result one, with its event)

# Exit just before the n-th COMMIT ("before": that transaction never commits) or at the first
# statement after it ("after": it committed, nothing later did).
_HOOK = """
nth, where = int(args[0]), args[1]
commits = 0

def hook(sql: str) -> None:
    global commits
    if commits == nth:  # where == "after": the first statement after the n-th commit
        os._exit(137)
    if sql == "COMMIT":
        commits += 1
        if commits == nth and where == "before":
            os._exit(137)
"""


def _script(trial_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A script's MLflow calls: it logs, ends its run, reopens it (``start_run(run_id=...)``),
    logs a better value and ends it again. The second end must make 0.9 the result."""
    rid = run_id_of(trial_id)
    return [
        ("runs/log-metric", {"run_id": rid, "key": "accuracy", "value": 0.5, "timestamp": 1000, "step": 0}),
        ("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 1500}),
        ("runs/update", {"run_id": rid, "status": "RUNNING"}),
        ("runs/log-metric", {"run_id": rid, "key": "accuracy", "value": 0.9, "timestamp": 2000, "step": 1}),
        ("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 2500}),
    ]


def _send(base: str, trial_id: str, calls: list[tuple[str, dict[str, Any]]], token: str) -> int | None:
    """Send the calls in order; the index of the first that got no answer (None: all did)."""
    uri = tracking_uri(base, "exp", trial_id) + API
    for i, (call, body) in enumerate(calls):
        try:
            r = httpx.post(uri + call, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        except httpx.TransportError:
            return i
        assert r.status_code == 200, r.text
    return None


@pytest.mark.parametrize("nth, where", [(n, "before") for n in range(1, COMMITS + 1)]
                         + [(n, "after") for n in range(1, COMMITS)])
def test_a_server_killed_at_any_commit_still_takes_values_logged_after_finished(tmp_path: Path, nth: int, where: str) -> None:
    db = tmp_path / "t.db"
    token, trial_id = prepare(db)
    calls = _script(trial_id)
    with dying_server(db, _HOOK, str(nth), where) as (proc, base):
        unanswered = _send(base, trial_id, calls, token)
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 137, f"the server was meant to die {where} commit {nth}"

    engine = Engine(Store(db))  # the restarted server
    # Whatever commit the kill stopped at, every final result has its mlflow_final event.
    kinds = [e["kind"] for e in engine.store.events("exp")]
    assert kinds.count("final_metric") == kinds.count("mlflow_final")
    with EmbeddedServer(engine, ADMIN) as srv:
        # The unanswered call again (the client's retry), then the script's next calls.
        assert _send(srv.url, trial_id, calls[unanswered:] if unanswered is not None else [], token) is None
    assert engine.end("exp", trial_id, 0) is TrialState.SUCCEEDED
    t = engine.trial("exp", trial_id)
    assert t.record.value == 0.9 and t.record.metrics == {"default": 0.9, "accuracy": 0.9}
    assert t.record.intermediate == [0.5, 0.9]
    engine.store.close()
