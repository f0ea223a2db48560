"""The tuner server's MLflow subset (tuner_server/mlflow_runs.py, mlflow_api.py) over real
HTTP: a real tuner server on loopback, requests shaped as MLflow's client sends them (the
shapes were taken from mlflow-skinny's client against this server; the integration test
runs that client itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from autotune_operator.executors.base import trial_env
from autotune_operator.spec import SpecError, validate_manifest
from autotune_operator.workloads.common import Owner, TrialWorkload, pod_template
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.history import TrialState
from tuner_server.mlflow_names import run_id_of, tracking_uri
from tuner_server.store import Store

ADMIN = "admin-token-0123456789"
SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})
API = "/api/2.0/mlflow/"


def config(**kw: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}, **kw})


class Trial:
    """One trial's MLflow client, as the real one calls (bearer token, its tracking URI)."""

    def __init__(self, srv: EmbeddedServer, exp_id: str, trial_id: str, token: str) -> None:
        self.base = tracking_uri(srv.url, exp_id, trial_id)
        self.run_id = run_id_of(trial_id)
        self.http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.ts = 1_700_000_000_000

    def get(self, call: str, **params: Any) -> httpx.Response:
        return self.http.get(self.base + API + call, params=params)

    def post(self, call: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.base + API + call, json=body)

    def log(self, key: str, value: Any, step: int = 0, ts: int | None = None) -> httpx.Response:
        self.ts += 1
        return self.post("runs/log-metric", {"run_uuid": self.run_id, "run_id": self.run_id, "key": key, "value": value,
                                             "timestamp": self.ts if ts is None else ts, "step": step})

    def end(self, status: str) -> httpx.Response:
        return self.post("runs/update", {"run_uuid": self.run_id, "run_id": self.run_id, "status": status,
                                         "end_time": self.ts + 5})


class Setup:
    def __init__(self, tmp: Path, **cfg: Any) -> None:
        self.db = tmp / "t.db"
        self.engine = Engine(Store(self.db))
        self.h = self.engine.register("exp.one", "exp.one", config(**cfg))
        self.srv = EmbeddedServer(self.engine, ADMIN).__enter__()

    def trial(self, token: str | None = None) -> Trial:
        a = self.engine.suggest("exp.one")
        self.engine.started("exp.one", a.trial_id)
        return Trial(self.srv, "exp.one", a.trial_id, token or self.h.stored.token)

    def view(self, t: Trial) -> dict[str, Any]:
        return next(v for v in self.engine.trials_view("exp.one") if run_id_of(v["name"]) == t.run_id)

    def close(self) -> None:
        self.srv.__exit__(None, None, None)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, primaryMetric="accuracy")
    yield s
    s.close()


def test_objective_values_are_intermediate_reports_and_the_last_is_final(setup: Setup) -> None:
    t = setup.trial()
    run = t.get("runs/get", run_uuid=t.run_id, run_id=t.run_id)
    assert run.status_code == 200 and run.json()["run"]["info"]["run_id"] == t.run_id == "exp_one-0"
    assert t.post("runs/update", {"run_id": t.run_id, "status": "RUNNING"}).status_code == 200
    assert t.post("runs/log-batch", {"run_id": t.run_id, "params": [{"key": "lr", "value": "0.1"}]}).json() == {}
    for epoch, (acc, loss) in enumerate([(0.5, 1.0), (0.7, 0.6), (0.65, 0.5)]):
        assert t.log("accuracy", acc, step=epoch).status_code == 200
        assert t.log("loss", loss, step=epoch).status_code == 200
    t.post("runs/log-batch", {"run_id": t.run_id, "metrics": [{"key": "f1", "value": 0.61, "timestamp": 1, "step": 0}]})
    v = setup.view(t)
    assert v["intermediate"] == [0.5, 0.7, 0.65] and v["value"] is None  # loss and f1 are not the objective
    assert t.end("FINISHED").json()["run_info"]["status"] == "FINISHED"
    v = setup.view(t)
    # The last value, not the best: MLflow's value at the end, as Azure's sweep reads it.
    assert v["value"] == 0.65 and v["metrics"] == {"default": 0.65, "accuracy": 0.65, "loss": 0.5, "f1": 0.61}
    data = t.get("runs/get", run_id=t.run_id).json()["run"]["data"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.1"}
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"accuracy": 0.65, "loss": 0.5, "f1": 0.61}
    assert setup.engine.end("exp.one", v["name"], 0) is TrialState.SUCCEEDED


