"""The experiment's phase rules, as a pure function of observed state (no clock, no I/O)."""

from autotune_operator.decide import Goal, Limits, Observed, Phase, decide, final_pending, final_trained, rerun_own_keys


def test_fills_concurrency_without_passing_max_trials() -> None:
    lim = Limits(max_trials=5, concurrency=3, max_seconds=None)
    assert decide(lim, Observed(0, issued=0, active=0)).launch == 3
    assert decide(lim, Observed(0, issued=3, active=1)).launch == 2
    assert decide(lim, Observed(0, issued=4, active=2)).launch == 1  # only one left in the budget
    d = decide(lim, Observed(0, issued=5, active=2))
    assert d.phase is Phase.RUNNING and d.launch == 0 and not d.finished


def test_done_when_max_trials_ended_any_way() -> None:
    lim = Limits(max_trials=5, concurrency=3, max_seconds=100)
    d = decide(lim, Observed(10, issued=5, active=0))
    assert d.phase is Phase.DONE and d.finished and d.launch == 0


def test_max_trials_lowered_below_the_issued_stops_the_rest_once_reached() -> None:
    # maxTrialNum 8 -> 2 with 4 running: none stopped before 2 ended (stops count as ended:
    # stopping 2 at once would end all 4 with no result), then the 2 still running are
    # stopped and the experiment ends. Before, they ran on under phase DONE.
    lim = Limits(max_trials=2, concurrency=4, max_seconds=None)
    d = decide(lim, Observed(0, issued=4, active=3))
    assert d.phase is Phase.RUNNING and d.launch == 0 and not d.stop_active
    d = decide(lim, Observed(0, issued=4, active=2))
    assert d.phase is Phase.DONE and d.stop_active and not d.finished and d.reason == "MaxTrialsReached"
    assert d.message == "all 2 trials ended; the 2 still running stopped (maxTrialNum lowered)"
    d = decide(lim, Observed(0, issued=4, active=0))
    assert d.phase is Phase.DONE and d.finished and not d.stop_active and d.message == "all 2 trials ended"
    final = decide(Limits(max_trials=2, concurrency=4, max_seconds=None, final_training=True), Observed(0, issued=4, active=2))
    assert final.phase is Phase.RUNNING and final.stop_active and not final.launch_final


def test_capacity_caps_concurrency() -> None:
    lim = Limits(max_trials=None, concurrency=4, max_seconds=None, capacity=2)
    assert decide(lim, Observed(0, issued=0, active=0)).launch == 2
    assert decide(lim, Observed(0, issued=7, active=2)).launch == 0


def test_timeout_stops_running_trials_and_finishes_when_they_are_gone() -> None:
    lim = Limits(max_trials=50, concurrency=3, max_seconds=60)
    d = decide(lim, Observed(60, issued=7, active=3))
    assert d.phase is Phase.TIMEOUT and d.stop_active and not d.finished and d.launch == 0
    assert "60s" in d.message
    d = decide(lim, Observed(75, issued=7, active=0))
    assert d.phase is Phase.TIMEOUT and d.finished and not d.stop_active
    assert decide(lim, Observed(59.9, issued=7, active=3)).phase is Phase.RUNNING


def test_exhausted_tuner_waits_for_running_trials_then_done() -> None:
    lim = Limits(max_trials=50, concurrency=3, max_seconds=None)
    d = decide(lim, Observed(0, issued=6, active=2, exhausted=True))
    assert d.phase is Phase.RUNNING and d.launch == 0
    d = decide(lim, Observed(0, issued=6, active=0, exhausted=True))
    assert d.phase is Phase.DONE and d.finished and "no new configurations" in d.message


def test_error_wins_and_stops_everything() -> None:
    lim = Limits(max_trials=5, concurrency=3, max_seconds=10)
    d = decide(lim, Observed(100, issued=3, active=2, error="tuner failed: boom"))
    assert d.phase is Phase.ERROR and d.stop_active and d.message == "tuner failed: boom" and not d.finished
    assert decide(lim, Observed(100, issued=3, active=0, error="x")).finished


def test_unlimited_trials_keep_going() -> None:
    lim = Limits(max_trials=None, concurrency=2, max_seconds=None)
    d = decide(lim, Observed(1e6, issued=10_000, active=1))
    assert d.phase is Phase.RUNNING and d.launch == 1


