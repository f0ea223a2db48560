"""NNI-format search spaces: parsing, strict validation, sampling and (un)flattening.

A search space is a JSON object ``{"name": {"_type": T, "_value": [...]}}``. A ``choice``
whose options are dicts with a ``_name`` key is a nested (conditional) choice: the other
keys of the chosen dict form a sub-space. Internally the tree is flattened into a list of
:class:`Dimension` objects, each knowing which parent choice option activates it, so that
tuners can treat every hyperparameter uniformly and still respect conditionals.

Semantics follow NNI exactly (see shared/reference/nni-algorithms.md): randint's upper
bound is exclusive; q-types round to multiples of q and (for bounded types) clip.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

NUMERIC_TYPES = frozenset(
    {
        "randint",
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    }
)
NAS_TYPES = frozenset({"layer_choice", "input_choice"})
ALL_TYPES = NUMERIC_TYPES | {"choice"} | NAS_TYPES
LOG_TYPES = frozenset({"loguniform", "qloguniform", "lognormal", "qlognormal"})
NORMAL_TYPES = frozenset({"normal", "qnormal", "lognormal", "qlognormal"})
Q_TYPES = frozenset({"quniform", "qloguniform", "qnormal", "qlognormal"})
# A spelling that appears in the T9k manual's table; accepted so copied specs work.
_TYPE_ALIASES = {"qlognoraml": "qlognormal"}
_ARITY = {
    "randint": 2,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "normal": 2,
    "qnormal": 3,
    "lognormal": 2,
    "qlognormal": 3,
}
# Sub-space separator in flat keys; '/' cannot be confused with a parameter name part
# because names containing it are rejected.
SEP = "/"


class SearchSpaceError(ValueError):
    """An invalid search space. ``path`` names the offending parameter."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"searchSpace parameter '{path}': {message}" if path else f"searchSpace: {message}")


