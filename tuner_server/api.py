"""HTTP API of the tuner server. Routes are thin: authenticate, validate, call the engine.

Authentication is a bearer token. The admin token (held by the operator or the local
controller) may do everything; an experiment's own token (handed to its trials) may
only report to and read that experiment. No token -> 401, a wrong one -> 403. Too many
unknown tokens from one address -> 429 with Retry-After for a while (failed_logins.py).
"""


import json
import math
import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.requests import ClientDisconnect

from tuner_server.body_limit import BodyLimit, BodyLimits
from tuner_server.engine import Assignment, Engine, EngineError, ExperimentConfig, NotNow, check_metric_shape, trial_view
from tuner_server.failed_logins import FailedLogins
from tuner_server.metrics import install_metrics
from tuner_server.mlflow_api import install_mlflow
from tuner_server.mlflow_runs import COLLECTED_BATCH, MlflowError, MlflowRuns
from tuner_server.report_session import HEADER as SESSION_HEADER, check_session
from tuner_server.ui import UiOptions, client_address, count_unless_known, install_ui, too_many_failures
from tuner_server.ui_auth import TokenCheck, matches_any
from tuner_server.warm_start import ImportRequest

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
# Integers the store keeps in SQLite columns (64-bit): a larger one was a 500 (OverflowError).
INT32_MAX = 2**31 - 1


def json_safe(v: Any) -> Any:
    """``v`` with NaN and +-Infinity as strings: Python's json module parses them from a
    request body, but a response holding them cannot be encoded."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


class ExperimentOwner(BaseModel):
    """The AutoTuneExperiment an experiment belongs to (set by the operator; the orphan sweep
    deletes the experiment's state once that object is gone)."""

    model_config = ConfigDict(extra="forbid")
    namespace: str = Field(min_length=1, max_length=253)
    name: str = Field(min_length=1, max_length=253)
    uid: str = Field(min_length=1, max_length=128)


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ID_PATTERN)
    config: ExperimentConfig
    # Stripped: a bearer token is read from its header without surrounding whitespace, so a
    # padded one (a file's newline) would never match the experiment's trials.
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=16)] | None = None
    owner: ExperimentOwner | None = None


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sequence: int | None = Field(default=None, ge=0)


class FinalTrialRequest(BaseModel):
    """Final training: rerun a chosen configuration (at ``budget`` epochs, if given)."""

    model_config = ConfigDict(extra="forbid")
    sequence: int = Field(ge=0)
    parameters: dict[str, Any]
    budget: int | None = Field(default=None, ge=1, le=INT32_MAX)


class MetricRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Any = Field(description="a number, or a dict whose default key is the objective (or with the keys of spec.objectives)")
    step: int | None = Field(default=None, ge=0)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: Any) -> Any:
        check_metric_shape(v)  # raises ValueError naming what is wrong; the engine checks the keys
        return v


class EndRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exitCode: int | None = Field(default=None, ge=-INT32_MAX - 1, le=INT32_MAX)  # Kubernetes: int32
    killed: bool = False
    message: str | None = Field(default=None, max_length=4096)


class RequeueRequest(BaseModel):
    """A trial whose attempt the user interrupted: why, for its record (Engine.requeue)."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4096)


class StartRequest(BaseModel):
    """``at``: when the trial began running (epoch seconds), as its executor saw it (a pod's
    container startedAt); absent: now. An empty or absent body is an older client's "now"."""

    model_config = ConfigDict(extra="forbid")
    at: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="stop requested", max_length=1024)


