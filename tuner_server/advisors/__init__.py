"""Built-in advisors (multi-fidelity tuners) by builtinAdvisorName. One module per algorithm."""

from __future__ import annotations

from typing import Any, Mapping

from tuner_server.advisors.asha import ASHAAdvisor
from tuner_server.advisors.base import Advisor, Proposal
from tuner_server.advisors.bohb import BOHBAdvisor
from tuner_server.advisors.boss import BOSSAdvisor
from tuner_server.advisors.hyperband import HyperbandAdvisor
from tuner_server.advisors.successive_halving import SuccessiveHalvingAdvisor
from tuner_server.history import OptimizeMode
from tuner_server.searchspace import SearchSpace
from tuner_server.tuners.base import TunerArgsError

_ALL: tuple[type[Advisor], ...] = (SuccessiveHalvingAdvisor, HyperbandAdvisor, ASHAAdvisor, BOHBAdvisor, BOSSAdvisor)


def advisor_classes() -> dict[str, type[Advisor]]:
    """Lower-cased name or alias -> class."""
    return {n.lower(): cls for cls in _ALL for n in (cls.name, *cls.aliases)}


def advisor_names() -> list[str]:
    return sorted(c.name for c in _ALL)


def is_advisor(name: str) -> bool:
    return str(name).lower() in advisor_classes()


def create_advisor(name: str, space: SearchSpace, class_args: Mapping[str, Any], seed: int = 0) -> Advisor:
    cls = advisor_classes().get(str(name).lower())
    if cls is None:
        raise TunerArgsError(f"unknown builtinAdvisorName '{name}'; known advisors: {advisor_names()}")
    return cls(space, class_args, seed)


__all__ = ["Advisor", "OptimizeMode", "Proposal", "advisor_classes", "advisor_names", "create_advisor", "is_advisor"]