def test_a_retried_log_call_is_recorded_once(setup: Setup) -> None:
    t = setup.trial()
    for _ in range(2):  # the client retries a call whose answer it lost: same value, step and timestamp
        assert t.log("accuracy", 0.9, step=0, ts=42).status_code == 200
    t.log("accuracy", 0.9, step=0, ts=43)  # the same value logged again later is a new report
    assert setup.view(t)["intermediate"] == [0.9, 0.9]


def test_exit_0_without_end_run_takes_the_last_values(setup: Setup) -> None:
    t = setup.trial()
    t.log("accuracy", 0.8)
    t.log("accuracy", 0.85)
    name = setup.view(t)["name"]
    assert setup.engine.end("exp.one", name, 0) is TrialState.SUCCEEDED
    assert setup.view(t)["value"] == 0.85


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_a_run_ended_failed_or_killed_fails_the_trial_even_on_exit_0(setup: Setup, status: str) -> None:
    t = setup.trial()
    t.log("accuracy", 0.8)
    t.end(status)
    name = setup.view(t)["name"]
    assert setup.engine.end("exp.one", name, 0) is TrialState.FAILED
    assert setup.view(t)["message"] == f"its MLflow run ended {status}"


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_a_failed_run_of_a_trial_that_reported_its_final_result_is_not_said_to_lack_it(setup: Setup, status: str) -> None:
    """A trial whose curve is its SDK reports, that called report_final_result, and whose MLflow
    run ended FAILED: it fails for its run (as above), and its message must not add that it
    never called report_final_result (6c6321d appended that cause to any message of a trial
    with an SDK curve failing on exit 0, also when the SDK had given its final result)."""
    t = setup.trial()
    name = setup.view(t)["name"]
    setup.engine.report_intermediate("exp.one", name, 0.5, step=0)  # the SDK's curve
    setup.engine.report_final("exp.one", name, 0.6)  # and its final result
    t.end(status)
    assert setup.engine.end("exp.one", name, 0) is TrialState.FAILED
    assert setup.view(t)["message"] == f"its MLflow run ended {status}"


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
@pytest.mark.parametrize("mlflow_first", [False, True], ids=["sdk-first", "mlflow-first"])
def test_a_failed_run_of_a_trial_without_a_final_result_is_said_to_fail_for_its_run(
        setup: Setup, status: str, mlflow_first: bool) -> None:
    """A trial whose curve is its SDK reports (alone, or replacing the values it logged with
    MLflow first), that never called report_final_result, and whose MLflow run ended FAILED:
    it fails for its run, which no final report would have changed. Its message said that
    and added 'the cause: ... it never called autotune.report_final_result ...: call it before
    the trial exits', a cause that was not one (with the call it fails all the same)."""
    t = setup.trial()
    name = setup.view(t)["name"]
    sdk = f"{setup.srv.url}/api/v1/experiments/exp.one/trials/{name}/intermediate"
    auth = {"Authorization": f"Bearer {setup.h.stored.token}"}
    if mlflow_first:
        assert t.log("accuracy", 0.8).status_code == 200
    assert httpx.post(sdk, json={"metric": 0.5, "step": 0}, headers=auth).status_code == 200
    assert t.log("accuracy", 0.9, step=1).status_code == 200
    assert setup.view(t)["intermediate"] == [0.5] and setup.engine.curve_source("exp.one", name) == "sdk"
    assert t.end(status).status_code == 200
    assert setup.engine.end("exp.one", name, 0) is TrialState.FAILED
    assert setup.view(t)["message"] == f"its MLflow run ended {status}"


def test_a_non_zero_exit_fails_even_after_finished(setup: Setup) -> None:
    """MLflow's atexit hook ends the run FINISHED even on Ctrl-C: the exit code decides."""
    t = setup.trial()
    t.log("accuracy", 0.8)
    t.end("FINISHED")
    assert setup.engine.end("exp.one", setup.view(t)["name"], 130) is TrialState.FAILED
    assert setup.view(t)["message"] == "exited with code 130"


