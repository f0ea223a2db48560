"""Built-in tuners by builtinTunerName. One module per algorithm."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tuner_server.history import OptimizeMode
from tuner_server.searchspace import SearchSpace
from tuner_server.tuners.base import NoMoreTrials, TryLater, Tuner, TunerArgsError
from tuner_server.tuners.batch import BatchTuner
from tuner_server.tuners.gridsearch import GridSearchTuner
from tuner_server.tuners.random import RandomTuner

_ALL: tuple[type[Tuner], ...] = (RandomTuner, GridSearchTuner, BatchTuner)


def _register_optional() -> tuple[type[Tuner], ...]:
    # Model-based tuners live in their own modules; collected here by name.
    from tuner_server.tuners.anneal import AnnealTuner
    from tuner_server.tuners.evolution import EvolutionTuner
    from tuner_server.tuners.gp import GPTuner
    from tuner_server.tuners.metis import MetisTuner
    from tuner_server.tuners.motpe import MOTPETuner
    from tuner_server.tuners.pbt import PBTTuner
    from tuner_server.tuners.ppo import PPOTuner
    from tuner_server.tuners.tpe import TPETuner

    return (TPETuner, AnnealTuner, EvolutionTuner, GPTuner, MetisTuner, PBTTuner, PPOTuner, MOTPETuner)


def tuner_classes() -> dict[str, type[Tuner]]:
    """Lower-cased name or alias -> class."""
    out: dict[str, type[Tuner]] = {}
    for cls in _ALL + _register_optional():
        for n in (cls.name, *cls.aliases):
            out[n.lower()] = cls
    return out


def tuner_class(name: object) -> type[Tuner] | None:
    """The tuner class a builtinTunerName (or alias) names; None for another name (an advisor's)."""
    return tuner_classes().get(name.lower()) if isinstance(name, str) and name else None


def tuner_names() -> list[str]:
    return sorted({c.name for c in tuner_classes().values()})


def multi_objective_tuner_names() -> list[str]:
    return sorted({c.name for c in tuner_classes().values() if c.multi_objective})


def create_tuner(
    name: str, space: SearchSpace, class_args: Mapping[str, Any], seed: int = 0, objectives: Sequence[OptimizeMode] = ()
) -> Tuner:
    """``objectives``: the direction of each of spec.objectives (empty: one objective)."""
    cls = tuner_classes().get(str(name).lower())
    if cls is None:
        raise TunerArgsError(f"unknown builtinTunerName '{name}'; known tuners: {tuner_names()}")
    if objectives and not cls.multi_objective:
        raise TunerArgsError(
            f"tuner {cls.name} optimizes a single objective but spec.objectives names {len(objectives)}; "
            f"multi-objective tuners: {multi_objective_tuner_names()}"
        )
    tuner = cls(space, class_args, seed)
    tuner.objectives = tuple(objectives)
    return tuner


__all__ = ["NoMoreTrials", "TryLater", "Tuner", "TunerArgsError", "create_tuner", "multi_objective_tuner_names", "tuner_class", "tuner_classes", "tuner_names"]
