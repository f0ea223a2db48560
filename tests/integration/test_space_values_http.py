"""Search-space option values a trial's JSON answer cannot carry are refused when the
experiment is registered (422 naming the parameter), over real HTTP."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ServerProcess
from tests.integration.test_tuner_server_http import config


@pytest.mark.parametrize("space_text, param", [
    ('{"c": {"_type": "choice", "_value": [[NaN], [1]]}}', "c"),
    ('{"sets": {"_type": "choice", "_value": [{"lr": Infinity}, {"lr": 1}]}}', "sets"),
    ('{"o": {"_type": "choice", "_value": [{"_name": "a", "x": {"_type": "choice", "_value": [[1, -Infinity]]}}]}}', "o/a/x"),
])
def test_a_non_finite_number_inside_an_option_is_refused_at_registration(server: ServerProcess, space_text: str,
                                                                         param: str) -> None:
    # Python's JSON reads NaN and Infinity in the searchSpace text. Before, the experiment was
    # registered and the trial that drew such an option was handed null in its place (the
    # server's answers write non-finite numbers as null): it ran with a value never listed.
    tuner = "Batch" if param == "sets" else "GridSearch"
    body = {"name": "e", "config": {**config(tuner=tuner), "searchSpace": space_text}}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/e", json=body)
        assert r.status_code == 422, r.text
        assert f"parameter '{param}'" in r.json()["detail"] and "not finite" in r.json()["detail"], r.text
        # Nothing was registered, and the server goes on serving.
        assert admin.get("/api/v1/experiments/e").status_code == 404
        ok = {"name": "f", "config": {**config(tuner=tuner), "searchSpace": space_text.replace("NaN", "0")
                                      .replace("-Infinity", "0").replace("Infinity", "0")}}
        assert admin.put("/api/v1/experiments/f", json=ok).status_code == 200
        r = admin.post("/api/v1/experiments/f/trials", json={})
        assert r.status_code == 200, r.text
        json.dumps(r.json()["parameters"], allow_nan=False)
