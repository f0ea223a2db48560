"""What an experiment should do next: a pure function of what was observed.

No clock, no I/O: the controller observes (time, trial counts, tuner state), calls
:func:`decide`, and carries out the decision. Both local mode and the Kubernetes
operator use this, so the phase rules are written once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Collection, Mapping, Sequence

from tuner_server.tuners import tuner_class


class Phase(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"

    @property
    def terminal(self) -> bool:
        return self in (Phase.DONE, Phase.TIMEOUT, Phase.ERROR)


@dataclass(frozen=True)
class Limits:
    max_trials: int | None
    concurrency: int
    max_seconds: int | None
    capacity: int | None = None  # executor slots (e.g. devices); None = unlimited
    final_training: bool = False  # rerun the best configuration(s) after the search
    max_failed: int | None = None  # maxFailedTrialNum: this many failed trials end the experiment ERROR
    max_trial_seconds: int | None = None  # maxTrialSeconds: a trial running longer is stopped and FAILED


@dataclass(frozen=True)
class Goal:
    """spec.objectiveGoal: the search is DONE once the best final value reaches ``value``."""

    value: float
    maximize: bool

    def reached(self, best: float) -> bool:
        return best >= self.value if self.maximize else best <= self.value


@dataclass(frozen=True)
class Observed:
    elapsed: float  # seconds the experiment has run (time it sat ended before a resume not counted)
    issued: int  # trials the tuner handed out (every state)
    active: int  # issued and not ended
    exhausted: bool = False  # the tuner said it has nothing new
    error: str | None = None  # the tuner/spec failed
    failed: int = 0  # search trials that ended FAILED (not early-stopped, not stopped by us)
    last_failure: str = ""  # why the latest of them failed, for the message
    # Final training (counted apart from issued/active, which are the search's trials).
    final_issued: int = 0
    final_active: int = 0
    # The chosen configuration(s) (best trial, or the Pareto front) include one with no final
    # trial yet: after a resumed search found a new best. None: pending iff none was issued.
    final_pending: bool | None = None
    best: float | None = None  # the best trial's final value (single objective), for objectiveGoal
    best_name: str = ""


@dataclass(frozen=True)
class Decision:
    phase: Phase
    launch: int = 0  # new trials to start now
    stop_active: bool = False  # stop every running trial (timeout, error)
    finished: bool = False  # terminal and nothing left running: the loop may end
    message: str = ""
    launch_final: bool = False  # start final training now (the search is DONE)
    final_room: int = 0  # with launch_final: how many final trials may start now (free slots)
    # Why, as one CamelCase word for machines (the conditions' reason, Kubernetes-style;
    # Katib's GoalReached / MaxTrialsReached); the message says it to people.
    reason: str = "Running"


def overdue_trials(running_since: Mapping[str, float], now: float, limit: int | None) -> list[str]:
    """Trials started at least ``limit`` seconds ago and still running (a hung trial would
    otherwise hold its slot, and on a cluster its GPU, until maxExecSeconds or for ever)."""
    if limit is None:
        return []
    return sorted(tid for tid, started in running_since.items() if now - started >= limit)


_OVERDUE = re.compile(r"ran longer than maxTrialSeconds \(\d+s\) and was stopped")


def overdue_reason(limit: int) -> str:
    """Why a trial past maxTrialSeconds was stopped: its FAILED message, and the kill's reason.
    The local executor keeps a kill's reason on disk, so a run started after the one that
    killed the trial died still ends it FAILED (:func:`is_overdue_reason`), not STOPPED."""
    return f"ran longer than maxTrialSeconds ({limit}s) and was stopped"


def is_overdue_reason(reason: str | None) -> bool:
    """Whether a stop's reason is :func:`overdue_reason`'s (with any limit: it may have been raised since)."""
    return reason is not None and _OVERDUE.fullmatch(reason) is not None


# Why a trial an assessor asked to stop was stopped (the kill's reason; the trial ends EARLY_STOPPED).
EARLY_STOP_REASON = "stopped early by the assessor"


def stopped_before_restart(stop_requested: Collection[str], running_since: Mapping[str, float], now: float,
                           limit: int | None, experiment_stop: str | None = None,
                           unfinished: Collection[str] = ()) -> dict[str, str]:
    """Trials an earlier controller may have stopped -> the stop's reason, for a restarted one
    to end, never start again, the trials whose workload it does not find running: an assessor
    asked (the tuner server keeps the request) or the trial is past maxTrialSeconds by the
    start the tuner server keeps and the limit now. The limit now, not the one of the stop: a
    workload gone leaves nothing else; a stop whose workload is still there says its own
    reason (the Kubernetes executor's stop annotation), which wins. A trial stopped by an
    assessor is not timed (as in ``step``: its stop comes first). ``experiment_stop``
    (:func:`experiment_stop_before_restart`): the experiment stops all its trials, so every
    trial of ``unfinished`` (the tuner server's waiting and running ones) not stopped for its
    own reason is stopped with that one (as in ``step``: its own stops come first)."""
    out = {tid: experiment_stop for tid in unfinished} if experiment_stop is not None else {}
    out.update({tid: overdue_reason(limit) for tid in overdue_trials(running_since, now, limit)} if limit is not None else {})
    out.update({tid: EARLY_STOP_REASON for tid in stop_requested})
    return out


def experiment_stop_before_restart(limits: Limits, obs: Observed, goal: Goal | None = None) -> str | None:
    """Why the experiment stops its running trials (maxExecSeconds: TIMEOUT; objectiveGoal
    reached; maxFailedTrialNum or an error: ERROR) by the state recorded at a restart, None
    when it does not: the same :func:`decide` a pass acts on, so a restarted controller ends,
    never starts again, the trials an earlier one stopped for it and died before recording
    (their Job gone), with the message that one would have recorded."""
    d = decide(limits, obs, goal)
    return d.message if d.stop_active else None


def attempt_since(running_since: Mapping[str, float], attempts: Mapping[str, float | None]) -> dict[str, float]:
    """The clock of maxTrialSeconds per running trial: its start, or for a trial whose pod was
    replaced after a disruption (an evicted batch Job pod, ``attempts``: when the pod running
    now started, None while it waits for a node) that pod's start; a trial waiting for its
    new pod is not timed. The lost run and the wait are not the trial's time: the new pod
    trains from its start, and a wait for a free GPU is never counted (as for a first pod)."""
    out = dict(running_since)
    for tid, at in attempts.items():
        if tid not in out:
            continue
        if at is None:
            del out[tid]
        else:
            out[tid] = max(out[tid], at)
    return out


def decide(limits: Limits, obs: Observed, goal: Goal | None = None) -> Decision:
    """The search's decision, then final training: only after a search that ended DONE
    (not on TIMEOUT or ERROR), after every search trial has ended, for each chosen
    configuration not final-trained yet (so a resumed search that found a new best trains
    that one too, and one that did not trains nothing again)."""
    d = decide_search(limits, obs, goal)
    if d.phase in (Phase.TIMEOUT, Phase.ERROR) and obs.final_active > 0:
        return replace(d, stop_active=True, finished=False)  # stop final training too, then end
    if not limits.final_training or d.phase is not Phase.DONE:
        return d
    pending = obs.final_issued == 0 if obs.final_pending is None else obs.final_pending
    # Final trials take the search's slots (trialConcurrency, devices): a Pareto front of
    # dozens is rerun a few at a time, not as dozens of workloads at once (or, past the
    # devices, trials that cannot start).
    room = max(_slots(limits) - obs.final_active, 0)
    if obs.final_active > 0 and not (pending and room):
        return Decision(Phase.RUNNING, message=f"{d.message}; final training", reason="FinalTraining")
    if pending:
        if not d.finished:  # (stopping what still runs when the goal was reached)
            return Decision(Phase.RUNNING, stop_active=d.stop_active, message=d.message, reason=d.reason)
        return Decision(Phase.RUNNING, launch_final=True, final_room=room, message=f"{d.message}; final training",
                        reason="FinalTraining")
    if obs.final_issued == 0:
        return d  # no trial succeeded: nothing to rerun
    # (search trials may still run: maxTrialNum lowered after a resume; stopped first, as by d)
    return Decision(Phase.DONE, stop_active=d.stop_active, finished=d.finished, message=f"{d.message}; final training ended",
                    reason=d.reason)


def _slots(limits: Limits) -> int:
    """How many trials may run at once: trialConcurrency, and no more than the executor's slots."""
    return limits.concurrency if limits.capacity is None else min(limits.concurrency, limits.capacity)


def final_trained(finals: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The parameters of the final trials (status.finalTraining entries) that count as their
    configuration's final training: all but those the experiment stopped (STOPPED: cut short
    by maxExecSeconds or a stop, no result), whose configuration a resume trains again."""
    return [f.get("parameters") or {} for f in finals if f.get("state") != "STOPPED"]


def rerun_own_keys(algorithm: str | None) -> frozenset[str]:
    """The parameters the experiment's tuner (builtinTunerName) gives a final rerun afresh
    rather than copying them from the trial it reruns: PBTTuner's save_checkpoint_dir (a rerun
    saves to its own folder, never over the chosen trial's model). Asked of the tuner, not
    fixed by name: under any other tuner a parameter so named is the user's own, from the
    search space, and tells configurations apart (PBTTuner refuses it as a search-space name)."""
    algo = tuner_class(algorithm)
    return algo.rerun_own_parameters if algo is not None else frozenset()


def _configuration(parameters: Mapping[str, Any], rerun_own: Collection[str]) -> str:
    return json.dumps({k: v for k, v in parameters.items() if k not in rerun_own}, sort_keys=True, default=str)


def final_pending(chosen: Sequence[Mapping[str, Any]], finals: Sequence[Mapping[str, Any]],
                  rerun_own: Collection[str]) -> bool:
    """Whether a chosen configuration (its parameters) has no final trial yet (``finals``:
    the parameters of :func:`final_trained`), compared without ``rerun_own``
    (:func:`rerun_own_keys`): a rerun is matched to its configuration without them."""
    done = {_configuration(f, rerun_own) for f in finals}
    return any(_configuration(c, rerun_own) not in done for c in chosen)


def decide_search(limits: Limits, obs: Observed, goal: Goal | None = None) -> Decision:
    ended = obs.issued - obs.active
    if obs.error is not None:
        return Decision(Phase.ERROR, stop_active=obs.active > 0, finished=obs.active == 0, message=obs.error,
                        reason="ExperimentError")
    if limits.max_failed is not None and obs.failed >= limits.max_failed:
        # A broken image, command or data path fails every trial alike: stop spending the
        # cluster on it (Katib's maxFailedTrialCount). Checked before maxTrialNum, so a run
        # whose last allowed trial is also the limit-th failure says why it went wrong.
        why = f"; last: {obs.last_failure}" if obs.last_failure else ""
        return Decision(
            Phase.ERROR, stop_active=obs.active > 0, finished=obs.active == 0,
            message=f"maxFailedTrialNum ({limits.max_failed}) reached: {obs.failed} trial(s) failed{why}",
            reason="MaxFailedTrialsReached",
        )
    if goal is not None and obs.best is not None and goal.reached(obs.best):
        # Checked before the time and trial limits: a run that reached its goal on its last
        # trial or second succeeded, and says so.
        return Decision(
            Phase.DONE, stop_active=obs.active > 0, finished=obs.active == 0,
            message=f"objectiveGoal ({goal.value:g}) reached by {obs.best_name} ({obs.best + 0.0:g})",  # + 0.0: no "-0"
            reason="GoalReached",
        )
    if limits.max_seconds is not None and obs.elapsed >= limits.max_seconds:
        return Decision(
            Phase.TIMEOUT,
            stop_active=obs.active > 0,
            finished=obs.active == 0,
            message=f"maxExecSeconds ({limits.max_seconds}s) reached after {ended} trial(s) ended",
            reason="MaxExecSecondsReached",
        )
    if limits.max_trials is not None and ended >= limits.max_trials:
        # Trials still running here were started before maxTrialNum was lowered below the
        # trials issued (never more are issued than it allows): the limit is reached, so they
        # are stopped, as by maxExecSeconds, not left to hold their nodes under a DONE phase.
        extra = f"; the {obs.active} still running stopped (maxTrialNum lowered)" if obs.active else ""
        return Decision(Phase.DONE, stop_active=obs.active > 0, finished=obs.active == 0,
                        message=f"all {limits.max_trials} trials ended{extra}", reason="MaxTrialsReached")
    if obs.exhausted and obs.active == 0:
        return Decision(Phase.DONE, finished=True, message=f"the tuner has no new configurations after {obs.issued} trial(s)",
                        reason="SearchExhausted")
    budget = _slots(limits) - obs.active
    if limits.max_trials is not None:
        budget = min(budget, limits.max_trials - obs.issued)
    launch = 0 if obs.exhausted else max(budget, 0)
    return Decision(Phase.RUNNING, launch=launch)
