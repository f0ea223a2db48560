"""Trials that report through MLflow: the logic behind the tuner server's MLflow subset.

A training script instrumented with MLflow tracking (``mlflow.log_metric("accuracy", acc)``,
Azure ML's convention, seed 003) reports to AutoTune unchanged: each trial's environment
points the MLflow client at ``<tuner server>/mlflow/<experiment>/<trial>`` with the trial's
token and ``MLFLOW_RUN_ID`` (operator/executors/base.py), and the routes in mlflow_api.py
call this module. Every trial has exactly one MLflow run, whose id is the trial's id
(characters MLflow refuses in a run id, e.g. '.', become '_').

How logged values become AutoTune results:

- The objective is ``spec.primaryMetric`` (single objective) or the metrics named in
  ``spec.objectives``. Each logged value of the objective (of the first objective with
  several) is an intermediate report: the assessor sees it. Its stop decision cannot travel
  back through MLflow's API, so the experiment kills the trial (the controller's
  ``stopRequested``), as it does when a script ignores the SDK's answer.
- When the run is ended FINISHED, or the process exits 0 without a final report, the
  last value of every metric is the final result: ``{"default": <objective>, <every
  metric>: <last value>}`` (single objective) or ``{<every metric>: <last value>}``. The
  other metrics are thus the trial's extra metrics (trials.csv, the web UI).
- A final report of the SDK wins: it is never overwritten. Without one, each metric's final
  value comes from the channel its curve would (curve_source.py's ranks): a metric logged
  through MLflow from MLflow's values only, not printed ones; the objective from the channel
  that made its curve (for the SDK, from that curve: :func:`final_metric`), and so every
  other objective the SDK's reports of that curve carry.
- After an SDK ``curve_restarted`` (a new process of the trial took over: report_session.py),
  only the values logged or printed since the latest one make that result
  (:meth:`RunState.result_view`); the replaced run's stay in the run and the store.
- A run ended FAILED or KILLED fails the trial even if the process exits 0.

Metrics read from a trial's output (spec.metricsCollector, Katib's StdOut collector) arrive
from the controller (:meth:`MlflowRuns.log_collected`) and take the same path, each value the
N-th of its name since the start of the log (its step); a step already recorded is skipped.

Everything is written to the store (as events) before a call is answered and replayed after
a restart, so nothing logged is lost when the tuner server dies. A logged value that makes a
curve point is written in the point's transaction (:meth:`MlflowRuns._log_metrics`), so a
restart never finds the value recorded without its point; a final result taken from the run
is written with its ``mlflow_final`` event (:meth:`MlflowRuns._finish`), so a restart never
mistakes it for the SDK's.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tuner_server.curve_source import COLLECTED, MLFLOW, SDK
from tuner_server.engine import Engine, EngineError, FailsAnyway, Hosted, NotFound
from tuner_server.mlflow_names import experiment_id_of, run_id_of
from tuner_server.objectives import MetricError, chosen_value, is_finite_number, metric_vector, strategy_of
from tuner_server.report_session import EVENT as RESTART_EVENT
from tuner_server.store import StoredTrial

EVENT_PREFIX = "mlflow_"
# MLflow's run statuses (RunStatus) and what each means here.
ACTIVE = frozenset({"RUNNING", "SCHEDULED"})
ENDED_BADLY = frozenset({"FAILED", "KILLED"})
STATUSES = ACTIVE | ENDED_BADLY | {"FINISHED"}
# Tags the client sets to nest a run under another (mlflow.start_run(nested=True)).
PARENT_TAG = "mlflow.parentRunId"
MAX_KEY = 250  # MLflow's limit on metric, param and tag keys
MAX_VALUE = 8000  # on param values (MLflow 2.x allows 6000-8000; tags take more, kept here too)
COLLECTED_BATCH = 1000  # metrics per collected-metrics request (the controller sends larger reads in parts)
_PRUNE_MIN = 256  # runs kept in memory before ended trials' and deleted experiments' are forgotten


class MlflowError(Exception):
    """An error in MLflow's REST shape: ``{"error_code": ..., "message": ...}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def not_found(message: str) -> MlflowError:
    return MlflowError(404, "RESOURCE_DOES_NOT_EXIST", message)


def invalid(message: str) -> MlflowError:
    return MlflowError(400, "INVALID_PARAMETER_VALUE", message)


# ----- request and run limits -----
# MLflow's per-request limits on runs/log-batch (the REST API's "Request Limits"; the client's
# mlflow/utils/validation.py): its client splits larger logging into batches within them.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100  # params, and tags, each
MAX_ENTITIES_PER_BATCH = 1000  # metrics + params + tags
# Distinct params and tags kept per run. Open-source MLflow sets no cap (its database just
# grows); Databricks' hosted MLflow allows 1,600 params and 1,600 tags per run. AutoTune keeps
# the same: every key is kept in the store and in every runs/get answer, so one trial must
# not grow them without bound, while a script logging a whole config still fits.
MAX_PARAMS_PER_RUN = 1600
MAX_TAGS_PER_RUN = 1600
# Metric values recorded per run (logged through MLflow and read from the trial's output
# together). Open-source MLflow keeps every value; hosted MLflow services cap a run's metric
# history. Every value is an event in the tuner server's SQLite store (and, for the objective,
# a curve point), replayed when the run is rebuilt, so a runaway trial logging in a tight loop
# must not grow them without bound, while a trial logging many metrics per step for many
# thousands of steps still fits.
MAX_METRIC_VALUES_PER_RUN = 1_000_000