def test_the_sdks_final_report_wins(setup: Setup) -> None:
    t = setup.trial()
    name = setup.view(t)["name"]
    t.log("accuracy", 0.8)
    setup.engine.report_final("exp.one", name, {"default": 0.99, "note": 1})
    t.log("accuracy", 0.7)
    t.end("FINISHED")
    assert setup.engine.end("exp.one", name, 0) is TrialState.SUCCEEDED
    assert setup.view(t)["value"] == 0.99 and setup.view(t)["metrics"] == {"default": 0.99, "note": 1}


def test_a_nan_objective_is_no_curve_point_and_a_nan_last_value_fails(setup: Setup) -> None:
    t = setup.trial()
    t.log("accuracy", 0.5)
    assert t.log("accuracy", "NaN").status_code == 200  # MLflow's own server takes NaN too
    assert t.log("loss", "Infinity").status_code == 200
    assert setup.view(t)["intermediate"] == [0.5]
    assert t.get("runs/get", run_id=t.run_id).status_code == 200  # non-finite values shown as MLflow's strings
    assert setup.engine.end("exp.one", setup.view(t)["name"], 0) is TrialState.FAILED
    assert "is nan, not a finite number" in setup.view(t)["message"]


def test_errors_have_mlflows_shape(setup: Setup) -> None:
    t = setup.trial()
    r = t.get("runs/get", run_id="someone-else")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "exp_one-0" in r.json()["message"]
    r = t.log("accuracy", "high")
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    other = Trial(setup.srv, "exp.one", "exp.one-77", setup.h.stored.token)
    r = other.get("runs/get", run_id=other.run_id)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = t.post("runs/create", {"experiment_id": "0", "tags": [{"key": "mlflow.parentRunId", "value": t.run_id}]})
    assert r.status_code == 400 and "nested runs" in r.json()["message"]
    r = t.http.put(t.base + "/api/2.0/mlflow-artifacts/artifacts/x/model.pkl", content=b"x")
    assert r.status_code == 501 and r.json()["error_code"] == "NOT_IMPLEMENTED" and "artifacts" in r.json()["message"]
    r = t.post("runs/search", {})
    assert r.status_code == 501 and r.json()["error_code"] == "NOT_IMPLEMENTED"
    r = t.http.post(t.base + API + "runs/log-metric", content=b"{not json")
    assert r.status_code == 400 and r.json()["error_code"] == "MALFORMED_REQUEST"


def test_auth_refusals(setup: Setup, tmp_path: Path) -> None:
    t = setup.trial()
    r = httpx.get(t.base + API + "runs/get", params={"run_id": t.run_id})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    wrong = Trial(setup.srv, "exp.one", setup.view(t)["name"], "not-a-token-of-anything-here")
    r = wrong.log("accuracy", 0.9)
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    # The token of another experiment does not open this one.
    h2 = setup.engine.register("exp-two", "exp-two", config(primaryMetric="accuracy"))
    r = Trial(setup.srv, "exp.one", setup.view(t)["name"], h2.stored.token).log("accuracy", 0.9)
    assert r.status_code == 403
    assert setup.view(t)["intermediate"] == []
    assert Trial(setup.srv, "exp.one", setup.view(t)["name"], ADMIN).log("accuracy", 0.9).status_code == 200


def test_start_run_create_and_experiment_lookups_stay_in_the_trial(setup: Setup) -> None:
    t = setup.trial()
    r = t.post("runs/create", {"experiment_id": "0", "start_time": 1234, "run_name": "mine",
                               "tags": [{"key": "mlflow.user", "value": "me"}]})
    info = r.json()["run"]["info"]
    assert info["run_id"] == t.run_id and info["status"] == "RUNNING" and info["run_name"] == "mine"
    exp = t.get("experiments/get-by-name", experiment_name="anything").json()["experiment"]
    assert exp["experiment_id"] == info["experiment_id"] == "exp_one" and exp["name"] == "exp.one"
    assert t.get("experiments/get", experiment_id="0").status_code == 200
    assert t.get("experiments/get", experiment_id="nope").json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert t.post("runs/set-tag", {"run_id": t.run_id, "key": "k", "value": "v"}).status_code == 200
    assert t.post("runs/log-parameter", {"run_id": t.run_id, "key": "p", "value": "1"}).status_code == 200
    data = t.get("runs/get", run_id=t.run_id).json()["run"]["data"]
    assert {x["key"] for x in data["tags"]} == {"mlflow.user", "k"} and data["params"] == [{"key": "p", "value": "1"}]