class CollectedMetric(BaseModel):
    """One value read from a trial's output (spec.metricsCollector): the ``step``-th of ``key``."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=250)
    value: float = Field(allow_inf_nan=False)
    step: int = Field(ge=0, le=2**63 - 1)


class CollectedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[CollectedMetric] = Field(max_length=COLLECTED_BATCH)
    final: bool = False  # read after the trial exited: not judged by the assessor


def assignment_view(a: Assignment) -> dict[str, Any]:
    return {"trialId": a.trial_id, "sequence": a.sequence, "parameters": a.parameters, "budget": a.budget,
            "resume": a.resume, "kind": a.kind}


def sdk_session(session: Annotated[str | None, Header(alias=SESSION_HEADER)] = None) -> str | None:
    """The SDK process that sent a trial's report (report_session.py), or 400 naming what is
    wrong with the header. A header, not a body field: a server older than sessions ignores
    it (its bodies forbid unknown fields), so a newer SDK still reports to it as before."""
    try:
        return check_session(session)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None


def create_app(engine: Engine, admin_token: str, ui: UiOptions | None = None,
               failed_logins: FailedLogins | None = None, metrics_auth: bool = True,
               body_limits: BodyLimits | None = None) -> FastAPI:
    """``metrics_auth``: GET /metrics needs the viewer or admin token (else it is open).
    ``body_limits``: request body sizes per route family (body_limit.py; None: its defaults)."""
    if len(admin_token) < 16:
        raise ValueError("the admin token must be at least 16 characters")
    app = FastAPI(title="AutoTune tuner server", version="v1")
    # Added first, so innermost: the request metrics (and the UI's headers) see its 413s.
    app.add_middleware(BodyLimit, limits=body_limits or BodyLimits(), is_admin=lambda authorization: (
        authorization[:7].lower() == "bearer " and matches_any(authorization[7:].strip(), [admin_token])))
    # One budget per address for the API and the web UI: the admin token opens both.
    failed = failed_logins or FailedLogins()
    scrapers = TokenCheck(admin_token, ui.viewer_token if ui else None) if metrics_auth else None
    metrics = install_metrics(app, engine, scrapers, failed, ui.phase if ui else None)
    app.state.metrics = metrics

    @app.exception_handler(EngineError)
    async def _engine_error(_: Request, e: EngineError) -> JSONResponse:
        return JSONResponse(status_code=e.status, content={"detail": str(e)})

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_: Request, __: ClientDisconnect) -> JSONResponse:
        # A route that reads its body itself (the UI's login form) and whose client left
        # mid-body (a killed trial, a closed tab): no one to answer, but no server error
        # either (uncaught, uvicorn printed a traceback into `autotune run`'s output).
        return JSONResponse(status_code=400, content={"detail": "the client disconnected before its request body arrived"})

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, e: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each error's input: a reported NaN made that a 500.
        try:
            detail = json_safe(jsonable_encoder(e.errors()))
            json.dumps(detail, ensure_ascii=False).encode("utf-8")  # what JSONResponse does, below
        except (RecursionError, UnicodeEncodeError):  # an input nested too deep (~500 levels) or holding a
            # lone surrogate (\udcxx) cannot be echoed: was a 500
            detail = [{k: v for k, v in err.items() if k in ("type", "loc", "msg")} for err in e.errors()]
        content_type = request.headers.get("content-type") or "none"
        for err in detail:
            # A JSON body sent as a form (curl -d) or with no type is read as a string: FastAPI
            # said "Input should be a valid dictionary" about a body that looks like one.
            if err.get("loc") in (["body"], ("body",)) and isinstance(err.get("input"), str) and "json" not in content_type:
                err["msg"] = (f"the body must be a JSON object sent with Content-Type: application/json "
                              f"(this request's Content-Type: {content_type})")
        return JSONResponse(status_code=422, content={"detail": detail})

    def bearer(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        # Checked before the token, so a blocked address learns nothing from its guesses.
        # Successes never clear failures here: a busy client sharing the address (local
        # mode's trials on 127.0.0.1, a NAT) would otherwise reset an attacker's count.
        wait = failed.retry_after(client_address(request))
        if wait is not None:
            raise too_many_failures(wait)
        return authorization[7:].strip()

    def refuse(request: Request, token: str, detail: str) -> HTTPException:
        """403; counted as a failed log-in only for a token the server does not know at all
        (an experiment's own token on the wrong route is a bug, not a guess)."""
        viewer = [ui.viewer_token] if ui and ui.viewer_token else []
        count_unless_known(failed, engine, viewer, client_address(request), token)
        return HTTPException(403, detail)

    # matches_any compares bytes: hmac.compare_digest raises TypeError (a 500) for a str
    # with non-ASCII characters, which a header may carry.
    def admin(request: Request, token: Annotated[str, Depends(bearer)]) -> None:
        if not matches_any(token, [admin_token]):
            raise refuse(request, token, "this operation needs the admin token")

    def member(request: Request, exp_id: str, token: Annotated[str, Depends(bearer)]) -> None:
        """The admin, or the holder of this experiment's own token."""
        if matches_any(token, [admin_token]):
            return
        h = engine.find(exp_id)
        if h is None or not matches_any(token, [h.stored.token]):
            raise refuse(request, token, "token not valid for this experiment")

    Admin = Depends(admin)
    Member = Depends(member)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/experiments", dependencies=[Admin])
    def list_experiments() -> list[dict[str, Any]]:
        return engine.listing()

    # Whether a register creates the experiment is decided under this lock: two overlapping
    # retries of one PUT (a client that timed out) both saw it absent and counted it twice.
    # The engine serializes registrations anyway, so this costs no parallelism.
    registering = threading.Lock()

    @app.put("/api/v1/experiments/{exp_id}", dependencies=[Admin])
    def register(exp_id: Annotated[str, Path(pattern=ID_PATTERN)], body: RegisterRequest) -> dict[str, Any]:
        with registering:
            new = engine.find(exp_id) is None
            h = engine.register(exp_id, body.name, body.config, body.token,
                                body.owner.model_dump() if body.owner else None)
        if new:
            metrics.experiments_registered.labels(body.config.tuner.name).inc()
        return {"experimentId": h.stored.id, "token": h.stored.token, "created": h.stored.created}

    @app.delete("/api/v1/experiments/{exp_id}", dependencies=[Admin])
    def delete(exp_id: str) -> dict[str, str]:
        engine.delete(exp_id)
        metrics.experiments_deleted.inc()
        return {"deleted": exp_id}

    @app.get("/api/v1/experiments/{exp_id}", dependencies=[Member])
    def summary(exp_id: str) -> dict[str, Any]:
        return engine.summary(exp_id)

    @app.get("/api/v1/experiments/{exp_id}/trials", dependencies=[Member])
    def trials(exp_id: str) -> list[dict[str, Any]]:
        return engine.trials_view(exp_id)

    @app.post("/api/v1/experiments/{exp_id}/trials", dependencies=[Admin])
    def suggest(exp_id: str, body: SuggestRequest) -> dict[str, Any]:
        h = engine.get(exp_id)
        # An issued trial asked for again (a controller's retry) costs the tuner nothing: not timed.
        # Decided under the experiment's lock (engine.suggest takes it anyway): a retry that
        # overlaps the first request would otherwise also see the trial as new and count it.
        with h.lock:
            replay = body.sequence is not None and body.sequence < len(h.trials)
            with metrics.suggestion(h.config.tuner.name, counted=not replay) as outcome:
                a = engine.suggest(exp_id, body.sequence)
                outcome("exhausted" if a is None else "wait" if isinstance(a, NotNow) else "trial")
        if a is None:
            return {"exhausted": True, "wait": False}
        if isinstance(a, NotNow):
            return {"exhausted": False, "wait": True, "message": a.reason}
        return {"exhausted": False, "wait": False, **assignment_view(a)}

    @app.post("/api/v1/experiments/{exp_id}/final-trials", dependencies=[Admin])
    def final_trial(exp_id: str, body: FinalTrialRequest) -> dict[str, Any]:
        return assignment_view(engine.final_trial(exp_id, body.sequence, body.parameters, body.budget))

    @app.post("/api/v1/experiments/{exp_id}/imported-trials", dependencies=[Admin])
    def import_trials(exp_id: str, body: ImportRequest) -> dict[str, Any]:
        """Warm start: completed trials of earlier experiments as observations (idempotent)."""
        return engine.import_trials(exp_id, body)

    @app.get("/api/v1/experiments/{exp_id}/trials/{trial_id}", dependencies=[Member])
    def trial(exp_id: str, trial_id: str) -> dict[str, Any]:
        return trial_view(engine.trial(exp_id, trial_id))

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/start", dependencies=[Admin])
    def start(exp_id: str, trial_id: str, body: StartRequest | None = None) -> dict[str, bool]:
        engine.started(exp_id, trial_id, body.at if body is not None else None)
        return {"ok": True}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/intermediate", dependencies=[Member])
    def intermediate(exp_id: str, trial_id: str, body: MetricRequest,
                     sender: Annotated[str | None, Depends(sdk_session)]) -> dict[str, bool]:
        return {"stop": engine.report_intermediate(exp_id, trial_id, body.metric, body.step, session=sender)}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/final", dependencies=[Member])
    def final(exp_id: str, trial_id: str, body: MetricRequest,
              sender: Annotated[str | None, Depends(sdk_session)]) -> dict[str, bool]:
        with metrics.trial_end(engine, exp_id, trial_id):  # a bad multi-objective metric fails the trial
            engine.report_final(exp_id, trial_id, body.metric, session=sender)
        return {"stop": False}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/stop", dependencies=[Admin])
    def stop(exp_id: str, trial_id: str, body: StopRequest) -> dict[str, bool]:
        engine.request_stop(exp_id, trial_id, body.reason)
        return {"ok": True}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/end", dependencies=[Admin])
    def end(exp_id: str, trial_id: str, body: EndRequest) -> dict[str, str]:
        with metrics.trial_end(engine, exp_id, trial_id):
            return {"state": engine.end(exp_id, trial_id, body.exitCode, body.killed, body.message).value}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/requeue", dependencies=[Admin])
    def requeue(exp_id: str, trial_id: str, body: RequeueRequest) -> dict[str, str]:
        return {"state": engine.requeue(exp_id, trial_id, body.message).value}

    @app.post("/api/v1/experiments/{exp_id}/trials/{trial_id}/collected-metrics", dependencies=[Admin])
    def collected_metrics(exp_id: str, trial_id: str, body: CollectedRequest) -> dict[str, int]:
        """Metrics the controller read from the trial's output: MLflow's path (mlflow_runs.py)."""
        try:
            n = MlflowRuns.of(engine).log_collected(exp_id, trial_id, [m.model_dump() for m in body.metrics], body.final)
        except MlflowError as e:
            raise HTTPException(e.status, e.message) from None
        return {"recorded": n}

    # MLflow tracking calls of trials instrumented with MLflow (mlflow_api.py): the same
    # tokens as the SDK's routes, answered in MLflow's error shape.
    install_mlflow(app, MlflowRuns.of(engine), lambda request, exp_id, authorization: member(
        request, exp_id, bearer(request, authorization)))

    # The read-only web UI (pages + /ui/api); its state issues local mode's login codes.
    app.state.ui = install_ui(app, engine, admin_token, ui, failed)
    return app
