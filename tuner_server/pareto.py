"""Pareto dominance, non-dominated sorting and hypervolume: pure functions over points.

Every function here works on *loss* vectors (lower is better in every coordinate);
:func:`to_losses` turns reported values plus per-objective directions into losses, so
callers never have to think about "maximize" again. No I/O, no state.

- :func:`non_dominated_ranks` is the plain O(M N^2) sort (Deb et al.'s NSGA-II rank):
  experiments hold hundreds of trials, not millions, and the simple form is easy to check.
- :func:`hypervolume` is exact. Two objectives: one sweep after sorting (O(N log N)).
  More: "hypervolume by slicing objectives" (While et al. 2006) — sort by the last
  objective and add up slabs, each a hypervolume one dimension lower. Fast enough for the
  2-3 objectives (and a few hundred points) experiments have.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np

from tuner_server.history import OptimizeMode

Point = Sequence[float]


def to_losses(values: Sequence[float], directions: Sequence[OptimizeMode]) -> tuple[float, ...]:
    """Reported objective values -> losses (maximized objectives negated)."""
    if len(values) != len(directions):
        raise ValueError(f"{len(values)} values for {len(directions)} objectives")
    return tuple(d.loss(float(v)) for v, d in zip(values, directions))


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and strictly better somewhere."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            better = True
    return better


def non_dominated_ranks(points: Sequence[Point]) -> list[int]:
    """Rank of every point: 0 for the Pareto front, 1 for the front once 0 is removed, ..."""
    n = len(points)
    if n == 0:
        return []
    p = np.asarray(points, dtype=float)
    # le[i, j]: i <= j everywhere; lt[i, j]: i < j somewhere  ->  i dominates j.
    le = np.all(p[:, None, :] <= p[None, :, :], axis=2)
    lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
    dom = le & lt
    count = dom.sum(axis=0)  # how many points dominate each point
    ranks = [-1] * n
    current = [j for j in range(n) if count[j] == 0]
    r = 0
    while current:
        nxt: list[int] = []
        for i in current:
            ranks[i] = r
            for j in np.flatnonzero(dom[i]):
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(int(j))
        current, r = nxt, r + 1
    return ranks


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, in input order (duplicates all kept)."""
    return [i for i, r in enumerate(non_dominated_ranks(points)) if r == 0]


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by 2-D points (all strictly inside ref), by one sweep over x."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    area, best_y = 0.0, float(ref[1])
    for x, y in points[order]:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    d = points.shape[1]
    if len(points) == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - points[:, 0].min())
    if d == 2:
        return _hv2(points, ref)
    # Slice along the last objective: between consecutive z values, the dominated region's
    # cross-section is the (d-1)-volume of the points at or below that z.
    order = np.argsort(points[:, -1], kind="stable")
    pts = points[order]
    total = 0.0
    for k in range(len(pts)):
        z_lo = pts[k, -1]
        z_hi = pts[k + 1, -1] if k + 1 < len(pts) else ref[-1]
        if z_hi > z_lo:
            total += _hv(pts[: k + 1, :-1], ref[:-1]) * (z_hi - z_lo)
    return total


def hypervolume(points: Sequence[Point], ref: Point) -> float:
    """Volume dominated by ``points`` and bounded by the reference point ``ref`` (losses).

    Points not strictly better than ``ref`` in every coordinate add nothing and are dropped.
    """
    r = np.asarray(ref, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)):
        raise ValueError(f"the reference point must be a finite vector, got {list(ref)!r}")
    if len(points) == 0:
        return 0.0
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(r):
        raise ValueError(f"points must have {len(r)} coordinates like the reference point")
    p = p[np.all(np.isfinite(p), axis=1) & np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[pareto_front(p.tolist())] if len(p) > 1 else p  # dominated points add nothing
    p = np.unique(p, axis=0)
    return float(_hv(p, r))


def hypervolume_contributions(points: Sequence[Point], ref: Point) -> list[float]:
    """Each point's exclusive hypervolume (what is lost without it); 0 for dominated points."""
    total = hypervolume(points, ref)
    out = []
    for i in range(len(points)):
        rest = [p for j, p in enumerate(points) if j != i]
        out.append(max(total - hypervolume(rest, ref), 0.0))
    return out


def reference_point(points: Sequence[Point], margin: float = 0.1) -> tuple[float, ...]:
    """A reference point just beyond the worst of ``points`` in every coordinate (for
    ranking within one history; benchmarks use a fixed reference point per problem)."""
    p = np.asarray(points, dtype=float)
    worst, best = p.max(axis=0), p.min(axis=0)
    # Capped at the largest float: results near it (1e308 is finite, so accepted) overflowed
    # the sum to inf, which hypervolume() refuses: every MOTPE suggestion failed after that.
    with np.errstate(over="ignore"):
        span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0))
        return tuple(min(float(w + margin * s), sys.float_info.max) for w, s in zip(worst, span))


def finite(values: Sequence[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
