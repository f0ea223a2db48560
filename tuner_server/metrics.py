"""Prometheus metrics of the tuner server, served at ``GET /metrics``.

Every app owns its own :class:`CollectorRegistry` (never prometheus_client's global one):
two apps in one process (tests, local mode next to a server) must not share or clash.

Labels stay bounded. No experiment or trial names: an ML platform runs thousands of trials
and each label value is a time series kept forever by Prometheus. Labels are the
algorithm (one of the registries' names: an unknown name never gets registered), the trial
state, the HTTP method and the route *template* (``/api/v1/experiments/{exp_id}``, not the
path), and the status code.

Gauges of what exists now (experiments by status, trials by state) are computed from the
engine at scrape time by a custom collector, so they cannot drift from the store.

Who may scrape: with ``require_token`` (the default) the viewer or admin token as a bearer
token, exactly as the web UI's JSON for scripts (the viewer token is the one to give
Prometheus: it can only read). Without, anyone who reaches the port (for the
``prometheus.io/scrape`` annotation style of discovery, which cannot send a token).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Annotated, Callable, Iterator

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuner_server.engine import Engine
from tuner_server.failed_logins import FailedLogins
from tuner_server.history import TrialState
from tuner_server.ui import client_address, count_unless_known, derived_phase, too_many_failures
from tuner_server.ui_auth import TokenCheck

# The classic text format every Prometheus reads (2.x included); generate_latest writes it
# for names like ours. prometheus_client's CONTENT_TYPE_LATEST says version=1.0.0, which
# older servers do not know.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # a 404 path: every scanner's guess must not become a series
# HTTP routes answer in ms; a suggestion from GP/Metis on a long history may take seconds.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SUGGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """The tuner server's counters and histograms, in a registry of their own."""

    def __init__(self, engine: Engine, phase: Callable[[str], str | None] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("autotune_http_requests", "HTTP requests answered, by route template and status code",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("autotune_http_request_duration_seconds", "Time to answer an HTTP request",
                                       ["method", "route"], buckets=HTTP_BUCKETS, registry=r)
        self.suggestions = Counter("autotune_suggestions", "Suggestion requests by algorithm and outcome "
                                   "(trial, wait, exhausted, error); repeated requests for an issued trial excluded",
                                   ["algorithm", "outcome"], registry=r)
        self.suggestion_duration = Histogram("autotune_suggestion_duration_seconds",
                                             "Time the tuner or advisor took to suggest", ["algorithm"],
                                             buckets=SUGGEST_BUCKETS, registry=r)
        self.trials_ended = Counter("autotune_trials_ended", "Trials that reached a final state",
                                    ["algorithm", "state"], registry=r)
        self.experiments_registered = Counter("autotune_experiments_registered", "Experiments created",
                                              ["algorithm"], registry=r)
        self.experiments_deleted = Counter("autotune_experiments_deleted", "Experiments deleted", registry=r)
        self.events_purged = Counter("autotune_events_purged", "Events of deleted experiments purged from the "
                                     "store after --deleted-retention (tuner_server/purge.py)", registry=r)
        r.register(_HostedCollector(engine, phase))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    @contextmanager
    def suggestion(self, algorithm: str, counted: bool = True) -> Iterator[Callable[[str], None]]:
        """Time one suggestion; the body calls the yielded function with its outcome
        (``error`` if it raised instead). ``counted`` False: neither timed nor counted."""
        outcome = ["error"]
        start = time.perf_counter()
        try:
            yield lambda o: outcome.__setitem__(0, o)
        finally:
            if counted:
                self.suggestion_duration.labels(algorithm).observe(time.perf_counter() - start)
                self.suggestions.labels(algorithm, outcome[0]).inc()

    @contextmanager
    def trial_end(self, engine: Engine, exp_id: str, trial_id: str) -> Iterator[None]:
        """Count a trial that ends inside the block (once: ending an ended trial is a no-op
        the operator repeats after a restart). The experiment's lock is held across the
        check, so two concurrent reports cannot both count it."""
        h = engine.get(exp_id)
        with h.lock:
            t = h.by_id.get(trial_id)
            before = t.record.state if t is not None else None
            try:
                yield
            finally:
                t = h.by_id.get(trial_id)
                if t is not None and (before is None or not before.ended) and t.record.state.ended:
                    self.trials_ended.labels(h.config.tuner.name, t.record.state.value).inc()


class _HostedCollector(Collector):
    """Gauges of the experiments and trials the engine hosts, read at scrape time."""

    def __init__(self, engine: Engine, phase: Callable[[str], str | None] | None) -> None:
        self.engine = engine
        self.phase = phase

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("autotune_experiments", "", labels=["algorithm", "status"]),
                GaugeMetricFamily("autotune_trials", "", labels=["algorithm", "state"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        experiments: dict[tuple[str, str], int] = {}
        trials: dict[tuple[str, str], int] = {}
        for h in self.engine.list():
            algorithm = h.config.tuner.name
            counts = {s: 0 for s in TrialState}
            with h.lock:
                for t in h.trials:
                    counts[t.record.state] += 1
            for s, n in counts.items():
                trials[(algorithm, s.value)] = trials.get((algorithm, s.value), 0) + n
            status = (self.phase(h.stored.id) if self.phase else None) or derived_phase({"trials": {
                "total": len(h.trials), "running": counts[TrialState.RUNNING], "waiting": counts[TrialState.WAITING]}})
            experiments[(algorithm, status)] = experiments.get((algorithm, status), 0) + 1
        exp = GaugeMetricFamily("autotune_experiments", "Experiments hosted, by algorithm and status (RUNNING: "
                                "a trial waits or runs; IDLE: trials, none active; PENDING: no trial yet)",
                                labels=["algorithm", "status"])
        for key, n in sorted(experiments.items()):
            exp.add_metric(list(key), n)
        yield exp
        tri = GaugeMetricFamily("autotune_trials", "Trials of the hosted experiments, by algorithm and state",
                                labels=["algorithm", "state"])
        for key, n in sorted(trials.items()):
            tri.add_metric(list(key), n)
        yield tri


def route_of(scope: Scope, root_path: str) -> str:
    """The matched route's template; a mounted app's prefix; else UNMATCHED."""
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        return route
    mounted = str(scope.get("root_path") or "")
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path):] + "/{path}"
    return UNMATCHED


class HttpMetrics:
    """Counts and times every HTTP request. Plain ASGI, as ui.UiHeaders: no task per request."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = str(scope.get("root_path") or "")
        status = [500]  # if the app raises before answering, the server answers 500

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, watch)
        finally:
            method = scope.get("method", "GET")
            method = method if method in METHODS else "other"
            route = route_of(scope, root_path)
            self.metrics.http_duration.labels(method, route).observe(time.perf_counter() - start)
            self.metrics.http_requests.labels(method, route, str(status[0])).inc()


def install_metrics(app: FastAPI, engine: Engine, tokens: TokenCheck | None, failed: FailedLogins,
                    phase: Callable[[str], str | None] | None = None) -> ServerMetrics:
    """Add ``GET /metrics`` and the request middleware; ``tokens`` None: no token needed."""
    metrics = ServerMetrics(engine, phase)
    app.add_middleware(HttpMetrics, metrics=metrics)

    def scraper(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        if tokens is None:
            return
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token (the viewer or admin token)", headers={"WWW-Authenticate": "Bearer"})
        address = client_address(request)
        wait = failed.retry_after(address)
        if wait is not None:
            raise too_many_failures(wait)
        token = authorization[7:].strip()
        if tokens.role(token) is None:
            count_unless_known(failed, engine, (), address, token)
            raise HTTPException(403, "token not valid for /metrics (use the viewer or admin token)")

    @app.get("/metrics", dependencies=[Depends(scraper)], include_in_schema=False)
    def scrape() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return metrics
