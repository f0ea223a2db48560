"""The local trial supervisor: it records how a trial ended, and ends the same way itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from autotune_operator.executors.local import SUPERVISOR


def supervise(tmp: Path, *command: str, parent: int | None = None) -> subprocess.Popen[bytes]:
    record = tmp / "process.json"
    return subprocess.Popen([sys.executable, "-I", "-S", SUPERVISOR, str(record), str(parent or os.getpid()), "k1", "--",
                             *command], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def record(tmp: Path) -> dict:
    return json.loads((tmp / "process.json").read_text())


def test_exit_code_is_recorded_and_passed_on(tmp_path: Path) -> None:
    p = supervise(tmp_path, sys.executable, "-c", "import sys; sys.exit(3)")
    assert p.wait(timeout=30) == 3
    rec = record(tmp_path)
    assert rec["exit"] == 3 and rec["key"] == "k1" and rec["pid"] == p.pid


def test_a_trial_killed_by_a_signal_is_recorded_and_the_supervisor_dies_of_it(tmp_path: Path) -> None:
    p = supervise(tmp_path, sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert record(tmp_path)["exit"] == -signal.SIGKILL


def test_sigterm_to_the_group_reaches_the_trial_and_is_recorded(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = supervise(tmp_path, sys.executable, "-c",
                  f"import pathlib, time; pathlib.Path({str(ready)!r}).write_text('1'); time.sleep(60)")
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGTERM)
    assert p.wait(timeout=30) == -signal.SIGTERM
    assert record(tmp_path)["exit"] == -signal.SIGTERM


def test_a_command_that_cannot_start_is_recorded_with_the_reason(tmp_path: Path) -> None:
    p = supervise(tmp_path, "no-such-command-xyz")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 127
    rec = record(tmp_path)
    assert rec["exit"] is None and "no-such-command-xyz" in rec["error"]
    assert b"cannot start" in out


def test_an_orphan_whose_controller_died_before_it_was_recorded_does_not_run(tmp_path: Path) -> None:
    """Started by a controller that is gone (here: another pid): the next run starts the
    trial itself, so this one must not run it too."""
    marker = tmp_path / "ran"
    p = supervise(tmp_path, sys.executable, "-c", f"open({str(marker)!r}, 'w')", parent=1)
    assert p.wait(timeout=30) == 0
    assert not marker.exists() and not (tmp_path / "process.json").exists()
