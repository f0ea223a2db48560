"""The operator's work for one AutoTuneExperiment, independent of kopf.

:class:`OperatorRuntime` holds what the whole operator shares (settings, a Kubernetes
API client, the tuner-server client, one wake-up event per experiment). ``run_experiment``
is the reconcile loop of one experiment: validate, build an :class:`ExperimentController`
with a :class:`KubernetesExecutor`, and step it whenever a workload changes (or every
``resync`` seconds, for the time limit), writing ``.status`` as it goes. kopf_handlers.py
only wires kopf's callbacks to these methods.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.controller import ExperimentController
from autotune_operator.decide import Goal, Limits, Phase, rerun_own_keys
from autotune_operator.executors.base import trial_env
from autotune_operator.executors.kubernetes import EventRecorder, ExperimentRef, KubernetesExecutor
from autotune_operator.metrics import OperatorMetrics, metered
from autotune_operator.metrics_server import MetricsServer, parse_endpoint
from autotune_operator.orphan_sweep import Sweeper, kubernetes_lookup, sweep_once
from autotune_operator.orphans import PendingDeletes
from autotune_operator.resume import ENDED, ended_run, plan_resume
from autotune_operator.spec_change import MUTABLE, SpecChange, describe_limits, diff_spec, limits_of, refused_message
from autotune_operator.spec import API_GROUP, API_VERSION, SpecError, validate_manifest
from autotune_operator.status import ExperimentStatus, for_cluster
from autotune_operator.warm_start import Lookup, cluster_finder, merge_status
from autotune_operator.workloads import WorkloadError, WorkloadKind, build, choose_family, kind_for, kubeflow, t9k
from autotune_operator.workloads.accelerators import DEFAULT_NODE_SELECTORS, AcceleratorPolicy, parse_node_selectors
from autotune_operator.workloads.common import TrialWorkload
from autotune_operator.workloads.metrics_sidecar import sidecar_dropped, uses_sidecar, version_problem
from autotune_operator.workloads.outlived import SIDECAR_GRACE_SECONDS
from tuner_server.client import HttpClient, TunerClient, TunerServerError, is_http_url

log = logging.getLogger("autotune.operator")

PLURAL = "autotuneexperiments"
# The reconcile loop retries on its own (with backoff, status message, and a stop check in
# between), so one tuner-server call retries only briefly: a daemon stuck for minutes in a
# call cannot see that its experiment is being deleted.
CALL_RETRY_SECONDS = 10.0
WORKLOAD_KIND_ANNOTATION = "autotune.tensorstack.dev/workload-kind"


@dataclass(frozen=True)
class Settings:
    server_url: str
    admin_token: str
    trial_server_url: str
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    workload_kind: str | None = None  # job | kubeflow | t9k; None: discover
    resync_seconds: float = 2.0
    accelerators: AcceleratorPolicy = field(default_factory=AcceleratorPolicy)
    # A path every trial pod mounts from one shared volume: trials save checkpoints under
    # <root>/<trial> and advisors' promotions resume from them. None: promotions retrain.
    checkpoint_root: str | None = None
    # Every this many seconds (and at start) delete tuner-server state whose experiment is
    # gone (orphan_sweep.py); 0: never.
    sweep_seconds: float = 600.0
    # Serve Prometheus metrics here (http://HOST:PORT/PATH, metrics_server.py); None: not at all.
    metrics_endpoint: str | None = None
    # A trial whose container ended while another container (an injected mesh proxy) keeps
    # its pod running ends this many seconds later (workloads/outlived.py); 0: never.
    sidecar_grace_seconds: float = SIDECAR_GRACE_SECONDS
    # The image of the File/TensorFlowEvent metrics collectors' sidecar in trial pods
    # (workloads/metrics_sidecar.py); None: autotune/operator:<this version>.
    collector_image: str | None = None
    # A trial the experiment stops keeps its batch Job and pods, stopped, with their logs
    # (workloads/stop_in_place.py); False: its Job is deleted with its pods.
    keep_stopped_pods: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        url = env.get("AUTOTUNE_SERVER_URL", "http://autotune-tuner-server:8080")
        # Stripped as the file is (and as the tuner server reads it): a Secret made from a
        # file ends in its newline, which an Authorization header cannot carry.
        token = env.get("AUTOTUNE_ADMIN_TOKEN", "").strip()
        if not token and env.get("AUTOTUNE_ADMIN_TOKEN_FILE"):
            try:
                with open(env["AUTOTUNE_ADMIN_TOKEN_FILE"], encoding="utf-8") as f:
                    token = f.read().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise SystemExit(f"AUTOTUNE_ADMIN_TOKEN_FILE {env['AUTOTUNE_ADMIN_TOKEN_FILE']!r}: cannot read it ({e})") from None
        if not token:
            raise SystemExit("AUTOTUNE_ADMIN_TOKEN (or AUTOTUNE_ADMIN_TOKEN_FILE) must be set")
        for var in ("AUTOTUNE_SERVER_URL", "AUTOTUNE_TRIAL_SERVER_URL"):
            # Otherwise retried forever for every experiment.
            if var in env and not is_http_url(env[var]):
                raise SystemExit(f"{var} must be an http:// or https:// URL, not {env[var]!r}")
        kind = env.get("AUTOTUNE_WORKLOAD_KIND", "").strip() or None
        selectors = dict(DEFAULT_NODE_SELECTORS)
        if env.get("AUTOTUNE_ACCELERATOR_NODE_SELECTORS"):
            try:
                selectors = parse_node_selectors(env["AUTOTUNE_ACCELERATOR_NODE_SELECTORS"])
            except ValueError as e:
                raise SystemExit(f"AUTOTUNE_ACCELERATOR_NODE_SELECTORS {e}") from None
        return cls(
            server_url=url,
            admin_token=token,
            trial_server_url=env.get("AUTOTUNE_TRIAL_SERVER_URL", url),
            namespaces=tuple(n.strip() for n in env.get("AUTOTUNE_NAMESPACES", "").split(",") if n.strip()),
            workload_kind=None if kind in (None, "auto") else kind,
            # 0 would reconcile in a busy loop.
            resync_seconds=_seconds("AUTOTUNE_RESYNC_SECONDS", env.get("AUTOTUNE_RESYNC_SECONDS", "2")),
            sweep_seconds=_seconds("AUTOTUNE_ORPHAN_SWEEP_SECONDS", env.get("AUTOTUNE_ORPHAN_SWEEP_SECONDS", "600"),
                                   zero_means="no sweep"),
            checkpoint_root=env.get("AUTOTUNE_TRIAL_CHECKPOINT_ROOT", "").strip() or None,
            metrics_endpoint=_metrics_endpoint(env.get("AUTOTUNE_METRICS_ENDPOINT", "")),
            sidecar_grace_seconds=_seconds("AUTOTUNE_SIDECAR_GRACE_SECONDS",
                                           env.get("AUTOTUNE_SIDECAR_GRACE_SECONDS", str(SIDECAR_GRACE_SECONDS)),
                                           zero_means="never end a trial for it"),
            collector_image=env.get("AUTOTUNE_COLLECTOR_IMAGE", "").strip() or None,
            keep_stopped_pods=_flag("AUTOTUNE_KEEP_STOPPED_PODS", env.get("AUTOTUNE_KEEP_STOPPED_PODS", "true")),
            accelerators=AcceleratorPolicy(
                tolerate=env.get("AUTOTUNE_ACCELERATOR_TOLERATIONS", "true").lower() != "false",
                node_selectors=selectors,
            ),
        )


def _flag(var: str, raw: str) -> bool:
    """true/false from the environment (an empty value: the default, true); anything else is
    refused in one line naming the variable, rather than read as one or the other."""
    value = raw.strip().lower()
    if value in ("", "true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise SystemExit(f"{var} must be true or false, not {raw!r}")


def _seconds(var: str, raw: str, *, zero_means: str | None = None) -> float:
    """A number of seconds from the environment: > 0, or >= 0 when 0 has a meaning
    (``zero_means``). NaN and text are refused too: one line naming the variable."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 if zero_means else value > 0):
        bound = f">= 0 (0: {zero_means})" if zero_means else "> 0"
        raise SystemExit(f"{var} must be a number of seconds {bound}, not {raw!r}")
    return value