def check_batch(metrics: int, params: int, tags: int) -> None:
    """MLflow's log-batch limits on a request's entry counts (pure; raises MlflowError)."""
    for what, n, limit in (("metrics", metrics, MAX_METRICS_PER_BATCH), ("params", params, MAX_PARAMS_TAGS_PER_BATCH),
                           ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH),
                           ("metrics, params and tags together", metrics + params + tags, MAX_ENTITIES_PER_BATCH)):
        if n > limit:
            raise invalid(f"a log-batch request may carry at most {limit} {what}, this one has {n}: "
                          f"split them across several requests (MLflow's own limit)")


def changed(kept: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``given`` that are not already kept with that value (pure): logging the
    same param or tag again (a retried call) writes nothing to the store."""
    return {k: v for k, v in given.items() if kept.get(k) != v}


def check_params_unchanged(kept: Mapping[str, str], given: Mapping[str, str], run_id: str) -> None:
    """Refuse a param logged again with another value, as MLflow does (pure): a run's params
    say how it was configured, so one is never overwritten. The same value again (a retried
    call, a restarted script) is accepted."""
    clash = [(k, kept[k], v) for k, v in given.items() if k in kept and kept[k] != v]
    if clash:
        shown = "; ".join(f"param '{k}' was logged with value {old!r}, this request logs {new!r}"[:300]
                          for k, old, new in clash[:3])
        more = f" (and {len(clash) - 3} more)" if len(clash) > 3 else ""
        raise invalid(f"Changing param values is not allowed (as in MLflow): {shown}{more}, for run '{run_id}'; "
                      f"log the new value under another key, or as a tag")


def check_metric_room(kept: int, adding: int, run_id: str, cap: int | None = None) -> None:
    """Refuse values that would take the run past its cap on metric values (pure; ``cap``
    None: MAX_METRIC_VALUES_PER_RUN, read at call time)."""
    cap = MAX_METRIC_VALUES_PER_RUN if cap is None else cap
    if kept + adding > cap:
        raise MlflowError(400, "RESOURCE_LIMIT_EXCEEDED",
                          f"run '{run_id}' has {kept} metric values and this request adds {adding}; AutoTune keeps "
                          f"at most {cap} metric values per run (MAX_METRIC_VALUES_PER_RUN): log less often (e.g. "
                          f"once per epoch, not per batch); nothing of this request was kept")


def check_room(what: str, kept: Mapping[str, str], given: Mapping[str, str], cap: int, run_id: str) -> None:
    """Refuse ``given`` when it would take the run past ``cap`` distinct keys (pure)."""
    new = [k for k in given if k not in kept]
    if new and len(kept) + len(new) > cap:
        raise invalid(f"run '{run_id}' has {len(kept)} {what}s and this request adds {len(new)} new ones "
                      f"(first: {new[0][:60]!r}); AutoTune keeps at most {cap} {what}s per run (as Databricks' "
                      f"MLflow does): log fewer distinct {what}s, or one {what} holding several values")


@dataclass
class LoggedMetric:
    value: float
    timestamp: int
    step: int


@dataclass
class MetricValues:
    """Each metric's latest value (by step, then timestamp, as MLflow's own "latest metrics"
    are: async logging sends batches from a thread pool, and they arrive out of order, so
    not the last to arrive) and its least and greatest finite values."""

    latest: dict[str, LoggedMetric] = field(default_factory=dict)
    lowest: dict[str, float] = field(default_factory=dict)
    highest: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, m: LoggedMetric) -> None:
        last = self.latest.get(key)
        if last is None or (m.step, m.timestamp) >= (last.step, last.timestamp):
            self.latest[key] = m
        if math.isfinite(m.value):
            self.lowest[key] = min(m.value, self.lowest.get(key, m.value))
            self.highest[key] = max(m.value, self.highest.get(key, m.value))

    def chosen(self, key: str, strategy: str) -> float:
        """The metric's value by spec.metricStrategies: its latest, or the min/max of its
        finite values (the latest when it has none)."""
        extreme = {"min": self.lowest, "max": self.highest}.get(strategy, {})
        return extreme.get(key, self.latest[key].value)


@dataclass
class RunState:
    """What MLflow knows of one trial's run (AutoTune keeps only the latest value per metric)."""

    status: str = "RUNNING"
    start_time: int | None = None
    end_time: int | None = None
    run_name: str | None = None
    # Every metric's values, logged through MLflow and read from the output alike (the run's
    # metrics as MLflow's API shows them).
    metrics: MetricValues = field(default_factory=MetricValues)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # The final metric this module reported to the engine (None: none yet). A trial whose
    # final result differs from it got one from the SDK, which wins.
    final: dict[str, Any] | None = None
    # Every (key, value, timestamp, step) logged through MLflow: a retried call is recognised
    # by it, as MLflow's own store keys metrics, however many values were logged since. Not
    # values read from the output: a trial printing a loss per batch would fill it for nothing.
    logged: set[tuple[str, Any, int, int]] = field(default_factory=set)
    # The last step of each metric read from the trial's output (spec.metricsCollector): a
    # restarted controller re-reads the log from its start and sends those steps again.
    collected: dict[str, int] = field(default_factory=dict)
    # The values logged through MLflow alone. Its latest (step, timestamp) of the objective is
    # the order an MLflow value must pass to extend the curve: the printed values' steps count
    # 0, 1, 2... while mlflow.log_metric without step= logs step 0 each time, so ordered
    # against those (the latest of both, ``metrics``) an MLflow value after the second print
    # never made a point. And a metric MLflow logged takes its final value from these only
    # (final_metric), as its curve is MLflow's.
    explicit: MetricValues = field(default_factory=MetricValues)
    # The values read from the output alone: the objective's final value when they made its
    # curve (MLflow's values of it, if any, all NaN or out of order, made no point).
    printed: MetricValues = field(default_factory=MetricValues)
    # How many metric values were recorded (both kinds): checked against
    # MAX_METRIC_VALUES_PER_RUN on every call without counting the store's events.
    values: int = 0
    # The curve_restarted events of the attempt applied (a new SDK process took over the
    # trial: report_session.py), and the values logged or printed since the latest one, which
    # alone make the trial's result (result_view): those before are the replaced run's, and a
    # result mixing two runs (the new run's SDK objective, the old run's MLflow one) is what
    # the restart drops the old final result for. None before any restart: every value counts.
    restarts: int = 0
    since_restart: RunState | None = None

    def result_view(self) -> RunState:
        """The values the trial's result is made of (final_metric): since the latest restart."""
        return self if self.since_restart is None else self.since_restart

    def apply(self, kind: str, p: Mapping[str, Any]) -> None:
        """One recorded change (also how a restarted server replays the store's events)."""
        if kind in ("mlflow_metrics", "mlflow_collected"):
            self.values += len(p["metrics"])
            for m in p["metrics"]:
                value = LoggedMetric(m["value"], m["timestamp"], m["step"])
                if kind == "mlflow_collected":  # told apart by step (log_collected), not by identity
                    self.collected[m["key"]] = max(m["step"], self.collected.get(m["key"], -1))
                    self.printed.add(m["key"], value)
                else:  # what a retried MLflow call is recognised by
                    self.logged.add(_identity(m["key"], m["value"], m["timestamp"], m["step"]))
                    self.explicit.add(m["key"], value)
                self.metrics.add(m["key"], value)
            if self.since_restart is not None:
                self.since_restart.apply(kind, p)
        elif kind == RESTART_EVENT:
            # The values stay (the run's view, its events); the result starts over.
            self.restarts += 1
            self.since_restart = RunState(restarts=self.restarts)
        elif kind == "mlflow_params":
            self.params.update(p["params"])
        elif kind == "mlflow_tags":
            self.tags.update(p["tags"])
        elif kind == "mlflow_status":
            self.status = p["status"]
            self.end_time = p.get("end_time")
            self.start_time = p.get("start_time", self.start_time)
            self.run_name = p.get("run_name") or self.run_name
        elif kind == "mlflow_final":
            self.final = p["metric"]