def test_max_failed_trials_ends_error_with_the_last_reason_and_stops_the_rest() -> None:
    lim = Limits(max_trials=50, concurrency=3, max_seconds=None, max_failed=3)
    below = decide(lim, Observed(0, issued=5, active=2, failed=2, last_failure="t-4: exited with code 1"))
    assert below.phase is Phase.RUNNING and below.launch == 1
    d = decide(lim, Observed(0, issued=6, active=2, failed=3, last_failure="t-5: exited with code 1"))
    assert d.phase is Phase.ERROR and d.stop_active and not d.finished and d.launch == 0
    assert d.message == "maxFailedTrialNum (3) reached: 3 trial(s) failed; last: t-5: exited with code 1"
    assert decide(lim, Observed(0, issued=6, active=0, failed=3)).finished


def test_max_failed_wins_over_max_trials_and_absent_means_no_limit() -> None:
    # The last allowed trial was also the limit-th failure: the phase says something went wrong.
    d = decide(Limits(max_trials=3, concurrency=1, max_seconds=None, max_failed=3), Observed(0, issued=3, active=0, failed=3))
    assert d.phase is Phase.ERROR and d.finished
    d = decide(Limits(max_trials=3, concurrency=1, max_seconds=None), Observed(0, issued=3, active=0, failed=3))
    assert d.phase is Phase.DONE


def test_overdue_trials_are_those_running_at_least_the_limit() -> None:
    from autotune_operator.decide import overdue_trials

    since = {"t-0": 100.0, "t-1": 130.0, "t-2": 139.5}
    assert overdue_trials(since, 140.0, 10) == ["t-0", "t-1"]  # 40 s and exactly 10 s
    assert overdue_trials(since, 140.0, None) == []  # no maxTrialSeconds: never
    assert overdue_trials({}, 1e9, 1) == []


def test_objective_goal_ends_done_and_stops_what_still_runs() -> None:
    lim = Limits(max_trials=50, concurrency=3, max_seconds=600)
    goal = Goal(0.98, maximize=True)
    assert decide(lim, Observed(10, issued=5, active=2, best=0.979, best_name="t-2"), goal).launch == 1
    d = decide(lim, Observed(10, issued=5, active=3, best=0.98, best_name="t-4"), goal)
    assert d.phase is Phase.DONE and d.stop_active and not d.finished and d.launch == 0
    assert d.message == "objectiveGoal (0.98) reached by t-4 (0.98)"
    d = decide(lim, Observed(12, issued=5, active=0, best=0.98, best_name="t-4"), goal)
    assert d.phase is Phase.DONE and d.finished and not d.stop_active
    assert decide(lim, Observed(10, issued=5, active=3, best=None), goal).phase is Phase.RUNNING


def test_objective_goal_when_minimizing() -> None:
    lim = Limits(max_trials=None, concurrency=1, max_seconds=None)
    goal = Goal(0.1, maximize=False)
    assert decide(lim, Observed(0, issued=3, active=0, best=0.11, best_name="t-1"), goal).phase is Phase.RUNNING
    assert decide(lim, Observed(0, issued=3, active=0, best=0.09, best_name="t-2"), goal).phase is Phase.DONE


def test_objective_goal_reached_at_the_limits_says_the_goal() -> None:
    # The last allowed trial, or the last second, reached the goal: the run succeeded, and the
    # message says why rather than "all 5 trials ended" or a timeout.
    goal = Goal(0.9, maximize=True)
    d = decide(Limits(max_trials=5, concurrency=1, max_seconds=60), Observed(60, issued=5, active=0, best=0.95, best_name="t-4"), goal)
    assert d.phase is Phase.DONE and d.message.startswith("objectiveGoal (0.9) reached")


def test_objective_goal_then_final_training_after_the_stopped_trials_end() -> None:
    lim = Limits(max_trials=50, concurrency=2, max_seconds=None, final_training=True)
    goal = Goal(0.9, maximize=True)
    d = decide(lim, Observed(0, issued=6, active=2, best=0.93, best_name="t-5"), goal)
    assert d.phase is Phase.RUNNING and d.stop_active and not d.launch_final
    d = decide(lim, Observed(0, issued=6, active=0, best=0.93, best_name="t-5"), goal)
    assert d.launch_final and not d.stop_active


def test_each_ending_names_its_reason() -> None:
    lim = Limits(max_trials=5, concurrency=1, max_seconds=60, max_failed=2)
    assert decide(lim, Observed(0, issued=0, active=0)).reason == "Running"
    assert decide(lim, Observed(0, issued=5, active=0)).reason == "MaxTrialsReached"
    assert decide(lim, Observed(60, issued=3, active=0)).reason == "MaxExecSecondsReached"
    assert decide(lim, Observed(0, issued=3, active=0, failed=2)).reason == "MaxFailedTrialsReached"
    assert decide(lim, Observed(0, issued=3, active=0, error="tuner failed: x")).reason == "ExperimentError"
    assert decide(lim, Observed(0, issued=3, active=0, exhausted=True)).reason == "SearchExhausted"
    assert decide(lim, Observed(0, issued=3, active=0, best=1.0, best_name="t"), Goal(0.5, True)).reason == "GoalReached"


