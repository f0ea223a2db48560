"""A search space nested too deep is a 422 from a real tuner server process, not an
experiment that is registered and then answers every suggestion and every listing of its
trials with a 500 (their parameters could not be serialized), nor a 500 on the PUT itself."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ServerProcess


@pytest.mark.parametrize("depth", [300, 900])
def test_deeply_nested_choice_value_is_422_naming_the_parameter(server: ServerProcess, depth: int) -> None:
    value = "[" * depth + "1" + "]" * depth
    config = {"searchSpace": '{"lr": {"_type": "choice", "_value": [' + value + ']}}', "tuner": {"name": "Random"},
              "optimizeMode": "maximize"}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/deep", json={"name": "deep", "config": config})
        assert r.status_code == 422, r.text
        assert "'lr'" in r.text and "nested too deeply" in r.text
        # The server still serves, and a sensible space registers.
        config["searchSpace"] = json.dumps({"lr": {"_type": "choice", "_value": [[[1]], 2]}})
        assert admin.put("/api/v1/experiments/deep", json={"name": "deep", "config": config}).status_code == 200
        assert admin.post("/api/v1/experiments/deep/trials", json={"sequence": 0}).status_code == 200
        assert admin.get("/api/v1/experiments/deep/trials").status_code == 200


def test_a_lone_surrogate_in_the_space_is_422_not_an_experiment_whose_trials_are_500(server: ServerProcess) -> None:
    space = json.dumps({"opt": {"_type": "choice", "_value": ["PLACEHOLDER", "sgd"]}}).replace("PLACEHOLDER", "\\udc80")
    body = json.dumps({"name": "u", "config": {"searchSpace": space, "tuner": {"name": "Random"},
                                                "optimizeMode": "maximize"}})
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/u", content=body.encode(), headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert "'opt'" in r.text and "not valid Unicode" in r.text
        assert admin.get("/api/v1/experiments/u").status_code == 404