def fresh_values(s: RunState, metrics: Sequence[tuple[str, LoggedMetric]]) -> list[dict[str, Any]]:
    """The values of a request not recorded before, as event entries (pure). The client
    retries a call whose answer it did not get: the same value, step and timestamp again is
    that retry (MLflow's own store keys metrics so too). Checked against everything logged,
    not only each key's last value: a retried batch holding several steps of one metric
    repeated its earlier steps."""
    new: list[dict[str, Any]] = []
    batch: set[tuple[str, Any, int, int]] = set()
    for key, m in metrics:
        ident = _identity(key, m.value, m.timestamp, m.step)
        if ident in s.logged or ident in batch:
            continue
        batch.add(ident)
        new.append({"key": key, "value": m.value, "timestamp": m.timestamp, "step": m.step})
    return new


def objective_names(h: Hosted) -> list[str]:
    """The metrics that are this experiment's objective(s), the first one making the curve."""
    if h.objectives:
        return [o.name for o in h.objectives]
    return [h.config.primaryMetric] if h.config.primaryMetric else []


def final_metric(h: Hosted, state: RunState, channel: str | None = None, curve: Sequence[float] = (),
                 reports: Sequence[Any] = ()) -> tuple[dict[str, Any] | None, str | None]:
    """(the final metric to report, None) from the last logged values, or (None, why not).
    The objective (the first) takes its value from ``channel``, the one that made the
    trial's ``curve`` (curve_source.py; None: no curve, or one stored before channels were
    recorded): the curve's own value for the SDK, else that channel's values, whatever was
    logged or printed beside it (the assessor judged that curve: MLflow values that were all
    NaN leave it, and the result, to printed ones). With several objectives, each other one
    the SDK's reports (``reports``: the metrics as reported of an SDK curve's points) carry
    takes its value from them too: the SDK outranks the channels below for every objective,
    not only the curve's. Every other metric, and an objective without a known channel or
    not among the SDK's reports, from the channel that outranks the others for it: a metric
    logged through MLflow takes MLflow's values only, not printed ones."""
    names = objective_names(h)
    logged = sorted(state.metrics.latest)
    if not names:
        if not logged:
            return None, None
        return None, (f"it logged MLflow metrics ({', '.join(logged[:8])}) but spec.primaryMetric does not say "
                      f"which one is the objective")
    # The other objectives an SDK curve's reports carry (below): counted as given, as the
    # result takes them from those reports; one no channel sent is missing.
    sdk_given = ({name: given for name in names[1:] if (given := reported_values(reports, name))}
                 if channel == SDK and curve else {})
    missing = [n for n in names if n not in state.metrics.latest and n not in sdk_given]
    if missing:
        what = "spec.objectives" if h.objectives else "spec.primaryMetric"
        # After a restart, what the replaced run sent is no value of this run (RunState.restarts).
        since = (" since its process restarted (curve_restarted: the values before are the replaced run's)"
                 if state.restarts else "")
        if state.collected:  # the values came from its output (spec.metricsCollector), not MLflow
            return None, (f"no value of metric(s) {missing} ({what}) was read from its output{since}; it printed "
                          f"{', '.join(logged[:8])}")
        return None, (f"no value of MLflow metric(s) {missing} ({what}) was logged{since}"
                      + (f"; it logged {', '.join(logged[:8])}" if logged else ""))
    # Non-finite extra metrics are left out: a final metric must be JSON (the objective's are checked below).
    extra = {k: _chosen_value(h, state, k) for k in state.metrics.latest}
    strategy = strategy_of(h.config.metricStrategies, names[0])
    if channel == SDK and curve:
        extra[names[0]] = chosen_value(curve, strategy)
        for name, given in sdk_given.items():
            extra[name] = chosen_value(given, strategy_of(h.config.metricStrategies, name))
    elif channel in (MLFLOW, COLLECTED) and curve:
        values = state.explicit if channel == MLFLOW else state.printed
        if names[0] in values.latest:
            extra[names[0]] = values.chosen(names[0], strategy)
    extra = {k: v for k, v in extra.items() if math.isfinite(v) or k in names}
    if h.objectives:
        try:
            metric_vector(extra, h.objectives)
        except MetricError as e:
            return None, f"bad final metric: {e}"
        return extra, None
    v = extra[names[0]]
    if not math.isfinite(v):
        return None, f"the last value of MLflow metric '{names[0]}' (spec.primaryMetric) is {v}, not a finite number"
    # "default" last: a metric the script itself named "default" must not replace the objective.
    return {**extra, "default": v}, None


