"""POST .../trials/{id}/start over real HTTP: "started now" (older clients: no body or {})
and "started at T" (the operator, from a pod's container startedAt), through HttpClient too."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import ADMIN, ServerProcess
from tuner_server.client import HttpClient

SPACE = json.dumps({"x": {"_type": "choice", "_value": [1, 2, 3, 4]}})


def trials(server: ServerProcess, n: int) -> list[str]:
    with server.client() as c:
        r = c.put("/api/v1/experiments/e1", json={"name": "e1", "config": {"searchSpace": SPACE, "tuner": {"name": "GridSearch"}}})
        assert r.status_code == 200, r.text
        return [c.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"] for _ in range(n)]


def test_start_now_from_older_clients_and_at_a_time_from_the_operator(server: ServerProcess) -> None:
    no_body, empty, at = trials(server, 3)
    before = time.time()
    with server.client() as c:
        assert c.post(f"/api/v1/experiments/e1/trials/{no_body}/start").json() == {"ok": True}
        assert c.post(f"/api/v1/experiments/e1/trials/{empty}/start", json={}).json() == {"ok": True}
        s = c.get("/api/v1/experiments/e1").json()
        assert s["trials"]["waiting"] == 1 and s["trials"]["running"] == 2
        created = c.get(f"/api/v1/experiments/e1/trials/{at}").json()["created"]
        op = HttpClient(server.url, ADMIN)
        op.started("e1", at, created)  # its pod ran at once (the earliest time allowed)
        view = {t["name"]: t for t in c.get("/api/v1/experiments/e1/trials").json()}
        assert view[no_body]["started"] >= before and view[empty]["started"] >= before
        assert view[at]["state"] == "RUNNING" and view[at]["started"] == created
        assert c.get("/api/v1/experiments/e1").json()["runningSince"][at] == created
        op.started("e1", at, created + 9)  # a later observation: ignored
        op.started("e1", at, created - 50)  # before the trial existed (clock skew): kept at its creation
        assert c.get(f"/api/v1/experiments/e1/trials/{at}").json()["started"] == created


@pytest.mark.parametrize("body", [{"at": -1}, {"at": 0}, {"at": "soon"}, {"at": 1e400}, {"when": 5.0}])
def test_a_bad_start_time_is_422_and_changes_nothing(server: ServerProcess, body) -> None:
    (tid,) = trials(server, 1)
    with server.client() as c:
        r = c.post(f"/api/v1/experiments/e1/trials/{tid}/start",
                   content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        t = c.get(f"/api/v1/experiments/e1/trials/{tid}").json()
        assert t["state"] == "WAITING" and t["started"] is None


def test_only_the_admin_may_say_a_trial_started(server: ServerProcess) -> None:
    (tid,) = trials(server, 1)
    with server.client() as c:
        token = c.put("/api/v1/experiments/e1", json={"name": "e1", "config": {"searchSpace": SPACE, "tuner": {"name": "GridSearch"}}}).json()["token"]
    with server.client(token=token) as trial:
        assert trial.post(f"/api/v1/experiments/e1/trials/{tid}/start", json={"at": 5.0}).status_code == 403
