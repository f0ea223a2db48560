"""The assessor protocol: given a running trial and the history, should it stop now?

Like tuners, assessors are functions of the recorded history, so a restarted tuner
server answers exactly as before.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import yaml_number_hint


class AssessorArgsError(ValueError):
    pass


class Assessor(ABC):
    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, class_args: Mapping[str, Any], default_mode: OptimizeMode = OptimizeMode.MAXIMIZE) -> None:
        args = dict(class_args)
        mode = args.pop("optimize_mode", None)
        if mode is not None and mode not in ("maximize", "minimize"):
            raise AssessorArgsError(f"classArgs.optimize_mode must be 'maximize' or 'minimize', got {mode!r}")
        self.mode = OptimizeMode(mode) if mode else default_mode
        self.configure(args)

    @abstractmethod
    def configure(self, args: dict[str, Any]) -> None:
        """Validate and take the algorithm's own classArgs."""

    @abstractmethod
    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        """Called after each intermediate report of ``trial`` (already appended to it)."""


def number_arg(name: str, args: dict[str, Any], key: str, default: float, low: float | None = None, integer: bool = False) -> Any:
    v = args.pop(key, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kinds):
        raise AssessorArgsError(f"{name} classArgs.{key} must be {'an integer' if integer else 'a number'}, "
                                f"got {v!r}{'' if integer else yaml_number_hint(v)}")
    if isinstance(v, float) and not math.isfinite(v):  # JSON's NaN passed every 'v < low' check
        raise AssessorArgsError(f"{name} classArgs.{key} must be a finite number, got {v!r}")
    if not -sys.float_info.max <= v <= sys.float_info.max:
        # An int beyond float range (JSON has no limit): float(v) raised OverflowError, at
        # create (a 500) or at every assessment (Curvefitting's epoch_num).
        raise AssessorArgsError(f"{name} classArgs.{key} must be within float range, got an integer of {len(str(abs(v)))} digits")
    if low is not None and v < low:
        raise AssessorArgsError(f"{name} classArgs.{key} must be >= {low}, got {v!r}")
    return v


def reject_rest(name: str, args: dict[str, Any], known: Sequence[str]) -> None:
    if args:
        raise AssessorArgsError(f"{name} does not know classArgs {sorted(args)}; known: {sorted(known)}")
