"""Trials as Kubernetes workloads (batch Job, Kubeflow or T9k training jobs).

Implements the :class:`~autotune_operator.executors.base.Executor` protocol for one
experiment. The workload of a trial is named after the trial (``<experiment>-<n>``), so
creating it is idempotent: a 409 AlreadyExists means a previous operator made it and it
is adopted. What is running and what has finished is read from the API server (one LIST
by label per call), so a restarted operator sees exactly what its predecessor left.
A workload is not a running trial: its pods may wait in Pending for a device or an image.
When each trial really started is read from its pods (workloads/pods.py), with one LIST
of pods per pass and only while some trial's start is still unknown.
A trial whose own container has ended while an injected sidecar (a mesh proxy) keeps its
pod running ends with that container's exit code after a grace period, and its workload is
deleted once its output was read to its end and recorded by the tuner server, or OUTPUT_WAIT_SECONDS
after (workloads/outlived.py decides, from pod status a restarted operator reads too). A File or TensorFlowEvent collector's
sidecar marks each line with its place in the trial's files (relay_marks.py): the reader here
drops what a restarted sidecar relays again.
A trial the experiment stops (an assessor, maxTrialSeconds, the experiment's end) has its
pods stopped and kept, logs and all, when its workload is a batch Job whose pods have run
(workloads/stop_in_place.py); otherwise its workload is deleted, its pods with it. Finished
trials' workloads stay until the experiment is deleted (ownerReferences: garbage collection).
The experiment's tuner-server token lives in a per-experiment Secret that trials read
through ``secretKeyRef``; it never appears in a workload.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.executors.base import LaunchRefused, LogChunk, StopCause, TrialExit, TrialLaunch
from autotune_operator.relay_marks import Taken, take
from autotune_operator.spec import API_GROUP, API_VERSION, KIND, ExperimentSpec
from autotune_operator.workloads import (
    EXPERIMENT_LABEL,
    TRIAL_LABEL,
    TrialWorkload,
    build,
    kind_for,
    outcome,
)
from autotune_operator.workloads.accelerators import AcceleratorPolicy
from autotune_operator.workloads.common import TOKEN_KEY, Owner
from autotune_operator.workloads.metrics_sidecar import SIDECAR, uses_sidecar
from autotune_operator.workloads.names import workload_name
from autotune_operator.workloads.outlived import (
    OUTPUT_WAIT_SECONDS,
    SIDECAR_GRACE_SECONDS,
    Outlived,
    delete_now,
    may_have_outlived,
    outlived,
)
from autotune_operator.workloads.pod_logs import PodLogCursor, SidecarCursor, resume, since_time
from autotune_operator.workloads.pods import current_starts, disruptions, parse_time, pods_by_trial, trial_starts
from autotune_operator.workloads.primary_pod import LogSource, primary_pod
from autotune_operator.workloads.stop_in_place import (
    DEADLINE_ANNOTATION,
    JobDeadline,
    as_patched,
    job_deadline,
    job_deadline_needed,
    job_deadline_to_set,
    pods_to_stop,
    stop_patch,
)

log = logging.getLogger("autotune.k8s")

ENDED_ANNOTATION = "autotune.tensorstack.dev/ended"
# Why the experiment stopped the trial (maxTrialSeconds, an assessor, the experiment's end),
# written on its workload before the DELETE: an operator restarted while the workload is still
# there (its pods stopping, a training job's finalizer) ends the trial with that reason
# (stop_reason), so a maxTrialSeconds stop still ends FAILED, not STOPPED.
STOP_ANNOTATION = "autotune.tensorstack.dev/stop-reason"
# Past this many trials waiting to start, the pod LIST selects by experiment only (a label
# selector naming every trial would grow without bound; the answer is the same).
MAX_NAMED_TRIALS = 50
# One read of a trial's log returns at most this much (the controller reads again for the
# rest); a pass's pod LIST is reused by the reads of that pass for at most this long.
LOG_READ_BYTES = 4 * 1024 * 1024
LOG_READ_TIMEOUT = 30.0
PODS_FRESH_SECONDS = 10.0
# Trials' pods are looked at for a sidecar outliving the trial (workloads/outlived.py) at
# most this often (and a third of the grace, when that is shorter): a pod LIST, when no
# other is made in that pass, only while a workload's status leaves room for it.
OUTLIVED_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class ExperimentRef:
    namespace: str
    name: str
    uid: str

    @property
    def owner(self) -> Owner:
        return Owner(f"{API_GROUP}/{API_VERSION}", KIND, self.name, self.uid)

    @property
    def token_secret(self) -> str:
        return f"{self.name}-autotune-token"


class EventRecorder:
    """Posts core/v1 Events about the experiment (trial created / ended / stopped)."""

    def __init__(self, api: client.ApiClient, ref: ExperimentRef, component: str = "autotune-operator") -> None:
        self.core = client.CoreV1Api(api)
        self.ref = ref
        self.component = component

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        ev = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{self.ref.name}."),
            involved_object=client.V1ObjectReference(
                api_version=f"{API_GROUP}/{API_VERSION}", kind=KIND, name=self.ref.name,
                namespace=self.ref.namespace, uid=self.ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=self.component),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            reporting_component=self.component,
        )
        try:
            self.core.create_namespaced_event(self.ref.namespace, ev)
        except ApiException as e:  # events are best effort
            log.warning("could not post event %s for %s/%s: %s", reason, self.ref.namespace, self.ref.name, e.reason)


@dataclass
class KubernetesExecutor:
    api: client.ApiClient
    ref: ExperimentRef
    spec: ExperimentSpec
    family: str
    wake: threading.Event = field(default_factory=threading.Event)
    accelerators: AcceleratorPolicy = field(default_factory=AcceleratorPolicy)
    events: EventRecorder | None = None
    on_created: Callable[[str], None] | None = None  # hook for latency measurements
    clock: Callable[[], float] = time.monotonic  # how old a pass's pod LIST is
    # A trial whose container ended while another container keeps its pod running (an
    # injected sidecar: workloads/outlived.py) ends this long after; None: never.
    sidecar_grace: float | None = SIDECAR_GRACE_SECONDS
    now: Callable[[], float] = time.time  # wall clock, against a container's finishedAt
    collector_image: str | None = None  # File/TensorFlowEvent collectors' sidecar (None: the default)
    # A stopped trial's batch-Job pods are stopped and kept with their logs (stop_in_place.py);
    # False: its Job is deleted with its pods, as for the other kinds.
    keep_stopped_pods: bool = True
    # A created workload may wait for a node: ``started`` says when each trial began.
    starts_on_launch: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.kind = kind_for(self.family, self.spec.trainingConfig.type)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        # Per-trial records: each is dropped once its trial is over (reported, its workload ended
        # or gone: _forget), or rebuilt from each LIST, so none grows with the experiment's age.
        self._reported: set[str] = set()
        self._killed: dict[str, str] = {}
        # Trials a restarted controller found stopped by an earlier one (TrialLaunch.stopped)
        # -> the reason; their workload, being deleted or gone, is not created again.
        self._stopped_before: dict[str, str] = {}
        self._launched: set[str] = set()
        # Trials whose workload name an earlier experiment of this name still holds (its
        # workload being deleted: the garbage collector's, after that experiment went): created
        # by a later poll() once the name is free; until then WAITING, as pods waiting for a node.
        self._blocked: dict[str, TrialLaunch] = {}
        # ... and those whose name another's workload holds for good (LaunchRefused): the pods
        # under their name are not theirs, so their logs are never read.
        self._not_ours: set[str] = set()
        self._blocked_before: set[str] = set()  # (one Event per trial)
        self._token: str | None = None
        # Trial -> when any of its containers first ran (epoch seconds), once seen.
        self._started: dict[str, float] = {}
        # Trials the last poll() saw whose start is not known yet -> their workload's
        # creation time (older pods belong to an earlier experiment of the same name).
        self._awaiting: dict[str, float] = {}
        # Trials this executor saw running: one that ends between two passes is still looked
        # up once (its pods show terminated.startedAt), so its duration is right.
        self._seen_active: set[str] = set()
        self._pods_forbidden = False
        self._patch_forbidden = False  # no 'patch' on pods: a stopped trial's workload is deleted (kill)
        # Trials whose pods were stopped in place and whose Job has not ended yet: looked at
        # each pass (_keep_stopping), as a pod disrupted meanwhile would be replaced.
        self._stopping_in_place: set[str] = set()
        # spec.metricsCollector: trials' logs are read each pass (read_log), from the pods of
        # one LIST per pass (shared with started()) and one log GET per running trial.
        self._collects = self.spec.metricsCollector is not None
        self._created: dict[str, float] = {}  # trial -> its workload's creation (older pods are not its)
        # Trial -> its workload's spec.activeDeadlineSeconds (and the one we set) and status.startTime
        # (the deadline's origin), as last listed: for bounding a stopped trial's Job (_bound_job).
        # Only for workloads not ended and not being deleted, rebuilt from each LIST (_note_listed):
        # a long experiment's thousands of finished trials leave nothing here.
        self._deadlines: dict[str, JobDeadline] = {}
        self._job_started: dict[str, float] = {}
        self._pods: list[dict[str, Any]] | None = None  # pods listed this pass
        self._pods_for: frozenset[str] | None = None  # ... of these trials (None: all the experiment's)
        self._pods_at = 0.0
        self._live: set[str] = set()  # trials whose logs this pass reads: running, or ended just now
        self._logs_forbidden = False
        # Batch Jobs whose pod a disruption is replacing (podFailurePolicy, batch_job.py): this
        # pass's pod LIST covers them, and each disrupted pod gets one TrialPodDisrupted Event.
        self._replacing: set[str] = set()  # trials whose Job has our podFailurePolicy
        self._disrupting: set[str] = set()  # ... whose Job reports a pod terminating or not ready
        self._announced: dict[str, str] = {}  # uids of disrupted pods an Event was posted for -> their trial
        # Trial -> when the pod running it now started (None: none running, its replacement
        # waits), from the pod LISTs of passes that made one (attempt_starts).
        self._current: dict[str, float | None] = {}
        # Trials ended because a sidecar outlived them (reported by a poll), with when (clock):
        # their workloads are deleted once the controller read their output to its end (a
        # final read_log that found nothing more, which the controller makes only once the tuner
        # server accepted all it read before: unsent values live in its memory only, lost on a
        # restart or a failed pass), or OUTPUT_WAIT_SECONDS after (_delete_outlived).
        self._outlived: dict[str, float] = {}
        self._read_to_end: set[str] = set()
        self._gave_up: set[str] = set()  # ... and those it said so of (one Event each)
        self._outlived_checked = float("-inf")  # self.clock() of the last look at their pods
        if self.events is None:
            self.events = EventRecorder(self.api, self.ref)

    # ----- helpers -----
    def _name(self, trial_id: str) -> str:
        """The name of the trial's workload: a training job's may differ from the trial's (names.py)."""
        return workload_name(self.family, trial_id, [(t.type, t.replicas) for t in self.spec.trainingConfig.tasks])

    def _list(self) -> list[dict[str, Any]]:
        k = self.kind
        resp = self.custom.list_namespaced_custom_object(
            k.group, k.version, self.ref.namespace, k.plural, label_selector=f"{EXPERIMENT_LABEL}={self.ref.name}"
        )
        return [o for o in resp.get("items", []) if _owned_by(o, self.ref.uid)]

    def _ensure_secret(self, token: str) -> None:
        if self._token == token:
            return
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=self.ref.token_secret,
                namespace=self.ref.namespace,
                labels={EXPERIMENT_LABEL: self.ref.name},
                owner_references=[client.V1OwnerReference(
                    api_version=self.ref.owner.api_version, kind=KIND, name=self.ref.name, uid=self.ref.uid,
                    controller=True, block_owner_deletion=True,
                )],
            ),
            type="Opaque",
            string_data={TOKEN_KEY: token},
        )
        try:
            self.core.create_namespaced_secret(self.ref.namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise
            self.core.replace_namespaced_secret(self.ref.token_secret, self.ref.namespace, body)
        self._token = token

    def manifest(self, trial: TrialLaunch) -> dict[str, Any]:
        tw = TrialWorkload(
            name=trial.trial_id,
            namespace=self.ref.namespace,
            experiment=self.ref.name,
            owner=self.ref.owner,
            parameters=trial.parameters,
            env=trial.env,
            token_secret=self.ref.token_secret,
            sequence=trial.sequence,
            accelerators=self.accelerators,
            collector_image=self.collector_image,
        )
        return build(self.family, self.spec, tw)

    # ----- Executor protocol -----
    def capacity(self) -> int | None:
        return None

    def launch(self, trial: TrialLaunch) -> None:
        if "AUTOTUNE_TOKEN" in trial.env:
            self._ensure_secret(trial.env["AUTOTUNE_TOKEN"])
        body = self.manifest(trial)
        k = self.kind
        self._reported.discard(trial.trial_id)
        self._launched.add(trial.trial_id)
        if trial.stopped is not None:
            # Not created again: a workload still there is adopted as it is (its end, or the stop
            # it carries, is what poll reports), one gone ends the trial with this reason.
            self._stopped_before[trial.trial_id] = trial.stopped
            return
        self._create(trial, body)

    def _create(self, trial: TrialLaunch, body: dict[str, Any]) -> None:
        k = self.kind
        self._blocked.pop(trial.trial_id, None)
        try:
            self.custom.create_namespaced_custom_object(k.group, k.version, self.ref.namespace, k.plural, body)
        except ApiException as e:
            if e.status != 409:
                self._launched.discard(trial.trial_id)
                raise
            if self._name_taken(trial, body["metadata"]["name"]):
                return
            log.info("adopted existing %s %s/%s", k.kind, self.ref.namespace, body["metadata"]["name"])
            return
        self._not_ours.discard(trial.trial_id)
        if self.on_created:
            self.on_created(trial.trial_id)
        assert self.events is not None
        name = body["metadata"]["name"]
        what = name if name == trial.trial_id else f"{name} for trial {trial.trial_id}"
        self.events.emit("TrialCreated", f"created {k.kind} {what} with parameters {dict(trial.parameters)}")

    def _name_taken(self, trial: TrialLaunch, name: str) -> bool:
        """After a 409 on create: False when the workload there is this experiment's (made by
        an operator before a restart: adopted). Another's is never adopted (the owner filter
        of every LIST would never show it: the trial ended FAILED as 'deleted'; with a metrics
        collector, reading the old pods' logs as its own). One going away (being deleted, or
        owned by an earlier experiment of this name, which the garbage collector deletes)
        blocks the trial until a later poll() can create it (True); one that stays (orphaned
        by kubectl delete --cascade=orphan, or made by someone else) is not ours to delete:
        LaunchRefused, naming it."""
        k = self.kind
        try:
            o = self.custom.get_namespaced_custom_object(k.group, k.version, self.ref.namespace, k.plural, name)
        except ApiException as e:
            if e.status != 404:
                self._launched.discard(trial.trial_id)
                raise
            o = None  # gone since the create: made on the next pass
        if o is not None and _owned_by(o, self.ref.uid):
            return False
        self._launched.discard(trial.trial_id)
        self._not_ours.add(trial.trial_id)
        where = f"{k.kind} {self.ref.namespace}/{name}"
        if o is None or _going(o, self.ref.name):
            if trial.trial_id not in self._blocked_before:
                self._blocked_before.add(trial.trial_id)
                assert self.events is not None
                self.events.emit("TrialWaitsForWorkloadName",
                                 f"trial {trial.trial_id} waits: {where} of an earlier experiment named {self.ref.name} "
                                 "is still being deleted; the trial's workload is created once it is gone")
            self._blocked[trial.trial_id] = trial
            return True
        raise LaunchRefused(f"{where} is in the way and is not this experiment's (left by an earlier experiment named "
                            f"{self.ref.name} deleted with --cascade=orphan, or made by someone else); delete it, or "
                            "create the experiment under another name")

    def _create_blocked(self) -> list[TrialExit]:
        """Create the workloads of the trials waiting for their name to come free (_name_taken);
        the exits of those whose name turned out to be taken for good."""
        out = []
        for trial in list(self._blocked.values()):
            self._launched.add(trial.trial_id)
            try:
                self._create(trial, self.manifest(trial))
            except LaunchRefused as e:
                out.append(TrialExit(trial.trial_id, None, False, f"could not start: {e}"))
            except Exception:
                self._blocked.setdefault(trial.trial_id, trial)  # tried again on the next pass
                self._launched.discard(trial.trial_id)
                raise
        return out

    def active(self) -> set[str]:
        out = set(self._blocked)  # launched and not ended: they wait for their workload's name
        listed = self._list()
        self._note_listed(listed)
        for o in listed:
            tid = _trial(o)
            if (tid and tid not in self._killed and tid not in self._outlived and outcome(self.family, o) is None
                    and not o["metadata"].get("deletionTimestamp") and stop_reason(o) is None):
                out.add(tid)
        self._live = set(out)
        return out

    def poll(self) -> list[TrialExit]:
        exits: list[TrialExit] = []
        seen: set[str] = set()
        awaiting: dict[str, float] = {}
        assert self.events is not None
        self._pods = None  # a new pass: pods are listed again when needed
        self._delete_outlived()
        exits.extend(self._create_blocked())
        running: dict[str, dict[str, Any]] = {}
        listed = self._list()
        self._note_listed(listed)
        stopping: list[str] = []  # stopped in place, their Jobs not ended: looked at after the loop
        live: set[str] = set()  # trials whose workload has not ended and is not being deleted
        for o in listed:
            tid = _trial(o)
            if not tid:
                continue
            seen.add(tid)
            if outcome(self.family, o) is None and not o["metadata"].get("deletionTimestamp"):
                live.add(tid)
            if tid in self._stopping_in_place:
                if outcome(self.family, o) is not None or o["metadata"].get("deletionTimestamp"):
                    self._stopping_in_place.discard(tid)
                else:
                    stopping.append(tid)
            if tid in self._reported:
                continue
            md = o["metadata"]
            stop = stop_reason(o)
            if tid in self._killed or stop is not None:
                if (stop is not None and tid not in self._killed and not md.get("deletionTimestamp")
                        and outcome(self.family, o) is None):
                    # The operator that wrote the reason died before it stopped the trial (or
                    # while its pods stop): stopped now (again: the patch is idempotent).
                    self._stop_workload(tid)
                # The reason the workload carries first: the stop's own (a restarted operator's
                # recomputed one may differ: maxTrialSeconds raised since).
                exits.append(TrialExit(tid, None, True, stop or self._killed[tid]))
                continue
            res = outcome(self.family, o)
            if res is None and md.get("deletionTimestamp") and tid in self._stopped_before:
                # Being deleted when a restarted operator found it stopped by the one before.
                exits.append(TrialExit(tid, None, True, self._stopped_before[tid]))
                continue
            # Ended ones too when this executor saw them run or created them: a short trial can
            # be created, run and end between two passes (never seen running), and its pods
            # still say when it began.
            if tid not in self._started and not md.get("deletionTimestamp") and (
                    res is None or tid in self._seen_active or tid in self._launched):
                awaiting[tid] = parse_time(md.get("creationTimestamp")) or 0.0
            if res is None:
                self._seen_active.add(tid)
                if not md.get("deletionTimestamp"):
                    running[tid] = o
                if self._being_replaced(tid, o):
                    self._disrupting.add(tid)
                continue
            self._seen_active.discard(tid)
            # Always reported (ending a trial is idempotent in the tuner server), but the
            # Event is posted once: a restarted operator sees the annotation.
            exits.append(TrialExit(tid, res.exit_code, False, res.message))
            if ((o["metadata"].get("annotations") or {}).get(ENDED_ANNOTATION)):
                continue
            if res.exit_code == 0:
                self.events.emit("TrialSucceeded", f"{self.kind.kind} {tid} completed")
            else:
                self.events.emit("TrialFailed", f"{self.kind.kind} {tid} failed: {res.message or ''}", warning=True)
            self._mark_ended(tid)
        self._keep_stopping(stopping)
        self._stopping_in_place &= seen  # (a Job gone: nothing left to stop)
        for tid in (set(self._killed) | self._launched) - seen - self._reported:
            reason = self._killed.get(tid) or self._stopped_before.get(tid)
            exits.append(TrialExit(tid, None, reason is not None, reason or "the trial's workload was deleted"))
        # (set now too: a pod LIST made below covers every trial whose log this pass reads)
        self._live = (seen - self._reported) | {ex.trial_id for ex in exits}
        for out in self._sidecars_outlived(running, set(awaiting) | self._disrupting):
            # Exit 0: no message, so a trial that printed no objective still says so.
            exits.append(TrialExit(out.trial, out.exit_code, False, out.trial_message() if out.exit_code else None))
        # Reported by an earlier poll (so started() has handed over their starts since) and over:
        # their workloads ended, being deleted or gone, nothing left to stop, delete or read.
        self._forget(self._reported - live - self._stopping_in_place - set(self._outlived) - set(self._blocked)
                     - {ex.trial_id for ex in exits}, seen)
        for ex in exits:
            self._reported.add(ex.trial_id)
        self._awaiting = awaiting
        self._live = (seen - self._reported) | {ex.trial_id for ex in exits}
        return exits

    def _forget(self, over: set[str], listed: set[str]) -> None:
        """Drop what this executor holds for trials that are ``over``: it lives as long as the
        experiment, and a long one runs thousands of trials. Kept while a trial's workload is
        still ``listed`` (finished Jobs stay until the experiment is deleted, so these are
        bounded by the LIST itself): ``_reported`` (without it each pass would report each of
        them again) and ``_created`` (the controller may read an ended trial's log for passes
        after its end, while its output drains, and the creation tells its pods from those of an
        earlier experiment of the same name). Kept always: ``_not_ours`` (rare: a trial whose name
        another's workload holds; its log must never be read from that workload's pods, whenever
        the controller asks)."""
        if not over:
            return
        for tid in over:
            self._killed.pop(tid, None)  # (kill: the controller stops only trials still active)
            self._stopped_before.pop(tid, None)
            self._launched.discard(tid)
            self._started.pop(tid, None)
            self._seen_active.discard(tid)
            self._current.pop(tid, None)
            self._replacing.discard(tid)
            self._blocked_before.discard(tid)
        self._announced = {uid: t for uid, t in self._announced.items() if t not in over}
        for tid in over - listed:
            self._reported.discard(tid)
            self._created.pop(tid, None)

    def started(self) -> dict[str, float]:
        """When each trial began running (epoch seconds, from the kubelet's container
        ``startedAt``), for the trials whose start is known. A trial absent here has not run
        yet: its pods wait for a node, a device or an image.

        Costs one LIST of the experiment's pods (by label, only the trials still waiting
        when they are few) after a ``poll`` that saw a trial whose start is unknown, and
        nothing once every trial it saw has started. With a metrics collector it also covers
        the trials whose logs this pass reads, and ``read_log`` uses it."""
        self._delete_outlived()
        awaiting, self._awaiting = self._awaiting, {}
        disrupting, self._disrupting = self._disrupting, set()
        # A trial whose new pod has not started yet is looked up each pass until it has.
        disrupting |= {t for t, at in self._current.items() if at is None and t in self._live}
        if self._pods_forbidden:  # see below: the workload's creation stands in
            self._started.update({t: c for t, c in awaiting.items() if c})
        if not (awaiting or disrupting) or self._pods_forbidden:
            return dict(self._started)
        try:
            pods = self._pods_of(set(awaiting) | disrupting)
        except ApiException as e:
            if e.status != 403:
                raise
            self._forbid_pods()
            self._started.update({t: c for t, c in awaiting.items() if c})
            return dict(self._started)
        self._started.update(trial_starts(pods, awaiting))
        return dict(self._started)

    def _pods_of(self, trials: set[str]) -> list[dict[str, Any]]:
        """Pods of (at least) ``trials``: this pass's LIST when it covers them, else a new one,
        naming the trials when they are few. With a metrics collector the LIST covers every
        trial whose log this pass reads, so started() and read_log() share one per pass."""
        fresh = self._pods is not None and self.clock() - self._pods_at <= PODS_FRESH_SECONDS
        if fresh and (self._pods_for is None or trials <= self._pods_for):
            assert self._pods is not None
            return self._pods
        want = trials | (self._live if self._collects else set())
        named = len(want) <= MAX_NAMED_TRIALS
        pods = self._list_pods(sorted(want) if named else None)
        self._pods, self._pods_at, self._pods_for = pods, self.clock(), (frozenset(want) if named else None)
        self._announce_disruptions(pods)
        # Every listed trial, not only those known started: after an operator restart a trial
        # whose new pod waits is RUNNING in the tuner server, and must not be timed meanwhile.
        self._current.update(current_starts(pods, {t: self._created.get(t, 0.0) for t in want & self._replacing}))
        return pods

    def attempt_starts(self) -> dict[str, float | None]:
        """Running batch-Job trials -> when the pod running each now started, None while its
        replacement waits (a disrupted pod is replaced: batch_job.py), for maxTrialSeconds
        (decide.attempt_since). Read from the pod LISTs this executor makes anyway (a trial's
        start unknown, logs read, a Job reporting a pod terminating or not ready): no LIST of
        its own. A trial never disrupted costs at most one LIST more, when its Job counts its
        pod ready only after a pass saw it run."""
        return {t: at for t, at in self._current.items() if t in self._live}

    def _being_replaced(self, trial: str, job: dict[str, Any]) -> bool:
        """Whether a running batch Job's status says a pod of it is going or not running yet
        after the trial started: a disrupted pod terminating (evicted, preempted), or its
        replacement waiting. Read from the Job this pass listed anyway; costs nothing else."""
        if self.family != "job" or not (job.get("spec") or {}).get("podFailurePolicy"):
            return False
        self._replacing.add(trial)
        st = job.get("status") or {}
        if int(st.get("terminating") or 0) > 0:
            return True
        # (no "ready" yet: the Job controller has not counted its pods; not a sign of anything)
        return trial in self._started and st.get("ready") is not None and int(st["ready"]) < int(st.get("active") or 0)

    def _announce_disruptions(self, pods: list[dict[str, Any]]) -> None:
        """One Event per disrupted pod of a running Job trial, from a pod LIST made anyway (a
        trial's start unknown, the logs read, or a Job reporting a pod terminating: see
        _being_replaced). A pod removed between two LISTs is not announced: best effort."""
        assert self.events is not None
        for d in disruptions(pods, self._replacing & self._live):
            if d.uid in self._announced:
                continue
            self._announced[d.uid] = d.trial
            why = ": ".join(x for x in (d.reason, d.message) if x) or "condition DisruptionTarget"
            self.events.emit("TrialPodDisrupted",
                             f"trial {d.trial}: pod {d.pod} was disrupted ({why}); "
                             "its Job runs the trial again in a new pod, not counted as a failure")

    def _sidecars_outlived(self, running: dict[str, dict[str, Any]], also: set[str]) -> list[Outlived]:
        """Running trials whose primary container ended more than ``sidecar_grace`` ago while
        another container keeps its pod alive (workloads/outlived.py decides), each with one
        Event (a restarted operator sees the workload's annotation). Their workloads are
        deleted by the next started() or poll(). Costs a pod LIST at most every OUTLIVED_CHECK_SECONDS, and
        none while every running Job counts its pods ready; it covers ``also`` (the trials
        started() looks up this pass), so that pass makes no second one."""
        grace = self.sidecar_grace
        if grace is None or self._pods_forbidden:
            return []
        candidates = {t for t, o in running.items() if may_have_outlived(self.family, o)}
        if not candidates or self.clock() - self._outlived_checked < min(OUTLIVED_CHECK_SECONDS, grace / 3):
            return []
        self._outlived_checked = self.clock()
        try:
            pods = self._pods_of(candidates | also)
        except ApiException as e:
            if e.status == 403:
                self._forbid_pods()
            else:
                log.warning("could not list the pods of %s/%s: %s %s", self.ref.namespace, self.ref.name, e.status, e.reason)
            return []
        tasks = [{"type": t.type, "replicas": t.replicas, "template": t.template} for t in self.spec.trainingConfig.tasks]
        found = [o for o in (outlived(self.family, t, pods, tasks, self.now(), grace, self._created.get(t))
                             for t in sorted(candidates)) if o is not None]
        assert self.events is not None
        for o in found:
            log.info("%s/%s: %s", self.ref.namespace, self.ref.name, o.event_message(grace))
            self._outlived.setdefault(o.trial, self.clock())
            self._seen_active.discard(o.trial)
            if not (running[o.trial]["metadata"].get("annotations") or {}).get(ENDED_ANNOTATION):
                self.events.emit("TrialSidecarOutlived", o.event_message(grace), warning=True)
                self._mark_ended(o.trial)
        return found

    def _delete_outlived(self) -> None:
        """Delete the workloads of the trials a poll ended for an outliving sidecar, once their
        output was read to its end. Called by started() and poll(): the controller calls
        started() in the pass that ended them, after it read their output (controller.step),
        so the pods' logs were there for that, and the sidecars stop before the experiment may
        finish. A trial whose output could not be read to its end, or whose values read could
        not be recorded by the tuner server (down, restarting), is kept for the next passes (the
        controller reads and sends again while it waits for them, and an operator restarted
        meanwhile reads the log again from its start: the server skips the steps it has), at
        most OUTPUT_WAIT_SECONDS."""
        nothing_to_read = not self._collects or self._pods_forbidden or self._logs_forbidden
        for tid, since in sorted(self._outlived.items()):
            what = delete_now(nothing_to_read or tid in self._read_to_end, since, self.clock(), OUTPUT_WAIT_SECONDS)
            if what is None:
                continue
            if what == "give up" and tid not in self._gave_up:
                self._gave_up.add(tid)
                msg = (f"trial {tid}: its output could not be read to its end and recorded by the tuner server within "
                       f"{OUTPUT_WAIT_SECONDS:g}s after its container ended (its sidecar outlived it); its workload is "
                       "deleted now and the lines not recorded yet are lost")
                log.warning("%s/%s: %s", self.ref.namespace, self.ref.name, msg)
                assert self.events is not None
                self.events.emit("TrialOutputUnread", msg, warning=True)
            try:
                self._delete_workload(tid)
            except Exception as e:  # an API hiccup must not fail the pass: deleted on the next one
                log.warning("could not delete the workload of trial %s (its sidecar outlived it): %s", tid, e)
                continue
            del self._outlived[tid]
            self._read_to_end.discard(tid)
            self._gave_up.discard(tid)

    def _list_pods(self, trials: list[str] | None) -> list[dict[str, Any]]:
        """One LIST of the experiment's pods (only ``trials``' when given)."""
        selector = f"{EXPERIMENT_LABEL}={self.ref.name}"
        if trials is not None:
            selector += f",{TRIAL_LABEL} in ({','.join(trials)})"
        resp = self.core.list_namespaced_pod(self.ref.namespace, label_selector=selector, _preload_content=False)
        return json.loads(resp.data).get("items") or []

    def _warn_missing_permission(self, reason: str, msg: str) -> None:
        """Said once per missing permission (the caller sets its flag): in the operator's log
        and as a Warning Event on the experiment, where `kubectl describe ate` shows it."""
        log.warning("%s/%s: %s", self.ref.namespace, self.ref.name, msg)
        assert self.events is not None
        self.events.emit(reason, msg, warning=True)

    def _forbid_pods(self) -> None:
        # An operator upgraded without the chart's new RBAC: a trial's time counts from the
        # workload's creation (the old rule) and no log is read; said once.
        self._pods_forbidden = True
        msg = ("the operator may not list pods, so a trial's time counts from its workload's creation, "
               "waiting for a node included" + (", and no trial's output is read for spec.metricsCollector"
                                                 if self._collects else "")
               + "; grant 'list' on pods (the Helm chart's RBAC does)")
        self._warn_missing_permission("PodsNotReadable", msg)

    def _note_listed(self, listed: list[dict[str, Any]]) -> None:
        """What a LIST of the experiment's workloads says that later calls need: each one's
        creation, and the deadline of those still running (a trial the experiment may stop)."""
        self._deadlines, self._job_started = {}, {}
        for o in listed:
            trial = _trial(o)
            if not trial:
                continue
            md = o.get("metadata") or {}
            created = parse_time(md.get("creationTimestamp"))
            if created is not None:
                self._created[trial] = created
            if outcome(self.family, o) is not None or md.get("deletionTimestamp"):
                continue  # nothing left to bound
            # (a stopped trial's Job is bounded when it lacks a deadline, or ours is too short: _bound_job)
            self._deadlines[trial] = JobDeadline.of(o)
            started = parse_time((o.get("status") or {}).get("startTime"))
            if started is not None:
                self._job_started[trial] = started

    # ----- the trial's output (spec.metricsCollector) -----
    def read_log(self, trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None:
        """What the trial's primary container printed after ``cursor`` (workloads/
        primary_pod.py says which pod and container; with a File or TensorFlowEvent collector,
        the lines its ``autotune-metrics`` sidecar relayed from the trial's files: workloads/
        metrics_sidecar.py), read as ``kubectl logs --timestamps --since-time`` does
        (workloads/pod_logs.py). None while the container has not run, when its pod is gone,
        and on API errors (logged; a 403 once as a Warning Event)."""
        if self._pods_forbidden or self._logs_forbidden or trial_id in self._not_ours:
            return None
        try:
            pods = self._pods_of({trial_id})
        except ApiException as e:
            if e.status == 403:
                self._forbid_pods()
            else:
                log.warning("could not list the pods of %s/%s: %s %s", self.ref.namespace, self.ref.name, e.status, e.reason)
            return None
        except Exception as e:  # the API server unreachable, a connection cut: the next pass tries again
            log.warning("could not list the pods of %s/%s: %s", self.ref.namespace, self.ref.name, e)
            return None
        tasks = [{"type": t.type, "replicas": t.replicas, "template": t.template} for t in self.spec.trainingConfig.tasks]
        # File / TensorFlowEvent: the lines the sidecar relays from the trial's files.
        sidecar = SIDECAR if uses_sidecar(self.spec.metricsCollector) else None
        src = primary_pod(self.family, trial_id, pods, tasks, self._created.get(trial_id), container=sidecar)
        if src is None or not src.has_log:
            if final and trial_id in self._outlived:
                self._read_to_end.add(trial_id)  # no pod, or a container that never ran: nothing to lose
            return None
        # The sidecar's lines carry their positions in the trial's files (relay_marks): what a
        # restarted sidecar relays again is dropped. A new pod (its own files) starts afresh.
        taken = cursor.taken if isinstance(cursor, SidecarCursor) and cursor.log.uid == src.uid else Taken()
        if isinstance(cursor, SidecarCursor):
            cursor = cursor.log
        cur = cursor if isinstance(cursor, PodLogCursor) and cursor.uid == src.uid else PodLogCursor(src.uid)
        try:
            data = self._pod_log(src, since_time(cur), LOG_READ_BYTES)
            capped = len(data) >= LOG_READ_BYTES  # more follows: its last piece is no last line
            lines, after = resume(data, cur, final and not capped)
            if capped and not lines:  # over LOG_READ_BYTES within one second: read it whole
                data = self._pod_log(src, since_time(cur), None)
                capped = False
                lines, after = resume(data, cur, final)
            # The container's last line had no newline (LogChunk.unterminated).
            unterminated = bool(final and not capped and lines and data and not data.endswith(b"\n"))
        except ApiException as e:
            if e.status == 403:
                self._forbid_logs()
            elif e.status not in (400, 404):  # 400/404: the container not started yet, or the pod deleted
                log.warning("could not read the output of trial %s (pod %s): %s %s", trial_id, src.pod, e.status, e.reason)
            return None
        except Exception as e:
            log.warning("could not read the output of trial %s (pod %s): %s", trial_id, src.pod, e)
            return None
        if sidecar is not None:
            lines, taken = take(lines, taken, final)
            unterminated = taken.unterminated
        if final and not lines and trial_id in self._outlived:
            # Its workload may go now (_delete_outlived): the controller makes this read only
            # once the tuner server accepted all it read before (controller._collect).
            self._read_to_end.add(trial_id)
        return LogChunk(tuple(lines), after if sidecar is None else SidecarCursor(after, taken), unterminated)

    def _forbid_logs(self) -> None:
        self._logs_forbidden = True
        msg = ("the operator may not read pod logs, so no metric printed by a trial is collected "
               "(spec.metricsCollector); grant 'get' on pods/log (the Helm chart's RBAC does)")
        self._warn_missing_permission("PodLogsNotReadable", msg)

    def _pod_log(self, src: LogSource, since: str | None, limit: int | None) -> bytes:
        """GET .../pods/{pod}/log with timestamps and sinceTime, which the generated client's
        read_namespaced_pod_log cannot send (it has no sinceTime)."""
        query: list[tuple[str, str]] = [("container", src.container), ("timestamps", "true")]
        if since is not None:
            query.append(("sinceTime", since))
        if limit is not None:
            query.append(("limitBytes", str(limit)))
        path = "/api/v1/namespaces/{namespace}/pods/{name}/log"
        params = {"namespace": self.ref.namespace, "name": src.pod}
        headers = {"Accept": "*/*"}  # kube-apiserver answers a bare "text/plain" with 406
        method, url, hdrs, body, post = self.api.param_serialize(
            "GET", path, path_params=params, query_params=query, header_params=headers, auth_settings=["BearerToken"])
        resp = self.api.call_api(method, url, hdrs, body, post, _request_timeout=LOG_READ_TIMEOUT)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(status=resp.status, reason=resp.reason)
        return bytes(data or b"")

    def _mark_ended(self, trial_id: str) -> None:
        k = self.kind
        try:
            self.custom.patch_namespaced_custom_object(
                k.group, k.version, self.ref.namespace, k.plural, self._name(trial_id),
                {"metadata": {"annotations": {ENDED_ANNOTATION: "true"}}},
            )
        except ApiException as e:  # only costs a repeated Event after a restart
            log.warning("could not annotate %s %s: %s", k.kind, trial_id, e.reason)

    def kill(self, trial_id: str, reason: str, cause: StopCause | None = None) -> None:
        if trial_id in self._killed or trial_id in self._reported:
            # Reported ended: nothing to stop. A stop that raced the end (decided before the
            # poll that reported it) must not mark the finished Job stopped, post a TrialStopped
            # Event or delete the Job with its logs, once _killed forgot the trial (_forget).
            return
        self._killed[trial_id] = reason
        if self._blocked.pop(trial_id, None) is not None:
            # No workload of its own: the one under its name is another experiment's (the next
            # poll reports the trial ended with this reason).
            self.wake.set()
            return
        self._annotate_stop(trial_id, reason)
        kept = self._stop_workload(trial_id)
        assert self.events is not None
        early = "assessor" in reason
        where = (f"; its pod{'s' if len(kept) > 1 else ''} {', '.join(kept)} stopped and kept with "
                 f"{'their' if len(kept) > 1 else 'its'} logs (kubectl logs)") if kept else ""
        self.events.emit("TrialEarlyStopped" if early else "TrialStopped", f"{trial_id}: {reason}{where}")
        self.wake.set()

    def _stop_workload(self, trial_id: str) -> list[str]:
        """Stop the trial's pods, keeping them and their logs where the workload kind allows
        (workloads/stop_in_place.py: a batch Job whose pods have run); else delete its
        workload, its pods with it. Returns the pods stopped in place (empty: deleted)."""
        kept = self._stop_in_place(trial_id)
        if kept is None:
            self._stopping_in_place.discard(trial_id)
            self._delete_workload(trial_id)
            return []
        self._stopping_in_place.add(trial_id)
        return kept

    def _keep_stopping(self, trials: list[str]) -> None:
        """Trials stopped in place whose Jobs have not ended: a pod may have been disrupted
        before the kubelet's kill (a node drain, a preemption, a lost node), and the Job's
        podFailurePolicy then replaces it with a pod that would run the stopped trial again.
        Stop such a replacement too, or delete the Job while one waits (stop_in_place.py).
        One pod LIST for them all (by experiment past MAX_NAMED_TRIALS), as an experiment's end
        stops all its running trials at once."""
        if not trials:
            return
        try:
            listed = self._list_pods(sorted(trials) if len(trials) <= MAX_NAMED_TRIALS else None)
        except Exception as e:  # their pods are patched already: looked at again next pass
            log.warning("could not list the pods of stopped trials %s: %s", ", ".join(sorted(trials)), e)
            return
        for trial_id in sorted(trials):
            if self._stop_in_place(trial_id, listed) is None:
                log.info("trial %s: a pod of its stopped Job was disrupted or replaced; the Job is deleted", trial_id)
                self._stopping_in_place.discard(trial_id)
                self._delete_workload(trial_id)

    def _stop_in_place(self, trial_id: str, listed: list[dict[str, Any]] | None = None) -> list[str] | None:
        """Set activeDeadlineSeconds on the trial's running pods, so the kubelet stops them and
        keeps them; the pods so stopped (some may have ended already), or None when the
        workload must be deleted instead (another kind, no pod has run, a pod waiting, the
        operator may not list or patch pods, an API error)."""
        if not self.keep_stopped_pods or self.family != "job" or self._pods_forbidden or self._patch_forbidden:
            return None
        try:
            listed = self._list_pods([trial_id]) if listed is None else listed
        except Exception as e:  # not now: deleted, as before
            log.warning("could not list the pods of trial %s to stop them: %s", trial_id, e)
            return None
        pods = pods_by_trial(listed, {trial_id: self._created.get(trial_id, 0.0)})[trial_id]
        names = pods_to_stop(pods)
        if names is None:
            return None
        patch = stop_patch(self.now())  # (it says when: STOPPED_AT_ANNOTATION)
        stopped_now: set[str] = set()
        for name in names:
            try:
                self.core.patch_namespaced_pod(name, self.ref.namespace, patch)
                stopped_now.add(name)
            except ApiException as e:
                if e.status == 404:
                    continue  # gone meanwhile: nothing left to stop
                if e.status == 403:
                    self._forbid_patch()
                else:
                    log.warning("could not stop pod %s of trial %s in place: %s %s", name, trial_id, e.status, e.reason)
                return None
            except Exception as e:
                log.warning("could not stop pod %s of trial %s in place: %s", name, trial_id, e)
                return None
        # Also when no pod needed the patch: an operator that died between the pods' patch and
        # the Job's finds them patched, and the Job still needs its bound (once: job_deadline_to_set)
        # and, for a pod stopped just before (its stopped-at), its push.
        self._bound_job(trial_id, [as_patched(p, patch) if (p.get("metadata") or {}).get("name") in stopped_now
                                   else p for p in pods])
        all_pods = [str((p.get("metadata") or {}).get("name")) for p in pods]
        return sorted(set(all_pods))

    def _bound_job(self, trial_id: str, pods: list[Mapping[str, Any]]) -> None:
        """Give the stopped trial's Job a deadline a little past its pods' grace period
        (stop_in_place.job_deadline): a pod that replaces a disrupted one is deleted then,
        even once no operator loop looks at this experiment any more (its end). Pushed out
        when a pod stopped since (such a replacement; ``pods`` as they are after this pass's
        patches) needs it for its grace period (stop_in_place.job_deadline_needed)."""
        # From the Job's startTime, as the Job controller counts: a Job queued suspended (Kueue)
        # starts long after its creation, which would put the bound that much later.
        # Not listed running (ended, being deleted, gone, or never listed yet): nothing to bound.
        origin = self._job_started.get(trial_id, self._created.get(trial_id))
        held = self._deadlines.get(trial_id)
        if held is None or origin is None:
            return
        now = self.now()
        deadline = job_deadline_to_set(held, job_deadline(origin, now, pods), job_deadline_needed(origin, pods))
        if deadline is None:
            return
        k = self.kind
        # The annotation says it is ours (never raise one set by others), to a restarted operator too.
        body = {"metadata": {"annotations": {DEADLINE_ANNOTATION: str(deadline)}},
                "spec": {"activeDeadlineSeconds": deadline}}
        try:
            self.custom.patch_namespaced_custom_object(
                k.group, k.version, self.ref.namespace, k.plural, self._name(trial_id), body)
        except Exception as e:  # the pods are stopped; only the bound on a replacement is missing
            log.warning("could not set a deadline on the Job of stopped trial %s: %s", trial_id, e)
            return
        self._deadlines[trial_id] = JobDeadline(deadline, deadline)  # (until the next LIST says what the Job holds)

    def _forbid_patch(self) -> None:
        # An operator upgraded without the chart's new RBAC: stopped trials' workloads are
        # deleted with their pods (the old rule); said once.
        self._patch_forbidden = True
        msg = ("the operator may not patch pods, so a stopped trial's Job is deleted with its pods and their logs "
               "instead of its pods being stopped and kept; grant 'patch' on pods (the Helm chart's RBAC does)")
        self._warn_missing_permission("PodsNotPatchable", msg)

    def _annotate_stop(self, trial_id: str, reason: str) -> None:
        """Write the stop's reason on the workload (STOP_ANNOTATION), before stopping it. A
        workload that stays (a batch Job whose pods were stopped in place, a training job's
        operator's finalizer keeping it while it stops) says why; a deleted Job is gone at once
        (Background deletion: its pods stop after), and then a restarted operator has the tuner
        server's start times only (decide.stopped_before_restart)."""
        k = self.kind
        try:
            self.custom.patch_namespaced_custom_object(
                k.group, k.version, self.ref.namespace, k.plural, self._name(trial_id),
                {"metadata": {"annotations": {STOP_ANNOTATION: reason}}},
            )
        except ApiException as e:  # gone (404), or not now: the stop goes on, its reason is recomputed after a restart
            if e.status != 404:
                log.warning("could not annotate %s %s with its stop's reason: %s", k.kind, trial_id, e.reason)

    def _delete_workload(self, trial_id: str) -> None:
        """Delete the trial's workload; its pods go with it (garbage collection)."""
        k = self.kind
        try:
            self.custom.delete_namespaced_custom_object(
                k.group, k.version, self.ref.namespace, k.plural, self._name(trial_id), propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise

    def wait(self, timeout: float) -> None:
        if self.wake.wait(timeout):
            self.wake.clear()

    def shutdown(self) -> None:
        """Workloads keep running: a restarted operator adopts them."""


def stop_reason(o: dict[str, Any]) -> str | None:
    """Why the experiment stopped this workload's trial (STOP_ANNOTATION), None if it did not."""
    return ((o.get("metadata") or {}).get("annotations") or {}).get(STOP_ANNOTATION) or None


def _trial(o: dict[str, Any]) -> str | None:
    return ((o.get("metadata") or {}).get("labels") or {}).get(TRIAL_LABEL)


def _going(o: dict[str, Any], experiment: str) -> bool:
    """Whether a workload (not this experiment's) goes away by itself: being deleted, or owned
    by an AutoTuneExperiment of this name (an earlier one: the name is this one's now, so that
    owner is gone and the garbage collector deletes the workload)."""
    md = o.get("metadata") or {}
    return bool(md.get("deletionTimestamp")) or any(
        r.get("kind") == KIND and r.get("name") == experiment and str(r.get("apiVersion", "")).startswith(f"{API_GROUP}/")
        for r in md.get("ownerReferences") or [])


def _owned_by(o: dict[str, Any], uid: str) -> bool:
    refs = (o.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)
