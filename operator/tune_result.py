"""What `autotune.tune()` returns, read from the run's own result files.

The best trial is status.json's ``bestTrial`` (the tuner server's choice, the one
`autotune run` prints) and the trials are trials.csv's rows: nothing is recomputed here, so
the object and the files can never disagree.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune_operator.status import ExperimentStatus


@dataclass(frozen=True)
class TrialResult:
    """One row of trials.csv."""

    name: str
    sequence: int
    state: str  # SUCCEEDED, FAILED, EARLY_STOPPED, STOPPED (RUNNING/WAITING only in an interrupted run)
    value: float | None  # the objective's final value (the last intermediate one when early-stopped)
    parameters: dict[str, Any]
    metrics: dict[str, Any] | None = None  # the final metric dict, when one was reported
    intermediate: list[Any] = field(default_factory=list)
    message: str = ""  # why it failed or was stopped


@dataclass(frozen=True)
class TuneResult:
    phase: str  # DONE, TIMEOUT, ERROR (as status.json)
    message: str
    reason: str | None  # one word: MaxTrialsReached, GoalReached, SearchExhausted, MaxFailedTrialsReached, ...
    best_parameters: dict[str, Any] | None  # None when no trial succeeded (or several objectives)
    best_value: float | None
    best_trial: TrialResult | None
    trials: list[TrialResult]
    output: Path  # the folder with status.json, trials.csv, importance.json and the trials' logs
    optimize_mode: str = "maximize"
    # With several objectives (extra_spec={"objectives": [...]}): the Pareto front's trials
    # (status.json's paretoFront); best_* are then None, as no one trial is best.
    pareto_front: list[TrialResult] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"TuneResult(phase={self.phase!r}, best_value={self.best_value!r}, best_parameters="
                f"{self.best_parameters!r}, trials={len(self.trials)}, output='{self.output}')")


def _json(text: str) -> Any:
    return json.loads(text) if text else None


def read_trials(path: Path) -> list[TrialResult]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [TrialResult(
        name=r["id"],
        sequence=int(r["sequence"]),
        state=r["state"],
        value=float(r["value"]) if r["value"] else None,
        parameters=_json(r["parameters"]) or {},
        metrics=_json(r["metrics"]),
        intermediate=_json(r["intermediate"]) or [],
        message=r["message"],
    ) for r in rows if r.get("kind", "search") == "search"]


def read_result(out: Path) -> TuneResult:
    """The result of the run in ``out`` (status.json and trials.csv, as the run left them)."""
    status = ExperimentStatus.model_validate_json((out / "status.json").read_text(encoding="utf-8"))
    trials = read_trials(out / "trials.csv") if (out / "trials.csv").exists() else []
    best = status.bestTrial
    best_row = next((t for t in trials if best is not None and t.name == best.name), None)
    return TuneResult(
        phase=status.phase.value,
        message=status.message,
        reason=status.reason,
        best_parameters=dict(best.parameters) if best is not None else None,
        best_value=best.value if best is not None else None,
        best_trial=best_row,
        trials=trials,
        output=out,
        optimize_mode=str(status.optimizeMode),
        pareto_front=[t for p in status.paretoFront or [] for t in trials if t.name == p.name],
    )
