"""An experiment's owner (the AutoTuneExperiment the operator registered it for) over real
HTTP: stored on registration, shown in the admin list, kept across a server restart, and a
malformed owner refused naming the field."""

from __future__ import annotations

from tests.integration.conftest import ADMIN, ServerProcess
from tests.integration.test_tuner_server_http import config
from tuner_server.client import HttpClient
from tuner_server.engine import ExperimentConfig

OWNER = {"namespace": "team-a", "name": "digits", "uid": "0b6c-uid"}


def test_owner_is_listed_and_survives_a_restart(server: ServerProcess) -> None:
    c = HttpClient(server.url, ADMIN, retry_seconds=10)
    cfg = ExperimentConfig.model_validate(config())
    c.register("0b6c-uid", "digits", cfg, owner=OWNER)
    c.register("local.digits", "digits", cfg)
    server.stop()
    server.start()
    got = {e["experimentId"]: e["owner"] for e in c.list_experiments()}
    assert got == {"0b6c-uid": OWNER, "local.digits": None}


def test_a_malformed_owner_is_refused(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.put("/api/v1/experiments/e1", json={"name": "e1", "config": config(), "owner": {"namespace": "n", "name": "e1"}})
        assert r.status_code == 422 and "owner" in r.text and "uid" in r.text
        assert c.get("/api/v1/experiments").json() == []
