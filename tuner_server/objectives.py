"""Multi-objective experiments: the objectives and how a reported metric maps onto them.

An experiment names its objectives in ``spec.objectives``, e.g.::

    objectives:
      - {name: accuracy, optimizeMode: maximize}
      - {name: model_size, optimizeMode: minimize}

and each trial reports a dict holding those keys (``report_final_result({"accuracy": 0.97,
"model_size": 12034})``). The direction word is NNI's ``optimize_mode`` (also Katib's
``objective.type``) in the CRD's camelCase, the same key the status already carries.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tuner_server.history import OptimizeMode


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, description="the key of the reported metric dict")
    optimizeMode: OptimizeMode


class MetricStrategy(BaseModel):
    """Which of a metric's logged values (MLflow, or read from the trial's output) is the
    trial's final one: ``latest`` (the default), or the ``min``/``max`` of every value logged.
    Katib's ``objective.metricStrategies``, same shape."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=250)
    value: Literal["min", "max", "latest"]


def strategy_of(strategies: Sequence[MetricStrategy] | None, name: str | None) -> str:
    """The strategy ``strategies`` (spec.metricStrategies) gives metric ``name``: latest when unlisted."""
    return next((s.value for s in strategies or () if s.name == name), "latest")


def chosen_value(values: Sequence[float], strategy: str) -> float:
    """A metric's value among ``values`` (as logged, oldest first) by its strategy: the latest,
    or the least/greatest finite one (the latest when none is finite)."""
    finite = [v for v in values if math.isfinite(v)]
    if strategy == "min" and finite:
        return min(finite)
    if strategy == "max" and finite:
        return max(finite)
    return values[-1]


class MetricError(ValueError):
    """A reported metric does not give every objective a finite number."""


def is_finite_number(v: int | float) -> bool:
    """math.isfinite, but False instead of OverflowError (a 500) for an int beyond float range."""
    return -sys.float_info.max <= v <= sys.float_info.max  # NaN compares False too


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MetricError(f"objective '{name}' must be a number, got {v!r}")
    if not is_finite_number(v):
        raise MetricError(f"objective '{name}' must be finite, got {_short(v)}")
    return float(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def metric_vector(metric: Any, objectives: Sequence[Objective]) -> tuple[float, ...]:
    """The value of each objective in a reported final metric (a dict with their names)."""
    names = [o.name for o in objectives]
    if not isinstance(metric, Mapping):
        raise MetricError(f"the final metric must be a dict with keys {names} (spec.objectives), got {metric!r}")
    missing = [n for n in names if n not in metric]
    if missing:
        raise MetricError(
            f"the final metric misses objective(s) {missing} named in spec.objectives; it has keys {sorted(map(str, metric))}"
        )
    return tuple(_number(n, metric[n]) for n in names)


def curve_value(metric: Any, objectives: Sequence[Objective]) -> float:
    """The number an intermediate report adds to the trial's curve: the number itself, else
    the dict's ``default``, else its first objective (intermediate reports are progress, not
    results, so they need not carry every objective)."""
    if isinstance(metric, Mapping):
        for key in ("default", *(o.name for o in objectives[:1])):
            if key in metric:
                return _number(key, metric[key])
        raise MetricError(f"an intermediate metric dict needs 'default' or '{objectives[0].name}', got keys {sorted(map(str, metric))}")
    return _number("intermediate", metric)


def duplicate_names(objectives: Sequence[Objective]) -> list[str]:
    seen: set[str] = set()
    dup = []
    for o in objectives:
        if o.name in seen and o.name not in dup:
            dup.append(o.name)
        seen.add(o.name)
    return dup
