"""The local executor's record of a stop (kill.json) says its cause as data, and a trial an
earlier run stopped (TrialLaunch.stopped) is not started again when no process of it is left.
Real processes and files."""

from __future__ import annotations

import json
from pathlib import Path

from autotune_operator.decide import overdue_reason
from autotune_operator.executors.base import StopCause
from autotune_operator.executors.local import GONE_MESSAGE, LocalExecutor, read_kill

from tests.unit.local_trials import ended, python_executor, trial, wait_for_file


def executor(tmp: Path, marker: Path, code: str = "") -> LocalExecutor:
    return python_executor(tmp, code or f"import time; open({str(marker)!r}, 'a').write('run\\n'); time.sleep(60)")


def long_only_at_first(marker: Path, then: str = "") -> str:
    """A trial's code: it notes each run in ``marker``, runs ``then``, and runs until stopped
    the first time only (an attempt to interrupt), later exiting 0 at once."""
    return (f"import time; open({str(marker)!r}, 'a').write('run\\n'); {then}"
            "time.sleep(60 if len(open(%r).read().split()) == 1 else 0)" % str(marker))


def test_kill_json_reads_its_cause_and_old_text_only_files(tmp_path: Path) -> None:
    p = tmp_path / "kill.json"
    p.write_text(json.dumps({"key": "k", "reason": "whatever the text", "cause": "overdue"}))
    assert read_kill(p, "k") == ("whatever the text", StopCause.OVERDUE)
    assert read_kill(p, "other") is None  # another experiment's trial
    p.write_text(json.dumps({"key": "k", "reason": "the experiment ended", "cause": "experiment"}))
    assert read_kill(p, "k") == ("the experiment ended", StopCause.EXPERIMENT)
    # Written before the cause was recorded: an overdue stop is still told by its text.
    p.write_text(json.dumps({"key": "k", "reason": overdue_reason(30)}))
    assert read_kill(p, "k") == (overdue_reason(30), StopCause.OVERDUE)
    p.write_text(json.dumps({"key": "k", "reason": "stopped early by the assessor"}))
    assert read_kill(p, "k") == ("stopped early by the assessor", None)
    p.write_text(json.dumps({"key": "k", "reason": "r", "cause": "from a newer version"}))
    assert read_kill(p, "k") == ("r", None)
    p.write_text("{torn")
    assert read_kill(p, "k") is None


