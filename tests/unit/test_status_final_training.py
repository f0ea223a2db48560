"""status.finalTraining on a cluster: final training reruns every Pareto front member, so a
front of thousands gives as many entries (~235-330 bytes each: ~5000 pass the API server's
~1.5 MiB object limit). The cluster status lists at most CLUSTER_FRONT_LIMIT of them, chosen
as the front is (status.spread), and counts them all; a resume reads those counts."""

from __future__ import annotations

import json

from autotune_operator.decide import Limits, Phase
from autotune_operator.resume import ended_run, plan_resume
from autotune_operator.status import (CLUSTER_FRONT_LIMIT, ExperimentStatus, FinalTrial, ParetoTrial, TrialCounts,
                                      for_cluster)

ARCH = "registry.example.com/models/resnet-variant-007-with-a-long-descriptive-name"
N = 6000


def front(n: int) -> list[ParetoTrial]:
    return [ParetoTrial(name=f"big-front-{i}", sequence=i, parameters={"x": i / n, "arch": ARCH, "lr": 1e-4 * (1 + i)},
                        values={"accuracy": i / n, "latency": 12.5 * i / n}) for i in range(n)]


def finals(members: list[ParetoTrial], state: str = "SUCCEEDED") -> list[FinalTrial]:
    return [FinalTrial(name=f"big-front-final-{N + p.sequence}", sequence=N + p.sequence, parameters=p.parameters,
                       value=p.values["accuracy"], state=state, values=p.values) for p in members]


def big_status(phase: Phase, final_states: list[str]) -> ExperimentStatus:
    members = front(N)
    ft = [f.model_copy(update={"state": s}) for f, s in zip(finals(members), final_states)]
    states = [f.state for f in ft]
    return ExperimentStatus(
        phase=phase, startTime="2026-11-25T07:00:00Z", completionTime="2026-11-25T08:00:00Z",
        trials=TrialCounts(total=N + len(ft), succeeded=N + states.count("SUCCEEDED"), failed=states.count("FAILED"),
                           stopped=states.count("STOPPED")),
        paretoFront=members, paretoFrontSize=N, finalTraining=ft)


def test_final_training_of_a_front_of_thousands_fits_in_the_object() -> None:
    st = big_status(Phase.DONE, ["SUCCEEDED"] * N)
    assert len(json.dumps(st.model_dump(mode="json"))) > 1.5 * 2**20  # whole, it would not fit
    out = for_cluster(st)
    shown = out.model_dump(mode="json")
    assert len(json.dumps(shown)) < 256 * 1024
    assert out.finalTraining is not None and len(out.finalTraining) == CLUSTER_FRONT_LIMIT
    # Chosen as the front is: the final trials of the front members listed, both ends kept.
    assert [f.parameters for f in out.finalTraining] == [p.parameters for p in out.paretoFront or []]
    assert shown["finalTrainingCounts"]["total"] == N and shown["finalTrainingCounts"]["succeeded"] == N
    assert st.finalTraining is not None and len(st.finalTraining) == N  # local status.json keeps them all
    few = ExperimentStatus(phase=Phase.DONE, finalTraining=finals(front(3)))
    assert for_cluster(few) is few


def test_a_resume_counts_every_final_trial_not_the_listed_ones() -> None:
    # TIMEOUT during final training: 4000 of 6000 reruns ended (10 failed), 2000 never started.
    states = ["FAILED"] * 10 + ["SUCCEEDED"] * 3990 + ["STOPPED"] * 2000
    run = ended_run(for_cluster(big_status(Phase.TIMEOUT, states)).model_dump(mode="json"))
    assert run is not None
    assert run.issued == N and run.final_issued == N and run.failed == 0 and run.final_pending
    limits = Limits(max_trials=N, concurrency=4, max_seconds=None, final_training=True, max_failed=5)
    # maxFailedTrialNum 5 counts search trials only: the 10 failed reruns do not end it as ERROR.
    assert plan_resume(run, limits, "maxExecSeconds 3600 -> none", now=1e10).resume


def test_a_done_run_with_a_bounded_final_training_has_nothing_pending() -> None:
    run = ended_run(for_cluster(big_status(Phase.DONE, ["SUCCEEDED"] * N)).model_dump(mode="json"))
    assert run is not None and not run.final_pending and run.issued == N
    limits = Limits(max_trials=N, concurrency=4, max_seconds=None, final_training=True)
    assert not plan_resume(run, limits, "maxExecSeconds 3600 -> none", now=1e10).resume
