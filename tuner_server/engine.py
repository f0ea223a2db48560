"""The tuner server's core: hosts every experiment's tuner and assessor over the store.

No HTTP here: the FastAPI routes and the in-process client of local mode both call this.
Every change is written to the store before the method returns, and each experiment's
in-memory view is rebuilt from the store when the engine starts.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tuner_server.advisors import Advisor, create_advisor, is_advisor
from tuner_server.assessors import Assessor, create_assessor
from tuner_server.curve_source import SDK, Action, both_note, decide, no_final_note, replace_note, same_note
from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.objectives import (MetricError, MetricStrategy, Objective, chosen_value, curve_value, duplicate_names,
                                     is_finite_number, metric_vector, strategy_of)
from tuner_server.pareto import pareto_front, to_losses
from tuner_server.report_session import (STALE_FINAL_EVENT, STALE_REPORT_EVENT, Report, Sessions, final_is_stale,
                                         restart_event, stale_final_event, stale_report_event)
from tuner_server.report_session import decide as decide_report
from tuner_server.report_session import from_events as sessions_from_events
from tuner_server.searchspace import SearchSpace, SearchSpaceError, parse_search_space
from tuner_server.store import ImportedTrial, Store, StoredExperiment, StoredTrial
from tuner_server.tuners import NoMoreTrials, TryLater, Tuner, TunerArgsError, create_tuner
from tuner_server.warm_start import ImportRequest, in_space_form, misfit, objective_mismatch


class AlgorithmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    classArgs: dict[str, Any] = Field(default_factory=dict)


class ExperimentConfig(BaseModel):
    """What the tuner server needs to host an experiment (a subset of the manifest)."""

    model_config = ConfigDict(extra="forbid")
    searchSpace: str
    tuner: AlgorithmSpec
    assessor: AlgorithmSpec | None = None
    optimizeMode: OptimizeMode = OptimizeMode.MAXIMIZE
    seed: int = Field(default=0, ge=0)
    # Several objectives (spec.objectives); None for a single-objective experiment.
    objectives: list[Objective] | None = None
    # spec.primaryMetric: the metric a trial logs through MLflow that is the objective
    # (tuner_server/mlflow_runs.py); None: MLflow metrics are kept but none is the objective.
    primaryMetric: str | None = Field(default=None, min_length=1, max_length=250)
    # spec.metricStrategies: which logged value of each metric is final (default: latest).
    metricStrategies: list[MetricStrategy] | None = None

    @field_validator("objectives")
    @classmethod
    def _distinct_objectives(cls, v: list[Objective] | None) -> list[Objective] | None:
        # Checked here too, not only in the spec: the API took [acc maximize, acc minimize],
        # putting every trial on the Pareto front.
        dup = duplicate_names(v or [])
        if dup:
            raise ValueError(f"objective name(s) {dup} appear more than once; each objective needs its own metric")
        return v


class EngineError(Exception):
    status = 400


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class InvalidConfig(EngineError):
    status = 422


class BadMetric(EngineError):
    """A reported metric this experiment cannot use (a missing objective, not a number)."""

    status = 422


class FailsAnyway(str):
    """An end hook's reason that fails a trial whatever its result (its MLflow run ended FAILED
    or KILLED): no final report would have made it succeed, so its message says that cause
    alone, never that it lacked report_final_result (curve_source.no_final_note)."""


class AlgorithmFailure(EngineError):
    """The tuner or assessor raised: a bug or a state it cannot handle. The experiment errs."""

    status = 500


@dataclass
class Assignment:
    trial_id: str
    sequence: int
    parameters: dict[str, Any]
    # Multi-fidelity advisors: the epochs to train (EPOCHS) and the trial whose checkpoint
    # to resume from (a promotion with ``promotion: resume``); None otherwise.
    budget: int | None = None
    resume: str | None = None
    kind: str = "search"  # "final": final training of a chosen configuration

    @classmethod
    def of(cls, t: TrialRecord) -> "Assignment":
        resume = (t.info or {}).get("resume")
        return cls(t.trial_id, t.sequence, dict(t.parameters), t.budget, resume, t.kind)


@dataclass(frozen=True)
class NotNow:
    """The tuner has nothing to give until a running trial ends (e.g. PBT's next generation)."""

    reason: str = "waiting for running trials to end"


@dataclass
class Hosted:
    """One experiment as the engine holds it in memory (a cache of the store)."""

    stored: StoredExperiment
    config: ExperimentConfig
    space: SearchSpace
    tuner: Tuner
    assessor: Assessor | None
    trials: list[StoredTrial] = field(default_factory=list)
    by_id: dict[str, StoredTrial] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Warm start: trials of earlier experiments (kind "imported"), oldest first, and the
    # (source, source trial id) of each, so importing a source again adds nothing.
    imported: list[TrialRecord] = field(default_factory=list)
    imported_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # Set (under the engine-wide lock) when a delete is waiting for this experiment's lock: a
    # registration of the same id meanwhile waits for the delete rather than get the doomed one.
    deleting: bool = False
    # Per trial: the channel its curve's points came by (curve_source.py; None: not recorded),
    # read from the store on first need; and the (attempt's creation, ignored channel) whose
    # use of two channels was said. Live trials only (dropped at their end or requeue): both
    # are rebuilt from the store's events when needed, so they do not grow with the trials.
    curve_sources: dict[str, str | None] = field(default_factory=dict)
    curve_noted: dict[str, set[tuple[float, str]]] = field(default_factory=dict)
    # Per live trial: its SDK processes (report_session.py), rebuilt from the events likewise.
    report_sessions: dict[str, Sessions] = field(default_factory=dict)

    @property
    def mode(self) -> OptimizeMode:
        return self.config.optimizeMode

    @property
    def objectives(self) -> list[Objective]:
        return self.config.objectives or []

    def history(self) -> list[TrialRecord]:
        """What the tuner and assessor see: the imported trials (warm start), then the search
        trials (not final training).

        Tuners order the history by sequence (TPE's linear forgetting, Evolution's
        population, PPO's batches), so imported trials take sequences 0..k-1 and this
        experiment's trials are shown shifted by k: older observations first, as they
        happened. Without imports the records are handed over as they are.
        """
        own = [t.record for t in self.trials if t.record.kind == "search"]
        k = len(self.imported)
        if not k:
            return own
        return [*self.imported, *(replace(r, sequence=r.sequence + k) for r in own)]

    def add_imported(self, t: ImportedTrial) -> None:
        rec = TrialRecord(
            sequence=len(self.imported), trial_id=f"imported:{t.source}:{t.source_trial}", parameters=t.parameters,
            state=t.state, value=t.value, metrics=t.metrics if isinstance(t.metrics, Mapping) else None,
            intermediate=list(t.intermediate), kind="imported",
        )
        if self.objectives:
            rec.values = metric_vector(t.metrics, self.objectives)
        self.imported.append(rec)
        self.imported_keys[(t.source, t.source_trial)] = t.source

    def add(self, t: StoredTrial) -> None:
        self.trials.append(t)
        self.by_id[t.record.trial_id] = t


def metric_value(metric: Any) -> tuple[float, Any]:
    """A reported metric -> (objective value, the metric as reported). NNI's forms."""
    if isinstance(metric, Mapping):
        if "default" not in metric:
            raise ValueError("a metric dict needs a 'default' key holding the objective value")
        value = metric["default"]
    else:
        value = metric
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"the objective value must be a number, got {value!r}")
    if not is_finite_number(value):
        raise ValueError(f"the objective value must be finite, got {value!r}"[:200])
    return float(value), metric


