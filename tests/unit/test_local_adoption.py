"""The local executor of a restarted `autotune run` (here: a second LocalExecutor on the
same folder) adopts a trial process still running, takes the recorded exit code of one that
ended unwatched, and starts fresh only a trial with no record of this experiment. Real
processes; with /proc (Linux) and without it (as on macOS: signal 0, no environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune_operator.executors import local
from autotune_operator.executors.local import LocalExecutor

from tests.unit.local_trials import ended, python_executor, trial, wait_for_file


def executor(tmp: Path, marker: Path) -> LocalExecutor:
    """Its trial exits 5 once the test creates ``tmp``/release (at most 60 s): it is still
    running when a test needs it to be, however slow the machine (a fixed 1 s was not)."""
    release = tmp / "release"
    return python_executor(tmp, f"import os, sys, time; open({str(marker)!r}, 'a').write('run\\n'); t = time.monotonic()\n"
                                f"while not os.path.exists({str(release)!r}) and time.monotonic() - t < 60: time.sleep(0.02)\n"
                                "sys.exit(5)")


def release(tmp: Path) -> None:
    (tmp / "release").touch()


@pytest.fixture(params=[True, False], ids=["proc", "no-proc"])
def has_proc(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(local, "_HAS_PROC", request.param)
    return bool(request.param)


def test_a_running_trial_is_adopted_and_an_ended_one_reports_its_code(tmp_path: Path, has_proc: bool) -> None:
    marker = tmp_path / "runs.txt"
    first = executor(tmp_path, marker)
    first.launch(trial())
    record = tmp_path / "out" / "trials" / "t-0" / "process.json"
    wait_for_file(marker)
    pid = json.loads(record.read_text())["pid"]
    # A second run while it still runs: adopted, not started again.
    second = executor(tmp_path, marker)
    second.launch(trial())
    assert second.active() == {"t-0"}
    release(tmp_path)
    assert [(e.exit_code, e.killed, e.message) for e in ended(second)] == [(5, False, None)]
    assert json.loads(record.read_text()) == {"pid": pid, "key": local.launch_key(trial()), "exit": 5}
    ended(first)
    # A third run after it ended unwatched: its recorded code, still no new process.
    third = executor(tmp_path, marker)
    third.launch(trial())
    assert [(e.exit_code, e.killed) for e in ended(third, timeout=1)] == [(5, False)]
    assert marker.read_text() == "run\n"


def test_another_experiments_record_starts_the_trial_afresh(tmp_path: Path, has_proc: bool) -> None:
    marker = tmp_path / "runs.txt"
    release(tmp_path)
    first = executor(tmp_path, marker)
    first.launch(trial())
    ended(first)
    fresh = executor(tmp_path, marker)
    fresh.launch(trial(token="another-experiments-token"))
    assert [e.exit_code for e in ended(fresh)] == [5]
    assert marker.read_text() == "run\nrun\n"


def test_a_process_gone_without_a_record_ends_stopped_saying_so(tmp_path: Path, has_proc: bool) -> None:
    marker = tmp_path / "runs.txt"
    tdir = tmp_path / "out" / "trials" / "t-0"
    tdir.mkdir(parents=True)
    # What a supervisor killed with `autotune run` leaves: its start, no end (pid of a dead process).
    release(tmp_path)
    dead = executor(tmp_path, marker)
    dead.launch(trial())
    ended(dead)
    (tdir / "process.json").write_text(json.dumps({"pid": 2**22 + 7, "key": local.launch_key(trial())}))
    again = executor(tmp_path, marker)
    again.launch(trial())
    [ex] = ended(again, timeout=1)
    assert (ex.exit_code, ex.killed, ex.message) == (None, True, local.GONE_MESSAGE)
    assert marker.read_text() == "run\n"
