"""Grid search: every combination exactly once.

Finite dimensions (choice, randint, quniform, qloguniform) are enumerated completely.
Continuous ones are bisected in CDF space epoch by epoch (1/2; then 1/4, 3/4; then 1/8,
3/8, ...), so an experiment with a continuous parameter refines the grid for as long as
its budget lasts. When a finite grid is used up the tuner says so and the experiment
ends DONE. Nothing is remembered but the history: a restarted server never repeats.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from tuner_server.history import TrialRecord
from tuner_server.searchspace import Dimension, NestedOption, SearchSpace, iter_quniform
from tuner_server.tuners.base import NoMoreTrials, Tuner, param_key

MAX_EPOCH = 24


class _Again:
    """An iterable that can be walked again (a generator function behind it): the values
    of a dimension made as they are walked, never all held at once."""

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[Any]:
        return self.make()


def dimension_values(d: Dimension, epoch: int) -> Iterable[Any] | None:
    """All grid values of a leaf dimension up to ``epoch`` (None: it is finite, see options).
    randint and q-uniform values are produced lazily: a seed's randint [0, 2**31) listed
    was two billion ints."""
    t = d.type
    if t in ("choice", "layer_choice"):
        return None
    if t == "randint":
        return range(int(d.args[0]), int(d.args[1]))
    if t in ("quniform", "qloguniform"):
        low, high, q = d.low, d.high, float(d.args[2])
        return _Again(lambda: (d.quantize(v) for v in iter_quniform(low, high, q)))
    if t == "input_choice":
        cands, k = d.args
        return _Again(lambda: (list(c) for c in itertools.combinations(cands, k)))  # C(40, 20) ~ 1.4e11

    def at(p: float) -> Any:
        if t == "uniform":
            x = d.low + p * (d.high - d.low)
        elif t == "loguniform":
            x = math.exp(math.log(d.low) + p * (math.log(d.high) - math.log(d.low)))
        else:
            x = NormalDist(float(d.args[0]), float(d.args[1])).inv_cdf(p)
            if t in ("lognormal", "qlognormal"):
                x = math.exp(x)
        return d.quantize(x)

    out: list[Any] = []
    seen: set[Any] = set()
    # The value is a non-decreasing function of the CDF position, so every point strictly
    # between two positions with the same value has that value too: such an interval is
    # never bisected again. A coarse q (qnormal [5, 3, 100] has one value) then costs a
    # few points per epoch instead of 2^epoch; the values and their order are unchanged.
    # Intervals are (left, right, value at left, value at right); the ends 0 and 1 are
    # never evaluated (a normal's +-infinity) and count as differing from everything.
    edge = object()
    live: list[tuple[float, float, Any, Any]] = [(0.0, 1.0, edge, edge)]
    for _ in range(epoch):
        nxt: list[tuple[float, float, Any, Any]] = []
        for a, b, va, vb in live:
            m = (a + b) / 2
            v = at(m)
            if v not in seen:
                seen.add(v)
                out.append(v)
            if va is edge or va != v:
                nxt.append((a, m, va, v))
            if vb is edge or vb != v:
                nxt.append((m, b, v, vb))
        live = nxt
    return out


def is_finite(space: SearchSpace) -> bool:
    return space.cardinality() is not None


class GridSearchTuner(Tuner):
    name = "GridSearch"
    multi_objective = True  # never reads results, so any number of objectives works
    warm_start_refused = "GridSearch never reads results; imported trials would only remove points from its grid"
    aliases = ("Grid", "GridSearchTuner")
    supported_types = Tuner.supported_types | {"layer_choice", "input_choice"}
    ignored_args = frozenset({"optimize_mode"})

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        seen = self.seen_keys(history)
        epochs = range(1, 2) if is_finite(self.space) else range(1, MAX_EPOCH + 1)
        for epoch in epochs:
            for params in self._configs(self.space.top, epoch):
                if param_key(params) not in seen:
                    return params
        raise NoMoreTrials(f"the grid of {len(seen)} configurations is exhausted")

    def _configs(self, keys: Sequence[str], epoch: int) -> Iterator[dict[str, Any]]:
        per_key = [self._leaf_configs(k, epoch) for k in keys]
        for combo in _product(per_key):
            out: dict[str, Any] = {}
            for k, v in zip(keys, combo):
                out[self.space[k].name] = v
            yield out

    def _leaf_configs(self, key: str, epoch: int) -> Iterable[Any]:
        d = self.space[key]
        if d.type in ("choice", "layer_choice"):
            # Made as walked, as the other dimensions' values: a nested option's sub-space may be
            # huge (a randint [0, 2**31) under it listed was the tuner server's memory).
            def options() -> Iterator[Any]:
                for opt in d.options:
                    if isinstance(opt, NestedOption):
                        for sub in self._configs(opt.children, epoch):
                            yield {"_name": opt.name, **sub}
                    else:
                        yield opt

            return _Again(options)
        return dimension_values(d, epoch) or []


def _product(seqs: Sequence[Iterable[Any]]) -> Iterator[tuple[Any, ...]]:
    """itertools.product's order (the last varies fastest) without listing its inputs:
    each is walked again for every combination of the ones before it."""
    if not seqs:
        yield ()
        return
    for v in seqs[0]:
        for rest in _product(seqs[1:]):
            yield (v, *rest)
