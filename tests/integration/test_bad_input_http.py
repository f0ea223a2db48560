"""Malformed requests to a real tuner server process get a 4xx naming the field, never a
500, and the server keeps serving (and keeps what it had) afterwards."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ServerProcess
from tests.integration.test_tuner_server_http import register


def started_trial(server: ServerProcess) -> str:
    with server.client() as admin:
        trial = admin.post("/api/v1/experiments/e1/trials", json={}).json()["trialId"]
        assert admin.post(f"/api/v1/experiments/e1/trials/{trial}/start").status_code == 200
    return trial


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '{"default": NaN}'])
@pytest.mark.parametrize("route", ["intermediate", "final"])
def test_non_finite_metric_is_422_not_500(server: ServerProcess, literal: str, route: str) -> None:
    """Python's json (the SDK's, and FastAPI's) reads NaN; echoing it back in the error
    made the response unencodable: a 500 and a reset connection."""
    token = register(server)
    trial = started_trial(server)
    with server.client(token=token) as own:
        r = own.post(f"/api/v1/experiments/e1/trials/{trial}/{route}",
                     content=f'{{"metric": {literal}, "step": 0}}'.encode() if route == "intermediate"
                     else f'{{"metric": {literal}}}'.encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "metric"]
        assert "finite" in err["msg"]
        # The trial is untouched and still accepts a good report.
        assert own.post(f"/api/v1/experiments/e1/trials/{trial}/final", json={"metric": 0.5}).status_code == 200
    with server.client() as admin:
        assert admin.get(f"/api/v1/experiments/e1/trials/{trial}").json()["value"] == 0.5


@pytest.mark.parametrize(
    "route, body, field",
    [
        ("end", {"exitCode": 10**30}, "exitCode"),
        ("end", {"exitCode": -(10**30)}, "exitCode"),
        ("final-trials", {"sequence": 1, "parameters": {"a": 1, "b": "x"}, "budget": 10**30}, "budget"),
    ],
)
def test_integer_too_large_for_the_store_is_422_not_500(server: ServerProcess, route: str, body: dict, field: str) -> None:
    """SQLite holds 64-bit integers; a larger one raised OverflowError in the store (a 500)."""
    register(server)
    trial = started_trial(server)
    path = f"/api/v1/experiments/e1/trials/{trial}/end" if route == "end" else "/api/v1/experiments/e1/final-trials"
    with server.client() as admin:
        r = admin.post(path, json=body)
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [["body", field]]
        # Nothing was recorded: the trial still runs and ends normally.
        assert admin.get(f"/api/v1/experiments/e1/trials/{trial}").json()["state"] == "RUNNING"
        assert admin.post(f"/api/v1/experiments/e1/trials/{trial}/end", json={"exitCode": 1}).json() == {"state": "FAILED"}


@pytest.mark.parametrize(
    "method, path, content",
    [
        ("PUT", "/api/v1/experiments/e2", b"{not json"),
        ("PUT", "/api/v1/experiments/e2", b"[1]"),
        ("POST", "/api/v1/experiments/e1/trials", b'{"sequence": "a"}'),
        ("POST", "/api/v1/experiments/e1/trials", b'{"sequence": NaN}'),
        ("POST", "/api/v1/experiments/e1/final-trials", b'{"sequence": 1, "parameters": {"a": Infinity}}'),
    ],
)
def test_malformed_bodies_are_4xx(server: ServerProcess, method: str, path: str, content: bytes) -> None:
    register(server)
    with server.client() as admin:
        r = admin.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
        json.dumps(r.json(), allow_nan=False)  # the answer itself is strict JSON
        assert admin.get("/healthz").status_code == 200


@pytest.mark.parametrize("case", ["not-a-database", "short-token"])
def test_server_start_up_mistakes_are_one_line_exit_2(tmp_path, case: str) -> None:
    import os
    import subprocess
    import sys

    from tests.integration.conftest import ADMIN, free_port

    db = tmp_path / "tuner.db"
    token = ADMIN
    if case == "not-a-database":
        db.write_text("not sqlite at all\n" * 20)
    else:
        token = "short"
    r = subprocess.run([sys.executable, "-m", "tuner_server", "--db", str(db), "--port", str(free_port())],
                       env={**os.environ, "AUTOTUNE_ADMIN_TOKEN": token}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    expected = (f"tuner server: {db} is not an AutoTune history (file is not a database)" if case == "not-a-database"
                else "tuner server: the admin token must be at least 16 characters")
    assert expected in r.stderr
    if case == "not-a-database":
        assert db.read_text() == "not sqlite at all\n" * 20


BIG = "1" + "0" * 400  # a JSON integer Python reads exactly, beyond any float


@pytest.mark.parametrize("route, body", [
    ("intermediate", f'{{"metric": {BIG}, "step": 0}}'),
    ("intermediate", f'{{"metric": {{"default": -{BIG}}}, "step": 0}}'),
    ("final", f'{{"metric": {BIG}}}'),
])
def test_integer_metric_beyond_float_range_is_422_not_500(server: ServerProcess, route: str, body: str) -> None:
    """math.isfinite(10**400) raises OverflowError: that was a 500 and a reset connection."""
    token = register(server)
    trial = started_trial(server)
    with server.client(token=token) as own:
        r = own.post(f"/api/v1/experiments/e1/trials/{trial}/{route}", content=body.encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert "must be finite" in r.text
        assert len(r.text) < 2000  # the 401-digit number is not echoed back whole


def test_import_with_integers_beyond_float_range_skips_those_trials(server: ServerProcess) -> None:
    register(server, space={"a": {"_type": "uniform", "_value": [0, 1]}})
    trials = [
        {"id": "huge-metric", "parameters": {"a": 0.5}, "metric": 10**400},
        {"id": "huge-param", "parameters": {"a": 10**400}, "metric": 0.5},
        {"id": "fine", "parameters": {"a": 0.5}, "metric": 0.5},
    ]
    with server.client() as admin:
        r = admin.post("/api/v1/experiments/e1/imported-trials", json={"sources": [{"name": "old", "trials": trials}]})
        assert r.status_code == 200, r.text
        (src,) = r.json()["sources"]
        assert (src["imported"], src["skipped"]) == (1, 2)
        assert src["firstSkipReason"].startswith("huge-metric: metric: the objective value must be finite")


def test_non_finite_extra_metric_does_not_break_the_ui_json(server: ServerProcess) -> None:
    """The objective must be finite; other keys of a metric dict may be anything the script
    had (a diverged loss is NaN). The API answered null for them, but the web UI's JSON
    routes (also used by scripts with a token) were a 500 for the whole experiment."""
    token = register(server)
    trial = started_trial(server)
    base = f"/api/v1/experiments/e1/trials/{trial}"
    with server.client(token=token) as own:
        for route, body in (("intermediate", b'{"metric": {"default": 0.3, "loss": Infinity}, "step": 0}'),
                            ("final", b'{"metric": {"default": 0.5, "loss": NaN}}')):
            r = own.post(base + "/" + route, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
    with server.client() as admin:
        assert admin.post(base + "/end", json={"exitCode": 0}).json() == {"state": "SUCCEEDED"}
        for path in ("/ui/api/experiments/e1/trials", "/ui/api/experiments/e1", "/ui/api/experiments",
                     "/api/v1/experiments/e1/trials"):
            r = admin.get(path)
            assert r.status_code == 200, (path, r.text)
        (t,) = admin.get("/ui/api/experiments/e1/trials").json()["trials"]
        assert t["metrics"] == {"default": 0.5, "loss": None} and t["value"] == 0.5


@pytest.mark.parametrize("field, literal", [("intermediate", "[0.1, NaN]"), ("ended", "Infinity")])
def test_import_refuses_non_finite_curves_and_times(server: ServerProcess, field: str, literal: str) -> None:
    register(server, space={"a": {"_type": "uniform", "_value": [0, 1]}})
    body = ('{"sources": [{"name": "old", "trials": [{"id": "t", "parameters": {"a": 0.5}, "metric": 0.5, '
            f'"{field}": {literal}}}]}}]}}')
    with server.client() as admin:
        r = admin.post("/api/v1/experiments/e1/imported-trials", content=body.encode(),
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert [e["loc"][:6] for e in r.json()["detail"]][0][:6] == ["body", "sources", 0, "trials", 0, field]


@pytest.mark.parametrize("call, body", [
    ("log-metric", '{{"run_id": "{run}", "key": "acc", "value": {big}, "timestamp": 1, "step": 0}}'),
    ("log-metric", '{{"run_id": "{run}", "key": "acc", "value": -{big}, "timestamp": 1, "step": 0}}'),
    ("log-batch", '{{"run_id": "{run}", "metrics": [{{"key": "acc", "value": {big}, "timestamp": 1, "step": 0}}]}}'),
])
def test_mlflow_metric_beyond_float_range_is_400_not_500(server: ServerProcess, call: str, body: str) -> None:
    """float(10**400) raises OverflowError, which the MLflow routes did not catch: a 500 and a
    reset connection for a trial's MLflow client, instead of MLflow's error naming the metric."""
    token = register(server)
    trial = started_trial(server)
    base = f"/mlflow/e1/{trial}/api/2.0/mlflow/runs/"
    with server.client(token=token) as own:
        r = own.post(base + call, content=body.format(run=trial, big=BIG).encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "metric 'acc' value must be a number a double can hold" in r.json()["message"]
        assert len(r.text) < 2000  # the 401-digit number is not echoed back whole
        # Nothing was kept, and the run still takes a good value.
        assert own.post(base + "log-metric", json={"run_id": trial, "key": "acc", "value": 0.5, "timestamp": 1,
                                                   "step": 0}).status_code == 200
        metrics = own.get(base.replace("runs/", "runs/get"), params={"run_id": trial}).json()["run"]["data"]["metrics"]
        assert [(m["key"], m["value"]) for m in metrics] == [("acc", 0.5)]


@pytest.mark.parametrize("field", ["step", "timestamp"])
def test_mlflow_step_or_timestamp_beyond_int64_is_refused(server: ServerProcess, field: str) -> None:
    """MLflow's steps and timestamps are int64 (its own server refuses larger ones). AutoTune
    kept a step of 10**30: newer than any real step, it froze the run's latest value and the
    trial's curve, so every later epoch's value was ignored and the final result was stale."""
    token = register(server)
    trial = started_trial(server)
    base = f"/mlflow/e1/{trial}/api/2.0/mlflow/runs/"
    with server.client(token=token) as own:
        bad = {"run_id": trial, "key": "acc", "value": 0.1, "timestamp": 1, "step": 0, field: 10**30}
        r = own.post(base + "log-metric", json=bad)
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert f"{field} must be an integer" in r.json()["message"] and "fits in 64 bits" in r.json()["message"]
        for step, value in ((0, 0.5), (1, 0.7)):
            assert own.post(base + "log-metric", json={"run_id": trial, "key": "acc", "value": value, "timestamp": 1,
                                                       "step": step}).status_code == 200
        metrics = own.get(base + "get", params={"run_id": trial}).json()["run"]["data"]["metrics"]
        assert [(m["key"], m["value"], m["step"]) for m in metrics] == [("acc", 0.7, 1)]


@pytest.mark.parametrize("route", ["intermediate", "final"])
def test_deeply_nested_metric_is_422_not_a_broken_experiment(server: ServerProcess, route: str) -> None:
    """A metric dict's extra values may be lists (a confusion matrix), but one nested some 250
    levels deep was accepted and then made every read of the experiment's trials a 500
    (pydantic's serialization depth limit): the controller and the web UI lost the experiment."""
    token = register(server)
    trial = started_trial(server)
    deep = "[" * 300 + "1" + "]" * 300
    step = ', "step": 0' if route == "intermediate" else ""
    body = '{"metric": {"default": 0.5, "confusion": ' + deep + "}" + step + "}"
    with server.client(token=token) as own:
        r = own.post(f"/api/v1/experiments/e1/trials/{trial}/{route}", content=body.encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "metric"]
        assert "nested" in r.json()["detail"][0]["msg"] and len(r.text) < 2000
        assert own.post(f"/api/v1/experiments/e1/trials/{trial}/final",
                        json={"metric": {"default": 0.5, "confusion": [[1, 2], [3, 4]]}}).status_code == 200
    with server.client() as admin:
        for path in (f"/api/v1/experiments/e1/trials/{trial}", "/api/v1/experiments/e1/trials", "/api/v1/experiments/e1"):
            assert admin.get(path).status_code == 200, path
        assert admin.get(f"/api/v1/experiments/e1/trials/{trial}").json()["metrics"]["confusion"] == [[1, 2], [3, 4]]


@pytest.mark.parametrize("depth", [600, 900])
def test_refusal_of_a_very_deep_body_is_422_not_500(server: ServerProcess, depth: int) -> None:
    """The 422 echoes each error's input; for a value nested ~500+ levels (Python's JSON still
    reads it) copying that echo recursed past Python's limit: a 500 with no reason."""
    token = register(server)
    trial = started_trial(server)
    body = '{"metric": {"default": 0.5, "x": ' + "[" * depth + "]" * depth + "}}"
    with server.client(token=token) as own:
        r = own.post(f"/api/v1/experiments/e1/trials/{trial}/final", content=body.encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "metric"] and "nested at most 32 levels" in err["msg"]
        assert own.post(f"/api/v1/experiments/e1/trials/{trial}/final", json={"metric": 0.5}).status_code == 200


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_body_without_json_content_type_says_so(server: ServerProcess, content_type: str | None) -> None:
    """`curl -d '{"metric": 0.5}'` sends a form content type: FastAPI then reads the body as a
    string and answered "Input should be a valid dictionary", about a body that is one."""
    token = register(server)
    trial = started_trial(server)
    headers = {"Content-Type": content_type} if content_type else {}
    with server.client(token=token) as own:
        r = own.post(f"/api/v1/experiments/e1/trials/{trial}/final", content=b'{"metric": 0.5}', headers=headers)
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body"]
        assert "Content-Type: application/json" in err["msg"] and (content_type or "none") in err["msg"]


@pytest.mark.parametrize("status", [{"a": 1}, ["FINISHED"]])
def test_mlflow_run_status_of_the_wrong_type_is_400_not_500(server: ServerProcess, status: object) -> None:
    """runs/update checked ``status in STATUSES`` (a frozenset): a dict or list raised TypeError
    (unhashable), a 500 and a reset connection instead of MLflow's error naming the field."""
    token = register(server)
    trial = started_trial(server)
    with server.client(token=token) as own:
        r = own.post(f"/mlflow/e1/{trial}/api/2.0/mlflow/runs/update", json={"run_id": trial, "status": status})
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "status must be one of" in r.json()["message"]


@pytest.mark.parametrize("route", ["intermediate", "final"])
def test_metric_with_a_lone_surrogate_is_422_not_a_broken_experiment(server: ServerProcess, route: str) -> None:
    r"""Python's json escapes a lone surrogate (a str decoded with surrogateescape: a non-UTF-8
    file name from argv or os.listdir) as \udcxx; the server kept it, and then every read of
    the experiment's trials was a 500 (UTF-8 cannot encode it)."""
    token = register(server)
    trial = started_trial(server)
    step = ', "step": 0' if route == "intermediate" else ""
    with server.client(token=token) as own:
        for metric in ('{"default": 0.5, "file": "data-\\udcff.csv"}', '{"default": 0.5, "\\ud800": 1}'):
            r = own.post(f"/api/v1/experiments/e1/trials/{trial}/{route}", content=f'{{"metric": {metric}{step}}}'.encode(),
                         headers={"Content-Type": "application/json"})
            assert r.status_code == 422, r.text
            (err,) = r.json()["detail"]
            assert err["loc"] == ["body", "metric"] and "not valid Unicode" in err["msg"]
    with server.client() as admin:
        for path in (f"/api/v1/experiments/e1/trials/{trial}", "/api/v1/experiments/e1/trials", "/ui/api/experiments/e1/trials"):
            assert admin.get(path).status_code == 200, path


@pytest.mark.parametrize("entry", [
    '"metrics": [{"key": "acc\\ud800", "value": 0.5, "timestamp": 1, "step": 0}]',
    '"params": [{"key": "lr", "value": "0.1\\udcff"}]',
    '"tags": [{"key": "f\\udcff", "value": "x"}]',
])
def test_mlflow_text_with_a_lone_surrogate_is_400_not_a_broken_run(server: ServerProcess, entry: str) -> None:
    """MLflow keys and values with a lone surrogate (\\udcxx) were kept, and then the run's
    runs/get (and, once its metrics made the trial's final result, every read of the
    experiment's trials) was a 500."""
    token = register(server)
    trial = started_trial(server)
    base = f"/mlflow/e1/{trial}/api/2.0/mlflow/runs/"
    with server.client(token=token) as own:
        r = own.post(base + "log-batch", content=f'{{"run_id": "{trial}", {entry}}}'.encode(),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "not valid Unicode" in r.json()["message"]
        assert own.get(base + "get", params={"run_id": trial}).status_code == 200
