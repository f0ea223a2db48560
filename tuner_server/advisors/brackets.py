"""Synchronous successive-halving brackets, shared by SuccessiveHalving, Hyperband, BOHB and BOSS.

A bracket has rungs ``0..K`` with ``sizes[k]`` configs trained to ``budgets[k]``. Rung 0
gets new configs; rung ``k+1`` is filled only when every run of rung ``k`` has ended
(synchronous), with the configs a *selection rule* picks (top ``1/eta`` for successive
halving; BOSS's sub-sampling rule). Everything is computed from the recorded runs.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tuner_server.advisors.base import Advisor, Proposal, Run, run_loss, runs_of
from tuner_server.history import TrialRecord
from tuner_server.tuners.base import NoMoreTrials, TryLater


@dataclass(frozen=True)
class BracketPlan:
    sizes: tuple[int, ...]  # configs per rung
    budgets: tuple[int, ...]  # epochs per rung


@dataclass(frozen=True)
class New:
    """Start a new config at rung 0."""


@dataclass(frozen=True)
class Promote:
    config: int
    rung: int


@dataclass(frozen=True)
class Wait:
    """Runs of the current rung are still going."""


@dataclass(frozen=True)
class Done:
    """Every rung of the bracket has ended."""


Step = New | Promote | Wait | Done
# (runs of the bracket, the completed rung k, how many to pick) -> config ids, best first
Selector = Callable[[Sequence[Run], int, int], list[int]]


def bracket_step(plan: BracketPlan, runs: Sequence[Run], select: Selector, exhausted: bool = False) -> Step:
    """What this bracket needs next, from its runs alone. ``exhausted``: the search space
    has no config left to start, so rung 0 closes with the configs it has (none: Done) and
    later rungs shrink in proportion; otherwise a small finite space never got past rung 0."""
    n0 = len({r.config for r in runs if r.rung == 0})
    short = exhausted and n0 < plan.sizes[0]
    for k in range(len(plan.sizes)):
        at_k = [r for r in runs if r.rung == k]
        if k == 0:
            target = n0 if short else plan.sizes[0]
        else:
            target = min(plan.sizes[k], len({r.config for r in runs if r.rung == k - 1}))
            if short:
                target = min(target, max(1, plan.sizes[k] * n0 // plan.sizes[0]))
        if len(at_k) < target:
            if k == 0:
                return New()
            have = {r.config for r in at_k}
            for c in select(runs, k - 1, target):
                if c not in have:
                    return Promote(c, k)
        if any(not r.ended for r in at_k):
            return Wait()
    return Done()


def plan_next(
    runs: Sequence[Run],
    plan_of: Callable[[int], BracketPlan],
    select: Selector,
    parallel: bool,
    max_brackets: int | None,
    exhausted: bool = False,
) -> tuple[int, Step]:
    """Which bracket acts next and how. Brackets run in order; with ``parallel`` a bracket
    that waits lets the next one start (NNI's ``exec_mode: parallelism``); with serial
    execution the experiment waits. Returns ``(bracket, Wait())`` when all must wait and
    ``(n, Done())`` when ``max_brackets`` brackets have all ended, or when the space is
    ``exhausted`` and the brackets that got configs have all ended."""
    by_bracket: dict[int, list[Run]] = {}
    for r in runs:
        by_bracket.setdefault(r.bracket, []).append(r)
    waiting: int | None = None
    i = 0
    while max_brackets is None or i < max_brackets:
        if exhausted and i not in by_bracket:
            break  # no config left to start this bracket with (nor any later one)
        step = bracket_step(plan_of(i), by_bracket.get(i, []), select, exhausted)
        if isinstance(step, (New, Promote)):
            return i, step
        if isinstance(step, Wait):
            if waiting is None:
                waiting = i
            if not parallel:
                return i, step
        i += 1
    if waiting is not None:
        return waiting, Wait()
    return i, Done()


def top_by_loss(loss: Callable[[Run], float]) -> Selector:
    """Successive halving's rule: the best ``n`` configs of the completed rung."""

    def select(runs: Sequence[Run], rung: int, n: int) -> list[int]:
        # A config without a result (failed) is never promoted: the rung stays smaller.
        at = sorted((r for r in runs if r.rung == rung and loss(r) != float("inf")), key=lambda r: (loss(r), r.config))
        return [r.config for r in at[:n]]

    return select


class BracketAdvisor(Advisor):
    """An advisor that runs synchronous brackets: subclasses give each bracket's plan (and
    may change the selection rule or how new configs are sampled)."""

    exec_mode: str
    max_brackets: int | None

    @abstractmethod
    def plan(self, i: int) -> BracketPlan:
        """Bracket ``i``'s rung sizes and budgets."""

    def selector(self) -> Selector:
        return top_by_loss(lambda r: run_loss(self.mode, r))

    def propose(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> Proposal:
        runs = runs_of(history)
        bracket, step = plan_next(runs, self.plan, self.selector(), self.exec_mode == "parallelism", self.max_brackets,
                                  self.space_exhausted(history))
        plan = self.plan(bracket)
        if isinstance(step, New):
            return self.proposal(runs, bracket=bracket, rung=0, config=None, budget=plan.budgets[0],
                                 parameters=self.new_config(history, rng, plan.budgets[0]))
        if isinstance(step, Promote):
            params = dict(next(r.trial.parameters for r in runs if r.config == step.config))
            return self.proposal(runs, bracket=bracket, rung=step.rung, config=step.config,
                                 budget=plan.budgets[step.rung], parameters=params)
        if isinstance(step, Wait):
            raise TryLater(f"bracket {bracket} of {self.name} waits for its rung to end")
        if self.max_brackets is None or bracket < self.max_brackets:
            raise NoMoreTrials(f"all {self.space.cardinality()} configurations of the search space were tried "
                               f"and the {bracket} bracket(s) of {self.name} ended")
        raise NoMoreTrials(f"all {self.max_brackets} bracket(s) of {self.name} ended")
