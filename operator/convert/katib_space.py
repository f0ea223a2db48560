"""Katib ``spec.parameters[]`` -> an NNI search space.

Katib (experiment_types.go; its hyperopt service base_service.py) reads each parameter as:

- ``int`` / ``double`` with ``min`` and ``max`` (both inclusive), an optional ``step`` and a
  ``distribution`` (``uniform`` default, ``logUniform``, ``normal``, ``logNormal``);
  ``normal`` is centred on (min+max)/2 with sigma (max-min)/6, ``logNormal`` the same in
  log space, neither clipped to [min, max];
- ``discrete`` (numbers) and ``categorical`` (strings) with ``list``.

The NNI forms chosen keep the same set of values: an int range is ``randint [min, max+1)``
(NNI's upper bound is excluded), a step is ``q`` when every value ``min + k*step`` is a
multiple of it (Katib's grid walks from min, NNI rounds to multiples of q), else the
values are listed as a ``choice`` (up to :data:`MAX_LISTED`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from autotune_operator.convert.common import PARAM_NAME, ConvertError, integer, mapping, number, tidy

TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
# Above this many stepped values a choice list would be unwieldy: quniform instead, noted.
MAX_LISTED = 1000


@dataclass
class KatibSpace:
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # Katib name -> search-space key
    notes: list[str] = field(default_factory=list)


def _key(name: str, taken: set[str]) -> str:
    """The search-space key for a Katib name: as is when a placeholder can name it."""
    if PARAM_NAME.match(name) and name not in taken:
        return name
    base = "".join(c if PARAM_NAME.match(c) else "_" for c in name) or "param"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _aligned(low: float, step: float) -> bool:
    k = low / step
    return abs(k - round(k)) < 1e-9


def _last_step(low: float, high: float, step: float) -> int | float:
    """The largest low + k*step that is <= high (Katib's grid's last value)."""
    return tidy(low + math.floor((high - low) / step + 1e-9) * step)


def _stepped(low: float, high: float, step: float) -> list[int | float]:
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    return [tidy(low + k * step) for k in range(count)]


def _range(where: str, ptype: str, fs: dict[str, Any], dist: str, notes: list[str]) -> dict[str, Any]:
    if "min" not in fs or "max" not in fs:
        raise ConvertError(f"{where}.feasibleSpace", f"a {ptype} parameter needs min and max")
    conv = integer if ptype == "int" else number
    low, high = conv(fs["min"], f"{where}.feasibleSpace.min"), conv(fs["max"], f"{where}.feasibleSpace.max")
    if low > high:
        raise ConvertError(f"{where}.feasibleSpace", f"min ({low}) is above max ({high})")
    step = fs.get("step")
    q: int | float | None = None
    if step not in (None, ""):
        q = conv(step, f"{where}.feasibleSpace.step")
        if q <= 0:
            raise ConvertError(f"{where}.feasibleSpace.step", f"must be > 0, got {step!r}")
    if dist in ("logUniform", "logNormal") and low <= 0:
        raise ConvertError(f"{where}.feasibleSpace.min", f"must be > 0 with distribution {dist}, got {low}")
    if dist == "uniform":
        if ptype == "int" and q in (None, 1):
            return {"_type": "randint", "_value": [low, high + 1]}  # Katib's max is included
        if q is None:
            if low == high:
                return {"_type": "choice", "_value": [low]}
            return {"_type": "uniform", "_value": [low, high]}
        if _aligned(low, q):
            # quniform clips to [low, high]: a max off the step (0..11 step 4) would add 11,
            # which neither Katib's grid (0, 4, 8) nor its rounding gives. End at the last step.
            last = _last_step(low, high, q)
            return {"_type": "quniform", "_value": [low, last, q]} if last > low else {"_type": "choice", "_value": [low]}
        values = _stepped(low, high, q)
        if len(values) <= MAX_LISTED:
            notes.append(f"{where}.feasibleSpace.step: min {low} is not a multiple of step {q}, so the values "
                         f"min + k*step are listed as a choice ({len(values)} values; TPE and GP treat them as "
                         f"unordered)")
            return {"_type": "choice", "_value": values}
        notes.append(f"{where}.feasibleSpace.step: {len(values)} values: quniform [min, max, step], whose values "
                     f"are multiples of step (as Katib's TPE/random give), not min + k*step (as Katib's grid gives)")
        return {"_type": "quniform", "_value": [low, high, q]}
    if dist == "logUniform":
        if q is None and ptype == "int":
            q = 1
        if q is None:
            return {"_type": "loguniform", "_value": [low, high]}
        if not _aligned(low, q):
            notes.append(f"{where}.feasibleSpace.step: qloguniform rounds to multiples of step {q} (as Katib's "
                         f"TPE/random do); min {low} is not one")
        # As for quniform: clipping to a max off the step would give max itself (8..100 step 8: 100).
        top = tidy(math.floor(high / q + 1e-9) * q)
        if top == low:  # one value: qloguniform needs low < high
            return {"_type": "choice", "_value": [low]}
        return {"_type": "qloguniform", "_value": [low, top if top > low else high, q]}
    # normal / logNormal: Katib's +-3 sigma reading of [min, max], unclipped as there.
    if dist == "normal":
        mu, sigma = (low + high) / 2, (high - low) / 6
        kind = "normal"
    else:
        mu, sigma = (math.log(low) + math.log(high)) / 2, (math.log(high) - math.log(low)) / 6
        kind = "lognormal"
    if sigma <= 0:
        raise ConvertError(f"{where}.feasibleSpace", f"min and max must differ with distribution {dist}")
    notes.append(f"{where}.feasibleSpace.distribution: {dist} -> {kind} with mu {tidy(mu)}, sigma {tidy(sigma)} "
                 f"(Katib's reading: [min, max] is +-3 sigma); values may fall outside [min, max], as in Katib")
    if q is None and ptype == "int":
        q = 1
    if q is None:
        return {"_type": kind, "_value": [tidy(mu), tidy(sigma)]}
    return {"_type": f"q{kind}", "_value": [tidy(mu), tidy(sigma), q]}


def _listed(where: str, ptype: str, fs: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    values = fs.get("list")
    if not isinstance(values, list) or not values:
        raise ConvertError(f"{where}.feasibleSpace.list", f"a {ptype} parameter needs a non-empty list")
    for k in ("min", "max", "step"):
        if k in fs:
            notes.append(f"{where}.feasibleSpace.{k}: ignored for a {ptype} parameter (Katib uses the list); dropped")
    if ptype == "categorical":
        out: list[Any] = [v if isinstance(v, str) else str(v) for v in values]
    else:
        out = [number(v, f"{where}.feasibleSpace.list[{i}]") for i, v in enumerate(values)]
        changed = [str(v) for v, o in zip(values, out) if isinstance(v, str) and str(o) != v.strip()]
        if changed:
            notes.append(f"{where}.feasibleSpace.list: {changed} reach the trial as {[str(o) for o in out]}"
                         f" (numbers, as JSON writes them)")
    if len(set(map(repr, out))) != len(out):
        raise ConvertError(f"{where}.feasibleSpace.list", "lists a value twice")
    return {"_type": "choice", "_value": out}


def convert_parameters(params: Any, skip: str | None = None) -> KatibSpace:
    """``skip``: a parameter that is not searched (Hyperband's resource parameter)."""
    if not isinstance(params, list) or not params:
        raise ConvertError("spec.parameters", "must be a non-empty list (Katib NAS experiments use spec.nasConfig, "
                           "which AutoTune does not convert)")
    out = KatibSpace()
    for i, p in enumerate(params):
        where = f"spec.parameters[{i}]"
        p = mapping(p, where, required=True)
        name = p.get("name")
        if not isinstance(name, str) or not name:
            raise ConvertError(f"{where}.name", "is required")
        if name in out.names:
            raise ConvertError(f"{where}.name", f"'{name}' appears twice")
        ptype = p.get("parameterType")
        if ptype not in TYPES:
            raise ConvertError(f"{where}.parameterType", f"must be one of {list(TYPES)}, got {ptype!r}")
        if "feasibleSpace" not in p or not p["feasibleSpace"]:
            raise ConvertError(f"{where}.feasibleSpace", f"is required (parameter '{name}' has no values to search)")
        fs = mapping(p["feasibleSpace"], f"{where}.feasibleSpace")
        extra = sorted(set(p) - {"name", "parameterType", "feasibleSpace"})
        if extra:
            out.notes.append(f"{where}: unknown Katib field(s) {extra}; dropped")
        unknown = sorted(set(fs) - {"min", "max", "step", "list", "distribution"})
        if unknown:
            out.notes.append(f"{where}.feasibleSpace: unknown Katib field(s) {unknown}; dropped")
        if name == skip:
            out.names[name] = name
            continue
        dist = fs.get("distribution") or "uniform"
        if dist not in DISTRIBUTIONS:
            raise ConvertError(f"{where}.feasibleSpace.distribution", f"must be one of {list(DISTRIBUTIONS)}, got {dist!r}")
        if ptype in ("int", "double"):
            entry = _range(where, ptype, fs, dist, out.notes)
        else:
            if "distribution" in fs and dist != "uniform":
                out.notes.append(f"{where}.feasibleSpace.distribution: {dist} does not apply to a {ptype} list "
                                 f"(each value equally likely); dropped")
            entry = _listed(where, ptype, fs, out.notes)
        key = _key(name, set(out.space))
        if key != name:
            out.notes.append(f"{where}.name: '{name}' is '{key}' in the search space (a ${{parameters.NAME}} "
                             f"placeholder takes letters, digits, '_' and '-'); the trial receives it under that key")
        out.names[name] = key
        out.space[key] = entry
    if not out.space:
        raise ConvertError("spec.parameters", "has no parameter to search besides Hyperband's resource parameter")
    return out