def test_without_primary_metric_the_trial_fails_naming_the_metrics(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    try:
        t = s.trial()
        t.log("accuracy", 0.9)
        t.log("loss", 0.1)
        t.end("FINISHED")
        assert s.view(t)["intermediate"] == []
        assert s.engine.end("exp.one", s.view(t)["name"], 0) is TrialState.FAILED
        msg = s.view(t)["message"]
        assert "spec.primaryMetric" in msg and "accuracy, loss" in msg
    finally:
        s.close()


def test_multi_objective_metrics_by_name(tmp_path: Path) -> None:
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    s = Setup(tmp_path, objectives=objectives, tuner={"name": "Random"})
    try:
        t = s.trial()
        t.log("accuracy", 0.9)
        t.log("size", 1000)
        t.log("accuracy", 0.92)
        assert s.view(t)["intermediate"] == [0.9, 0.92]  # the first objective makes the curve
        t.end("FINISHED")
        assert s.engine.end("exp.one", s.view(t)["name"], 0) is TrialState.SUCCEEDED
        assert s.view(t)["metrics"] == {"accuracy": 0.92, "size": 1000.0}
        u = s.trial()
        u.log("accuracy", 0.5)
        assert s.engine.end("exp.one", s.view(u)["name"], 0) is TrialState.FAILED
        assert "['size']" in s.view(u)["message"]
    finally:
        s.close()


def test_assessor_stop_is_requested_for_the_experiment_to_kill(tmp_path: Path) -> None:
    s = Setup(tmp_path, primaryMetric="accuracy", assessor={"name": "Medianstop", "classArgs": {"start_step": 1}})
    try:
        good = s.trial()
        for v in (0.9, 0.95):
            good.log("accuracy", v)
        s.engine.end("exp.one", s.view(good)["name"], 0)
        bad = s.trial()
        assert bad.log("accuracy", 0.1).status_code == 200  # MLflow's answer cannot say "stop"
        assert s.engine.summary("exp.one")["stopRequested"] == [s.view(bad)["name"]]
        assert s.engine.end("exp.one", s.view(bad)["name"], None, killed=True) is TrialState.EARLY_STOPPED
        assert s.view(bad)["value"] == 0.1
    finally:
        s.close()


def test_a_restarted_server_keeps_what_was_logged(tmp_path: Path) -> None:
    s = Setup(tmp_path, primaryMetric="accuracy")
    t = s.trial()
    name = s.view(t)["name"]
    t.log("accuracy", 0.7)
    t.log("loss", 0.3)
    t.post("runs/log-batch", {"run_id": t.run_id, "params": [{"key": "lr", "value": "0.1"}]})
    s.close()
    s.engine.store.close()
    engine = Engine(Store(s.db))  # a new server on the same database
    with EmbeddedServer(engine, ADMIN) as srv:
        t2 = Trial(srv, "exp.one", name, s.h.stored.token)
        data = t2.get("runs/get", run_id=t2.run_id).json()["run"]["data"]
        assert data["params"] == [{"key": "lr", "value": "0.1"}] and len(data["metrics"]) == 2
        assert engine.end("exp.one", name, 0) is TrialState.SUCCEEDED
    v = next(x for x in engine.trials_view("exp.one") if x["name"] == name)
    assert v["metrics"] == {"default": 0.7, "accuracy": 0.7, "loss": 0.3}


def test_a_re_created_experiment_does_not_inherit_old_runs(tmp_path: Path) -> None:
    s = Setup(tmp_path, primaryMetric="accuracy")
    try:
        t = s.trial()
        t.log("accuracy", 0.7)
        s.engine.delete("exp.one")
        s.h = s.engine.register("exp.one", "exp.one", config(primaryMetric="accuracy"))
        t = s.trial(s.h.stored.token)
        data = t.get("runs/get", run_id=t.run_id).json()["run"]["data"]
        assert data["metrics"] == []
    finally:
        s.close()


# ----- what the trial is told (executors/base.py) and the spec field (operator/spec.py) -----
def test_trial_env_points_mlflow_at_the_trial_unless_the_user_set_a_server() -> None:
    env = trial_env("http://tuner:8080", "tok", "uid-1", "my.exp-3", 3, {})
    assert env["MLFLOW_TRACKING_URI"] == "http://tuner:8080/mlflow/uid-1/my.exp-3"
    assert env["MLFLOW_TRACKING_TOKEN"] == "tok" and env["MLFLOW_RUN_ID"] == "my_exp-3"
    theirs = trial_env("http://tuner:8080", "tok", "uid-1", "my.exp-3", 3, {}, user_env={"MLFLOW_TRACKING_URI"})
    assert not any(k.startswith("MLFLOW_") for k in theirs)
    partly = trial_env("http://tuner:8080", "tok", "uid-1", "my.exp-3", 3, {}, user_env={"MLFLOW_RUN_ID"})
    assert "MLFLOW_RUN_ID" not in partly and "MLFLOW_TRACKING_URI" in partly
    # An experiment whose objective is not read from MLflow (no primaryMetric nor objectives).
    assert not any(k.startswith("MLFLOW_") for k in trial_env("http://tuner:8080", "tok", "uid-1", "e-3", 3, {},
                                                                mlflow=False))


def test_the_mlflow_token_is_a_secret_reference_in_workloads() -> None:
    env = trial_env("http://tuner:8080", "secret-token", "uid-1", "e-0", 0, {})
    tw = TrialWorkload("e-0", "ns", "e", Owner("a/b", "K", "e", "uid-1"), {}, env, "e-token", 0)
    pod = pod_template({"spec": {"containers": [{"name": "c", "image": "i"}]}}, tw)
    (c,) = pod["spec"]["containers"]
    tok = next(e for e in c["env"] if e["name"] == "MLFLOW_TRACKING_TOKEN")
    assert tok == {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {"name": "e-token", "key": "token"}}}
    assert "secret-token" not in yaml.safe_dump(pod)


