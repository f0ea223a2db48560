"""The advisor protocol: a tuner that also decides each trial's budget (multi-fidelity).

An advisor proposes a :class:`Proposal`: the parameters, the budget (whole epochs, reaching
the trial as ``EPOCHS`` and ``AUTOTUNE_BUDGET``) and its bookkeeping (``info``: bracket,
rung, config id, and the trial to resume from). Like a tuner it keeps no state that cannot
be rebuilt: the engine persists ``budget`` and ``info`` with every trial, and the advisor
re-derives brackets and rungs from the recorded history on each call.

A *config* is identified by the sequence number of the trial that first ran it; a
promotion is a new trial with the same parameters and a larger budget. With
``promotion: resume`` the new trial is told the checkpoint directory of the config's
previous trial (it trains ``budget - previous budget`` more epochs); with ``restart`` it
trains the whole budget from scratch.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.tuners.base import Tuner, TunerArgsError, arg

PROMOTIONS = ("resume", "restart")
EXEC_MODES = ("parallelism", "serial")


@dataclass(frozen=True)
class Proposal:
    parameters: dict[str, Any]
    budget: int
    # bracket, rung, config (the sequence of the config's first trial) and resume (the
    # trial id whose checkpoint the new trial should load, or None to start fresh).
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """One trial of a config at one rung, as the advisor filed it."""

    trial: TrialRecord
    bracket: int
    rung: int
    config: int
    budget: int

    @property
    def ended(self) -> bool:
        return self.trial.state.ended


def runs_of(history: Sequence[TrialRecord]) -> list[Run]:
    """The advisor's trials (those with bookkeeping), in sequence order."""
    out = []
    for t in sorted(history, key=lambda t: t.sequence):
        info = t.info or {}
        if t.kind != "search" or "rung" not in info:
            continue
        # A new config's id is its own sequence (unknown to the advisor when proposing).
        config = t.sequence if info.get("config") is None else int(info["config"])
        out.append(Run(t, int(info.get("bracket", 0)), int(info["rung"]), config, int(t.budget or 0)))
    return out


def run_loss(mode: OptimizeMode, r: Run) -> float:
    """Lower is better; a run without a usable result (failed, killed) ranks last."""
    t = r.trial
    if t.state in (TrialState.FAILED, TrialState.STOPPED) or t.value is None or not math.isfinite(t.value):
        return math.inf
    return mode.loss(float(t.value))


def integer_budgets(values: Sequence[float]) -> tuple[int, ...]:
    """Budgets as whole epochs (>= 1): what EPOCHS can carry."""
    return tuple(max(1, int(round(v))) for v in values)


class Advisor(Tuner):
    """A tuner that also schedules budgets. Subclasses implement :meth:`propose`."""

    # Brackets and rungs are made of this experiment's own runs at its own budgets; a
    # result from elsewhere has no place in them.
    warm_start_refused: ClassVar[str] = "advisors schedule brackets of this experiment's own runs and budgets"

    supported_types: ClassVar[frozenset[str]] = frozenset(
        {"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"}
    )

    def take_promotion(self, args: dict[str, Any]) -> None:
        self.promotion = arg(self.name, args, "promotion", "resume", str, lambda v: v in PROMOTIONS,
                             f"must be one of {list(PROMOTIONS)}")

    def take_exec_mode(self, args: dict[str, Any]) -> None:
        self.exec_mode = arg(self.name, args, "exec_mode", "parallelism", str, lambda v: v in EXEC_MODES,
                             f"must be one of {list(EXEC_MODES)}")

    def take_max_brackets(self, args: dict[str, Any]) -> None:
        self.max_brackets = arg(self.name, args, "max_brackets", None, int, lambda v: v >= 1, "must be >= 1")

    @property
    @abstractmethod
    def max_budget(self) -> int:
        """The largest budget this advisor gives a trial (final training's default)."""

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        return self.propose(history, rng).parameters

    @abstractmethod
    def propose(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> Proposal:
        """The next trial. Raise NoMoreTrials when done, TryLater to wait for running trials."""

    def new_config(self, history: Sequence[TrialRecord], rng: np.random.Generator, budget: int) -> dict[str, Any]:
        """Parameters for a config never run before, to train for ``budget`` (random here;
        model-based advisors override)."""
        return dict(self.sample_new(history, rng))

    def proposal(self, runs: Sequence[Run], *, bracket: int, rung: int, config: int | None, budget: int,
                 parameters: dict[str, Any]) -> Proposal:
        """Build a proposal; for a promotion, resume from the config's latest earlier run."""
        resume = None
        if config is not None and self.promotion == "resume":
            prev = [r for r in runs if r.config == config and r.rung < rung]
            if prev:
                resume = max(prev, key=lambda r: (r.rung, r.trial.sequence)).trial.trial_id
        info: dict[str, Any] = {"bracket": bracket, "rung": rung, "config": config, "resume": resume}
        return Proposal(parameters, budget, info)


# Budgets reach the trial as an integer ($EPOCHS) and the store as SQLite's int64; a billion
# epochs (or steps) is beyond any training and keeps every rung exact in a float.
MAX_BUDGET = 10**9


def budget_ok(v: float) -> bool:
    return 1 <= v <= MAX_BUDGET


def check_whole_budget(name: str, key: str, v: float) -> float:
    """A budget the user gives (min_budget, max_budget, R) must be whole epochs: EPOCHS is an
    integer, so 3.9 would silently train 4 (or 3). Rungs between the two are rounded as the
    algorithm's arithmetic makes them fractional; the ends are what the user asked for."""
    if v != int(v):
        raise TunerArgsError(f"{name} classArgs.{key} must be a whole number of epochs "
                             f"(trials get an integer EPOCHS), got {v!r}")
    return v


def check_eta(name: str, args: dict[str, Any]) -> float:
    return float(arg(name, args, "eta", 3, (int, float), lambda v: 2 <= v <= MAX_BUDGET, f"must be >= 2 and <= {MAX_BUDGET:g}"))


def check_budgets(name: str, args: dict[str, Any], low_key: str, low: float, high_key: str, high: float) -> tuple[float, float]:
    lo = float(arg(name, args, low_key, low, (int, float), budget_ok, f"must be >= 1 and <= {MAX_BUDGET:g} (budgets are epochs)"))
    hi = float(arg(name, args, high_key, high, (int, float), budget_ok, f"must be >= 1 and <= {MAX_BUDGET:g}"))
    check_whole_budget(name, low_key, lo)
    check_whole_budget(name, high_key, hi)
    if hi < lo:
        raise TunerArgsError(f"{name} classArgs.{high_key} ({hi:g}) must be >= classArgs.{low_key} ({lo:g})")
    return lo, hi
