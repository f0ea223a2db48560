"""The experiment's status: the custom resource's ``.status`` and local mode's status.json."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


class ExperimentStatus(BaseModel):
    phase: Phase
    message: str = ""
    optimizeMode: str = "maximize"
    startTime: str | None = None
    completionTime: str | None = None
    trials: TrialCounts = Field(default_factory=TrialCounts)
    bestTrial: BestTrial | None = None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_status(
    summary: dict[str, Any], phase: Phase, message: str, created: float, completion: float | None
) -> ExperimentStatus:
    best = summary.get("bestTrial")
    return ExperimentStatus(
        phase=phase,
        message=message,
        optimizeMode=summary["optimizeMode"],
        startTime=iso(created),
        completionTime=iso(completion) if phase.terminal else None,
        trials=TrialCounts(**summary["trials"]),
        bestTrial=BestTrial(**best) if best else None,
    )