def _doc(**spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "i", "command": ["python3", "t.py"],
                 "env": [{"name": "MLFLOW_TRACKING_URI", "value": "http://theirs"}]}
    return {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "e"},
            "spec": {"searchSpace": SPACE, "tuner": {"builtinTunerName": "Random"},
                     "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "template": {"spec": {"containers": [container]}}}]},
                     **spec}}


def test_primary_metric_in_the_spec() -> None:
    exp = validate_manifest(_doc(primaryMetric="accuracy"))
    assert exp.tuner_config()["primaryMetric"] == "accuracy"
    assert "primaryMetric" not in validate_manifest(_doc()).tuner_config()  # stored configs stay equal
    assert exp.template_env_names() == {"MLFLOW_TRACKING_URI"}
    objectives = [{"name": "a", "optimizeMode": "maximize"}, {"name": "b", "optimizeMode": "minimize"}]
    for bad, where in ((dict(primaryMetric="a", objectives=objectives), "spec.primaryMetric: names the one objective"),
                       (dict(primaryMetric=""), "spec.primaryMetric"), (dict(primaryMetric="  "), "spec.primaryMetric: must name"),
                       (dict(primaryMetric=3), "spec.primaryMetric")):
        with pytest.raises(SpecError) as e:
            validate_manifest(_doc(**bad))
        assert len(e.value.problems) == 1 and e.value.problems[0].startswith(where), e.value.problems


def test_a_metric_named_default_does_not_replace_the_objective(setup: Setup) -> None:
    t = setup.trial()
    t.log("accuracy", 0.8)
    t.log("default", 0.1)
    t.end("FINISHED")
    assert setup.view(t)["value"] == 0.8 and setup.view(t)["metrics"]["default"] == 0.8


