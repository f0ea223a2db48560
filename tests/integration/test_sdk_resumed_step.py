"""A script resumed from a checkpoint tells the SDK the step it resumed at
(report_intermediate_result(metric, step=k)), against a real tuner server process and real SDK
processes: the curve keeps the killed run's steps before k and goes on with the resumed run's;
at the curve's next step the resumed run takes over too, also after a server restart; a step
that would leave a gap is refused with an error naming it, and nothing is recorded."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import TRIALS, ServerProcess
from tests.integration.test_sdk_replaced_final import held, restart
from tests.integration.test_sdk_restarted_process import new_trial, run, trial, trial_env


def test_a_resumed_script_continues_the_curve_at_the_step_it_names(server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    first = held(trial_env(server, token, tid, RUN_VALUES="0.1,0.2,0.3"), tmp_path / "ready")
    first.send_signal(signal.SIGKILL)  # killed after epoch 2's report; its checkpoint holds epoch 1
    first.wait()
    run(trial_env(server, token, tid, RUN_VALUES="0.5,0.6", RUN_FROM_STEP="2"))
    # Before, it could only report from step 0: the curve was cut to [0.5, 0.6].
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.1, 0.2, 0.5, 0.6], 0.6)


def test_a_run_resumed_at_the_curves_next_step_replaces_the_earlier_one(server: ServerProcess, tmp_path: Path) -> None:
    token, tid = new_trial(server)
    release = tmp_path / "release"
    old = held(trial_env(server, token, tid, RUN_VALUES="0.1,0.2", RUN_RELEASE=str(release)), tmp_path / "ready")
    try:
        resumed = held(trial_env(server, token, tid, RUN_VALUES="0.3", RUN_FROM_STEP="2"), tmp_path / "resumed")
        resumed.send_signal(signal.SIGKILL)
        resumed.wait()
        assert trial(server, tid)["intermediate"] == [0.1, 0.2, 0.3]
        restart(server)  # the takeover is known from the stored events
        release.touch()  # the earlier process goes on: its final result is not the trial's
        assert old.wait(timeout=120) == 0
    finally:
        if old.poll() is None:
            old.send_signal(signal.SIGKILL)
            old.wait()
    t = trial(server, tid)
    assert (t["intermediate"], t["value"]) == ([0.1, 0.2, 0.3], None)


def test_a_step_beyond_the_curve_is_refused_naming_it(server: ServerProcess) -> None:
    token, tid = new_trial(server)
    run(trial_env(server, token, tid, RUN_VALUES="0.1"))
    gap = subprocess.run([sys.executable, str(TRIALS / "rerun_trial.py")], capture_output=True, text=True, timeout=300,
                         env=trial_env(server, token, tid, RUN_VALUES="0.5", RUN_FROM_STEP="3"))
    assert gap.returncode != 0
    assert "report_intermediate_result(step=3) was refused" in gap.stderr and "gap" in gap.stderr, gap.stderr[-2000:]
    assert "the next step of" in gap.stderr and "is 1" in gap.stderr, gap.stderr[-2000:]
    assert trial(server, tid)["intermediate"] == [0.1]


def test_a_promoted_trial_naming_its_checkpoints_epoch_is_told_its_curve_starts_at_0(server: ServerProcess,
                                                                                      tmp_path: Path) -> None:
    # A promoted trial continues another trial's checkpoint (get_resume_dir) but is a new trial
    # with an empty curve: a loop resumed with step=epoch, as for its own checkpoint, is refused,
    # and before the error said only that the step leaves a gap.
    token, tid = new_trial(server)
    checkpoint = tmp_path / "checkpoint-of-the-lower-rung"
    checkpoint.mkdir()
    promoted = subprocess.run([sys.executable, str(TRIALS / "rerun_trial.py")], capture_output=True, text=True,
                              timeout=300, env=trial_env(server, token, tid, RUN_VALUES="0.5", RUN_FROM_STEP="3",
                                                         AUTOTUNE_RESUME_DIR=str(checkpoint)))
    assert promoted.returncode != 0
    assert "promoted from another trial's checkpoint" in promoted.stderr, promoted.stderr[-2000:]
    assert "starts at step 0" in promoted.stderr and "is 0" in promoted.stderr, promoted.stderr[-2000:]
    assert trial(server, tid)["intermediate"] == []