def _metrics_endpoint(raw: str) -> str | None:
    if not raw.strip():
        return None
    try:
        parse_endpoint(raw)
    except ValueError as e:
        raise SystemExit(f"AUTOTUNE_METRICS_ENDPOINT: {e}") from None
    return raw.strip()


def discover_groups(api: client.ApiClient) -> dict[str, set[str]]:
    """Resource plurals served by the training-job API groups that exist in the cluster."""
    out: dict[str, set[str]] = {}
    for group, version in ((kubeflow.GROUP, kubeflow.VERSION), (t9k.GROUP, t9k.VERSION)):
        try:
            resp = client.CustomObjectsApi(api).get_api_resources(group, version)
        except ApiException:
            continue
        out[group] = {r.name for r in (resp.resources or []) if "/" not in r.name}
    return out


# A condition's reason when the status names none (written by an operator older than status.reason).
DEFAULT_REASONS = {Phase.PENDING: "Pending", Phase.RUNNING: "Running", Phase.DONE: "Succeeded",
                   Phase.TIMEOUT: "MaxExecSecondsReached", Phase.ERROR: "ExperimentError"}


def conditions(phase: Phase, message: str, previous: list[dict[str, Any]], now: str,
               resumed: str | None = None, reason: str | None = None) -> list[dict[str, Any]]:
    """One condition per phase kind, True for the current one; transition times kept.

    ``resumed`` (what was raised, when an ended experiment is resumed) sets a ``Resumed``
    condition (reason LimitsRaised), kept from then on: it says when and why the experiment
    ran again after its Succeeded/TimedOut condition went False (Katib's Restarting)."""
    wanted = {
        "Running": phase is Phase.RUNNING,
        "Succeeded": phase is Phase.DONE,
        "TimedOut": phase is Phase.TIMEOUT,
        "Failed": phase is Phase.ERROR,
    }
    prev = {c.get("type"): c for c in previous or []}
    out = []
    for ctype, on in wanted.items():
        status = "True" if on else "False"
        old = prev.get(ctype)
        if old is None and not on:
            continue
        changed = old is None or old.get("status") != status
        out.append({
            "type": ctype,
            "status": status,
            "reason": (reason or DEFAULT_REASONS[phase]) if on else (old or {}).get("reason", ""),
            "message": message if on else (old or {}).get("message", ""),
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
        })
    if resumed is not None:
        out.append({"type": "Resumed", "status": "True", "reason": "LimitsRaised", "message": resumed,
                    "lastTransitionTime": now})
    elif "Resumed" in prev:
        out.append(prev["Resumed"])
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusWriter:
    """Patches the experiment's status subresource, only when something changed."""

    def __init__(self, api: client.ApiClient, ref: ExperimentRef, current: Mapping[str, Any] | None,
                 on_write: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.ref = ref
        self.last: dict[str, Any] = dict(current or {})
        self.on_write = on_write  # told every status written (the metrics count from it)

    def write(self, patch: dict[str, Any], resumed: str | None = None) -> None:
        new = {**self.last, **patch}
        new["conditions"] = conditions(Phase(new["phase"]), new.get("message", ""), self.last.get("conditions") or [], now_iso(),
                                       resumed, new.get("reason"))
        if new == self.last:
            return
        self.custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, self.ref.namespace, PLURAL, self.ref.name, {"status": new}
        )
        self.last = new
        if self.on_write is not None:
            self.on_write(new)


