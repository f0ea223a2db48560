"""The experiment's status: the custom resource's ``.status`` and local mode's status.json."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from autotune_operator.decide import Phase


class TrialCounts(BaseModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    earlyStopped: int = 0
    stopped: int = 0
    running: int = 0
    waiting: int = 0


class BestTrial(BaseModel):
    name: str
    sequence: int
    parameters: dict[str, Any]
    value: float
    budget: int | None = None  # the epochs it was trained for (multi-fidelity advisors)


class FinalTrial(BaseModel):
    """A final-training rerun of a chosen configuration (spec.finalTraining)."""

    name: str
    sequence: int
    parameters: dict[str, Any]
    value: float | None = None
    budget: int | None = None
    state: str
    values: dict[str, float] | None = None  # each objective's value (spec.objectives); value is the first's


class ObjectiveStatus(BaseModel):
    name: str
    optimizeMode: str


class ParetoTrial(BaseModel):
    """A succeeded trial of a multi-objective experiment with each objective's value."""

    name: str
    sequence: int
    parameters: dict[str, Any]
    values: dict[str, float]


class ObjectiveBest(ParetoTrial):
    objective: str
    optimizeMode: str


class WarmStartStatus(BaseModel):
    """Trials imported from earlier experiments (spec.warmStart): observations for the
    tuner, not counted in ``trials``."""

    imported: int = 0
    sources: dict[str, int] | None = None  # imported trials per source experiment
    skipped: int | None = None  # trials that did not fit (known on the pass that imported)
    message: str | None = None  # the one-line report, or why a source was left out


class ExperimentStatus(BaseModel):
    phase: Phase
    message: str = ""
    # Why it is in this phase, one CamelCase word (MaxTrialsReached, GoalReached, ...): the
    # reason of its condition, for scripts and `kubectl wait`; the message is for people.
    reason: str | None = None
    optimizeMode: str = "maximize"
    startTime: str | None = None
    completionTime: str | None = None
    # Seconds the experiment sat ended before being resumed (not counted in maxExecSeconds).
    pausedSeconds: int | None = None
    trials: TrialCounts = Field(default_factory=TrialCounts)
    bestTrial: BestTrial | None = None
    # Multi-objective experiments only (spec.objectives): bestTrial is then null, as no
    # single trial is best; the front and each objective's best stand in for it.
    objectives: list[ObjectiveStatus] | None = None
    paretoFront: list[ParetoTrial] | None = None
    # len(paretoFront): a printer column can only show a field, not count a list.
    paretoFrontSize: int | None = None
    bestTrials: list[ObjectiveBest] | None = None
    finalTraining: list[FinalTrial] | None = None
    # Every final trial's count by state, when finalTraining lists only part of them (a
    # cluster's status: for_cluster); a resume counts with it (resume.ended_run).
    finalTrainingCounts: TrialCounts | None = None
    warmStart: WarmStartStatus | None = None


# The most Pareto front members an AutoTuneExperiment's status lists (paretoFrontSize counts
# them all): a front can hold most trials (a pure trade-off, such as accuracy against model
# size, puts every one on it), and thousands of members, a few hundred bytes each, made the
# status larger than the API server stores (etcd's ~1.5 MiB): every status write then failed
# and the experiment's status stopped at the last one that fit. The whole front is in the web
# UI and the tuner server's API; local mode's status.json keeps it whole.
CLUSTER_FRONT_LIMIT = 100


# A final trial's state (tuner_server's TrialState value) -> the TrialCounts field it sits in.
STATE_COUNT_FIELD = {"WAITING": "waiting", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
                     "EARLY_STOPPED": "earlyStopped", "STOPPED": "stopped"}

_T = TypeVar("_T")


def spread(front: list[_T], limit: int) -> list[_T]:
    """At most ``limit`` members of ``front`` (in its order: along the first objective), evenly
    spaced and both ends kept, so the shape of the trade-off still shows. Final training
    reruns the front in its order, so spreading its final trials lists those of the members
    listed (when every member has one)."""
    n = len(front)
    if n <= limit:
        return front
    if limit < 2:
        return front[:limit]
    return [front[i] for i in sorted({round(k * (n - 1) / (limit - 1)) for k in range(limit)})]


def final_counts(finals: list[FinalTrial]) -> TrialCounts:
    c = TrialCounts(total=len(finals))
    for f in finals:
        field = STATE_COUNT_FIELD.get(f.state)
        if field is not None:
            setattr(c, field, getattr(c, field) + 1)
    return c


def for_cluster(st: ExperimentStatus) -> ExperimentStatus:
    """The status as an AutoTuneExperiment's: its Pareto front and its final training (a rerun
    of every front member: as many entries, each as large) bounded (CLUSTER_FRONT_LIMIT), the
    latter counted whole in finalTrainingCounts."""
    update: dict[str, Any] = {}
    if st.paretoFront is not None and len(st.paretoFront) > CLUSTER_FRONT_LIMIT:
        update["paretoFront"] = spread(st.paretoFront, CLUSTER_FRONT_LIMIT)
    if st.finalTraining is not None and len(st.finalTraining) > CLUSTER_FRONT_LIMIT:
        update["finalTraining"] = spread(st.finalTraining, CLUSTER_FRONT_LIMIT)
        update["finalTrainingCounts"] = final_counts(st.finalTraining)
    return st.model_copy(update=update) if update else st


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """An RFC 3339 timestamp as Kubernetes writes it (``2026-11-24T19:12:26Z``) -> epoch
    seconds; None for anything else (absent, empty, malformed: never a crash on odd status)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def build_status(
    summary: dict[str, Any], phase: Phase, message: str, created: float, completion: float | None,
    paused: float = 0.0, reason: str | None = None,
) -> ExperimentStatus:
    best = summary.get("bestTrial")
    return ExperimentStatus(
        phase=phase,
        message=message,
        reason=reason,
        optimizeMode=summary["optimizeMode"],
        startTime=iso(created),
        completionTime=iso(completion) if phase.terminal else None,
        pausedSeconds=round(paused) if paused > 0 else None,
        trials=TrialCounts(**summary["trials"]),
        bestTrial=BestTrial(**best) if best else None,
        objectives=[ObjectiveStatus(**o) for o in summary["objectives"]] if "objectives" in summary else None,
        paretoFront=[ParetoTrial(**t) for t in summary["paretoFront"]] if "paretoFront" in summary else None,
        paretoFrontSize=len(summary["paretoFront"]) if "paretoFront" in summary else None,
        bestTrials=[ObjectiveBest(**t) for t in summary["bestTrials"]] if "bestTrials" in summary else None,
        finalTraining=[FinalTrial(**t) for t in summary["finalTrials"]] if summary.get("finalTrials") else None,
        warmStart=WarmStartStatus(imported=summary["imported"]["total"], sources=summary["imported"]["sources"])
        if summary.get("imported") else None,
    )
