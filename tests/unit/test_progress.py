"""The `autotune run` progress line: search trials against maxTrialNum, final training apart."""

from __future__ import annotations

from autotune_operator.decide import Phase
from autotune_operator.progress import format_progress, search_counts
from autotune_operator.status import BestTrial, ExperimentStatus, FinalTrial, ParetoTrial, TrialCounts


def status(counts: TrialCounts, finals: list[str] | None = None) -> ExperimentStatus:
    return ExperimentStatus(
        phase=Phase.RUNNING if finals is None or "RUNNING" in finals else Phase.DONE,
        trials=counts,
        bestTrial=BestTrial(name="hb-14", sequence=14, parameters={"x": 1}, value=0.96, budget=9),
        finalTraining=[FinalTrial(name=f"hb-final-{22 + i}", sequence=22 + i, parameters={"x": 1}, state=st)
                       for i, st in enumerate(finals)] if finals else None,
    )


def test_search_without_final_training_counts_every_trial() -> None:
    line = format_progress(status(TrialCounts(total=7, succeeded=4, failed=1, running=2)), 65.0, 22)
    assert line.startswith("[01:05] RUNNING")
    assert "trials 5/22 done (4 ok, 1 failed), 2 running" in line
    assert "final" not in line


def test_final_training_is_shown_apart_from_the_search_count() -> None:
    # 22 search trials ended, the final-training rerun is still running
    running = status(TrialCounts(total=23, succeeded=22, running=1), ["RUNNING"])
    line = format_progress(running, 20.0, 22)
    assert "trials 22/22 done (22 ok), 0 running" in line
    assert "0 running | final 0/1 done | best 0.96 (hb-14)" in line
    done = status(TrialCounts(total=23, succeeded=23), ["SUCCEEDED"])
    line = format_progress(done, 22.0, 22)
    assert "trials 22/22 done (22 ok), 0 running" in line and "23/22" not in line
    assert "final 1/1 done" in line
    # several reruns (a Pareto front): each leaves the count it is in
    mixed = status(TrialCounts(total=25, succeeded=22, failed=2, running=1), ["SUCCEEDED", "FAILED", "RUNNING"])
    c = search_counts(mixed)
    assert (c.total, c.succeeded, c.failed, c.running) == (22, 21, 1, 0)
    assert "final 2/3 done" in format_progress(mixed, 1.0, 22)
    assert mixed.trials.total == 25  # the status itself is left as reported


def test_trials_cut_by_ctrl_c_are_shown_as_to_run_again() -> None:
    """After Ctrl-C the cut trials wait (Engine.requeue): nothing runs, they run again on resume."""
    from autotune_operator.decide import Phase
    from autotune_operator.status import ExperimentStatus, TrialCounts

    s = ExperimentStatus(phase=Phase.ERROR, trials=TrialCounts(total=4, succeeded=2, waiting=2))
    line = format_progress(s, 3, 4)
    assert "trials 2/4 done (2 ok), 2 to run again" in line and "running" not in line


def test_final_training_of_a_front_counts_the_reruns_still_to_start() -> None:
    # A front of 3 rerun 2 at a time: one done, one running, the third waits for a slot.
    front = [ParetoTrial(name=f"mo-{i}", sequence=i, parameters={"x": i}, values={"a": i, "b": -i}) for i in range(3)]
    finals = [FinalTrial(name="mo-final-6", sequence=6, parameters={"x": 0}, state="SUCCEEDED"),
              FinalTrial(name="mo-final-7", sequence=7, parameters={"x": 1}, state="RUNNING")]
    s = ExperimentStatus(phase=Phase.RUNNING, trials=TrialCounts(total=8, succeeded=7, running=1),
                         paretoFront=front, paretoFrontSize=3, finalTraining=finals)
    assert "final 1/3 done" in format_progress(s, 1.0, 6)
    ended = s.model_copy(update={"phase": Phase.TIMEOUT})  # an ended run starts no more
    assert "final 1/2 done" in format_progress(ended, 1.0, 6)
