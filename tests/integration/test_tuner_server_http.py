"""The tuner server over real HTTP: a `python -m tuner_server` process per test."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ADMIN, ServerProcess

GRID_SPACE = {"a": {"_type": "choice", "_value": [1, 2, 3]}, "b": {"_type": "choice", "_value": ["x", "y"]}}


def config(space=None, tuner="Random", class_args=None, assessor=None, mode="maximize"):
    c = {
        "searchSpace": json.dumps(space or GRID_SPACE),
        "tuner": {"name": tuner, "classArgs": class_args or {}},
        "optimizeMode": mode,
        "seed": 7,
    }
    if assessor:
        c["assessor"] = assessor
    return c


def register(server: ServerProcess, exp_id="e1", **kw) -> str:
    with server.client() as c:
        r = c.put(f"/api/v1/experiments/{exp_id}", json={"name": exp_id, "config": config(**kw)})
        assert r.status_code == 200, r.text
        return r.json()["token"]


def test_auth_missing_wrong_and_cross_experiment_tokens(server: ServerProcess) -> None:
    t1 = register(server, "e1")
    t2 = register(server, "e2")
    with server.client() as admin:
        trial = admin.post("/api/v1/experiments/e1/trials", json={}).json()
    path = f"/api/v1/experiments/e1/trials/{trial['trialId']}/intermediate"
    with server.client(token="") as anon:
        anon.headers.pop("Authorization")
        r = anon.post(path, json={"metric": 0.5})
        assert r.status_code == 401
        assert anon.get("/api/v1/experiments").status_code == 401
    with server.client(token="not-the-token-at-all") as wrong:
        assert wrong.post(path, json={"metric": 0.5}).status_code == 403
    with server.client(token=t2) as other:  # a trial of e2 cannot report to e1
        assert other.post(path, json={"metric": 0.5}).status_code == 403
    with server.client(token=t1) as own:
        assert own.post(path, json={"metric": 0.5}).json() == {"stop": False}
        # an experiment token cannot do the admin's work
        assert own.post("/api/v1/experiments/e1/trials", json={}).status_code == 403
        assert own.delete("/api/v1/experiments/e1").status_code == 403
    with server.client() as admin:
        t = admin.get(f"/api/v1/experiments/e1/trials/{trial['trialId']}").json()
        assert t["intermediate"] == [0.5]  # only the authorised report was stored


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"metric": "high"}, "metric"),
        ({"metric": {"accuracy": 0.9}}, "default"),
        ({"metric": {"default": "x"}}, "number"),
        ({"metric": True}, "number"),
        ({}, "metric"),
        ({"metric": 0.5, "step": -1}, "step"),
        ({"metric": 0.5, "extra": 1}, "extra"),
    ],
)
def test_malformed_reports_are_422_and_store_nothing(server: ServerProcess, body, needle) -> None:
    token = register(server)
    with server.client() as admin:
        tid = admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"]
    with server.client(token=token) as c:
        r = c.post(f"/api/v1/experiments/e1/trials/{tid}/intermediate", json=body)
        assert r.status_code == 422
        assert needle in r.text
        r = c.post(f"/api/v1/experiments/e1/trials/{tid}/final", json=body)
        assert r.status_code == 422
    with server.client() as admin:
        t = admin.get(f"/api/v1/experiments/e1/trials/{tid}").json()
        assert t["intermediate"] == [] and t["value"] is None


def test_register_is_idempotent_and_conflicts_on_a_different_config(server: ServerProcess) -> None:
    t1 = register(server)
    assert register(server) == t1
    with server.client() as c:
        r = c.put("/api/v1/experiments/e1", json={"name": "e1", "config": config(tuner="GridSearch")})
        assert r.status_code == 409
        assert "different configuration" in r.json()["detail"]


def test_invalid_config_is_refused_with_the_parameter_named_and_nothing_stored(server: ServerProcess) -> None:
    bad = {"lr": {"_type": "loguniform", "_value": [0, 1]}}
    with server.client() as c:
        r = c.put("/api/v1/experiments/bad", json={"name": "bad", "config": config(space=bad)})
        assert r.status_code == 422
        assert "'lr'" in r.json()["detail"] and "low > 0" in r.json()["detail"]
        r = c.put("/api/v1/experiments/bad", json={"name": "bad", "config": config(tuner="NoSuchTuner")})
        assert r.status_code == 422 and "NoSuchTuner" in r.json()["detail"]
        assert c.get("/api/v1/experiments").json() == []


def test_suggest_is_idempotent_per_sequence(server: ServerProcess) -> None:
    register(server)
    with server.client() as c:
        first = c.post("/api/v1/experiments/e1/trials", json={"sequence": 0}).json()
        again = c.post("/api/v1/experiments/e1/trials", json={"sequence": 0}).json()
        assert first == again and first["trialId"] == "e1-0"
        assert c.post("/api/v1/experiments/e1/trials", json={"sequence": 5}).status_code == 409
        assert c.get("/api/v1/experiments/e1").json()["trials"]["total"] == 1


def test_trial_end_states(server: ServerProcess) -> None:
    token = register(server, assessor={"name": "Medianstop", "classArgs": {"start_step": 1}})
    with server.client() as admin, server.client(token=token) as trial:
        ids = [admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"] for _ in range(4)]

        def report(tid, values, final=None):
            stops = [trial.post(f"/api/v1/experiments/e1/trials/{tid}/intermediate", json={"metric": v}).json()["stop"] for v in values]
            if final is not None:
                trial.post(f"/api/v1/experiments/e1/trials/{tid}/final", json={"metric": final})
            return stops

        def end(tid, code, killed=False):
            return admin.post(f"/api/v1/experiments/e1/trials/{tid}/end", json={"exitCode": code, "killed": killed}).json()["state"]

        assert report(ids[0], [0.8, 0.9], final=0.9) == [False, False]
        assert end(ids[0], 0) == "SUCCEEDED"
        assert report(ids[1], [0.95]) == [False]  # above the median: keeps going
        assert end(ids[1], 0) == "FAILED"  # exited 0 without a final metric
        assert end(ids[2], 3) == "FAILED"
        # Medianstop: 0.2 at step 1 is below the completed trial's running average (0.8).
        assert report(ids[3], [0.2]) == [True]
        assert end(ids[3], None, killed=True) == "EARLY_STOPPED"
        trials = {t["name"]: t for t in admin.get("/api/v1/experiments/e1/trials").json()}
        assert trials[ids[1]]["message"] == "exited 0 without reporting a final metric"
        assert trials[ids[2]]["message"] == "exited with code 3"
        assert trials[ids[3]]["value"] == 0.2  # its last metric is kept
        s = admin.get("/api/v1/experiments/e1").json()
        assert s["trials"] == {"total": 4, "waiting": 0, "running": 0, "succeeded": 1, "failed": 2, "earlyStopped": 1, "stopped": 0}
        assert s["bestTrial"]["name"] == ids[0] and s["bestTrial"]["value"] == 0.9


@pytest.mark.parametrize("over, stops", [("completed", [False, False]), ("all", [False, True])])
def test_medianstop_median_over_running_trials(server: ServerProcess, over, stops) -> None:
    """Two running trials report 0.9, 0.9; a third 0.1, 0.2 with evaluation_interval 2. No trial
    has completed, so NNI's median (completed trials) does not exist and nothing stops; Azure's
    (all trials at step 2: 0.9, 0.9 and its own 0.15) is 0.9, and its best 0.2 is worse."""
    args = {"evaluation_interval": 2, "median_over": over}
    token = register(server, assessor={"name": "Medianstop", "classArgs": args})
    with server.client() as admin, server.client(token=token) as trial:
        ids = [admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"] for _ in range(3)]

        def report(tid, values):
            return [trial.post(f"/api/v1/experiments/e1/trials/{tid}/intermediate", json={"metric": v}).json()["stop"]
                    for v in values]

        assert report(ids[0], [0.9, 0.9]) == [False, False]
        assert report(ids[1], [0.9, 0.9]) == [False, False]
        assert report(ids[2], [0.1, 0.2]) == stops


@pytest.mark.parametrize("class_args, field", [({"median_over": "running"}, "classArgs.median_over"),
                                               ({"evaluation_interval": 0}, "classArgs.evaluation_interval")])
def test_bad_medianstop_args_are_422_naming_the_field(server: ServerProcess, class_args, field) -> None:
    with server.client() as c:
        r = c.put("/api/v1/experiments/bad", json={"name": "bad", "config": config(
            assessor={"name": "Medianstop", "classArgs": class_args})})
        assert r.status_code == 422 and field in r.json()["detail"], r.text
        assert c.get("/api/v1/experiments").json() == []


def test_restarted_server_rebuilds_the_grid_and_never_repeats(server: ServerProcess) -> None:
    register(server, tuner="GridSearch")
    seen = []
    with server.client() as c:
        for _ in range(3):
            seen.append(json.dumps(c.post("/api/v1/experiments/e1/trials", json={}).json()["parameters"], sort_keys=True))
    server.kill()
    server.start()
    with server.client() as c:
        while True:
            r = c.post("/api/v1/experiments/e1/trials", json={}).json()
            if r["exhausted"]:
                break
            seen.append(json.dumps(r["parameters"], sort_keys=True))
        assert len(seen) == 6 and len(set(seen)) == 6
        assert c.get("/api/v1/experiments/e1").json()["trials"]["total"] == 6


def test_delete_removes_the_experiment_and_its_token(server: ServerProcess) -> None:
    token = register(server)
    with server.client() as c:
        assert c.delete("/api/v1/experiments/e1").status_code == 200
        assert c.get("/api/v1/experiments/e1").status_code == 404
    with server.client(token=token) as t:
        assert t.get("/api/v1/experiments/e1").status_code == 403
