"""The Pareto front an AutoTuneExperiment's status lists: bounded, spread along the front
(tests/e2e/test_pareto_status_size.py writes one to a real API server)."""

from __future__ import annotations

from autotune_operator.decide import Phase
from autotune_operator.status import CLUSTER_FRONT_LIMIT, ExperimentStatus, ParetoTrial, for_cluster, spread


def members(n: int) -> list[ParetoTrial]:
    return [ParetoTrial(name=f"t-{i}", sequence=i, parameters={"x": i}, values={"a": i, "b": -i}) for i in range(n)]


def test_spread_keeps_both_ends_evenly_spaced_members_and_the_order() -> None:
    kept = spread(members(1000), 5)
    assert [p.sequence for p in kept] == [0, 250, 500, 749, 999]
    assert [p.sequence for p in spread(members(7), 7)] == list(range(7))
    assert [p.sequence for p in spread(members(101), 100)] == sorted({round(k * 100 / 99) for k in range(100)})
    assert len(spread(members(101), 100)) == 100


def test_for_cluster_bounds_the_front_only_and_keeps_its_size() -> None:
    front = members(CLUSTER_FRONT_LIMIT * 3)
    st = ExperimentStatus(phase=Phase.DONE, paretoFront=front, paretoFrontSize=len(front))
    out = for_cluster(st)
    assert out.paretoFront is not None and len(out.paretoFront) == CLUSTER_FRONT_LIMIT
    assert out.paretoFrontSize == len(front) and st.paretoFront == front  # the local status is not changed
    small = ExperimentStatus(phase=Phase.DONE, paretoFront=members(3), paretoFrontSize=3)
    assert for_cluster(small) is small
