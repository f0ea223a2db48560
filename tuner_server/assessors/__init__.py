"""Built-in assessors by builtinAssessorName. One module per algorithm."""

from __future__ import annotations

from typing import Any, Mapping

from tuner_server.assessors.base import Assessor, AssessorArgsError
from tuner_server.assessors.bandit import BanditAssessor
from tuner_server.assessors.curvefitting import CurvefittingAssessor
from tuner_server.assessors.medianstop import MedianstopAssessor
from tuner_server.assessors.truncation import TruncationSelectionAssessor
from tuner_server.history import OptimizeMode

_ALL: tuple[type[Assessor], ...] = (
    MedianstopAssessor,
    CurvefittingAssessor,
    BanditAssessor,
    TruncationSelectionAssessor,
)
# Named but not implemented yet: refused with a clear message rather than ignored.
_PLANNED: tuple[str, ...] = ()


def assessor_names() -> list[str]:
    return sorted(c.name for c in _ALL)


def create_assessor(name: str, class_args: Mapping[str, Any], default_mode: OptimizeMode = OptimizeMode.MAXIMIZE) -> Assessor:
    for cls in _ALL:
        if name.lower() in (n.lower() for n in (cls.name, *cls.aliases)):
            return cls(class_args, default_mode)
    if name.lower() in (p.lower() for p in _PLANNED):
        raise AssessorArgsError(f"builtinAssessorName '{name}' is not available in this version yet; available: {assessor_names()}")
    raise AssessorArgsError(f"unknown builtinAssessorName '{name}'; known assessors: {assessor_names()}")


__all__ = ["Assessor", "AssessorArgsError", "assessor_names", "create_assessor"]
