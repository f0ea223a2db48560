"""The Pareto front an AutoTuneExperiment's status lists: bounded, spread along the front
(tests/e2e/test_pareto_status_size.py writes one to a real API server)."""

from __future__ import annotations

from autotune_operator.decide import Limits, Phase
from autotune_operator.resume import ended_run, plan_resume
from autotune_operator.status import (CLUSTER_FRONT_LIMIT, ExperimentStatus, FinalTrial, ParetoTrial, TrialCounts,
                                      for_cluster, spread)


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


def test_a_resume_does_not_take_a_bounded_front_for_the_whole_one() -> None:
    # Ended TIMEOUT during final training of a 300-member front: the cluster status lists 100,
    # each with its final trial. A member left out may still lack one, so final training is
    # pending and a raised maxExecSeconds resumes it (the controller then reads the whole front).
    front = members(CLUSTER_FRONT_LIMIT * 3)
    st = ExperimentStatus(phase=Phase.TIMEOUT, paretoFront=front, paretoFrontSize=len(front),
                          startTime="2026-11-25T07:00:00Z", completionTime="2026-11-25T08:00:00Z",
                          trials=TrialCounts(total=len(front) + CLUSTER_FRONT_LIMIT, succeeded=len(front) + CLUSTER_FRONT_LIMIT),
                          finalTraining=[FinalTrial(name=f"f-{p.sequence}", sequence=1000 + p.sequence,
                                                    parameters=p.parameters, state="SUCCEEDED")
                                         for p in spread(front, CLUSTER_FRONT_LIMIT)])
    shown = for_cluster(st).model_dump(mode="json")
    run = ended_run(shown)
    assert run is not None and run.final_pending
    limits = Limits(max_trials=len(front), concurrency=4, max_seconds=None, final_training=True)
    assert plan_resume(run, limits, "maxExecSeconds 3600 -> none", now=1e10).resume
    # Ended DONE, final training ended: every member had its final trial, nothing to resume.
    done = ended_run({**shown, "phase": "DONE"})
    assert done is not None and not done.final_pending
    assert not plan_resume(done, limits, "maxExecSeconds 3600 -> none", now=1e10).resume