def test_a_kill_records_its_cause_and_the_exit_carries_it(tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    ex = executor(tmp_path, marker)
    ex.launch(trial())
    wait_for_file(marker)
    ex.kill("t-0", "ran too long", StopCause.OVERDUE)
    kill = json.loads((tmp_path / "out" / "trials" / "t-0" / "kill.json").read_text())
    assert (kill["reason"], kill["cause"]) == ("ran too long", "overdue")
    [got] = ended(ex)
    assert (got.killed, got.message, got.cause) == (True, "ran too long", StopCause.OVERDUE)


def test_a_trial_stopped_before_the_restart_with_no_process_is_not_started(tmp_path: Path) -> None:
    """Its run died after the tuner server issued it and before its process was recorded;
    by the restart the experiment had stopped it (maxExecSeconds): it ends with that reason,
    as a cluster's gone workload does, and no process of it ever runs."""
    marker = tmp_path / "runs.txt"
    ex = executor(tmp_path, marker)
    ex.launch(trial(stopped="maxExecSeconds (60s) reached after 3 trial(s) ended"))
    [got] = ended(ex)
    assert (got.exit_code, got.killed, got.message) == (None, True, "maxExecSeconds (60s) reached after 3 trial(s) ended")
    assert ex.active() == set()
    assert not (tmp_path / "out" / "trials" / "t-0" / "pid").exists()  # written by launch for each process it starts


def test_a_stopped_trial_whose_process_died_unrecorded_says_it_died_with_the_run(tmp_path: Path) -> None:
    """Its process died with the earlier run (no exit code, no kill.json: a stop would have
    left both). The restarted controller's stop, recomputed from the tuner server's start
    time, would call a trial killed at its first second 'ran longer than maxTrialSeconds':
    what is known locally is said instead, and it is not started again either."""
    tdir = tmp_path / "out" / "trials" / "t-0"
    tdir.mkdir(parents=True)
    from autotune_operator.executors.local import launch_key

    (tdir / "process.json").write_text(json.dumps({"pid": 2 ** 22 + 17, "key": launch_key(trial())}))
    ex = executor(tmp_path, tmp_path / "runs.txt")
    ex.launch(trial(stopped=overdue_reason(30)))
    [got] = ended(ex)
    assert (got.exit_code, got.killed, got.message) == (None, True, GONE_MESSAGE)
    assert ex.active() == set()


def test_an_attempt_the_user_interrupted_runs_again_with_its_files_set_aside(tmp_path: Path) -> None:
    marker = tmp_path / "runs.txt"
    code = long_only_at_first(marker, then="print('attempt', flush=True); ")
    first = executor(tmp_path, marker, code)
    first.launch(trial())
    wait_for_file(marker)
    first.kill("t-0", "interrupted by the user", StopCause.USER)
    [got] = ended(first)
    assert got.cause is StopCause.USER
    # The resumed run: the attempt's end is reported as the user's stop (the controller then
    # requeues the trial, Engine.requeue, in case the interrupted run could not), and the
    # launch that follows starts it anew.
    second = executor(tmp_path, marker, code)
    second.launch(trial())
    [reported] = ended(second)
    assert (reported.killed, reported.cause) == (True, StopCause.USER)
    assert marker.read_text() == "run\n"
    second.launch(trial())
    [again] = ended(second)
    assert (again.exit_code, again.killed) == (0, False)
    tdir = tmp_path / "out" / "trials" / "t-0"
    assert json.loads((tdir / "interrupted" / "1" / "kill.json").read_text())["cause"] == "user"
    assert not (tdir / "kill.json").exists()
    assert (tdir / "trial.log").read_text() == "attempt\n"  # only the new attempt's output
    assert marker.read_text() == "run\nrun\n"


def test_a_trial_a_ctrl_c_reached_is_interrupted_not_failed(tmp_path: Path) -> None:
    """SIGINT to the trial's processes (a Ctrl-C that reached them, not AutoTune's stop): the
    Python trial dies of KeyboardInterrupt with code 1, which alone would read as a failure
    of its code. Its supervisor got the signal too and recorded it: the end is the user's stop."""
    import os
    import signal

    marker = tmp_path / "runs.txt"
    # As a training launcher does: a KeyboardInterrupt becomes exit code 1.
    code = (f"import sys, time\ntry:\n    open({str(marker)!r}, 'a').write('run\\n'); time.sleep(60)\n"
            "except KeyboardInterrupt:\n    sys.exit(1)")
    ex = executor(tmp_path, marker, code)
    ex.launch(trial())
    wait_for_file(marker)
    pid = int((tmp_path / "out" / "trials" / "t-0" / "pid").read_text())
    os.killpg(pid, signal.SIGINT)
    [got] = ended(ex)
    assert (got.exit_code, got.killed, got.cause) == (1, True, StopCause.USER)
    assert got.message is not None and "SIGINT" in got.message and "exited with code 1" in got.message
    record = json.loads((tmp_path / "out" / "trials" / "t-0" / "process.json").read_text())
    assert (record["exit"], record["signal"]) == (1, "SIGINT")


def test_a_trial_stopped_by_the_executors_shutdown_is_an_interruption_on_resume(tmp_path: Path) -> None:
    """`autotune run` stopped on an error (a full disk) and shut its executor down: its trials'
    attempts were cut by the run, not ended by themselves. The resumed run reports them as the
    user's stop (the controller requeues them) and the next launch starts each anew."""
    marker = tmp_path / "runs.txt"
    code = long_only_at_first(marker)
    first = executor(tmp_path, marker, code)
    first.launch(trial())
    wait_for_file(marker)
    first.shutdown()
    assert first.active() == set()
    second = executor(tmp_path, marker, code)
    second.launch(trial())
    [reported] = ended(second)
    assert (reported.killed, reported.cause) == (True, StopCause.USER)
    assert reported.message is not None and reported.message.startswith("interrupted: 'autotune run' stopped before it")
    second.launch(trial())
    [again] = ended(second)
    assert (again.exit_code, again.killed) == (0, False) and marker.read_text() == "run\nrun\n"