def check_metric_shape(metric: Any) -> None:
    """What any experiment accepts: a finite number or a non-empty dict. Which keys the
    dict needs (``default``, or the names in spec.objectives) is checked per experiment."""
    if isinstance(metric, Mapping):
        if not metric:
            raise ValueError("a metric dict must not be empty")
        if _nested_deeper(metric, MAX_METRIC_DEPTH):
            raise ValueError(f"a metric dict may be nested at most {MAX_METRIC_DEPTH} levels deep (lists, dicts)")
        bad = _not_unicode(metric)
        if bad is not None:
            raise ValueError(f"a metric dict holds a string that is not valid Unicode (a lone surrogate): {bad!r}"[:200])
        if "default" in metric:
            metric_value(metric)
        return
    metric_value(metric)


# Deeper values were kept, then every answer holding the trial failed to serialize (pydantic
# stops at ~250 levels): a 500 on the experiment's trials for the controller and the UI.
MAX_METRIC_DEPTH = 32


def _not_unicode(v: Any) -> str | None:
    """A key or string in ``v`` that UTF-8 cannot encode (a lone surrogate, which JSON's \\udcxx
    escapes carry): kept, it made every answer holding the trial a 500."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return v
        return None
    items = [*v.keys(), *v.values()] if isinstance(v, Mapping) else v if isinstance(v, list) else []
    return next((b for b in map(_not_unicode, items) if b is not None), None)


def _nested_deeper(v: Any, levels: int) -> bool:
    if not isinstance(v, (Mapping, list)):
        return False
    if levels == 0:
        return True
    return any(_nested_deeper(x, levels - 1) for x in (v.values() if isinstance(v, Mapping) else v))


def build_algorithms(config: ExperimentConfig, experiment: str | None = None,
                     checkpoint_base: str | None = None) -> tuple[SearchSpace, Tuner, Assessor | None]:
    """``experiment``: the id the tuner is bound to (PBT keys its default checkpoint root by
    it), under ``checkpoint_base`` if given (see :class:`Engine`)."""
    try:
        space = parse_search_space(config.searchSpace)
    except SearchSpaceError as e:
        raise InvalidConfig(str(e)) from None
    args = dict(config.tuner.classArgs)
    try:
        objectives = [o.optimizeMode for o in config.objectives or []]
        if is_advisor(config.tuner.name):
            if objectives:
                raise TunerArgsError(f"advisor {config.tuner.name} optimizes a single objective; remove spec.objectives")
            return space, create_advisor(config.tuner.name, space, args, seed=config.seed), _assessor(config)
        tuner = create_tuner(config.tuner.name, space, args, seed=config.seed, objectives=objectives)
        if experiment is not None:
            tuner.bind_experiment(experiment, checkpoint_base)
    except TunerArgsError as e:
        raise InvalidConfig(f"tuner: {e}") from None
    return space, tuner, _assessor(config)


def _assessor(config: ExperimentConfig) -> Assessor | None:
    if config.assessor is None:
        return None
    try:
        return create_assessor(config.assessor.name, config.assessor.classArgs, default_mode=config.optimizeMode)
    except ValueError as e:
        raise InvalidConfig(f"assessor: {e}") from None


class Engine:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time, checkpoint_base: str | None = None) -> None:
        """``checkpoint_base``: where tuners that keep files (PBT) put them by default, a folder
        per experiment id; None: their own default ($AUTOTUNE_CHECKPOINT_DIR, else the home
        folder). A local run gives its output folder, which two runs never share: their ids
        (local.<name>) do."""
        self.store = store
        self.clock = clock
        self.checkpoint_base = checkpoint_base
        # Called as hook(exp_id, trial_id) when a trial exits 0 (not killed, not stopped), before
        # its state is decided: a trial that reported through MLflow gets its final result
        # there, or a hook returns why the trial fails all the same (mlflow_runs.py; a
        # FailsAnyway when no final report would have made it succeed).
        self.end_hooks: list[Callable[[str, str], str | None]] = []
        # Called as hook(exp_id) after an experiment is deleted (the purge sweeper: purge.py).
        self.delete_hooks: list[Callable[[str], None]] = []
        self._experiments: dict[str, Hosted] = {}
        self._lock = threading.Lock()
        # Stored experiments whose config no longer builds (checks grow stricter between
        # versions): id -> why. One of them must not keep the server, and with it every
        # other experiment, from starting; its data stays in the store until deleted.
        self._unloadable: dict[str, str] = {}
        for se in store.experiments():
            try:
                config = ExperimentConfig.model_validate(se.config)
                space, tuner, assessor = build_algorithms(config, se.id, checkpoint_base)
            except (InvalidConfig, ValidationError) as e:
                self._unloadable[se.id] = str(e).replace("\n", " ")
                logging.getLogger(__name__).error("experiment %s is stored but does not load: %s", se.id, e)
                continue
            h = Hosted(se, config, space, tuner, assessor)
            for st in store.trials(se.id):
                if config.objectives and st.record.metrics is not None:
                    try:  # the vector is derived from the stored metric dict, not stored twice
                        st.record.values = metric_vector(st.record.metrics, config.objectives)
                    except MetricError:
                        pass
                h.add(st)
            for it in store.imported(se.id):
                h.add_imported(it)
            self._experiments[se.id] = h

    # ----- experiments -----
    def register(self, exp_id: str, name: str, config: ExperimentConfig, token: str | None = None,
                 owner: Mapping[str, str] | None = None) -> Hosted:
        """Create an experiment, or return it unchanged if it exists with the same config.

        ``owner`` ({namespace, name, uid} of the AutoTuneExperiment) is stored at creation
        only: the operator's orphan sweep deletes nothing without one."""
        while True:
            with self._lock:
                h = self._experiments.get(exp_id)
                if h is None or not h.deleting:
                    return self._register_locked(exp_id, name, config, token, owner)
            with h.lock:  # a delete of this id is under way: wait for it to end, then create anew
                pass

    def _register_locked(self, exp_id: str, name: str, config: ExperimentConfig, token: str | None,
                         owner: Mapping[str, str] | None) -> Hosted:
        if exp_id in self._unloadable:
            raise Conflict(self._unloadable_message(exp_id))
        h = self._experiments.get(exp_id)
        if h is not None:
            if h.config != config or h.stored.name != name:
                raise Conflict(f"experiment '{exp_id}' exists with a different configuration; delete it first")
            if token is not None and token != h.stored.token:
                raise Conflict(f"experiment '{exp_id}' exists with a different token")
            return h
        space, tuner, assessor = build_algorithms(config, exp_id, self.checkpoint_base)
        se = StoredExperiment(exp_id, name, config.model_dump(mode="json"), token or secrets.token_urlsafe(32), self.clock(),
                              dict(owner) if owner else None)
        self.store.add_experiment(se)
        h = Hosted(se, config, space, tuner, assessor)
        self._experiments[exp_id] = h
        return h

    def get(self, exp_id: str) -> Hosted:
        h = self._experiments.get(exp_id)
        if h is None:
            if exp_id in self._unloadable:
                raise InvalidConfig(self._unloadable_message(exp_id))
            raise NotFound(f"no experiment '{exp_id}'")
        return h

    def _unloadable_message(self, exp_id: str) -> str:
        return (f"experiment '{exp_id}' is stored but its configuration no longer loads "
                f"({self._unloadable[exp_id]}); delete it")

    def find(self, exp_id: str) -> Hosted | None:
        return self._experiments.get(exp_id)

    def list(self) -> list[Hosted]:
        return list(self._experiments.values())

    def delete(self, exp_id: str) -> None:
        with self._lock:
            unloadable = self._unloadable.pop(exp_id, None) is not None
            if unloadable:
                self.store.delete_experiment(exp_id)
        if not unloadable:
            # Under the experiment's lock: a suggestion or report in flight writes its row
            # first and is deleted with the rest. Deleted under it, its row outlived the
            # experiment and broke the next one registered under the id (sequence 0 taken).
            # That lock is taken before the engine-wide one, which is held only for the
            # removal: waiting for a slow suggestion (GP: seconds) under the engine-wide lock
            # held up registering and deleting every other experiment.
            with self._lock:
                h = self.get(exp_id)
                h.deleting = True
            with h.lock, self._lock:
                if self._experiments.get(exp_id) is not h:  # deleted by a concurrent call
                    raise NotFound(f"no experiment '{exp_id}'")
                try:
                    self.store.delete_experiment(exp_id)
                except BaseException:
                    h.deleting = False  # still there: registrations must not wait on it for ever
                    raise
                del self._experiments[exp_id]
        for hook in self.delete_hooks:
            hook(exp_id)

    # ----- trials -----
    def suggest(self, exp_id: str, sequence: int | None = None) -> Assignment | NotNow | None:
        """The trial at ``sequence`` (the next one if None); None when the tuner is exhausted,
        NotNow when it can only give more after a running trial ends.

        Asking again for an existing sequence returns the same trial: a controller that
        crashed between asking and launching gets the same parameters back.
        """
        h = self.get(exp_id)
        with h.lock:
            if self._experiments.get(exp_id) is not h:  # deleted while this waited for its lock
                raise NotFound(f"no experiment '{exp_id}'")
            n = len(h.trials)
            if sequence is not None and sequence < n:
                return Assignment.of(h.trials[sequence].record)
            if sequence is not None and sequence > n:
                raise Conflict(f"trial sequence {sequence} requested but the next one is {n}")
            rng = np.random.default_rng([h.config.seed, n])
            budget: int | None = None
            info: dict[str, Any] | None = None
            try:
                if isinstance(h.tuner, Advisor):
                    p = h.tuner.propose(h.history(), rng)
                    params, budget, info = p.parameters, p.budget, p.info
                else:
                    params = h.tuner.suggest(h.history(), rng)
            except NoMoreTrials:
                return None
            except TryLater as e:
                return NotNow(str(e) or NotNow.reason)
            except Exception as e:  # an algorithm bug must end this experiment, not the server
                raise AlgorithmFailure(f"tuner {h.tuner.name} failed: {type(e).__name__}: {e}") from e
            rec = TrialRecord(sequence=n, trial_id=f"{h.stored.name}-{n}", parameters=params, budget=budget, info=info)
            now = self.clock()
            self.store.add_trial(exp_id, rec, now)
            h.add(StoredTrial(rec, False, now, None, None, None, None))
            return Assignment.of(rec)

    def final_trial(self, exp_id: str, sequence: int, parameters: Mapping[str, Any], budget: int | None) -> Assignment:
        """Issue a final-training trial (a chosen configuration rerun at full budget) at
        ``sequence``; asking again for the same sequence returns the same trial."""
        h = self.get(exp_id)
        with h.lock:
            if self._experiments.get(exp_id) is not h:  # deleted while this waited for its lock
                raise NotFound(f"no experiment '{exp_id}'")
            n = len(h.trials)
            if sequence < n:
                return Assignment.of(h.trials[sequence].record)
            if sequence > n:
                raise Conflict(f"trial sequence {sequence} requested but the next one is {n}")
            if not isinstance(h.tuner, Advisor):  # (advisors name no files in parameters)
                parameters = h.tuner.final_parameters(parameters, n, h.history())
            rec = TrialRecord(sequence=n, trial_id=f"{h.stored.name}-final-{n}", parameters=dict(parameters),
                              budget=budget, kind="final")
            now = self.clock()
            self.store.add_trial(exp_id, rec, now)
            h.add(StoredTrial(rec, False, now, None, None, None, None))
            return Assignment.of(rec)

    def import_trials(self, exp_id: str, request: ImportRequest) -> dict[str, Any]:
        """Warm start: add completed trials of earlier experiments as observations.

        They feed the tuner and the assessor but are not trials of this experiment (no
        sequence, not counted, never its best). A trial whose parameters do not fit this
        search space, or whose metric does not give this experiment's objective, is
        skipped and counted with the first reason. A source that optimizes something else
        (another direction or other objectives) is refused (InvalidConfig) before anything
        is imported, as is an algorithm that cannot take imports. Idempotent: a (source,
        trial id) imported before is not imported again. ``maxTrials`` caps the imported
        trials of the experiment in all. One store transaction: all or nothing.
        """
        h = self.get(exp_id)
        refused = h.tuner.warm_start_refused
        if refused:
            raise InvalidConfig(f"warm start: {h.tuner.name} takes no imported trials ({refused}); "
                                f"remove spec.warmStart or use a model-based tuner such as TPE")
        for src in request.sources:
            why = objective_mismatch(h.mode, h.objectives, src.optimizeMode, src.objectives)
            if why is not None:
                raise InvalidConfig(f"warm start from '{src.name}': {why}; its results cannot guide this search")
        with h.lock:
            room = None if request.maxTrials is None else max(request.maxTrials - len(h.imported), 0)
            new: list[tuple[float, int, ImportedTrial]] = []
            report: list[dict[str, Any]] = []
            keys = set(h.imported_keys)
            for src in request.sources:
                rep = {"name": src.name, "imported": 0, "alreadyImported": 0, "skipped": src.skipped,
                       "firstSkipReason": src.firstSkipReason, "overLimit": 0}
                report.append(rep)
                for t in src.trials:
                    if (src.name, t.id) in keys:
                        rep["alreadyImported"] += 1
                        continue
                    why = misfit(h.space, t.parameters)
                    value: float | None = None
                    if why is None:
                        try:
                            if h.objectives:
                                value = metric_vector(t.metric, h.objectives)[0]
                            else:
                                value = metric_value(t.metric)[0]
                        except ValueError as e:
                            why = f"metric: {e}"
                    if why is not None or value is None:
                        rep["skipped"] += 1
                        rep["firstSkipReason"] = rep["firstSkipReason"] or f"{t.id}: {why}"
                        continue
                    if room is not None and len(new) >= room:
                        rep["overLimit"] += 1
                        continue
                    keys.add((src.name, t.id))
                    rep["imported"] += 1
                    it = ImportedTrial(src.name, t.id, 0, in_space_form(h.space, t.parameters), TrialState(t.state), value, t.metric,
                                       list(t.intermediate))
                    new.append((t.ended if t.ended is not None else math.inf, len(new), it))
            # Oldest first (ended, then as given): tuners weigh the most recent observations most.
            new.sort(key=lambda x: (x[0], x[1]))
            rows = [replace(it, position=len(h.imported) + i) for i, (_, _, it) in enumerate(new)]
            if rows:
                self.store.add_imported(exp_id, rows, self.clock())
                for it in rows:
                    h.add_imported(it)
            return {"imported": len(rows), "total": len(h.imported), "sources": report}

    def max_budget(self, exp_id: str) -> int | None:
        """The largest budget the experiment's advisor gives (None without an advisor)."""
        t = self.get(exp_id).tuner
        return t.max_budget if isinstance(t, Advisor) else None

    def trial(self, exp_id: str, trial_id: str) -> StoredTrial:
        t = self.get(exp_id).by_id.get(trial_id)
        if t is None:
            raise NotFound(f"no trial '{trial_id}' in experiment '{exp_id}'")
        return t

    @contextmanager
    def _locked_trial(self, exp_id: str, trial_id: str) -> Iterator[tuple[Hosted, StoredTrial]]:
        """The experiment and its trial, under the experiment's lock (what changes a trial's state holds)."""
        h = self.get(exp_id)
        with h.lock:
            yield h, self.trial(exp_id, trial_id)

    def started(self, exp_id: str, trial_id: str, at: float | None = None) -> None:
        """The trial began running: WAITING -> RUNNING, started now or ``at``.

        ``at`` is when the executor saw it begin (on a cluster: its first container's
        startedAt, maybe long after its workload was created). Idempotent, and an earlier
        ``at`` than the time recorded replaces it, in any state: a trial's first metric
        report marks it running at that report, the executor's observation comes later but
        says when it really began (and right after an operator restart too). ``at`` is kept
        between the trial's creation and now (a node clock off from this one).
        """
        with self._locked_trial(exp_id, trial_id) as (_, t):
            now = self.clock()
            ts = now if at is None else min(max(at, t.created), now)
            if t.record.state is TrialState.WAITING:
                self.store.set_started(exp_id, trial_id, ts)
                t.record.state = TrialState.RUNNING
                t.started = t.started or ts
            elif at is not None and (t.started is None or ts < t.started):
                self.store.set_start_time(exp_id, trial_id, ts)
                t.started = ts

    def report_intermediate(self, exp_id: str, trial_id: str, metric: Any, step: int | None = None,
                            assess: bool = True, event: tuple[str, Mapping[str, Any]] | None = None,
                            source: str = SDK, session: str | None = None) -> bool:
        """Record an intermediate metric; True when the trial should stop (assessor or stop).
        ``assess`` False: not judged by the assessor (values read from the output of a trial
        that already exited: stopping it now would only take a finished trial's success).
        ``event``: (kind, payload) of the trial, recorded in the point's transaction (with no
        point when the trial has ended or the step was recorded before): mlflow_runs.py's
        record of the logged value, which must never outlive a crash without its point.
        ``source``: the channel it came by; a curve comes from one (curve_source.py): a value
        read from the output makes no point once the trial reported explicitly, and its first
        explicit report drops the points read from the output before it. ``session``: the SDK
        process that sent it (report_session.py): a step already held is a retry from the
        process that sent it, and from another a new run of the trial, whose values the curve
        goes on with from that step; reports of a process a newer one replaced are ignored."""
        h = self.get(exp_id)
        try:
            value, raw = (curve_value(metric, h.objectives), metric) if h.objectives else metric_value(metric)
        except ValueError as e:
            raise BadMetric(str(e)) from None
        with h.lock:
            t = self.trial(exp_id, trial_id)
            curve = t.record.intermediate
            replacing: dict[str, Any] | None = None  # the 'curve_source' event of a replaced curve
            if not t.record.state.ended and curve:
                current = self._curve_source(h, exp_id, t)
                action = decide(current, source, len(curve))
                if action is Action.IGNORE:
                    self._say_sources(h, exp_id, t, used=current or SDK, ignored=source)
                    if event is not None:
                        self.store.add_event(exp_id, trial_id, *event)
                    return t.stop_requested
                if action is Action.REPLACE:
                    if step not in (None, 0):
                        # Checked before the drop: refused after it, the lower channel's points
                        # were gone and the report was not taken either.
                        raise Conflict(f"intermediate step {step} reported but the next step of {trial_id} is 0: "
                                       f"{replace_note(source, current or SDK, len(curve))}; nothing was changed")
                    # Dropped in the new point's transaction (Store.add_intermediate's
                    # ``replacing``): dropped apart, a kill between the two left no curve.
                    replacing = self._sources_event(h, t, used=source, ignored=current or SDK, dropped=len(curve))
            following = 0 if replacing is not None else len(curve)  # the step the report must have
            step = following if step is None else step
            restarting: dict[str, Any] | None = None  # the 'curve_restarted' event of a new run
            if session is not None and not t.record.state.ended:
                sessions = self._report_sessions(h, exp_id, t)
                verdict = decide_report(step, following, session, sessions)
                if verdict is Report.STALE:
                    if event is not None:
                        self.store.add_event(exp_id, trial_id, *event)
                    if session not in sessions.said_stale:  # once per replaced process and attempt
                        note = stale_report_event(step, value, session, sessions.current, t.created)
                        self.store.add_event(exp_id, trial_id, STALE_REPORT_EVENT, note)
                        sessions.said_stale.add(session)
                        logging.getLogger(__name__).warning("trial %s of %s: %s", trial_id, exp_id, note["note"])
                    return t.stop_requested
                if verdict is Report.RESTART:
                    # A final result already recorded was the replaced run's: dropped with it.
                    restarting = restart_event(step, following, session, sessions.current, t.created,
                                               final=t.record.value)
            if t.record.state.ended or (step < following and restarting is None):  # ended, or a retry: idempotent
                if event is not None:
                    self.store.add_event(exp_id, trial_id, *event)
                return t.record.state.ended or t.stop_requested
            if step > following:
                raise Conflict(f"intermediate step {step} reported but the next step of {trial_id} is {following}")
            self.store.add_intermediate(exp_id, trial_id, step, value, raw, self.clock(), also=event, source=source,
                                        replacing=replacing, session=session, restarting=restarting)
            if replacing is not None:
                curve.clear()
                self._said(h, exp_id, t, replacing)
            if restarting is not None:
                del curve[step:]
                if restarting["droppedFinal"] is not None:
                    t.record.value, t.record.metrics, t.record.values = None, None, None
                logging.getLogger(__name__).warning("trial %s of %s: %s", trial_id, exp_id, restarting["note"])
            curve.append(value)
            h.curve_sources[trial_id] = source
            if session is not None:
                self._report_sessions(h, exp_id, t).took_over(session)
            if t.record.state is TrialState.WAITING:
                self.started(exp_id, trial_id)
            if assess and not t.stop_requested and h.assessor is not None and t.record.kind == "search":
                try:
                    stop = h.assessor.should_stop(t.record, h.history())
                except Exception as e:
                    # No decision, not a 500: the point is already stored, and a 500 made the
                    # SDK end the trial (ReportError), so one odd curve cost a whole trial.
                    stop = False
                    self._assessor_failed(exp_id, trial_id, h.assessor.name, e)
                if stop:
                    self.store.set_stop_requested(exp_id, trial_id, f"{h.assessor.name}: early stop at step {step}")
                    t.stop_requested = True
            return t.stop_requested

    def curve_source(self, exp_id: str, trial_id: str) -> str | None:
        """The channel that made the trial's curve (curve_source.py); None when it has no
        points, or points stored before channels were recorded."""
        h = self.get(exp_id)
        with h.lock:
            t = self.trial(exp_id, trial_id)
            return self._curve_source(h, exp_id, t) if t.record.intermediate else None

    def _curve_source(self, h: Hosted, exp_id: str, t: StoredTrial) -> str | None:
        """The channel of the trial's curve points (its newest point's, read once after a
        restart; each time for an ended trial, whose curve is complete: not kept for it)."""
        trial_id = t.record.trial_id
        if trial_id in h.curve_sources:
            return h.curve_sources[trial_id]
        newest = self.store.trial_events(exp_id, trial_id, "intermediate_metric", newest=True)
        source = (newest[0]["payload"] or {}).get("source") if newest else None
        if not t.record.state.ended:
            h.curve_sources[trial_id] = source
        return source

    def _report_sessions(self, h: Hosted, exp_id: str, t: StoredTrial) -> Sessions:
        """The SDK processes of a live trial's attempt (report_session.py), read from its
        events once after a restart: its newest point's sender and the senders replaced."""
        trial_id = t.record.trial_id
        if trial_id not in h.report_sessions:
            # No point: none of this attempt's (a requeue keeps the events of the points of the
            # attempt before, whose sender replaces nobody in this one).
            newest = (self.store.trial_events(exp_id, trial_id, "intermediate_metric", newest=True)
                      if t.record.intermediate else [])
            h.report_sessions[trial_id] = sessions_from_events(
                (newest[0]["payload"] or {}) if newest else None,
                (e["payload"] or {} for e in self.store.trial_events(exp_id, trial_id, "curve_restarted")), t.created,
                (e["payload"] or {} for e in self.store.trial_events(exp_id, trial_id, STALE_REPORT_EVENT)))
        return h.report_sessions[trial_id]

    @staticmethod
    def _curve_metric(h: Hosted) -> str:
        """The name of the metric whose values make a trial's curve."""
        return h.objectives[0].name if h.objectives else (h.config.primaryMetric or "the objective")

    def _sources_event(self, h: Hosted, t: StoredTrial, used: str, ignored: str, dropped: int = 0) -> dict[str, Any]:
        """The payload of the event 'curve_source' saying which channel makes the curve of a
        trial that used two; ``dropped``: the ignored channel's points it replaces."""
        note = both_note(self._curve_metric(h), used, ignored, dropped)
        return {"used": used, "ignored": ignored, "dropped": dropped, "note": note, "created": t.created}

    def _say_sources(self, h: Hosted, exp_id: str, t: StoredTrial, used: str, ignored: str) -> None:
        """Say once per attempt and ignored channel which channel makes the curve of a trial
        that used two (a warning, and an event 'curve_source'). Per attempt: a requeued
        trial's attempt is a run of its own, which a user reads apart (its events carry their
        attempt's ``created``). (A replaced curve is said with its new point: report_intermediate.)"""
        trial_id = t.record.trial_id
        payload = self._sources_event(h, t, used, ignored)
        key, noted = (t.created, ignored), h.curve_noted.setdefault(trial_id, set())
        if key in noted or any(same_note(e["payload"] or {}, t.created, ignored)
                               for e in self.store.trial_events(exp_id, trial_id, "curve_source")):
            noted.add(key)
            return
        self.store.add_event(exp_id, trial_id, "curve_source", payload)
        self._said(h, exp_id, t, payload)

    @staticmethod
    def _said(h: Hosted, exp_id: str, t: StoredTrial, payload: Mapping[str, Any]) -> None:
        """A 'curve_source' event was written: not said again in this attempt, and logged."""
        trial_id = t.record.trial_id
        h.curve_noted.setdefault(trial_id, set()).add((t.created, payload["ignored"]))
        logging.getLogger(__name__).warning("trial %s of %s: %s", trial_id, exp_id, payload["note"])

    def _assessor_failed(self, exp_id: str, trial_id: str, assessor: str, e: Exception) -> None:
        """Record an assessor's failure on a trial once (its first), as an event and a log line."""
        if self.store.trial_events(exp_id, trial_id, "assessor_failed"):
            return
        error = f"{type(e).__name__}: {e}"[:1000]
        logging.getLogger(__name__).warning("assessor %s failed on trial %s of %s (no decision, the trial goes on): %s",
                                            assessor, trial_id, exp_id, error)
        self.store.add_event(exp_id, trial_id, "assessor_failed", {"assessor": assessor, "error": error})

    def report_final(self, exp_id: str, trial_id: str, metric: Any,
                     event: tuple[str, Mapping[str, Any]] | None = None, session: str | None = None) -> None:
        """Record the trial's final metric. ``event``: (kind, payload) of the trial, recorded in
        the same transaction (mlflow_runs.py's record that this result came from MLflow).
        ``session``: the SDK process that sent it (report_session.py): a process a newer one
        replaced gives no result (the event STALE_FINAL_EVENT and a log warning say so)."""
        h = self.get(exp_id)
        values: tuple[float, ...] | None = None
        try:
            if h.objectives:
                values = metric_vector(metric, h.objectives)
                value, raw = values[0], metric
            else:
                value, raw = metric_value(metric)
        except ValueError as e:
            with h.lock:
                live = h.by_id.get(trial_id)
                if live is not None and live.record.state.ended:
                    live = None
                # A replaced process's bad result is not the trial's either: it fails nothing.
                stale = live is not None and session is not None and final_is_stale(
                    session, self._report_sessions(h, exp_id, live))
                if h.objectives and live is not None and not stale:
                    # The trial cannot give this experiment a result: it fails now, saying why
                    # (the process exits on the SDK's error and its end keeps this reason).
                    self.end(exp_id, trial_id, None, message=f"bad final metric: {e}")
            raise BadMetric(str(e)) from None
        with h.lock:
            t = self.trial(exp_id, trial_id)
            if t.record.state.ended:
                raise Conflict(f"trial {trial_id} already ended ({t.record.state.value})")
            if session is not None:
                sessions = self._report_sessions(h, exp_id, t)
                if final_is_stale(session, sessions):
                    note = stale_final_event(value, raw, session, sessions.current)
                    self.store.add_event(exp_id, trial_id, STALE_FINAL_EVENT, note)
                    logging.getLogger(__name__).warning("trial %s of %s: %s", trial_id, exp_id, note["note"])
                    return
            self.store.set_final(exp_id, trial_id, value, raw, also=event, session=session)
            t.record.value = value
            t.record.metrics = raw if isinstance(raw, Mapping) else None
            t.record.values = values

    def request_stop(self, exp_id: str, trial_id: str, reason: str) -> None:
        with self._locked_trial(exp_id, trial_id) as (_, t):
            if not t.stop_requested and not t.record.state.ended:
                self.store.set_stop_requested(exp_id, trial_id, reason)
                t.stop_requested = True

    def end(self, exp_id: str, trial_id: str, exit_code: int | None, killed: bool = False, message: str | None = None) -> TrialState:
        """Record how a trial's process/workload ended and decide its final state.

        - stopped by an assessor (or a stop request) -> EARLY_STOPPED, keeping its last metric
          (or its curve's min/max by spec.metricStrategies)
        - killed by the experiment otherwise (timeout, interrupt) -> STOPPED
        - exit code 0 with a final metric -> SUCCEEDED
        - anything else -> FAILED with a message saying why (never silently dropped)
        Idempotent: ending an ended trial returns its state.
        """
        with self._locked_trial(exp_id, trial_id) as (h, t):
            rec = t.record
            if rec.state.ended:
                return rec.state
            veto = None
            if not killed and not t.stop_requested and exit_code == 0:
                veto = next((m for m in (hook(exp_id, trial_id) for hook in self.end_hooks) if m), None)
            value = rec.value
            if t.stop_requested:
                state = TrialState.EARLY_STOPPED
                if value is None and rec.intermediate:
                    # Its curve is the first objective's values: spec.metricStrategies picks among
                    # them as for a succeeded trial (max: its best, not its last, as in Katib).
                    curve_metric = h.objectives[0].name if h.objectives else h.config.primaryMetric
                    value = chosen_value(rec.intermediate, strategy_of(h.config.metricStrategies, curve_metric))
                message = message or "stopped early by the assessor"
            elif killed:
                state = TrialState.STOPPED
                message = message or "stopped by the experiment"
            elif exit_code == 0 and value is not None and veto is None:
                state = TrialState.SUCCEEDED
            elif exit_code == 0:
                state = TrialState.FAILED
                why = message or (str(veto) if veto is not None else None)  # (a plain str is stored)
                if (why and value is None and not isinstance(veto, FailsAnyway) and rec.intermediate
                        and self._curve_source(h, exp_id, t) == SDK):
                    # The other message says what its output or MLflow run lacked; the script's
                    # fix is the SDK's final report (the default message below already says so).
                    # Not when it gave one (value), nor when none would have done (its MLflow run
                    # ended FAILED): it failed for that, which the note would hide.
                    why = f"{why}; {no_final_note(self._curve_metric(h))}"
                message = why or "exited 0 without reporting a final metric"
            else:
                state = TrialState.FAILED
                message = message or (f"exited with code {exit_code}" if exit_code is not None else "ended without an exit code")
            now = self.clock()
            self.store.set_ended(exp_id, trial_id, state, value, exit_code, message, now)
            rec.state, rec.value = state, value
            t.ended, t.exit_code, t.message = now, exit_code, message
            # Its curve takes no more values: what decided them is kept no longer (the store has it).
            h.curve_sources.pop(trial_id, None)
            h.curve_noted.pop(trial_id, None)
            h.report_sessions.pop(trial_id, None)
            return state

    def requeue(self, exp_id: str, trial_id: str, message: str) -> TrialState:
        """The user interrupted the trial's attempt (Ctrl-C in local mode): it is not a result
        of its configuration, so the trial goes back to WAITING, the attempt's curve and final
        metric dropped, to run again under the same name when the experiment goes on. Never
        ended, it counts toward neither maxTrialNum nor maxFailedTrialNum, and tuners see it
        pending as before (its attempt's reports never reach their history twice). A trial an
        assessor asked to stop ends EARLY_STOPPED instead (its stop was decided). Idempotent:
        an ended trial keeps its state."""
        with self._locked_trial(exp_id, trial_id) as (h, t):
            rec = t.record
            if rec.state.ended:
                return rec.state
            if t.stop_requested:
                return self.end(exp_id, trial_id, None, killed=True)
            now = self.clock()
            dropped = {"state": rec.state.value, "steps": len(rec.intermediate), "value": rec.value,
                       "started": t.started}
            self.store.requeue_trial(exp_id, trial_id, message, now, dropped)
            rec.state, rec.value, rec.metrics, rec.values = TrialState.WAITING, None, None, None
            rec.intermediate.clear()
            h.curve_sources.pop(trial_id, None)
            h.curve_noted.pop(trial_id, None)  # the notes of an attempt that is over
            h.report_sessions.pop(trial_id, None)
            t.stop_requested, t.created, t.started, t.ended, t.exit_code, t.message = False, now, None, None, None, message
            return rec.state

    # ----- views -----
    def best(self, h: Hosted) -> StoredTrial | None:
        """The best succeeded search trial. With an advisor, results at different budgets do
        not compare: the best is taken among the trials of the largest budget that has one."""
        done = [t for t in h.trials if t.record.kind == "search" and t.record.state is TrialState.SUCCEEDED
                and t.record.value is not None]
        if any(t.record.budget is not None for t in done):
            top = max(t.record.budget or 0 for t in done)
            done = [t for t in done if (t.record.budget or 0) == top]
        best: StoredTrial | None = None
        for t in done:
            if best is None or h.mode.better(t.record.value, best.record.value):  # type: ignore[arg-type]
                best = t
        return best

    def listing(self) -> list[dict[str, Any]]:
        """Every hosted experiment's summary with its ``owner`` (None for local mode and for
        experiments an older operator created): what the orphan sweep decides on."""
        return [{**s, "owner": h.stored.owner} for h, s in self.summaries()]

    def summaries(self) -> list[tuple[Hosted, dict[str, Any]]]:
        """(experiment, summary) of every hosted experiment, leaving out one deleted meanwhile
        (listed, then its summary was a 404 for the whole list: the orphan sweep runs beside
        finalizers that delete)."""
        out = []
        for h in self.list():
            try:
                out.append((h, self.summary(h.stored.id)))
            except NotFound:
                continue
        return out

    def summary(self, exp_id: str) -> dict[str, Any]:
        h = self.get(exp_id)
        with h.lock:
            counts = {s: 0 for s in TrialState}
            for t in h.trials:
                counts[t.record.state] += 1
            best = self.best(h)
            return {
                "experimentId": h.stored.id,
                "name": h.stored.name,
                "created": h.stored.created,
                "optimizeMode": h.mode.value,
                # Whose trials these are: another experiment importing them (warm start)
                # leaves out the keys this tuner adds to their parameters (Tuner.added_parameters).
                "tuner": h.tuner.name,
                "trials": {
                    "total": len(h.trials),
                    "waiting": counts[TrialState.WAITING],
                    "running": counts[TrialState.RUNNING],
                    "succeeded": counts[TrialState.SUCCEEDED],
                    "failed": counts[TrialState.FAILED],
                    "earlyStopped": counts[TrialState.EARLY_STOPPED],
                    "stopped": counts[TrialState.STOPPED],
                },
                "bestTrial": trial_brief(best) if best and not h.objectives else None,
                **(self._multi_objective_view(h) if h.objectives else {}),
                "stopRequested": [t.record.trial_id for t in h.trials if t.stop_requested and not t.record.state.ended],
                "maxBudget": h.tuner.max_budget if isinstance(h.tuner, Advisor) else None,
                "finalTrials": [final_brief(t, h.objectives) for t in h.trials if t.record.kind == "final"],
                "lastFailure": last_failure(h.trials),
                # When each running trial started: the controller stops one past maxTrialSeconds.
                "runningSince": {t.record.trial_id: t.started for t in h.trials
                                 if t.record.state is TrialState.RUNNING and t.started is not None},
                **({"imported": imported_view(h)} if h.imported else {}),
            }

    def _multi_objective_view(self, h: Hosted) -> dict[str, Any]:
        """The Pareto front of the succeeded search trials and the best trial of each objective.
        Final-training reruns are left out, as from best(): each reruns a front member, so it
        would list that member twice, or push members off the front that final training chose."""
        objs = h.objectives
        done = [t for t in h.trials if t.record.kind == "search" and t.record.state is TrialState.SUCCEEDED
                and t.record.values is not None]
        losses = [to_losses(t.record.values or (), [o.optimizeMode for o in objs]) for t in done]
        front = [done[i] for i in pareto_front(losses)]
        best_each = []
        for k, o in enumerate(objs):
            if done:
                b = min(range(len(done)), key=lambda i: (losses[i][k], done[i].record.sequence))
                best_each.append({"objective": o.name, "optimizeMode": o.optimizeMode.value, **pareto_brief(done[b], objs)})
        return {
            "objectives": [o.model_dump(mode="json") for o in objs],
            "paretoFront": [pareto_brief(t, objs) for t in sorted(front, key=lambda t: t.record.values or ())],
            "bestTrials": best_each,
        }

    def trials_view(self, exp_id: str) -> list[dict[str, Any]]:
        h = self.get(exp_id)
        with h.lock:
            return [trial_view(t) for t in h.trials]


