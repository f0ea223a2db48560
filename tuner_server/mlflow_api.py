"""The MLflow tracking REST calls a training script's MLflow client makes, served for trials.

Each trial's ``MLFLOW_TRACKING_URI`` is ``<server>/mlflow/<experiment>/<trial>``, so its
client calls ``<that>/api/2.0/mlflow/runs/log-metric`` and so on; the path names the trial,
so ``mlflow.start_run()`` without a run id still lands in the trial's own run. The routes
only authenticate, parse and answer in MLflow's shapes; the logic is in mlflow_runs.py.

Served (what MLflow's Python client sends for start_run, log_metric(s), log_param(s),
set_tag(s), set_experiment and end_run): runs/get, runs/create, runs/update,
runs/log-metric, runs/log-batch, runs/log-parameter, runs/set-tag, experiments/get,
experiments/get-by-name. Anything else under the prefix (artifacts, models, search,
metric history) is answered ``501 NOT_IMPLEMENTED`` with a message saying why, so the
client raises instead of losing a model silently.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from tuner_server.engine import EngineError
from tuner_server.mlflow_names import PREFIX
from tuner_server.mlflow_runs import MlflowError, MlflowRuns

SERVED = ("runs/get", "runs/create", "runs/update", "runs/log-metric", "runs/log-batch", "runs/log-parameter",
          "runs/set-tag", "experiments/get", "experiments/get-by-name")
# HTTP status -> MLflow error code, for refusals raised before the MLflow logic runs.
_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
          409: "INVALID_STATE", 422: "INVALID_PARAMETER_VALUE", 429: "REQUEST_LIMIT_EXCEEDED"}

Authorize = Callable[[Request, str, "str | None"], None]


def error_response(e: MlflowError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=e.status, content=e.body(), headers=dict(headers or {}))


def dispatch(runs: MlflowRuns, method: str, call: str, exp_id: str, trial_id: str, query: Mapping[str, str],
             body: Mapping[str, Any]) -> dict[str, Any]:
    """One MLflow call -> its response body (raises MlflowError)."""
    if method == "GET":
        if call == "runs/get":
            return runs.get_run(exp_id, trial_id, query.get("run_id") or query.get("run_uuid"))
        if call == "experiments/get":
            return runs.get_experiment(exp_id, trial_id, query.get("experiment_id"))
        if call == "experiments/get-by-name":
            return runs.get_experiment_by_name(exp_id, trial_id, query.get("experiment_name"))
    elif method == "POST":
        posts = {"runs/create": runs.create_run, "runs/update": runs.update_run, "runs/log-metric": runs.log_metric,
                 "runs/log-batch": runs.log_batch, "runs/log-parameter": runs.log_param, "runs/set-tag": runs.set_tag}
        if call in posts:
            return posts[call](exp_id, trial_id, body)
    raise unsupported(f"{method} /api/2.0/mlflow/{call}")


def unsupported(what: str) -> MlflowError:
    return MlflowError(501, "NOT_IMPLEMENTED",
                       f"AutoTune's MLflow endpoint keeps a trial's metrics, params and tags only; {what} is not served "
                       f"(artifacts, models and searches are not kept: save files yourself, or point "
                       f"MLFLOW_TRACKING_URI at your own MLflow server in the trial template). Served: {', '.join(SERVED)}")


def install_mlflow(app: FastAPI, runs: MlflowRuns, authorize: Authorize) -> None:
    """``authorize(request, exp_id, authorization header)`` raises HTTPException unless the
    token may report to that experiment (the trial's own token, or the admin's)."""

    def refused(e: HTTPException) -> JSONResponse:
        code = _CODES.get(e.status_code, "PERMISSION_DENIED")
        return error_response(MlflowError(e.status_code, code, str(e.detail)), e.headers)

    async def handle(request: Request, exp_id: str, trial_id: str, call: str | None) -> JSONResponse:
        try:
            authorize(request, exp_id, request.headers.get("authorization"))
        except HTTPException as e:
            return refused(e)
        try:
            if call is None:
                raise unsupported(f"{request.method} {request.url.path}")
            body: Any = {}
            if request.method != "GET":
                try:
                    raw = await request.body()
                except ClientDisconnect:
                    # The trial is gone mid-request (an assessor or maxTrialSeconds killed it):
                    # nothing to record and no one to answer, but no server error either
                    # (uncaught, uvicorn printed a traceback into `autotune run`'s output).
                    raise MlflowError(400, "MALFORMED_REQUEST",
                                      "the client disconnected before its request body arrived") from None
                try:
                    body = json.loads(raw) if raw else {}
                except (ValueError, UnicodeDecodeError):
                    raise MlflowError(400, "MALFORMED_REQUEST", "the request body is not JSON") from None
                if not isinstance(body, dict):
                    raise MlflowError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
            # Sync work (SQLite, the assessor) off the event loop, as FastAPI does for plain routes.
            out = await run_in_threadpool(dispatch, runs, request.method, call, exp_id, trial_id,
                                          dict(request.query_params), body)
        except MlflowError as e:
            return error_response(e)
        except EngineError as e:  # a metric the experiment refuses, a trial that ended, ...
            return error_response(MlflowError(e.status, _CODES.get(e.status, "INTERNAL_ERROR"), str(e)))
        return JSONResponse(out)

    @app.api_route(PREFIX + "/{exp_id}/{trial_id}/api/2.0/mlflow/{call:path}", methods=["GET", "POST"],
                   include_in_schema=False)
    async def mlflow_call(request: Request, exp_id: str, trial_id: str, call: str) -> JSONResponse:
        return await handle(request, exp_id, trial_id, call)

    @app.api_route(PREFIX + "/{exp_id}/{trial_id}/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def mlflow_other(request: Request, exp_id: str, trial_id: str, rest: str) -> JSONResponse:
        return await handle(request, exp_id, trial_id, None)