def test_non_finite_times_and_timestamps_are_400_not_500(setup: Setup) -> None:
    """Python's JSON parser reads NaN and Infinity; int() of them raised past the error
    handling (ValueError/OverflowError), a 500 with a traceback."""
    t = setup.trial()
    for call, raw in (("runs/create", '{"start_time": NaN}'), ("runs/create", '{"start_time": Infinity}'),
                      ("runs/update", f'{{"run_id": "{t.run_id}", "status": "FINISHED", "end_time": -Infinity}}'),
                      ("runs/log-metric", f'{{"run_id": "{t.run_id}", "key": "accuracy", "value": 0.5, "timestamp": Infinity}}'),
                      ("runs/log-metric", f'{{"run_id": "{t.run_id}", "key": "accuracy", "value": 0.5, "step": -Infinity}}')):
        r = t.http.post(t.base + API + call, content=raw.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 400, (call, raw, r.status_code, r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # Nothing of those was recorded: the run still runs, with no metric.
    run = t.get("runs/get", run_id=t.run_id).json()["run"]
    assert run["info"]["status"] == "RUNNING" and run["data"]["metrics"] == []
    assert t.post("runs/create", {"start_time": 1_700_000_000_123}).json()["run"]["info"]["start_time"] == 1_700_000_000_123


def test_a_retried_batch_of_several_steps_is_recorded_once(setup: Setup) -> None:
    """Async logging (and log_batch of a history) sends several steps of one metric in one
    call; its retry repeated the earlier steps, as only each key's last value was compared."""
    t = setup.trial()
    batch = {"run_id": t.run_id, "metrics": [{"key": "accuracy", "value": v, "timestamp": 100 + i, "step": i}
                                             for i, v in enumerate((0.5, 0.6, 0.7))]}
    for _ in range(2):
        assert t.post("runs/log-batch", batch).status_code == 200
    nan = f'{{"run_id": "{t.run_id}", "key": "accuracy", "value": NaN, "timestamp": 200, "step": 3}}'.encode()
    for _ in range(2):  # NaN's retry too (NaN != NaN)
        r = t.http.post(t.base + API + "runs/log-metric", content=nan, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
    assert t.log("accuracy", 0.5, step=0, ts=100).status_code == 200  # a retry of an older call
    assert setup.view(t)["intermediate"] == [0.5, 0.6, 0.7]
    events = [e for e in setup.engine.store.trial_events("exp.one", setup.view(t)["name"], "mlflow_metrics")]
    # The batch (an event per curve point, written with it), and the NaN once.
    assert [m["step"] for e in events for m in e["payload"]["metrics"]] == [0, 1, 2, 3]


def test_runs_of_ended_trials_and_deleted_experiments_do_not_pile_up_in_memory(tmp_path: Path) -> None:
    """Every trial's run stayed in memory for the server's life, deleted experiments' too."""
    from tuner_server.mlflow_runs import MlflowRuns

    engine = Engine(Store(tmp_path / "t.db"))
    runs = MlflowRuns.of(engine)
    ended: list[str] = []
    for e in range(3):
        exp = f"e{e}"
        engine.register(exp, exp, config(primaryMetric="accuracy"))
        for _ in range(200):
            tid = engine.suggest(exp).trial_id
            engine.started(exp, tid)
            runs.log_metric(exp, tid, {"run_id": run_id_of(tid), "key": "accuracy", "value": 0.5, "timestamp": 1})
            assert engine.end(exp, tid, 0) is TrialState.SUCCEEDED
            ended.append(tid)
        if e < 2:
            engine.delete(exp)
    assert len(runs._runs) < 300, len(runs._runs)
    # A forgotten run is rebuilt from the store when asked for again.
    last = ended[-1]
    run = runs.get_run("e2", last, run_id_of(last))["run"]
    assert run["data"]["metrics"][0]["value"] == 0.5 and run["info"]["status"] == "RUNNING"


def test_batches_arriving_out_of_order_keep_the_curve_in_order_and_the_latest_value_final(setup: Setup) -> None:
    """Async logging (synchronous=False, MLFLOW_ENABLE_ASYNC_LOGGING) sends batches from a
    thread pool: they arrive out of order. The last batch to arrive became the final result
    (an early epoch's accuracy) and the curve went back and forth."""
    t = setup.trial()

    def batch(*steps: int) -> dict[str, Any]:
        return {"run_id": t.run_id, "metrics": [{"key": "accuracy", "value": 0.5 + s / 10, "timestamp": 1000 + s, "step": s}
                                                for s in steps]}

    assert t.post("runs/log-batch", batch(3, 2)).status_code == 200  # unsorted within a batch too
    assert t.post("runs/log-batch", batch(0, 1)).status_code == 200  # earlier epochs, arriving late
    assert t.post("runs/log-batch", batch(4)).status_code == 200
    assert t.end("FINISHED").status_code == 200
    v = setup.view(t)
    assert v["intermediate"] == [0.7, 0.8, 0.9]
    assert v["value"] == 0.9 and v["metrics"] == {"accuracy": 0.9, "default": 0.9}
    # What MLflow shows of the run agrees, and so does a restarted server (replayed events).
    assert t.get("runs/get", run_id=t.run_id).json()["run"]["data"]["metrics"][0]["value"] == 0.9
    from tuner_server.mlflow_runs import MlflowRuns
    again = MlflowRuns(Engine(Store(setup.db)))
    assert again.get_run("exp.one", v["name"], t.run_id)["run"]["data"]["metrics"][0]["value"] == 0.9