def imported_view(h: Hosted) -> dict[str, Any]:
    """How many trials warm start imported, in all and per source (not in ``trials``)."""
    per: dict[str, int] = {}
    for source in h.imported_keys.values():
        per[source] = per.get(source, 0) + 1
    return {"total": len(h.imported), "sources": per}


def last_failure(trials: list[StoredTrial]) -> dict[str, Any] | None:
    """The search trial that failed last and why: the experiment's message when
    maxFailedTrialNum ends it should say what went wrong, not only how often."""
    failed = [t for t in trials if t.record.state is TrialState.FAILED and t.record.kind != "final"]
    if not failed:
        return None
    t = max(failed, key=lambda t: (t.ended or 0.0, t.record.sequence))
    return {"name": t.record.trial_id, "message": t.message}


def trial_brief(t: StoredTrial) -> dict[str, Any]:
    r = t.record
    brief = {"name": r.trial_id, "sequence": r.sequence, "parameters": dict(r.parameters), "value": r.value}
    if r.budget is not None:
        brief["budget"] = r.budget
    return brief


def final_brief(t: StoredTrial, objectives: list[Objective]) -> dict[str, Any]:
    """A final-training rerun: with several objectives each one's value too (``value`` is the
    first alone), as the front it reruns shows them."""
    brief = {**trial_brief(t), "state": t.record.state.value}
    if objectives and t.record.values is not None:
        brief["values"] = {o.name: v for o, v in zip(objectives, t.record.values)}
    return brief


def pareto_brief(t: StoredTrial, objectives: list[Objective]) -> dict[str, Any]:
    r = t.record
    return {
        "name": r.trial_id,
        "sequence": r.sequence,
        "parameters": dict(r.parameters),
        "values": {o.name: v for o, v in zip(objectives, r.values or ())},
    }


def trial_view(t: StoredTrial) -> dict[str, Any]:
    r = t.record
    return {
        **trial_brief(t),
        "state": r.state.value,
        "metrics": r.metrics,
        "intermediate": list(r.intermediate),
        "stopRequested": t.stop_requested,
        "created": t.created,
        "started": t.started,
        "ended": t.ended,
        "exitCode": t.exit_code,
        "message": t.message,
        "kind": r.kind,
        "info": dict(r.info) if r.info is not None else None,
    }
