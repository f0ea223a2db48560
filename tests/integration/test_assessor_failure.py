"""An assessor that raises must not cost a trial: the tuner server keeps the reported metric,
answers 'no decision' (the trial goes on) and records the failure once, naming the assessor.

The natural crash used here: Curvefitting classArgs.epoch_num beyond float range passed the
classArgs check and raised OverflowError ('int too large to convert to float') at every
assessment, so every intermediate report after start_step got a 500 and the SDK ended the trial."""

from __future__ import annotations

import json
import sqlite3

from tests.integration.conftest import ServerProcess

SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})


def test_a_curvefitting_epoch_num_beyond_float_range_is_refused_at_create(server: ServerProcess) -> None:
    config = {"searchSpace": SPACE, "tuner": {"name": "Random"},
              "assessor": {"name": "Curvefitting", "classArgs": {"epoch_num": 10**400, "start_step": 3}}}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/cf", json={"name": "cf", "config": config})
    assert r.status_code == 400, r.text
    assert "epoch_num" in r.text and "float" in r.text.lower()


def test_a_float_class_arg_beyond_float_range_is_a_400_not_a_500(server: ServerProcess) -> None:
    for assessor in ({"name": "Bandit", "classArgs": {"slack_factor": 10**400}},
                     {"name": "Curvefitting", "classArgs": {"threshold": 10**400}}):
        config = {"searchSpace": SPACE, "tuner": {"name": "Random"}, "assessor": assessor}
        with server.client() as admin:
            r = admin.put("/api/v1/experiments/big", json={"name": "big", "config": config})
        # Before the fix: OverflowError in configure, a 500 with no word on which field.
        assert r.status_code == 400, r.text
        key = next(iter(assessor["classArgs"]))
        assert key in r.text, r.text


def stored_events(server: ServerProcess, kind: str) -> list[dict[str, object]]:
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trial_id, payload FROM events WHERE kind = ?", (kind,)).fetchall()
    return [{"trialId": r[0], **json.loads(r[1])} for r in rows]


def test_an_assessor_that_raises_keeps_the_metric_and_the_trial(server: ServerProcess) -> None:
    config = {"searchSpace": SPACE, "tuner": {"name": "Random"},
              "assessor": {"name": "Curvefitting", "classArgs": {"epoch_num": 10**400, "start_step": 3}}}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/cf", json={"name": "cf", "config": config})
        assert r.status_code == 200, r.text
        done = admin.post("/api/v1/experiments/cf/trials", json={}).json()["trialId"]
        for step, v in enumerate([0.5, 0.7, 0.9]):
            assert admin.post(f"/api/v1/experiments/cf/trials/{done}/intermediate", json={"metric": v, "step": step}).status_code == 200
        assert admin.post(f"/api/v1/experiments/cf/trials/{done}/final", json={"metric": 0.9}).status_code == 200
        assert admin.post(f"/api/v1/experiments/cf/trials/{done}/end", json={"exitCode": 0}).json() == {"state": "SUCCEEDED"}
        tid = admin.post("/api/v1/experiments/cf/trials", json={}).json()["trialId"]
        answers = [admin.post(f"/api/v1/experiments/cf/trials/{tid}/intermediate", json={"metric": v, "step": s})
                   for s, v in enumerate([0.1, 0.2, 0.3, 0.35])]
        trial = admin.get(f"/api/v1/experiments/cf/trials/{tid}").json()
    assert [a.status_code for a in answers] == [200] * 4, answers[-1].text
    assert all(a.json() == {"stop": False} for a in answers)
    assert trial["intermediate"] == [0.1, 0.2, 0.3, 0.35]
    assert trial["state"] == "RUNNING"
    failures = stored_events(server, "assessor_failed")
    assert len(failures) == 1, failures
    assert failures[0]["trialId"] == tid and failures[0]["assessor"] == "Curvefitting"
    assert "OverflowError" in str(failures[0]["error"])
