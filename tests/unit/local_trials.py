"""Shared set-up for the local executor's unit tests (test_local_stops.py,
test_local_adoption.py): trial t-0 of experiment e, an executor whose trial is a Python
one-liner, and waits for what its real processes do."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from autotune_operator.executors.base import TrialExit, TrialLaunch
from autotune_operator.executors.local import LocalExecutor, ProcessTemplate


def trial(token: str = "tok", stopped: str | None = None) -> TrialLaunch:
    """Trial t-0 (``token``: its experiment's; another token is another experiment's launch key)."""
    env = {"AUTOTUNE_TOKEN": token, "AUTOTUNE_EXPERIMENT_ID": "e", "AUTOTUNE_TRIAL_ID": "t-0",
           "AUTOTUNE_SERVER_URL": "http://127.0.0.1:9"}
    return TrialLaunch("t-0", 0, {}, env, stopped=stopped)


def python_executor(tmp: Path, code: str) -> LocalExecutor:
    """A run's executor on ``tmp``/out whose trials run ``python -c code``."""
    return LocalExecutor(ProcessTemplate((sys.executable, "-c", code), {}, str(tmp)), tmp / "out")


def ended(ex: LocalExecutor, timeout: float = 30) -> list[TrialExit]:
    """The first trial ends the executor reports (within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = ex.poll()
        if got:
            return got
        ex.wait(0.1)
    raise AssertionError("no exit")


def wait_for_file(path: Path, timeout: float = 30) -> None:
    """Until the trial's process wrote ``path`` (it runs: it has passed its start-up). Written,
    not only there: ``open(path, 'a').write(...)`` creates the file before it writes, and a
    trial stopped in between leaves it empty, so its next run took itself for the first."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.02)
