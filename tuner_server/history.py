"""What a tuner or assessor sees of an experiment: its trials, as recorded by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping


class TrialState(str, Enum):
    WAITING = "WAITING"  # issued by the tuner, not yet started by an executor
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EARLY_STOPPED = "EARLY_STOPPED"
    STOPPED = "STOPPED"  # killed by the experiment (timeout, user stop), not by an assessor

    @property
    def ended(self) -> bool:
        return self not in (TrialState.WAITING, TrialState.RUNNING)


class OptimizeMode(str, Enum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    def loss(self, value: float) -> float:
        """Map an objective value to a loss (lower is better) for the algorithms."""
        return -value if self is OptimizeMode.MAXIMIZE else value

    def better(self, a: float, b: float) -> bool:
        return a > b if self is OptimizeMode.MAXIMIZE else a < b


@dataclass
class TrialRecord:
    """One trial as the tuner and assessor see it. ``value`` is the final objective."""

    sequence: int
    trial_id: str
    parameters: Mapping[str, Any]
    state: TrialState = TrialState.WAITING
    value: float | None = None
    metrics: Mapping[str, Any] | None = None  # the final metric dict, when a dict was reported
    # Multi-objective experiments: the final value of each of spec.objectives, in their
    # order, as reported (not negated); ``value`` then holds the first of them.
    values: tuple[float, ...] | None = None
    intermediate: list[float] = field(default_factory=list)
    # Multi-fidelity advisors: the epochs this trial was given (EPOCHS), and the advisor's
    # bookkeeping (bracket, rung, config, resume), persisted so a restart rebuilds its state.
    budget: int | None = None
    info: Mapping[str, Any] | None = None
    # "search", or "final": a rerun at full budget after the search (never shown to tuners).
    kind: str = "search"

    @property
    def pending(self) -> bool:
        """Issued and not ended: a tuner should account for it (constant liar)."""
        return not self.state.ended

    @property
    def has_result(self) -> bool:
        return self.value is not None
