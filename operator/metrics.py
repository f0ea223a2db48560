"""What the operator counts for Prometheus (served by metrics_server.py).

One :class:`OperatorMetrics` per operator, with its own registry (never prometheus_client's
global one). The reconcile loop reports what it writes to an experiment's ``.status``
(:meth:`OperatorMetrics.status_written`); counters of experiments and trials are derived
from the changes between those writes, so they follow exactly what users see in
``kubectl get ate``. Labels are bounded: phases, trial states, workload families, tuner
client methods; never an experiment or trial name.

Counters start at zero with each operator process (as every Prometheus counter); an
experiment that was already finished when the operator started is not counted as
finished again, and trials that ended before are the baseline, not new ends.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Mapping, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tuner_server.client import TunerClient, TunerServerError

PHASES = ("PENDING", "RUNNING", "DONE", "TIMEOUT", "ERROR")
TERMINAL = frozenset({"DONE", "TIMEOUT", "ERROR"})
# .status.trials key -> the trial state as the tuner server names it
ENDED_STATES = {"succeeded": "SUCCEEDED", "failed": "FAILED", "earlyStopped": "EARLY_STOPPED", "stopped": "STOPPED"}
# Where an error happened (the `source` label).
ERROR_SOURCES = ("reconcile_tuner_server", "reconcile", "handler", "finalizer")
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Key = tuple[str, str]  # (namespace, name)
T = TypeVar("T")


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.experiments_created = Counter("autotune_operator_experiments_created",
                                           "Experiments the operator started (no phase yet)", registry=r)
        self.experiments_finished = Counter("autotune_operator_experiments_finished",
                                            "Experiments that reached a final phase", ["phase"], registry=r)
        self.trials_created = Counter("autotune_operator_trials_created", "Trials issued (search and final training)",
                                      registry=r)
        self.trials_finished = Counter("autotune_operator_trials_finished", "Trials that ended, by final state",
                                       ["state"], registry=r)
        self.workloads_created = Counter("autotune_operator_workloads_created",
                                         "Trial workloads created in Kubernetes (adopted ones not counted)",
                                         ["family"], registry=r)
        self.errors = Counter("autotune_operator_errors", "Failed reconcile passes and handlers (each is retried)",
                              ["source"], registry=r)
        self.tuner_calls = Histogram("autotune_operator_tuner_call_duration_seconds",
                                     "Tuner-server calls as the operator sees them (its retries included)",
                                     ["method"], buckets=CALL_BUCKETS, registry=r)
        self.tuner_errors = Counter("autotune_operator_tuner_call_errors",
                                    "Tuner-server calls that failed, by method and reason (4xx, 5xx, unreachable, other)",
                                    ["method", "reason"], registry=r)
        # Leader election (leader_election.py): 1 on the replica that holds the Lease and
        # acts, 0 on a standby. An operator without leader election is its own leader once
        # it runs (kopf_handlers.startup sets 1).
        self.leader = Gauge("autotune_operator_leader", "1 on the operator replica that acts (holds the leader Lease), "
                            "0 on a standby", registry=r)
        for phase in TERMINAL:  # every series exists from the start: rate() over a fresh operator works
            self.experiments_finished.labels(phase)
        for state in ENDED_STATES.values():
            self.trials_finished.labels(state)
        for source in ERROR_SOURCES:
            self.errors.labels(source)
        self._lock = threading.Lock()
        self._phases: dict[Key, str] = {}
        self._trials: dict[Key, dict[str, int]] = {}
        r.register(_PhaseCollector(self))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # ----- experiments, from what the reconcile loop writes to .status -----
    def experiment_loaded(self, key: Key, status: Mapping[str, Any]) -> None:
        """The reconcile loop took the experiment up with this ``.status``: the baseline.
        No phase yet means the experiment is new."""
        phase = status.get("phase")
        if not phase:
            self.experiments_created.inc()
        with self._lock:
            self._phases[key] = str(phase or "PENDING")
            self._trials[key] = _ended_counts(status.get("trials"), total=True)

    def knows(self, key: Key) -> bool:
        with self._lock:
            return key in self._phases

    def status_written(self, key: Key, status: Mapping[str, Any]) -> None:
        """A new ``.status`` was written: count what changed since the last one."""
        phase = str(status.get("phase") or "PENDING")
        new = _ended_counts(status.get("trials"), total=True)
        with self._lock:
            old_phase = self._phases.get(key, "PENDING")
            old = self._trials.get(key, {})
            self._phases[key] = phase
            self._trials[key] = new
        if phase in TERMINAL and old_phase not in TERMINAL:
            self.experiments_finished.labels(phase).inc()
        for field, n in new.items():
            delta = n - old.get(field, 0)
            if delta <= 0:  # counts only grow; a smaller one is a stale baseline, not an un-ending
                continue
            if field == "total":
                self.trials_created.inc(delta)
            else:
                self.trials_finished.labels(ENDED_STATES[field]).inc(delta)

    def experiment_forgotten(self, key: Key) -> None:
        """Deleted: no longer in the phase gauge."""
        with self._lock:
            self._phases.pop(key, None)
            self._trials.pop(key, None)

    def phases(self) -> dict[str, int]:
        """How many experiments the operator knows are in each phase (every phase present)."""
        out = {p: 0 for p in PHASES}
        with self._lock:
            for phase in self._phases.values():
                out[phase] = out.get(phase, 0) + 1
        return out

    # ----- the rest -----
    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def workload_created(self, family: str) -> None:
        self.workloads_created.labels(family).inc()

    def error(self, source: str) -> None:
        self.errors.labels(source).inc()

    def timed_call(self, method: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        except TunerServerError as e:
            self.tuner_errors.labels(method, f"{e.status // 100}xx").inc()
            raise
        except OSError:  # URLError, connection refused/reset, timeouts
            self.tuner_errors.labels(method, "unreachable").inc()
            raise
        except Exception:
            self.tuner_errors.labels(method, "other").inc()
            raise
        finally:
            self.tuner_calls.labels(method).observe(time.perf_counter() - start)


def _ended_counts(trials: Any, total: bool = False) -> dict[str, int]:
    trials = trials if isinstance(trials, Mapping) else {}
    keys = [*ENDED_STATES, *(["total"] if total else [])]
    return {k: int(trials.get(k) or 0) for k in keys}


class _PhaseCollector(Collector):
    """``autotune_operator_experiments{phase}``, read at scrape time."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("autotune_operator_experiments", "", labels=["phase"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("autotune_operator_experiments",
                              "Experiments the operator has taken up, by phase (deleted ones leave)", labels=["phase"])
        for phase, n in self.metrics.phases().items():
            g.add_metric([phase], n)
        yield g


class MeteredTunerClient:
    """Wraps a :class:`TunerClient`: every method call is timed and its failure counted,
    labelled by the method's name. Generic on purpose: a method added to the protocol is
    measured (and, above all, still reachable) without a change here."""

    def __init__(self, inner: TunerClient, metrics: OperatorMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        if name in ("_inner", "_metrics"):  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            return self._metrics.timed_call(name, lambda: attr(*args, **kwargs))

        return timed


def metered(inner: TunerClient, metrics: OperatorMetrics) -> TunerClient:
    return cast(TunerClient, MeteredTunerClient(inner, metrics))
