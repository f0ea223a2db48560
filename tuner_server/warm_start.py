"""Warm start: completed trials of earlier experiments, imported as observations.

An imported trial feeds the new experiment's tuner (and assessor) as if it had run there,
but it is not one of the experiment's trials: it is not counted by ``maxTrialNum`` or the
status' trial counts, and it is never the experiment's best trial (it ran under another
experiment, maybe another script version). This module holds what the engine needs to
decide, without I/O: the request's shape, whether a parameter set fits the new search
space (:func:`misfit`), and whether a source measures the same objective
(:func:`objective_mismatch`).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from tuner_server.history import OptimizeMode
from tuner_server.objectives import Objective, is_finite_number
from tuner_server.searchspace import Dimension, NestedOption, SearchSpace

# How many trials one import request may carry (a guard for the server, not a policy).
MAX_TRIALS_PER_REQUEST = 100_000


class ImportedTrialIn(BaseModel):
    """One completed trial of the source experiment."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=512, description="the trial's id in the source experiment")
    parameters: dict[str, Any]
    metric: Any = Field(description="the final metric as reported: a number, a dict with 'default', or the objectives' dict")
    state: Literal["SUCCEEDED", "EARLY_STOPPED"] = "SUCCEEDED"
    # Finite only: a NaN step compares false with everything (assessors' medians) and a NaN
    # 'ended' leaves the history's order undefined.
    intermediate: list[FiniteFloat] = Field(default_factory=list, max_length=100_000)
    ended: FiniteFloat | None = Field(default=None, description="when it ended (seconds since the epoch): orders the history")


class ImportSource(BaseModel):
    """The trials of one earlier experiment, with what it optimized."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512, description="the source experiment, as the user named it")
    optimizeMode: OptimizeMode = OptimizeMode.MAXIMIZE
    objectives: list[Objective] | None = None
    trials: list[ImportedTrialIn] = Field(default_factory=list, max_length=MAX_TRIALS_PER_REQUEST)
    # Trials the caller left out already (e.g. a lower-budget rung of an advisor), counted in the report.
    skipped: int = Field(default=0, ge=0)
    firstSkipReason: str | None = Field(default=None, max_length=2048)


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[ImportSource] = Field(min_length=1, max_length=64)
    # At most this many imported trials in the experiment in all (earlier imports count):
    # filled in the order of ``sources``, each source's trials in the order given.
    maxTrials: int | None = Field(default=None, ge=0)


def objective_text(mode: OptimizeMode, objectives: Sequence[Objective] | None) -> str:
    if objectives:
        return "objectives " + ", ".join(f"{o.name} {o.optimizeMode.value}" for o in objectives)
    return f"one objective ({mode.value})"


def objective_mismatch(
    mode: OptimizeMode, objectives: Sequence[Objective] | None, src_mode: OptimizeMode, src_objectives: Sequence[Objective] | None
) -> str | None:
    """Why results of the source cannot be compared with this experiment's (None: they can)."""
    mine = [(o.name, o.optimizeMode) for o in objectives or []]
    theirs = [(o.name, o.optimizeMode) for o in src_objectives or []]
    if mine == theirs and (mine or mode is src_mode):
        return None
    return f"it optimizes {objective_text(src_mode, src_objectives)} but this experiment {objective_text(mode, objectives)}"


def misfit(space: SearchSpace, params: Any) -> str | None:
    """Why ``params`` is not a configuration of ``space`` (None when it is one).

    Missing and extra keys, a value that is not one of a choice's options, a number out of
    a bounded type's range, a non-integer for randint: a tuner could not place such a
    point in its model, so the trial is skipped rather than bent into the space.
    """
    if not isinstance(params, Mapping):
        return f"parameters must be an object, got {type(params).__name__}"
    return _misfit_level(space, space.top, params, "")


def in_space_form(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """A fitting parameter set (misfit None) written as this space writes its own: each
    number through its dimension's rounding (0.1 * 3 = 0.30000000000000004 of a quniform q=0.1
    becomes 0.3, a randint's 3.0 becomes 3) and each choice as its option. Kept as given, such
    a trial was a configuration apart from the space's own 0.3: the tuner ran 0.3 again and
    counted the space used up with a value never tried."""
    flat = space.to_flat(params)
    for k, v in flat.items():
        d = space[k]
        if not d.is_categorical and d.type != "input_choice":
            flat[k] = d.quantize(v)
    return space.to_parameters(flat)


def _misfit_level(space: SearchSpace, keys: Sequence[str], values: Mapping[str, Any], where: str) -> str | None:
    dims = [space[k] for k in keys]
    names = {d.name for d in dims}
    extra = sorted(str(k) for k in values if k not in names and not (where and k == "_name"))
    if extra:
        return f"parameter(s) {extra}{_in(where)} are not in the search space"
    for d in dims:
        if d.name not in values:
            return f"parameter '{d.key}' is missing"
        why = _misfit_value(space, d, values[d.name])
        if why is not None:
            return why
    return None


def _in(where: str) -> str:
    return f" (under '{where}')" if where else ""


def _misfit_value(space: SearchSpace, d: Dimension, v: Any) -> str | None:
    if d.type in ("choice", "layer_choice"):
        for opt in d.options:
            if isinstance(opt, NestedOption):
                if isinstance(v, Mapping) and v.get("_name") == opt.name:
                    return _misfit_level(space, opt.children, v, d.key)
            elif _same(opt, v):
                return None
        return f"parameter '{d.key}' = {_short(v)} is not one of its choices"
    if d.type == "input_choice":
        cands, k = d.args
        if not isinstance(v, list) or len(v) != k or any(not any(_same(c, x) for c in cands) for x in v):
            return f"parameter '{d.key}' = {_short(v)} is not {k} of its candidates"
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not is_finite_number(v):
        return f"parameter '{d.key}' = {_short(v)} is not a finite number"
    if d.type == "randint":
        lo, hi = int(d.args[0]), int(d.args[1])
        # Not float(v) != int(v): past 2**53 a float rounds, and a valid int such as
        # 2**62 - 1 of a randint [0, 2**62) compared unequal with itself.
        if (isinstance(v, float) and not v.is_integer()) or not lo <= v < hi:
            return f"parameter '{d.key}' = {_short(v)} is not an integer in [{lo}, {hi})"
        return None
    if d.bounded and not d.low <= v <= d.high:
        return f"parameter '{d.key}' = {_short(v)} is outside [{d.args[0]}, {d.args[1]}]"
    q = d.q
    if q is not None and abs(d.quantize(v) - v) > q * 1e-6:
        # Never a value of this space (a source with another q): kept, it counted as a tried
        # configuration, and enough of them made a finite space look used up before any
        # of its own values ran (the experiment ended DONE with no trial).
        # Not 'and its bounds': a bound halfway between multiples is no value (0.15 of
        # [0.15, 0.95, 0.1]), and the reason named as a value the number it refused.
        ends = f", the end ones clipped to [{d.args[0]}, {d.args[1]}]" if d.bounded else ""
        return (f"parameter '{d.key}' = {_short(v)} is not on its grid ({d.type} gives multiples of q={d.args[2]}{ends}; "
                f"the nearest value is {_short(d.quantize(v))})")
    if d.type.startswith("qlog") or d.type in ("loguniform", "lognormal"):
        if v < 0 or (v == 0 and d.type in ("loguniform", "lognormal")):
            return f"parameter '{d.key}' = {_short(v)} is not positive (a log type)"
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON equality (1 == 1.0), but a boolean only equals a boolean."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
