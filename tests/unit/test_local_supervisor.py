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


def supervise_with_notes(tmp: Path, *command: str) -> tuple[subprocess.Popen[bytes], int]:
    """As the executor starts it: with a notes pipe (NOTES_FD) for what it cannot write to disk."""
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-I", "-S", SUPERVISOR, str(tmp / "process.json"), str(os.getpid()), "k1", str(w),
                          "--", *command], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         pass_fds=(w,))
    os.close(w)
    return p, r


def read_all(fd: int) -> str:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return data.decode()


def test_an_exit_code_that_cannot_be_recorded_is_passed_on_and_the_io_error_said(tmp_path: Path) -> None:
    """The trial exits 0 after its record path became unwritable (a directory: as root, file
    modes would not stop the write). The supervisor still exits 0, as the trial did, and
    names the I/O error on the notes pipe and in the log, instead of dying with code 1."""
    rec = tmp_path / "process.json"
    p, notes = supervise_with_notes(tmp_path, sys.executable, "-c",
                                    f"import os; os.remove({str(rec)!r}); os.mkdir({str(rec)!r})")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    note = json.loads(read_all(notes))
    assert "its exit code (0) could not be recorded" in note["unrecorded"] and "Is a directory" in note["unrecorded"]
    assert b"Is a directory" in out and b"Traceback" not in out
    assert not list(tmp_path.glob("*.tmp"))  # no partial record left behind


def test_a_start_that_cannot_be_recorded_does_not_run_the_trial_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "process.json").mkdir()
    marker = tmp_path / "ran"
    p, notes = supervise_with_notes(tmp_path, sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 127 and not marker.exists()
    note = json.loads(read_all(notes))
    assert "could not be written" in note["error"] and "Is a directory" in note["error"], note