class OperatorRuntime:
    def __init__(self, settings: Settings, api: client.ApiClient, tuner: TunerClient | None = None,
                 metrics: OperatorMetrics | None = None) -> None:
        self.settings = settings
        self.api = api
        # Given when the process serves metrics from before kopf starts (a standby replica
        # waiting for leadership serves them too: leader_election.py).
        self.metrics = metrics or OperatorMetrics()
        self.metrics_server: MetricsServer | None = None
        self.tuner: TunerClient = metered(
            tuner or HttpClient(settings.server_url, settings.admin_token, retry_seconds=CALL_RETRY_SECONDS), self.metrics)
        self._wakers: dict[tuple[str, str], threading.Event] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.pending_deletes = PendingDeletes(self.tuner.delete_experiment)
        self.sweeper: Sweeper | None = None

    def start_sweeper(self) -> None:
        """Start the orphan sweep (now, then every ``sweep_seconds``), unless disabled."""
        if self.settings.sweep_seconds <= 0 or self.sweeper is not None:
            return
        custom = client.CustomObjectsApi(self.api)
        lookup = kubernetes_lookup(lambda ns, name: custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, ns, PLURAL, name, _request_timeout=30))
        watched = frozenset(self.settings.namespaces) or None  # None: cluster-wide
        tuner = self.tuner
        self.sweeper = Sweeper(lambda: sweep_once(tuner.list_experiments, tuner.delete_experiment, lookup, watched),
                               self.settings.sweep_seconds)
        self.sweeper.start()

    def stop_sweeper(self) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()

    def start_metrics_server(self) -> None:
        """Serve the Prometheus metrics at ``metrics_endpoint``, if set (a taken port raises)."""
        if self.settings.metrics_endpoint and self.metrics_server is None:
            self.metrics_server = MetricsServer(parse_endpoint(self.settings.metrics_endpoint),
                                                self.metrics.exposition).start()

    def stop_metrics_server(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None

    def waker(self, namespace: str, name: str) -> threading.Event:
        with self._lock:
            return self._wakers.setdefault((namespace, name), threading.Event())

    def wake(self, namespace: str, name: str) -> None:
        """A workload of this experiment changed: reconcile it now."""
        with self._lock:
            ev = self._wakers.get((namespace, name))
        if ev is not None:
            ev.set()

    def experiment_seen(self, namespace: str, name: str, generation: int | None,
                        status: Mapping[str, Any] | None = None) -> None:
        """An event on the experiment itself: reconcile now if its spec changed (the
        generation moves only then; our own status writes do not wake the loop). An ended
        experiment has no loop (kopf_handlers.py): the phase gauge learns of it here."""
        status = status or {}
        if status.get("phase") in ENDED and not self.metrics.knows((namespace, name)):
            self.metrics.experiment_loaded((namespace, name), status)
        if generation is None:
            return
        with self._lock:
            changed = self._generations.get((namespace, name)) != generation
            self._generations[(namespace, name)] = generation
        if changed:
            self.wake(namespace, name)

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """The experiment is being deleted: drop its tuner-server state (workloads go by GC).

        Never blocks the deletion for long: the client retries an unreachable tuner server
        for a bounded time; after that the experiment goes anyway (a Warning Event and the
        log say so) and its state is deleted in the background once the server is back.
        """
        with self._lock:
            ev = self._wakers.pop((namespace, name), None)
            self._generations.pop((namespace, name), None)
        if ev is not None:
            ev.set()
        self.metrics.experiment_forgotten((namespace, name))
        try:
            self.tuner.delete_experiment(uid)
        except (TunerServerError, OSError) as e:
            self.metrics.error("finalizer")
            msg = (f"could not remove the experiment's tuner-server state ({e}); deleting the experiment anyway. "
                   f"The operator retries in the background; by hand: DELETE {self.settings.server_url}"
                   f"/api/v1/experiments/{uid} with the admin token")
            log.warning("%s/%s: %s", namespace, name, msg)
            EventRecorder(self.api, ExperimentRef(namespace, name, uid)).emit("TunerStateNotDeleted", msg, warning=True)
            self.pending_deletes.add(uid, f"{namespace}/{name}")

    def _family(self, body: Mapping[str, Any]) -> str:
        status = body.get("status") or {}
        if status.get("workloadKind"):
            return str(status["workloadKind"])  # keep what the experiment started with
        override = ((body.get("metadata") or {}).get("annotations") or {}).get(WORKLOAD_KIND_ANNOTATION)
        override = override or self.settings.workload_kind
        return choose_family({} if override else discover_groups(self.api), override)

    def run_experiment(self, body: Mapping[str, Any], stopped: Callable[[], bool],
                       sleep: Callable[[float], Any] | None = None) -> int | None:
        """Reconcile one experiment until it is finished or ``stopped()``; resume it first if
        it had ended and its limits were raised since. Returns the metadata.generation it
        ended with (None when stopped): a newer one is an edit it has not seen yet."""
        md = body["metadata"]
        ref = ExperimentRef(md["namespace"], md["name"], md["uid"])
        status = dict(body.get("status") or {})
        key = (ref.namespace, ref.name)
        self.metrics.experiment_loaded(key, status)
        writer = StatusWriter(self.api, ref, status, on_write=lambda written: self.metrics.status_written(key, written))
        events = EventRecorder(self.api, ref)
        paused = float(status.get("pausedSeconds") or 0)
        resumed_message = ""
        # Ended but not finished (no completionTime): the loop was stopping its trials when the
        # operator stopped. It goes on doing so; an ERROR keeps its reason, which a new
        # controller could not find again (a tuner failure), so the phase cannot go back.
        stopping_error = (str(status.get("message") or "ERROR")
                          if status.get("phase") == Phase.ERROR.value and not status.get("completionTime") else None)
        if status.get("phase") in ENDED and status.get("completionTime"):
            resumed = self._resume(body, writer, events)
            if resumed is None:
                return md.get("generation")
            paused, resumed_message = resumed, str(writer.last.get("message") or "")
        if not status.get("phase"):
            writer.write({"phase": Phase.PENDING.value, "message": "starting"})
        # The spec this loop runs with. After an operator restart, the one the status recorded:
        # where no admission policy refused it (Kubernetes < 1.30, Helm immutableSpecPolicy off)
        # the object may carry an edit that spec_change refuses; taking it now would register
        # a different configuration with the tuner server, whose 409 turned the running
        # experiment ERROR. The edit is ignored as the running operator ignores it, with its
        # Warning unless that operator already gave it (it had observed this generation).
        applied: dict[str, Any] = dict(body.get("spec") or {})
        recorded = status.get("appliedSpec")
        if isinstance(recorded, Mapping):
            told = status.get("observedGeneration") == md.get("generation")
            applied = _apply_spec_edit(dict(recorded), applied, None if told else events, ref, announce_limits=False)
        try:
            doc = {k: body[k] for k in ("apiVersion", "kind", "metadata") if k in body}
            doc["spec"] = applied
            doc["metadata"] = {"name": md["name"], "namespace": md["namespace"]}
            exp = validate_manifest(doc)
            family = self._family(body)
            sample = _check_buildable(exp.spec, ref, family, self.settings.accelerators, self.settings.collector_image)
            _check_accepted(self.api, ref, family, exp.spec.trainingConfig.type, sample)
            if uses_sidecar(exp.spec.metricsCollector):
                _check_native_sidecars(self.api)
                _check_sidecar_kept(self.api, ref, family, exp.spec.trainingConfig.type, sample)
        except (SpecError, WorkloadError) as e:
            self._fail(writer, events, str(e), md.get("generation"), reason="InvalidExperiment")
            return md.get("generation")
        wake = self.waker(ref.namespace, ref.name)
        applied_gen = md.get("generation")

        def fresh() -> ExperimentController:
            # After a failed pass the controller is rebuilt as after an operator restart:
            # an executor remembers which trial ends it reported, and a report the tuner
            # server never got must be made again (ending a trial is idempotent there).
            executor = KubernetesExecutor(self.api, ref, exp.spec, family, wake=wake,
                                          accelerators=self.settings.accelerators, events=events,
                                          sidecar_grace=self.settings.sidecar_grace_seconds or None,
                                          collector_image=self.settings.collector_image,
                                          keep_stopped_pods=self.settings.keep_stopped_pods,
                                          on_created=lambda _trial: self.metrics.workload_created(family))
            c = ExperimentController(exp, ref.uid, self.tuner, executor, self.settings.trial_server_url,
                                     checkpoint_root=self.settings.checkpoint_root,
                                     owner={"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
                                     find_source=self._source_finder(ref.namespace), paused_seconds=paused)
            c.limits = _limits(applied, c.limits.capacity)
            if stopping_error is not None:
                c.state.error = stopping_error
            return c

        controller = fresh()
        pause = sleep or wake.wait
        backoff = 1.0
        started = False
        last_phase = writer.last.get("phase")
        while True:
            wake.clear()  # from here on a wake-up (workload event, spec edit, stop) cuts the wait below short
            if stopped():
                return None
            generation = (body.get("metadata") or {}).get("generation")  # kopf's body is live
            if generation != applied_gen:
                applied_gen = generation
                applied = _apply_spec_edit(applied, dict(body.get("spec") or {}), events, ref)
                controller.limits = _limits(applied, controller.limits.capacity)
            try:
                if not started:
                    controller.start()
                    started = True
                    _announce_warm_start(controller, events)
                d = controller.step()
                st = controller.status()
            except TunerServerError as e:
                if stopped():
                    return None  # being deleted: the finalizer may already have removed the server's state (404)
                self.metrics.error("reconcile_tuner_server")
                if 400 <= e.status < 500:
                    self._fail(writer, events, f"the tuner server refused the experiment: {e}", applied_gen)
                    return applied_gen
                log.warning("%s/%s: %s; retrying", ref.namespace, ref.name, e)
                try:
                    writer.write({"message": f"tuner server error, retrying: {e}"[:500], "phase": writer.last.get("phase", "PENDING")})
                except Exception:
                    pass
                controller, started = fresh(), False
                pause(backoff)
                backoff = min(backoff * 2, 30)
                continue
            except Exception as e:  # API hiccups, server down: never crash, retry
                self.metrics.error("reconcile")
                log.exception("%s/%s: reconcile failed; retrying", ref.namespace, ref.name)
                controller, started = fresh(), False
                try:
                    writer.write({"message": f"reconcile failed, retrying: {e}"[:500], "phase": writer.last.get("phase", "PENDING")})
                except Exception:
                    pass
                pause(backoff)
                backoff = min(backoff * 2, 30)
                continue
            backoff = 1.0
            patch = _status_patch(st, family)
            # A restarted loop knows only the counts; the report of the pass that imported stays.
            warm = merge_status(writer.last.get("warmStart"), patch.pop("warmStart", None))
            if warm is not None:
                patch["warmStart"] = warm
            patch["limits"] = limits_of(applied)  # what a resume's Event compares the new limits with
            patch["appliedSpec"] = applied  # what a restarted operator runs with (above)
            if resumed_message and st.phase is Phase.RUNNING and not st.message:
                patch["message"] = resumed_message  # a resumed run says so until it has more to say
            writer.write({**patch, **({"observedGeneration": applied_gen} if applied_gen else {})})
            if st.phase.value != last_phase:
                events.emit(f"Experiment{st.phase.value.capitalize()}", st.message or st.phase.value,
                            warning=st.phase is Phase.ERROR)
                last_phase = st.phase.value
            if d.finished:
                return applied_gen
            if d.launch and not controller.state.tuner_waiting and not controller.state.exhausted and controller.state.error is None:
                continue
            wake.wait(self.settings.resync_seconds)

    def _source_finder(self, namespace: str) -> Callable[[str], Lookup]:
        """spec.warmStart's names -> earlier AutoTuneExperiments of this namespace."""
        custom = client.CustomObjectsApi(self.api)

        def get(name: str) -> Mapping[str, Any] | None:
            try:
                return custom.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name, _request_timeout=30)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise  # the reconcile loop retries

        return cluster_finder(get, self.tuner, namespace)

    def _resume(self, body: Mapping[str, Any], writer: StatusWriter, events: EventRecorder) -> float | None:
        """An ended experiment seen again: run it again if its limits were edited since it
        ended so that it would not end at once (resume.py). Returns the seconds it has sat
        ended (not counted against maxExecSeconds), or None when it stays ended.

        How an edit is told from an operator restart: every status write records the
        generation it ran with (observedGeneration); the spec changed since the experiment
        ended iff metadata.generation has moved past it."""
        generation = (body.get("metadata") or {}).get("generation")
        status = writer.last
        if generation is None or status.get("observedGeneration") == generation:
            return None
        spec = dict(body.get("spec") or {})
        tuner = spec.get("tuner")
        run = ended_run(status, rerun_own_keys(tuner.get("builtinTunerName") if isinstance(tuner, Mapping) else None))
        if run is None:
            return None
        new = limits_of(spec)
        old = status.get("limits")  # None: it ended before the operator recorded its limits
        change = (describe_limits(diff_spec(old, new)) if isinstance(old, Mapping)
                  else ", ".join(f"{k} now {v}" for k, v in new.items()))
        goal = (Goal(float(spec["objectiveGoal"]), status.get("optimizeMode") != "minimize")
                if isinstance(spec.get("objectiveGoal"), (int, float)) else None)
        plan = plan_resume(run, _limits(spec, None), change, time.time(), goal)
        ref = writer.ref
        if not plan.resume:
            writer.write({"observedGeneration": generation, "limits": new})
            if run.phase is not Phase.ERROR and change:  # (an ERROR one cannot be edited: nothing to tell)
                log.info("%s/%s: %s", ref.namespace, ref.name, plan.message)
                events.emit("ExperimentNotResumed", plan.message, warning=True)
            return None
        log.info("%s/%s: %s", ref.namespace, ref.name, plan.message)
        writer.write({"phase": Phase.RUNNING.value, "message": f"resumed: {change}", "reason": "Running", "completionTime": None,
                      "pausedSeconds": round(plan.paused_seconds) or None, "observedGeneration": generation,
                      "limits": new}, resumed=change)
        events.emit("ExperimentResumed", plan.message)
        return plan.paused_seconds

    @staticmethod
    def _fail(writer: StatusWriter, events: EventRecorder, message: str, generation: int | None = None,
              reason: str = "ExperimentError") -> None:
        log.warning("experiment %s/%s: %s", writer.ref.namespace, writer.ref.name, message)
        # observedGeneration: this generation was looked at, so an operator restart (or the
        # daemon's filter, kopf_handlers.py) leaves the ended experiment alone.
        writer.write({"phase": Phase.ERROR.value, "message": message, "reason": reason, "completionTime": now_iso(),
                      **({"observedGeneration": generation} if generation else {})})
        events.emit("ExperimentError", message, warning=True)


def _announce_warm_start(controller: ExperimentController, events: EventRecorder) -> None:
    """Events for a warm start that ran now: one per missing source (Warning), and the report."""
    w = controller.warm
    if w is None or w.earlier:
        return
    for msg in w.warnings:
        events.emit("WarmStartSourceMissing", msg, warning=True)
    if w.error is None:  # an error ends the experiment, whose ExperimentError Event says why
        events.emit("WarmStart", w.line)


def _status_patch(st: ExperimentStatus, family: str) -> dict[str, Any]:
    out = for_cluster(st).model_dump(mode="json")  # a front of thousands would not fit in the object
    out["workloadKind"] = family
    return out


def _limits(spec: Mapping[str, Any], capacity: int | None) -> Limits:
    final = spec.get("finalTraining")
    final_training = isinstance(final, Mapping) and final.get("enabled", True) is not False
    return Limits(spec.get("maxTrialNum"), int(spec.get("trialConcurrency") or 1), spec.get("maxExecSeconds"), capacity,
                  final_training, spec.get("maxFailedTrialNum"), spec.get("maxTrialSeconds"))


def _valid_limit(key: str, value: Any) -> bool:
    if value is None:
        return key != "trialConcurrency"
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _apply_spec_edit(applied: dict[str, Any], new: dict[str, Any], events: EventRecorder | None, ref: ExperimentRef,
                     announce_limits: bool = True) -> dict[str, Any]:
    """Take the new limits; refuse (Warning Event) every other change. Returns the spec to run with.

    ``events`` None: no Events (already given). ``announce_limits`` False: no SpecUpdated
    (at a restart, where a resume's Event or status.limits tells the limits instead)."""
    change = diff_spec(applied, new)
    bad = [k for k in change.limits if not _valid_limit(k, new.get(k))]
    if bad or change.refused:
        refused = SpecChange({}, tuple(sorted({*change.refused, *bad})))
        log.warning("%s/%s: %s", ref.namespace, ref.name, refused_message(refused))
        if events is not None:
            events.emit("SpecChangeRefused", refused_message(refused), warning=True)
    ok = SpecChange({k: v for k, v in change.limits.items() if k not in bad})
    if ok.empty:
        return applied
    log.info("%s/%s: spec updated: %s", ref.namespace, ref.name, describe_limits(ok))
    if events is not None and announce_limits:
        events.emit("SpecUpdated", f"{describe_limits(ok)} (applies from now on)")
    return {**applied, **{k: new.get(k) for k in MUTABLE if k in ok.limits}}


def _check_native_sidecars(api: client.ApiClient) -> None:
    """A File/TensorFlowEvent collector's sidecar needs Kubernetes >= 1.29: an ERROR now on
    an older cluster, rather than trials that never start (metrics_sidecar.version_problem)."""
    try:
        info = client.VersionApi(api).get_code()
    except Exception as e:  # unknown: the experiment runs (an old cluster then shows why in its pods)
        log.warning("could not read the cluster's version: %s", e)
        return
    why = version_problem(str(info.major or ""), str(info.minor or ""))
    if why:
        raise WorkloadError(why)


def _check_buildable(spec: Any, ref: ExperimentRef, family: str, acc: AcceleratorPolicy,
                     collector_image: str | None = None) -> dict[str, Any]:
    """Build one dummy trial's workload so a spec this workload kind cannot run is an ERROR now;
    returns the workload built (its ${parameters.X} filled with a stand-in value).

    The CRD keeps a task's pod template as written, so a field of the wrong shape (resources:
    'lots', metadata.labels a string, initContainers a string) reaches the builders, which read
    Kubernetes' shapes: what they raise then is the template's fault, an ERROR too. Before, it
    escaped the start-up checks, kopf retried the start for ever and the experiment stayed
    PENDING 'starting'."""
    env = trial_env("http://x", "t", ref.uid, f"{ref.name}-0", 0, {})
    tw = TrialWorkload(f"{ref.name}-0", ref.namespace, ref.name, ref.owner, _AnyParameters(), env,
                       ref.token_secret, 0, acc, collector_image)
    try:
        return build(family, spec, tw)
    except WorkloadError:  # (a ValueError) the builder's own refusal, which names the field itself
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
        raise WorkloadError(f"spec.trainingConfig.tasks: a trial's {family} workload cannot be built from this pod "
                            f"template ({type(e).__name__}: {e}); a field has a shape Kubernetes does not give it "
                            "(a mapping where it takes one, a list where it takes a list: resources, metadata.labels, "
                            "initContainers, volumes, tolerations, nodeSelector)") from None


def _check_accepted(api: client.ApiClient, ref: ExperimentRef, family: str, training_type: str,
                    sample: Mapping[str, Any]) -> None:
    """A trial workload the API server refuses as invalid is an ERROR now, naming the field:
    the CRD keeps a task's pod template as written (a CPU quantity 'lots', a container name
    with '_' pass `kubectl apply`), and each suggestion became a trial FAILED 'could not
    start: (422)' until maxTrialNum was used up. A server-side dry run of the dummy trial's
    workload (generateName: nothing is created; ${parameters.X} are filled only in command,
    args and env values, so it is every trial's shape). Only 422 Invalid and a 400 that the
    body cannot be decoded (a quantity) count: a quota, RBAC, an API server that is down now,
    or an admission webhook's 400 (one with side effects refuses every dry run with 400 'does
    not support dry run') is left to the trials."""
    kind = kind_for(family, training_type)
    try:
        _dry_run(api, ref, kind, sample)
    except ApiException as e:
        if e.status == 422 or (e.status == 400 and " cannot be handled as a" in _refusal(e)):
            raise WorkloadError(f"the API server refuses the trials' {kind.kind} (built from spec.trainingConfig.tasks): "
                                f"{_refusal(e)}") from None
        log.warning("could not dry-run a %s of %s/%s: %s %s", kind.kind, ref.namespace, ref.name, e.status, e.reason)
    except Exception as e:  # unknown: the trials show it
        log.warning("could not dry-run a %s of %s/%s: %s", kind.kind, ref.namespace, ref.name, e)


def _dry_run(api: client.ApiClient, ref: ExperimentRef, kind: WorkloadKind, sample: Mapping[str, Any]) -> Any:
    """Create the dummy trial's workload with dryRun=All under a generated name: nothing is
    created and nothing named is touched; returns what the API server would store."""
    body = {**sample, "metadata": {k: v for k, v in sample["metadata"].items() if k != "name"}}
    body["metadata"]["generateName"] = f"{ref.name}-check-"
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        kind.group, kind.version, ref.namespace, kind.plural, body, dry_run="All")