def test_final_training_keeps_the_search_reason_once_it_ends() -> None:
    lim = Limits(max_trials=2, concurrency=1, max_seconds=None, final_training=True)
    assert decide(lim, Observed(0, issued=2, active=0)).reason == "FinalTraining"
    assert decide(lim, Observed(0, issued=2, active=0, final_issued=1, final_active=1)).reason == "FinalTraining"
    assert decide(lim, Observed(0, issued=2, active=0, final_issued=1, final_active=0)).reason == "MaxTrialsReached"


def test_final_training_of_a_front_takes_the_free_slots_only() -> None:
    # A front of 5 to rerun with 2 slots (trialConcurrency 3, 2 devices): 2 start, then one
    # more as each ends; none while the slots are full. All 5 at once overran the devices.
    lim = Limits(max_trials=10, concurrency=3, max_seconds=None, capacity=2, final_training=True)
    d = decide(lim, Observed(0, issued=10, active=0, final_pending=True))
    assert d.launch_final and d.final_room == 2 and d.phase is Phase.RUNNING
    d = decide(lim, Observed(0, issued=10, active=0, final_issued=2, final_active=2, final_pending=True))
    assert not d.launch_final and d.phase is Phase.RUNNING and d.reason == "FinalTraining"
    d = decide(lim, Observed(0, issued=10, active=0, final_issued=2, final_active=1, final_pending=True))
    assert d.launch_final and d.final_room == 1
    d = decide(lim, Observed(0, issued=10, active=0, final_issued=5, final_active=1, final_pending=False))
    assert not d.launch_final and d.phase is Phase.RUNNING
    d = decide(lim, Observed(0, issued=10, active=0, final_issued=5, final_active=0, final_pending=False))
    assert d.phase is Phase.DONE and d.finished


def test_a_stopped_final_trial_leaves_its_configuration_to_train_again() -> None:
    # maxExecSeconds (or a stop) cut it short: no result, so a resume trains it again; a
    # failed or succeeded one, or one still running, is that configuration's final training.
    best = [{"C": 1.0}]
    stopped = [{"name": "e-final-3", "parameters": {"C": 1.0}, "state": "STOPPED"}]
    assert final_pending(best, final_trained(stopped), frozenset())
    for state in ("SUCCEEDED", "FAILED", "RUNNING", "WAITING"):
        assert not final_pending(best, final_trained(stopped + [{"parameters": {"C": 1.0}, "state": state}]), frozenset())


def test_a_pbt_rerun_with_its_own_save_folder_counts_as_its_configurations_final_training() -> None:
    """PBTTuner gives a final rerun its own save_checkpoint_dir (never the best trial's): the
    rerun is matched to the configuration without it, else it never counted as done and
    final training, and every resume, reran the best again and again."""
    best = [{"alpha": 0.01, "load_checkpoint_dir": "/ck/1/0", "save_checkpoint_dir": "/ck/0/1"}]
    rerun = {**best[0], "save_checkpoint_dir": "/ck/final/4"}
    pbt = rerun_own_keys("PBTTuner")
    assert not final_pending(best, final_trained([{"parameters": rerun, "state": "SUCCEEDED"}]), pbt)
    # Other parameters, the starting checkpoint included, still tell configurations apart.
    assert final_pending(best, final_trained([{"parameters": {**rerun, "load_checkpoint_dir": "/ck/0/0"},
                                               "state": "SUCCEEDED"}]), pbt)
    assert final_pending(best, final_trained([{"parameters": {**rerun, "alpha": 0.02}, "state": "SUCCEEDED"}]), pbt)


def test_max_trials_lowered_after_final_training_stops_the_rest_before_it_ends() -> None:
    # An experiment that ended DONE with its final training, resumed (maxTrialNum raised), then
    # lowered below the trials issued while 2 still run and the best did not change (no final
    # training pending): they are stopped first (628106f's rule), not left running under DONE
    # with completionTime set ("final training ended" said finished regardless).
    lim = Limits(max_trials=4, concurrency=2, max_seconds=None, final_training=True)
    d = decide(lim, Observed(0, issued=6, active=2, final_issued=1, final_active=0, final_pending=False))
    assert d.stop_active and not d.finished and d.phase is Phase.DONE
    d = decide(lim, Observed(0, issued=6, active=0, final_issued=1, final_active=0, final_pending=False))
    assert d.finished and not d.stop_active and d.message.endswith("final training ended")