def reported_values(reports: Sequence[Any], key: str) -> list[float]:
    """The finite numbers the SDK's reports (numbers or dicts, oldest first) gave ``key``
    (pure). Finite as the curve's own values are (objectives.curve_value); an int beyond a
    double's range would raise in float()."""
    values = (r.get(key) for r in reports if isinstance(r, Mapping))
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and is_finite_number(v)]


def _chosen_value(h: Hosted, state: RunState, key: str) -> float:
    """The metric's value by spec.metricStrategies, among its MLflow-logged values when it
    has some (they outrank printed ones), else among its printed ones."""
    values = state.explicit if key in state.explicit.latest else state.metrics
    return values.chosen(key, strategy_of(h.config.metricStrategies, key))


class MlflowRuns:
    """Every trial's MLflow run, kept in the engine's store. Each call holds its experiment's
    lock (the engine's): the engine calls :meth:`on_exit` holding it, so taking any other
    lock first here could deadlock against a trial's concurrent log call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._runs: dict[tuple[str, str, float], RunState] = {}
        # Guards _runs itself only (held for no other call): experiments log concurrently.
        self._runs_lock = threading.Lock()
        self._prune_at = _PRUNE_MIN

    @classmethod
    def of(cls, engine: Engine) -> "MlflowRuns":
        """The engine's MLflow runs, made and hooked into Engine.end_hooks (so that trials
        exiting 0 get their final result from MLflow) on first use: one per engine, however
        many apps serve it."""
        for hook in engine.end_hooks:
            owner = getattr(hook, "__self__", None)
            if isinstance(owner, cls):
                return owner
        runs = cls(engine)
        engine.end_hooks.append(runs.on_exit)
        return runs

    # ----- state -----
    def _hosted(self, exp_id: str) -> Hosted:
        try:
            return self.engine.get(exp_id)
        except NotFound as e:
            raise not_found(str(e)) from None
        except EngineError as e:  # stored but no longer loadable
            raise MlflowError(400, "INVALID_STATE", str(e)) from None

    def _trial(self, h: Hosted, trial_id: str) -> StoredTrial:
        t = h.by_id.get(trial_id)
        if t is None:
            raise not_found(f"no trial '{trial_id}' in experiment '{h.stored.id}'")
        return t

    def _state(self, exp_id: str, t: StoredTrial) -> RunState:
        # With its creation time: a deleted and re-created experiment's trials are new runs.
        key = (exp_id, t.record.trial_id, t.created)
        with self._runs_lock:
            s = self._runs.get(key)
        if s is None:
            s = RunState(start_time=_ms(t.started or t.created))
            store = self.engine.store
            # With the attempt's restarts, in the order written: which values came before each.
            events = sorted(store.trial_events(exp_id, t.record.trial_id, EVENT_PREFIX)
                            + store.trial_events(exp_id, t.record.trial_id, RESTART_EVENT), key=lambda e: e["id"])
            for e in events:
                # Events outlive a deleted experiment: one re-created under the same id has
                # trials of the same names, which must not inherit the old runs.
                if (e["payload"] or {}).get("created") == t.created:
                    s.apply(e["kind"], e["payload"])
            with self._runs_lock:
                self._runs[key] = s
                if len(self._runs) >= self._prune_at:
                    self._prune()
        return s

    def _prune(self) -> None:
        """Forget the runs of ended trials and of deleted experiments (holding _runs_lock).
        Without this every trial a server ever saw stayed in memory. Forgetting is safe: a
        run is rebuilt from the store's events when its trial calls again. Amortised: runs
        only when the map doubled since the last prune."""
        def live(key: tuple[str, str, float]) -> bool:
            h = self.engine.find(key[0])
            t = h.by_id.get(key[1]) if h is not None else None
            return t is not None and t.created == key[2] and not t.record.state.ended

        self._runs = {k: v for k, v in self._runs.items() if live(k)}
        self._prune_at = max(_PRUNE_MIN, 2 * len(self._runs))

    def _record(self, exp_id: str, t: StoredTrial, s: RunState, kind: str, payload: dict[str, Any]) -> None:
        """Store first, then apply: what a caller was told is recorded survives a crash."""
        self.engine.store.add_event(exp_id, t.record.trial_id, kind, {**payload, "created": t.created})
        s.apply(kind, payload)

    def _record_point(self, exp_id: str, t: StoredTrial, s: RunState, kind: str, payload: dict[str, Any], value: float,
                      assess: bool) -> None:
        """The event and the curve point it makes, in one transaction (engine then store, under
        the experiment's lock already held: the lock order above), then applied. The engine
        may raise after its commit (an assessor failing): the run is then forgotten, to be
        rebuilt from the store, which alone knows whether the event was written."""
        try:
            self.engine.report_intermediate(exp_id, t.record.trial_id, value, assess=assess,
                                            event=(kind, {**payload, "created": t.created}),
                                            source=COLLECTED if kind == "mlflow_collected" else MLFLOW)
        except BaseException:
            with self._runs_lock:
                self._runs.pop((exp_id, t.record.trial_id, t.created), None)
            raise
        s.apply(kind, payload)

    def _run_of(self, h: Hosted, trial_id: str, run_id: Any) -> tuple[StoredTrial, RunState]:
        t = self._trial(h, trial_id)
        mine = run_id_of(t.record.trial_id)
        if run_id != mine:
            raise not_found(f"Run '{run_id}' not found: this AutoTune trial's MLflow run is '{mine}'")
        return t, self._state(h.stored.id, t)

    # ----- MLflow calls -----
    def get_run(self, exp_id: str, trial_id: str, run_id: Any) -> dict[str, Any]:
        h = self._hosted(exp_id)
        with h.lock:
            t, s = self._run_of(h, trial_id, run_id)
            return {"run": self._run_view(h, t, s)}

    def create_run(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``mlflow.start_run()`` without a run id (MLFLOW_RUN_ID is consumed by the first
        one): the trial's run again, running. A nested run is refused: a trial has one run."""
        tags = _pairs(body.get("tags"), "tags")
        if PARENT_TAG in tags:
            raise invalid("AutoTune keeps one MLflow run per trial: nested runs (mlflow.start_run(nested=True) or "
                          "parent_run_id) are not supported; log to the trial's run")
        h = self._hosted(exp_id)
        with h.lock:
            t = self._trial(h, trial_id)
            s = self._state(exp_id, t)
            tags = changed(s.tags, tags)
            check_room("tag", s.tags, tags, MAX_TAGS_PER_RUN, run_id_of(t.record.trial_id))
            if tags:
                self._record(exp_id, t, s, "mlflow_tags", {"tags": tags})
            start = _time(body.get("start_time"), "start_time")
            self._record(exp_id, t, s, "mlflow_status", {
                "status": "RUNNING", "end_time": None, "run_name": _text(body.get("run_name"), "run_name", MAX_VALUE),
                **({"start_time": start} if start is not None else {}),
            })
            return {"run": self._run_view(h, t, s)}

    def update_run(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        status = body.get("status")
        if status is not None and (not isinstance(status, str) or status not in STATUSES):  # a dict: unhashable, was a 500
            raise invalid(f"status must be one of {sorted(STATUSES)}, got {status!r}")
        h = self._hosted(exp_id)
        with h.lock:
            t, s = self._run_of(h, trial_id, _run_id(body))
            end = _time(body.get("end_time"), "end_time")
            new = status or s.status
            self._record(exp_id, t, s, "mlflow_status", {
                "status": new, "end_time": end if new not in ACTIVE else None,
                "run_name": _text(body.get("run_name"), "run_name", MAX_VALUE),
            })
            if new == "FINISHED":
                self._finish(exp_id, h, t, s)
            return {"run_info": self._run_view(h, t, s)["info"]}

    def log_batch(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        metrics = body.get("metrics") or []
        if not isinstance(metrics, list):
            raise invalid("metrics must be a list")
        check_batch(len(metrics), _count(body.get("params")), _count(body.get("tags")))
        parsed = [_metric(m) for m in metrics]
        params = _pairs(body.get("params"), "params")
        tags = _pairs(body.get("tags"), "tags")
        h = self._hosted(exp_id)
        with h.lock:
            t, s = self._run_of(h, trial_id, _run_id(body))
            params, tags = changed(s.params, params), changed(s.tags, tags)
            check_params_unchanged(s.params, params, run_id_of(t.record.trial_id))
            check_room("param", s.params, params, MAX_PARAMS_PER_RUN, run_id_of(t.record.trial_id))
            check_room("tag", s.tags, tags, MAX_TAGS_PER_RUN, run_id_of(t.record.trial_id))
            # The metrics' cap too, before the params and tags are written: a refused batch keeps nothing.
            check_metric_room(s.values, len(fresh_values(s, parsed)), run_id_of(t.record.trial_id))
            if params:
                self._record(exp_id, t, s, "mlflow_params", {"params": params})
            if tags:
                self._record(exp_id, t, s, "mlflow_tags", {"tags": tags})
            self._log_metrics(exp_id, h, t, s, parsed)
            return {}

    def log_metric(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        m = _metric(body)
        h = self._hosted(exp_id)
        with h.lock:
            t, s = self._run_of(h, trial_id, _run_id(body))
            self._log_metrics(exp_id, h, t, s, [m])
            return {}

    def log_param(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.log_batch(exp_id, trial_id, {"run_id": _run_id(body), "params": [body]})

    def set_tag(self, exp_id: str, trial_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.log_batch(exp_id, trial_id, {"run_id": _run_id(body), "tags": [body]})

    def get_experiment(self, exp_id: str, trial_id: str, experiment_id: Any) -> dict[str, Any]:
        h = self._hosted(exp_id)
        with h.lock:
            self._trial(h, trial_id)
            mine = experiment_id_of(exp_id)
            # "0" is MLflow's default experiment, which a script that names none asks for.
            if experiment_id not in (mine, "0"):
                raise not_found(f"No Experiment with id={experiment_id} exists: this AutoTune trial's MLflow "
                                f"experiment is '{mine}'")
            return {"experiment": self._experiment_view(h)}

    def get_experiment_by_name(self, exp_id: str, trial_id: str, name: Any) -> dict[str, Any]:
        """Any name is the trial's experiment: ``mlflow.set_experiment("whatever")`` in a
        script must keep logging to the trial (it would otherwise create an experiment)."""
        if not isinstance(name, str) or not name:
            raise invalid("experiment_name is required")
        h = self._hosted(exp_id)
        with h.lock:
            self._trial(h, trial_id)
            return {"experiment": self._experiment_view(h)}

    # ----- metrics read from the trial's output (spec.metricsCollector) -----
    def log_collected(self, exp_id: str, trial_id: str, metrics: Sequence[Mapping[str, Any]], final: bool = False) -> int:
        """Values the controller read from the trial's output, each the ``step``-th of its
        key (operator/log_metrics.py). They take the path of ``mlflow.log_metric``. A step at
        or below the last one recorded for its key is skipped: a restarted controller reads
        the log from its start again. ``final``: read after the trial exited; the assessor
        does not judge them (a trial that finished its epochs between two reads would
        otherwise end EARLY_STOPPED instead of SUCCEEDED). Returns how many were recorded."""
        parsed = [_collected(m) for m in metrics]
        h = self._hosted(exp_id)
        with h.lock:
            t = self._trial(h, trial_id)
            if t.record.state.ended:
                return 0  # its result is decided; a late read changes nothing
            s = self._state(exp_id, t)
            now = _ms(self.engine.clock())
            last = dict(s.collected)
            fresh: list[tuple[str, LoggedMetric]] = []
            for key, value, step in parsed:
                if step <= last.get(key, -1):
                    continue
                last[key] = step
                fresh.append((key, LoggedMetric(value, now, step)))
            if fresh:
                self._log_metrics(exp_id, h, t, s, fresh, kind="mlflow_collected", assess=not final)
            return len(fresh)

    # ----- results -----
    def _log_metrics(self, exp_id: str, h: Hosted, t: StoredTrial, s: RunState, metrics: list[tuple[str, LoggedMetric]],
                     kind: str = "mlflow_metrics", assess: bool = True) -> None:
        new = fresh_values(s, metrics)
        if not new:
            return
        # Before anything is written: a refused request keeps nothing (all or none, as the
        # other limits), and the client's retry is refused again.
        check_metric_room(s.values, len(new), run_id_of(t.record.trial_id))
        names = objective_names(h)
        # (an MLflow value: ordered among MLflow's own, RunState.explicit)
        head = (s.metrics if kind == "mlflow_collected" else s.explicit).latest.get(names[0]) if names else None
        newest = (head.step, head.timestamp) if head is not None else None
        curve = bool(names) and not t.record.state.ended
        # Each curve point is stored in one transaction with the event recording its value
        # and the values before it in (step, timestamp) order (Store.add_intermediate's
        # ``also``); the values after the last point get an event of their own. Written apart,
        # a server killed between the event's commit and the point's lost the point for ever:
        # replayed, the event made the retried call (or the re-read log) look recorded. Cut
        # so, whatever commit a crash stops at, the store holds a prefix of the values in
        # (step, timestamp) order with exactly their points, so the retry extends the curve
        # by the rule below as the first call would have. (Reconciling the curve from the
        # events on load instead would tie the engine to this module's events, and a
        # restored point would never have been judged by the assessor.)
        part: list[dict[str, Any]] = []
        for n in sorted(new, key=lambda n: (n["step"], n["timestamp"])):  # stable: ties keep their order
            part.append(n)
            if not curve or n["key"] != names[0]:
                continue
            # Only values newer (step, timestamp) than the curve's last extend it: an older
            # one arriving late (async logging's batches race) would put the curve out of order.
            order = (n["step"], n["timestamp"])
            if newest is not None and order <= newest:
                continue
            newest = order
            # The first objective's values make the trial's curve (what assessors judge).
            if math.isfinite(n["value"]):
                # A stop request is not answered here: MLflow has no way to say it. The
                # experiment kills the trial (the controller acts on stopRequested).
                self._record_point(exp_id, t, s, kind, {"metrics": part}, n["value"], assess)
                part = []
        if part:
            self._record(exp_id, t, s, kind, {"metrics": part})

    def _finish(self, exp_id: str, h: Hosted, t: StoredTrial, s: RunState) -> str | None:
        """The last logged values become the trial's final result, unless the SDK gave one.
        None when done (or nothing to do), else why there is no result."""
        if t.record.state.ended:
            return None
        if t.record.value is not None and (s.final is None or dict(t.record.metrics or {}) != s.final):
            return None  # the SDK's final report wins
        s = self._restarts_applied(exp_id, t, s)
        channel = self.engine.curve_source(exp_id, t.record.trial_id)
        # An SDK curve's reports give the other objectives too (final_metric): read from the
        # store, which keeps each point's metric as reported.
        reports = ([p["metrics"] for p in self.engine.store.intermediate(exp_id, t.record.trial_id)]
                   if channel == SDK and len(objective_names(h)) > 1 else [])
        metric, why = final_metric(h, s.result_view(), channel, t.record.intermediate, reports)
        if metric is None:
            return why
        if s.final == metric and t.record.value is not None:
            return None
        # The result and the event saying it came from MLflow commit together (Store.set_final's
        # ``also``): committed apart, a crash between them left a result that looked like the
        # SDK's on replay, so values logged after reopening the run never replaced it. Nothing
        # in report_final can fail after its commit, so applying afterwards is safe.
        payload = {"metric": metric}
        self.engine.report_final(exp_id, t.record.trial_id, metric,
                                 event=("mlflow_final", {**payload, "created": t.created}))
        s.apply("mlflow_final", payload)
        return None

    def _restarts_applied(self, exp_id: str, t: StoredTrial, s: RunState) -> RunState:
        """``s`` with every curve_restarted of the attempt applied in its place. The engine
        writes them (an SDK report), not this module: a run kept in memory since before one is
        rebuilt from the store, which orders the values around it. Read at a result only (a
        restart is rare; a query on every MLflow call is not)."""
        restarts = [e for e in self.engine.store.trial_events(exp_id, t.record.trial_id, RESTART_EVENT)
                    if (e["payload"] or {}).get("created") == t.created]
        if len(restarts) == s.restarts:
            return s
        with self._runs_lock:
            self._runs.pop((exp_id, t.record.trial_id, t.created), None)
        return self._state(exp_id, t)

    def on_exit(self, exp_id: str, trial_id: str) -> str | None:
        """Engine end hook (the trial exited 0): a final result from the run, or why it fails."""
        try:
            h = self._hosted(exp_id)
            with h.lock:
                t = self._trial(h, trial_id)
                s = self._state(exp_id, t)
                if not (s.metrics.latest or s.params or s.tags or s.status != "RUNNING"):
                    return None  # the trial never used MLflow
                if s.status in ENDED_BADLY:  # the cause, whatever the SDK reported
                    return FailsAnyway(f"its MLflow run ended {s.status}")
                why = self._finish(exp_id, h, t, s)
        except (MlflowError, EngineError) as e:  # never keep a trial from ending
            return f"exited 0, but its MLflow result could not be recorded: {e}"
        if why is None or t.record.value is not None:
            return None
        return f"exited 0 without a final result: {why}"

    # ----- views (MLflow's JSON shapes) -----
    def _run_view(self, h: Hosted, t: StoredTrial, s: RunState) -> dict[str, Any]:
        rid = run_id_of(t.record.trial_id)
        info: dict[str, Any] = {
            "run_id": rid, "run_uuid": rid, "run_name": s.run_name or t.record.trial_id,
            "experiment_id": experiment_id_of(h.stored.id), "user_id": "autotune", "status": s.status,
            "start_time": s.start_time or _ms(t.started or t.created),
            # An artifact store AutoTune does not serve: log_artifact fails with the reason (mlflow_api.py).
            "artifact_uri": f"mlflow-artifacts:/autotune/{experiment_id_of(h.stored.id)}/{rid}",
            "lifecycle_stage": "active",
        }
        if s.end_time is not None:
            info["end_time"] = s.end_time
        return {
            "info": info,
            "data": {
                "metrics": [{"key": k, "value": _json_number(m.value), "timestamp": m.timestamp, "step": m.step}
                            for k, m in s.metrics.latest.items()],
                "params": [{"key": k, "value": v} for k, v in s.params.items()],
                "tags": [{"key": k, "value": v} for k, v in s.tags.items()],
            },
            "inputs": {},
        }

    def _experiment_view(self, h: Hosted) -> dict[str, Any]:
        return {"experiment_id": experiment_id_of(h.stored.id), "name": h.stored.name, "lifecycle_stage": "active",
                "artifact_location": f"mlflow-artifacts:/autotune/{experiment_id_of(h.stored.id)}",
                "creation_time": _ms(h.stored.created), "last_update_time": _ms(h.stored.created), "tags": []}


# ----- request parsing (MLflow's JSON: numbers may arrive as strings, as protobuf's JSON has them) -----
def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _identity(key: str, value: float, timestamp: int, step: int) -> tuple[str, Any, int, int]:
    """A logged metric's identity (NaN as a string: NaN != NaN, so its retry never matched)."""
    return key, ("NaN" if math.isnan(value) else value), timestamp, step


def _json_number(v: float) -> float | str:
    return v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))


def _run_id(body: Mapping[str, Any]) -> Any:
    rid = body.get("run_id") or body.get("run_uuid")
    if not rid:
        raise invalid("run_id is required")
    return rid


def _text(v: Any, name: str, limit: int) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise invalid(f"{name} must be a string, got {v!r}"[:200])
    if len(v) > limit:
        raise invalid(f"{name} is {len(v)} characters, more than {limit}")
    _check_unicode(v, name)
    return v


def _check_unicode(v: str, name: str) -> None:
    """Refuse a lone surrogate (JSON's \\udcxx): kept, it made runs/get, and the trial's reads
    once it was in its final result, a 500 (UTF-8 cannot encode it)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{name} is not valid Unicode (it holds a lone surrogate): {v!r}"[:200]) from None


def _key(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise invalid(f"{what} key must be a non-empty string, got {v!r}"[:200])
    if len(v) > MAX_KEY:
        raise invalid(f"{what} key {v[:40]!r}... is longer than {MAX_KEY} characters")
    _check_unicode(v, f"{what} key")
    return v


def _int(v: Any, name: str, default: int) -> int:
    if v is None:
        return default
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON Infinity (int() of it was a 500)
        raise invalid(f"{name} must be an integer, got {v!r}"[:200]) from None
    # MLflow's steps and timestamps are int64: a larger step was kept, newer than any real one,
    # and froze the run's latest value (and the trial's curve) at it.
    if not -(2**63) <= n < 2**63:
        raise invalid(f"{name} must be an integer that fits in 64 bits (as in MLflow), got {str(n)[:24]}...")
    return n


def _time(v: Any, name: str) -> int | None:
    """A run's start_time / end_time in ms: None when absent or not a number (as before);
    NaN or Infinity, which Python's JSON parser reads, is refused (int() of it was a 500)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        raise invalid(f"{name} must be a finite number of milliseconds, got {v!r}")
    return int(v)


def _metric(m: Any) -> tuple[str, LoggedMetric]:
    if not isinstance(m, Mapping):
        raise invalid(f"a metric must be an object with key and value, got {m!r}"[:200])
    key = _key(m.get("key"), "metric")
    v = m.get("value")
    try:
        if isinstance(v, bool) or v is None:
            raise ValueError
        value = float(v)  # "NaN"/"Infinity" strings are protobuf JSON's non-finite doubles
    except (TypeError, ValueError):
        raise invalid(f"metric '{key}' value must be a number, got {v!r}"[:200]) from None
    except OverflowError:  # an integer beyond any double (float() of it raised: a 500)
        raise invalid(f"metric '{key}' value must be a number a double can hold, got {str(v)[:20]}... "
                      f"({len(str(v))} digits)") from None
    return key, LoggedMetric(value, _int(m.get("timestamp"), "timestamp", 0), _int(m.get("step"), "step", 0))


def _collected(m: Any) -> tuple[str, float, int]:
    """One collected metric {key, value, step}: a finite value, a step >= 0."""
    if not isinstance(m, Mapping):
        raise invalid(f"a collected metric must be an object with key, value and step, got {m!r}"[:200])
    key = _key(m.get("key"), "metric")
    v = m.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise invalid(f"metric '{key}' value must be a finite number, got {v!r}"[:200])
    step = _int(m.get("step"), "step", -1)
    if step < 0:
        raise invalid(f"metric '{key}' step must be an integer >= 0, got {m.get('step')!r}"[:200])
    return key, float(v), step


def _count(items: Any) -> int:
    """Entries of a request's params or tags (a wrong type is _pairs' error)."""
    return len(items) if isinstance(items, list) else 0


def _pairs(items: Any, what: str) -> dict[str, str]:
    """[{key, value}, ...] -> {key: value} (params and tags; values are strings in MLflow)."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid(f"{what} must be a list of {{key, value}} objects")
    out: dict[str, str] = {}
    for it in items:
        if not isinstance(it, Mapping):
            raise invalid(f"each of {what} must be an object with key and value, got {it!r}"[:200])
        key = _key(it.get("key"), what.rstrip("s"))
        v = it.get("value")
        text = _text(v if isinstance(v, str) or v is None else str(v), f"{what.rstrip('s')} '{key}'", MAX_VALUE) or ""
        if what == "params" and out.get(key, text) != text:  # a tag's later value wins, as in MLflow
            raise invalid(f"param '{key}' appears twice in this request, with values {out[key]!r} and {text!r}"[:300]
                          + ": a run's param has one value (as in MLflow)")
        out[key] = text
    return out