def _refusal(e: ApiException) -> str:
    """What a 422 says is wrong: its causes ('field: message'), else its message."""
    try:
        status = json.loads(e.body or "{}")
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    causes = (status.get("details") or {}).get("causes") or []
    said = "; ".join(f"{c['field']}: {c.get('message', '')}" if c.get("field") else str(c.get("message", ""))
                     for c in causes if isinstance(c, dict))
    return (said or str(status.get("message") or e.reason))[:1000]


class _AnyParameters(dict):  # type: ignore[type-arg]
    """The dummy trial's parameters: every name (dotted ones too) is there, as {} (placeholders
    were checked by validation; only the workload's shape matters here)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> "_AnyParameters":
        return _AnyParameters()


def _check_sidecar_kept(api: client.ApiClient, ref: ExperimentRef, family: str, training_type: str,
                        sample: Mapping[str, Any]) -> None:
    """A training job whose CRD drops the collector sidecar's restartPolicy: an ERROR now, not
    trials that never start (metrics_sidecar.sidecar_dropped). A server-side dry run of the
    dummy trial's job (a generated name: nothing is created, nothing named is touched) shows
    what the API server keeps. A batch Job's pod template is the cluster's own (the version
    check covers it); a dry run that fails leaves the question to the trials."""
    if family == "job":
        return
    kind = kind_for(family, training_type)
    try:
        stored = _dry_run(api, ref, kind, sample)
    except Exception as e:
        log.warning("could not dry-run a %s to check its metrics sidecar: %s", kind.kind, e)
        return
    why = sidecar_dropped(family, sample, stored, f"{kind.kind} ({kind.api_version})")
    if why:
        raise WorkloadError(why)
