"""Pareto dominance, non-dominated sorting and hypervolume on hand-made points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tuner_server.history import OptimizeMode
from tuner_server.pareto import (
    dominates,
    hypervolume,
    hypervolume_contributions,
    non_dominated_ranks,
    pareto_front,
    reference_point,
    to_losses,
)

MAX, MIN = OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE


def test_dominates_needs_strictly_better_somewhere():
    assert dominates((1, 2), (2, 2))
    assert dominates((1, 1), (2, 2))
    assert not dominates((1, 2), (1, 2))  # equal: neither dominates
    assert not dominates((1, 3), (2, 2))  # a trade-off
    assert not dominates((2, 2), (1, 2))


def test_ranks_of_layered_points():
    pts = [(1, 4), (2, 2), (4, 1), (2, 4), (3, 3), (5, 5), (2, 2)]
    #       front   front   front  rank1   rank1   rank2  duplicate of a front point
    assert non_dominated_ranks(pts) == [0, 0, 0, 1, 1, 2, 0]
    assert pareto_front(pts) == [0, 1, 2, 6]
    assert non_dominated_ranks([]) == []


def test_ranks_three_objectives():
    pts = [(1, 1, 1), (0, 2, 2), (2, 2, 2), (2, 2, 3)]
    assert non_dominated_ranks(pts) == [0, 0, 1, 2]


def test_to_losses_negates_maximized():
    assert to_losses((0.9, 100.0), (MAX, MIN)) == (-0.9, 100.0)
    with pytest.raises(ValueError):
        to_losses((1.0,), (MAX, MIN))


def test_hypervolume_2d_by_hand():
    # Staircase of (1,3), (2,2), (3,1) under ref (4,4): 3x1 + 2x1 + 1x1 = 6.
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == pytest.approx(6.0)
    # A dominated point and a point outside the reference box change nothing.
    assert hypervolume([(1, 3), (2, 2), (3, 1), (3, 3), (5, 0)], (4, 4)) == pytest.approx(6.0)
    assert hypervolume([(1, 1)], (2, 3)) == pytest.approx(2.0)
    assert hypervolume([], (1, 1)) == 0.0
    assert hypervolume([(1, 1)], (1, 2)) == 0.0  # on the boundary: nothing strictly inside


def test_hypervolume_3d_by_hand():
    assert hypervolume([(0, 0, 0)], (1, 2, 3)) == pytest.approx(6.0)
    # Two unit-ish boxes overlapping: (0,0,1) covers 2x2x1, (1,1,0) covers 1x1x2; overlap 1x1x1.
    assert hypervolume([(0, 0, 1), (1, 1, 0)], (2, 2, 2)) == pytest.approx(4 + 2 - 1)


def _monte_carlo(points: np.ndarray, ref: np.ndarray, rng: np.random.Generator, n: int = 200_000) -> float:
    lo = points.min(axis=0)
    u = lo + rng.random((n, len(ref))) * (ref - lo)
    covered = np.zeros(n, dtype=bool)
    for p in points:
        covered |= np.all(u >= p, axis=1)
    return covered.mean() * float(np.prod(ref - lo))


@pytest.mark.parametrize("d", [2, 3])
def test_hypervolume_matches_monte_carlo(d: int):
    rng = np.random.default_rng(d)
    pts = rng.random((25, d))
    ref = np.full(d, 1.1)
    exact = hypervolume(pts.tolist(), ref.tolist())
    assert exact == pytest.approx(_monte_carlo(pts, ref, rng), rel=0.02)


def test_hypervolume_is_order_independent_and_monotone():
    pts = [(0.1, 0.9, 0.5), (0.5, 0.5, 0.5), (0.9, 0.1, 0.2), (0.3, 0.3, 0.9)]
    ref = (1, 1, 1)
    values = {round(hypervolume(list(p), ref), 12) for p in itertools.permutations(pts)}
    assert len(values) == 1
    assert hypervolume(pts + [(0.2, 0.2, 0.2)], ref) > hypervolume(pts, ref)


def test_hypervolume_rejects_bad_reference():
    with pytest.raises(ValueError):
        hypervolume([(1, 1)], (float("inf"), 1))
    with pytest.raises(ValueError):
        hypervolume([(1, 1, 1)], (2, 2))


def test_contributions():
    # (2,2) exclusively covers [2,3)x[2,3) = 1; the extremes (1,3) and (3,1) cover 1x1 each.
    pts = [(1, 3), (2, 2), (3, 1), (3, 3)]
    assert hypervolume_contributions(pts, (4, 4)) == pytest.approx([1.0, 1.0, 1.0, 0.0])


def test_reference_point_is_beyond_the_worst():
    ref = reference_point([(0, 10), (1, 20)])
    assert ref[0] > 1 and ref[1] > 20