@dataclass(frozen=True)
class NestedOption:
    """One option of a conditional choice: its ``_name`` and the keys of its sub-space."""

    name: str
    children: tuple[str, ...]  # flat keys of the dimensions directly under this option

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"NestedOption({self.name!r})"


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter. ``parent`` is (choice key, option index) that activates it."""

    key: str
    name: str
    type: str
    args: tuple[Any, ...]
    parent: tuple[str, int] | None = None
    options: tuple[Any, ...] = ()  # choice / layer_choice: the options (NestedOption for nested)

    # ----- derived facts tuners need -----
    @property
    def is_categorical(self) -> bool:
        return self.type in ("choice", "layer_choice")

    @property
    def is_nested_choice(self) -> bool:
        return self.type == "choice" and any(isinstance(o, NestedOption) for o in self.options)

    @property
    def low(self) -> float:
        return float(self.args[0])

    @property
    def high(self) -> float:
        return float(self.args[1])

    @property
    def q(self) -> float | None:
        return float(self.args[2]) if self.type in Q_TYPES else None

    @property
    def is_integer(self) -> bool:
        """True when every value this dimension can produce is an integer."""
        if self.type == "randint":
            return True
        if self.type in Q_TYPES:
            return all(_is_integral(a) for a in self.args if self.type not in NORMAL_TYPES) and _is_integral(
                self.args[2]
            )
        return False

    @property
    def bounded(self) -> bool:
        return self.type not in NORMAL_TYPES

    def cardinality(self) -> int | None:
        """Number of distinct values, or None when effectively continuous/unbounded."""
        if self.type == "choice" or self.type == "layer_choice":
            return len(self.options)
        if self.type == "input_choice":
            return math.comb(len(self.args[0]), self.args[1])
        if self.type == "randint":
            return int(self.args[1]) - int(self.args[0])
        if self.type in ("quniform", "qloguniform"):
            return quniform_count(self.low, self.high, float(self.args[2]))
        return None

    # ----- value transforms -----
    def quantize(self, x: float) -> float | int:
        """Apply NNI's rounding (and clipping, for bounded types) to a raw sample."""
        q = self.q
        if q is not None:
            k = round(x / q)
            if self.bounded:
                # Onto the grid quniform_grid lists (the same k, tidied then clipped, so the
                # two agree): a bound at a half-step (low 0.15 for q 0.1, 1 for [1, 10, 2]) is
                # the limit of no draw's rounding, so x at or beyond it takes the first
                # multiple inside; and clipping after tidying keeps a bound with more digits
                # than the tidying (166.2202119229652 -> 166.220212) inside [low, high].
                k_lo, k_hi = quniform_steps(self.low, self.high, q)
                k = min(max(k, k_lo), k_hi)
                x = min(max(_tidy(k * q, q), self.low), self.high)
            else:
                x = _tidy(k * q, q)
        if self.type == "randint":
            return int(min(max(math.floor(x), int(self.args[0])), int(self.args[1]) - 1))
        if self.is_integer:
            return int(round(x))
        return float(x)

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw from the prior (exactly NNI's sampling semantics). Choice returns an index."""
        t = self.type
        if t in ("choice", "layer_choice"):
            return int(rng.integers(len(self.options)))
        if t == "input_choice":
            cands, k = self.args
            picked = sorted(rng.choice(len(cands), size=k, replace=False).tolist())
            return [cands[i] for i in picked]
        if t == "randint":
            return int(rng.integers(int(self.args[0]), int(self.args[1])))
        if t in ("uniform", "quniform"):
            return self.quantize(rng.uniform(self.low, self.high))
        if t in ("loguniform", "qloguniform"):
            # exp(log(high)) may round above high (0.1 -> 0.10000000000000002): clip.
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            return self.quantize(min(max(x, self.low), self.high))
        mu, sigma = float(self.args[0]), float(self.args[1])
        x = rng.normal(mu, sigma)
        if t in ("lognormal", "qlognormal"):
            x = math.exp(x)
        return self.quantize(x)

    def from_unit(self, u: float) -> Any:
        """The prior's value at quantile ``u`` of [0, 1) (a choice as its option index): the
        inverse-CDF map through which evenly spread points (Sobol) become parameters with
        the same distribution as :meth:`sample`'s."""
        u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
        t = self.type
        if t in ("choice", "layer_choice"):
            return int(u * len(self.options))
        if t == "input_choice":
            cands, k = self.args
            # In integers: u * comb(n, k) overflows a float past ~1e308 (n around 1,000).
            rank = (int(u * 2**53) * math.comb(len(cands), k)) >> 53
            return [cands[i] for i in _unrank_combination(len(cands), k, rank)]
        if t == "randint":
            lo, hi = int(self.args[0]), int(self.args[1])
            return min(lo + int(u * (hi - lo)), hi - 1)
        if t in ("uniform", "quniform"):
            return self.quantize(self.low + u * (self.high - self.low))
        if t in ("loguniform", "qloguniform"):
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            return self.quantize(min(max(x, self.low), self.high))
        # u = 0 is the normal's -infinity: nudge it in (the mass there is negligible).
        x = NormalDist(float(self.args[0]), float(self.args[1])).inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        if t in ("lognormal", "qlognormal"):
            x = math.exp(x)
        return self.quantize(x)


def _unrank_combination(n: int, k: int, rank: int) -> list[int]:
    """The rank-th k-subset of range(n) in lexicographic order."""
    out: list[int] = []
    nxt = 0
    for slot in range(k):
        for i in range(nxt, n):
            block = math.comb(n - i - 1, k - slot - 1)  # subsets whose next element is i
            if rank < block:
                out.append(i)
                nxt = i + 1
                break
            rank -= block
    return out


def _is_integral(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


def _tidy(x: float, q: float) -> float:
    """Remove float noise from k*q (0.1*3 -> 0.3) without changing the value's meaning."""
    # Six digits below q's leading one. No cap: at most 15 decimals turned every multiple of
    # a q below 1e-15 into 0.
    decimals = max(0, -int(math.floor(math.log10(abs(q))))) + 6 if q > 0 else 12
    return round(x, decimals)


def quniform_grid(low: float, high: float, q: float) -> list[float]:
    """Every value clip(round(u/q)*q, low, high), u ~ U(low, high), takes with positive
    probability, in ascending order.

    Multiple k*q is produced by u in [(k-0.5)q, (k+0.5)q]; only k whose interval overlaps
    [low, high] in more than a point count. So [0, 10, 4] gives {0, 4, 8} (10 would need
    u/4 >= 2.5, i.e. u = 10 exactly, which rounds half to even: 8), and [2, 10, 5] gives
    {2, 5, 10} (2 is round(u/5)=0 clipped up to low).
    """

    k_lo, k_hi = quniform_steps(low, high, q)
    return sorted({min(max(_tidy(k * q, q), low), high) for k in range(k_lo, k_hi + 1)})


def quniform_steps(low: float, high: float, q: float) -> tuple[int, int]:
    """The first and last k whose multiple k*q quniform_grid keeps (see there)."""

    def snap(x: float) -> float:  # k*q noise: 0.3/0.1 = 2.9999999999999996
        r = round(x)
        return float(r) if abs(x - r) < 1e-9 else x

    k_lo = math.floor(snap(low / q - 0.5)) + 1  # smallest k with k + 0.5 > low/q
    k_hi = math.ceil(snap(high / q + 0.5)) - 1  # largest k with k - 0.5 < high/q
    if k_lo > k_hi:
        # The whole range is within the snap's noise of one half-step (k_hi + 0.5), where
        # draws round either way: both neighbours count (clipped, the two bounds). Else
        # the space counted no value and every tuner ended the experiment at once.
        return k_hi, k_lo
    return k_lo, k_hi


def iter_quniform(low: float, high: float, q: float) -> Iterator[float]:
    """quniform_grid's values one at a time, ascending (each kept k gives its own value)."""
    k_lo, k_hi = quniform_steps(low, high, q)
    for k in range(k_lo, k_hi + 1):
        yield min(max(_tidy(k * q, q), low), high)


_LISTED_COUNT = 10_000


def quniform_count(low: float, high: float, q: float) -> int:
    """len(quniform_grid(low, high, q)) without listing many values: every kept k gives its
    own value (only the end ones are clipped, into [low, high] where no other lies), so
    beyond a few thousand the count is k_hi - k_lo + 1; listing [0, 1e7, 1] took 25 s."""
    k_lo, k_hi = quniform_steps(low, high, q)
    if k_hi - k_lo + 1 > _LISTED_COUNT:
        return k_hi - k_lo + 1
    return len(quniform_grid(low, high, q))


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the flat dimensions in declaration order (parents first)."""

    dims: tuple[Dimension, ...]
    top: tuple[str, ...]  # keys of the top-level dimensions
    raw: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {d.key: d for d in self.dims})

    def __getitem__(self, key: str) -> Dimension:
        return self._by_key[key]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.dims)

    @property
    def types(self) -> frozenset[str]:
        return frozenset(d.type for d in self.dims)

    @property
    def is_nested(self) -> bool:
        return any(d.parent is not None for d in self.dims)

    def cardinality(self) -> int | None:
        """Number of distinct complete configurations, or None when infinite."""

        def count(keys: Iterable[str]) -> int | None:
            total = 1
            for k in keys:
                d = self[k]
                if d.is_nested_choice:
                    n = 0
                    for opt in d.options:
                        c = count(opt.children) if isinstance(opt, NestedOption) else 1
                        if c is None:
                            return None
                        n += c
                else:
                    n = d.cardinality()
                    if n is None:
                        return None
                total *= n
            return total

        return count(self.top)

    # ----- flat <-> nested -----
    def active_keys(self, flat: Mapping[str, Any]) -> list[str]:
        """Keys active under the given (flat, choice-as-index) assignment, parents first."""
        out: list[str] = []

        def walk(keys: Iterable[str]) -> None:
            for k in keys:
                out.append(k)
                d = self[k]
                if d.is_nested_choice and k in flat:
                    opt = d.options[int(flat[k])]
                    if isinstance(opt, NestedOption):
                        walk(opt.children)

        walk(self.top)
        return out

    def assign(self, pick: Callable[["Dimension"], Any]) -> dict[str, Any]:
        """A flat assignment built parents first: ``pick(d)`` gives each active dimension's
        value (a choice as its option index), and the option picked for a nested choice
        decides which of its children are active and picked next."""
        flat: dict[str, Any] = {}

        def walk(keys: Iterable[str]) -> None:
            for k in keys:
                d = self[k]
                flat[k] = pick(d)
                if d.is_nested_choice:
                    opt = d.options[int(flat[k])]
                    if isinstance(opt, NestedOption):
                        walk(opt.children)

        walk(self.top)
        return flat

    def from_unit(self, point: Sequence[float]) -> dict[str, Any]:
        """A flat assignment from a point of the unit cube with one coordinate per dimension
        (in ``dims`` order, inactive ones included so each keeps its coordinate)."""
        index = {d.key: i for i, d in enumerate(self.dims)}
        return self.assign(lambda d: d.from_unit(point[index[d.key]]))

    def sample_flat(self, rng: np.random.Generator) -> dict[str, Any]:
        """A prior sample as a flat assignment (choices as option indices)."""
        return self.assign(lambda d: d.sample(rng))

    def to_parameters(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Flat assignment (choices as indices) -> the nested parameters a trial receives."""

        def build(keys: Iterable[str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k in keys:
                d = self[k]
                v = flat[k]
                if d.type in ("choice", "layer_choice"):
                    opt = d.options[int(v)]
                    if isinstance(opt, NestedOption):
                        sub = {"_name": opt.name}
                        sub.update(build(opt.children))
                        out[d.name] = sub
                    else:
                        out[d.name] = opt
                else:
                    out[d.name] = v
            return out

        return build(self.top)

    def to_flat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Inverse of :meth:`to_parameters` (choices become indices). Raises on a mismatch."""
        flat: dict[str, Any] = {}

        def walk(keys: Iterable[str], values: Mapping[str, Any]) -> None:
            for k in keys:
                d = self[k]
                if d.name not in values:
                    raise KeyError(f"parameter '{k}' missing")
                v = values[d.name]
                if d.type in ("choice", "layer_choice"):
                    idx = _option_index(d, v)
                    flat[k] = idx
                    opt = d.options[idx]
                    if isinstance(opt, NestedOption):
                        walk(opt.children, v)
                elif d.type == "input_choice":
                    flat[k] = _subset_in_order(d, v)
                else:
                    flat[k] = v

        walk(self.top, params)
        return flat

    def contains(self, params: Mapping[str, Any]) -> bool:
        try:
            self.to_flat(params)
        except (KeyError, ValueError, TypeError):
            return False
        return True


def _subset_in_order(d: Dimension, v: Any) -> list[Any]:
    """An input_choice value as its candidates in the space's order (as sampled): the same
    subset listed in another order (a warm-start or converted trial) is the same
    configuration, for repeat detection and for PPO's action lookup."""
    cands, k = d.args
    if not isinstance(v, (list, tuple)) or len(v) != k:
        raise ValueError(f"value {v!r} of '{d.key}' is not {k} of its candidates")
    picked: set[int] = set()
    for x in v:
        i = next((i for i, c in enumerate(cands) if i not in picked and _loose_equal(c, x)), None)
        if i is None:
            raise ValueError(f"value {v!r} of '{d.key}' is not {k} distinct candidates")
        picked.add(i)
    return [cands[i] for i in sorted(picked)]


def _option_index(d: Dimension, v: Any) -> int:
    if isinstance(v, Mapping) and "_name" in v:
        for i, o in enumerate(d.options):
            if isinstance(o, NestedOption) and o.name == v["_name"]:
                return i
    else:
        for i, o in enumerate(d.options):
            if not isinstance(o, NestedOption) and type(o) is type(v) and o == v:
                return i
        for i, o in enumerate(d.options):  # 1 == 1.0 across JSON round-trips
            if not isinstance(o, NestedOption) and _loose_equal(o, v):
                return i
    raise ValueError(f"value {v!r} is not an option of '{d.key}'")


def _loose_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def canonical(params: Mapping[str, Any]) -> str:
    """A stable text key for a parameter set, used to detect duplicates."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------- parsing


def parse_search_space(source: str | Mapping[str, Any]) -> SearchSpace:
    """Parse and strictly validate a search space given as JSON text or a mapping."""
    if isinstance(source, str):
        if not source.strip():
            raise SearchSpaceError("", "is empty; it must be a JSON object of parameters")
        try:
            raw = json.loads(source)
        except json.JSONDecodeError as e:
            raise SearchSpaceError("", f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except RecursionError:  # json.loads recurses per level: a 500 on the tuner server's PUT
            raise SearchSpaceError("", "is nested too deeply to read (thousands of levels of [ or {)") from None
    else:
        raw = source
    if not isinstance(raw, Mapping):
        raise SearchSpaceError("", f"must be a JSON object of parameters, got {_json_type(raw)}")
    if not raw:
        raise SearchSpaceError("", "has no parameters")
    for name, spec in raw.items():
        # Before parsing: the parser recurses per level, and a deep choice value or a lone
        # surrogate was accepted, then every answer holding a trial's parameters was a 500.
        problem = _unsendable([name, spec], MAX_SPACE_DEPTH)  # [name, spec]: the space's own object's level
        if problem is not None:
            raise SearchSpaceError(str(name).encode("utf-8", "backslashreplace").decode("utf-8"), problem)
    dims: list[Dimension] = []
    top = _parse_level(raw, prefix="", parent=None, dims=dims)
    _check_distinct_keys(dims)
    return SearchSpace(dims=tuple(dims), top=tuple(top), raw=raw)


def _check_distinct_keys(dims: Sequence[Dimension]) -> None:
    """Two parameters with one flat key: possible through an option ``_name`` holding the
    separator (option "a/b/x" with sub-parameter y, and option "a" > b > option "x" > y). The
    second silently replaced the first, so one y was handed the other's values ('p' for a
    choice of [1, 2]) and the space was counted wrong."""
    seen: set[str] = set()
    for d in dims:
        if d.key in seen:
            raise SearchSpaceError(d.key, f"is named twice in the nested space: an option _name containing "
                                          f"'{SEP}' makes two parameters one; rename that option")
        seen.add(d.key)


# Levels of lists and objects a search space may have, its own object included: far more
# than any real space (a choice of dicts holding lists is 5), far fewer than the ~250 at
# which a trial's parameters could no longer be serialized in an answer.
MAX_SPACE_DEPTH = 64


def _unsendable(v: Any, levels: int) -> str | None:
    """Why ``v`` could not be sent back in a JSON answer, or None: lists/objects nested more
    than ``levels`` deep (``v`` itself one level), or a key or string UTF-8 cannot encode (a
    lone surrogate: JSON's \\udcxx escapes carry them). Iterative: ``v`` may be deeper than
    Python's recursion limit."""
    stack: list[tuple[Any, int]] = [(v, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                shown = x.encode("utf-8", "backslashreplace").decode("utf-8")
                return f"holds a string that is not valid Unicode (a lone surrogate): {shown[:60]!r}"
            continue
        if isinstance(x, Mapping):
            children: Iterable[Any] = [*x.keys(), *x.values()]
        elif isinstance(x, (list, tuple)):
            children = x
        else:
            continue
        if depth > levels:
            return (f"is nested too deeply: more than {levels} levels of lists and objects (a trial's "
                    "parameters are sent back as JSON)")
        stack.extend((c, depth + 1) for c in children)
    return None


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _parse_level(
    raw: Mapping[str, Any], prefix: str, parent: tuple[str, int] | None, dims: list[Dimension]
) -> list[str]:
    keys: list[str] = []
    for name, spec in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise SearchSpaceError(prefix.rstrip(SEP), "parameter names must be non-empty strings")
        if SEP in name or name.startswith("_"):
            raise SearchSpaceError(prefix + name, f"names may not contain '{SEP}' or start with '_'")
        key = prefix + name
        keys.append(key)
        dims_before = len(dims)
        dims.append(None)  # type: ignore[arg-type]  # placeholder keeps parents before children
        dims[dims_before] = _parse_param(key, name, spec, parent, dims)
    return keys


def _parse_param(
    key: str, name: str, spec: Any, parent: tuple[str, int] | None, dims: list[Dimension]
) -> Dimension:
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(key, f'must be an object {{"_type": ..., "_value": ...}}, got {_json_type(spec)}')
    extra = set(spec) - {"_type", "_value"}
    if extra:
        raise SearchSpaceError(key, f"unknown key(s) {sorted(extra)}; only _type and _value are allowed")
    if "_type" not in spec:
        raise SearchSpaceError(key, "missing _type")
    if "_value" not in spec:
        raise SearchSpaceError(key, "missing _value")
    t = spec["_type"]
    if not isinstance(t, str):
        raise SearchSpaceError(key, f"_type must be a string, got {_json_type(t)}")
    t = _TYPE_ALIASES.get(t, t)
    if t not in ALL_TYPES:
        raise SearchSpaceError(key, f"unknown _type '{t}'; expected one of {sorted(ALL_TYPES)}")
    v = spec["_value"]
    if t == "choice":
        return _parse_choice(key, name, v, parent, dims)
    if t == "layer_choice":
        if not isinstance(v, list) or not v:
            raise SearchSpaceError(key, "layer_choice _value must be a non-empty array of candidate names")
        if _holds_non_finite(v):
            raise SearchSpaceError(key, "layer_choice _value holds a number that is not finite (NaN or Infinity)")
        return Dimension(key, name, t, tuple(v), parent, tuple(v))
    if t == "input_choice":
        if not isinstance(v, Mapping) or "candidates" not in v:
            raise SearchSpaceError(key, 'input_choice _value must be {"candidates": [...], "n_chosen": k}')
        cands, k = v["candidates"], v.get("n_chosen", 1)
        if not isinstance(cands, list) or not cands:
            raise SearchSpaceError(key, "input_choice candidates must be a non-empty array")
        if _holds_non_finite(cands):
            raise SearchSpaceError(key, "input_choice candidates hold a number that is not finite (NaN or Infinity)")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(cands):
            raise SearchSpaceError(key, f"input_choice n_chosen must be an integer in [1, {len(cands)}], got {k!r}")
        return Dimension(key, name, t, (tuple(cands), k), parent)
    return _parse_numeric(key, name, t, v, parent)


def _holds_non_finite(v: Any) -> bool:
    """A NaN or an infinity anywhere in an option ([NaN], {"lr": Infinity}): Python's JSON
    reads them, and the server's answers write them as null, so a trial drawing one ran with
    null, a value the space never listed. The parser runs this after _unsendable, so ``v``
    is at most MAX_SPACE_DEPTH deep."""
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, Mapping):
        return any(_holds_non_finite(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_holds_non_finite(x) for x in v)
    return False


def _parse_choice(
    key: str, name: str, v: Any, parent: tuple[str, int] | None, dims: list[Dimension]
) -> Dimension:
    if not isinstance(v, list):
        raise SearchSpaceError(key, f"choice _value must be an array of options, got {_json_type(v)}")
    if not v:
        raise SearchSpaceError(key, "choice _value must not be empty")
    options: list[Any] = []
    seen: set[Any] = set()
    for i, opt in enumerate(v):
        if isinstance(opt, Mapping) and "_name" in opt:
            oname = opt["_name"]
            if not isinstance(oname, str) or not oname:
                raise SearchSpaceError(key, f"option {i}: _name must be a non-empty string")
            sub = {k2: s for k2, s in opt.items() if k2 != "_name"}
            children = _parse_level(sub, prefix=f"{key}{SEP}{oname}{SEP}", parent=(key, i), dims=dims)
            options.append(NestedOption(oname, tuple(children)))
            ident: Any = ("_name", oname)
        else:
            if isinstance(opt, float) and not math.isfinite(opt):
                raise SearchSpaceError(key, f"option {i} is not a finite number")
            if _holds_non_finite(opt):
                raise SearchSpaceError(key, f"option {i} holds a number that is not finite (NaN or Infinity); "
                                            f"a trial's parameters are sent as JSON, which has none")
            if isinstance(opt, Mapping):
                # Without _name it is a plain value: the trial would get the {_type, _value} specs.
                subs = sorted(k2 for k2, s in opt.items() if isinstance(s, Mapping) and "_type" in s)
                if subs:
                    raise SearchSpaceError(key, f"option {i} has sub-parameters {subs} but no \"_name\"; "
                                                f"a nested choice option needs one")
            options.append(opt)
            ident = ("value", param_key(opt))
        if ident in seen:
            raise SearchSpaceError(key, f"option {i} ({opt!r}) is listed twice")
        seen.add(ident)
    return Dimension(key, name, "choice", tuple(v), parent, tuple(options))


def param_key(v: Any) -> Any:
    """A hashable identity of a parameter set or value, for finding repeats.

    Equal as JSON values are equal (1 == 1.0: the apiserver writes 1.0 as 1), except that
    booleans stay apart from numbers (a choice may list both True and 1). Key order is
    irrelevant. Much cheaper than json.dumps(sort_keys=True). The tuners' repeat detection
    and the parser's "listed twice" check share it, so they agree on what a repeat is.
    """
    if isinstance(v, Mapping):
        return frozenset((k, param_key(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return tuple(param_key(x) for x in v)
    if isinstance(v, bool):
        return ("bool", v)
    return v


def yaml_number_hint(x: Any) -> str:
    """Why a number arrived as a string: PyYAML (YAML 1.1) reads 1e-4 as text, needing a dot
    (1.0e-4), while kubectl's YAML reads it as a number; so say how to write it."""
    if not isinstance(x, str) or not re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", x.strip()):
        return ""  # a quoted "0.1" is text on purpose: no hint
    return f" (YAML reads an unquoted {x} as text: write {float(x)!r})"


def _num(key: str, t: str, what: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise SearchSpaceError(key, f"{t} {what} must be a number, got {_json_type(x)} {x!r}{yaml_number_hint(x)}")
    if not -sys.float_info.max <= x <= sys.float_info.max:  # math.isfinite overflows on a huge int
        shown = repr(x) if len(repr(x)) <= 40 else f"a number of {len(repr(x))} digits"
        raise SearchSpaceError(key, f"{t} {what} must be finite, got {shown}")
    return float(x)


# How far out (in sigmas) a normal-family draw is taken to reach, and the largest x with a
# finite exp(x).
_REACH_SIGMAS = 20
_LOG_FLOAT_MAX = math.log(sys.float_info.max)


def _parse_numeric(key: str, name: str, t: str, v: Any, parent: tuple[str, int] | None) -> Dimension:
    n = _ARITY[t]
    if not isinstance(v, list):
        raise SearchSpaceError(key, f"{t} _value must be an array of {n} numbers, got {_json_type(v)}")
    if len(v) != n:
        shape = "[low, high, q]" if t in ("quniform", "qloguniform") else (
            "[mu, sigma, q]" if t in Q_TYPES else ("[mu, sigma]" if t in NORMAL_TYPES else "[low, high]")
        )
        raise SearchSpaceError(key, f"{t} _value must be {shape} ({n} numbers), got {len(v)}")
    if t in NORMAL_TYPES:
        mu = _num(key, t, "mu", v[0])
        sigma = _num(key, t, "sigma", v[1])
        if sigma <= 0:
            raise SearchSpaceError(key, f"{t} sigma must be > 0, got {v[1]!r}")
        # Draws reach a few sigmas out (20 is beyond any draw); past a float's range one
        # was -inf (a parameter JSON cannot carry) or exp() raised mid-run, ending the
        # experiment ERROR at some trial instead of refusing the space.
        if t in LOG_TYPES and mu + _REACH_SIGMAS * sigma > _LOG_FLOAT_MAX:
            raise SearchSpaceError(key, f"{t} [mu={v[0]!r}, sigma={v[1]!r}]: exp(mu + {_REACH_SIGMAS} sigma) overflows "
                                        f"a float; its values would reach infinity")
        if t not in LOG_TYPES and not math.isfinite(abs(mu) + _REACH_SIGMAS * sigma):
            raise SearchSpaceError(key, f"{t} [mu={v[0]!r}, sigma={v[1]!r}]: mu +- {_REACH_SIGMAS} sigma overflows "
                                        f"a float; its values would reach infinity")
    else:
        low = _num(key, t, "low", v[0])
        high = _num(key, t, "high", v[1])
        if t == "randint":
            if not _is_integral(v[0]) or not _is_integral(v[1]):
                raise SearchSpaceError(key, f"randint bounds must be integers, got {v!r}")
            # Compared as ints: float(2**63 - 1) is 2**63, so the largest int64 was refused.
            if not (-(2**63) <= int(v[0]) and int(v[1]) <= 2**63 - 1):  # numpy samples int64: every tuner failed
                raise SearchSpaceError(key, f"randint bounds must be 64-bit integers (|bound| < 2**63), got {v!r}")
            if int(v[1]) <= int(v[0]):
                raise SearchSpaceError(key, f"randint needs lower < upper (upper is exclusive), got {v!r}")
            v = [int(v[0]), int(v[1])]
        elif high <= low:
            raise SearchSpaceError(key, f"{t} needs low < high, got low={v[0]!r} high={v[1]!r}")
        elif not math.isfinite(high - low):  # numpy's uniform(low, high) raised OverflowError in every tuner
            raise SearchSpaceError(key, f"{t} range high - low overflows a float (low={v[0]!r} high={v[1]!r})")
        if t in LOG_TYPES and low <= 0:
            raise SearchSpaceError(key, f"{t} needs low > 0 (it samples in log space), got low={v[0]!r}")
    if t in Q_TYPES:
        q = _num(key, t, "q", v[2])
        if q <= 0:
            raise SearchSpaceError(key, f"{t} q must be > 0, got {v[2]!r}")
        if t in ("quniform", "qloguniform") and not (math.isfinite(low / q) and math.isfinite(high / q)):
            # Counting the grid rounded inf: OverflowError in every tuner that asks the cardinality.
            raise SearchSpaceError(key, f"{t} q={v[2]!r} is too small for its range (high/q or low/q overflows a float)")
    return Dimension(key, name, t, tuple(v), parent)
