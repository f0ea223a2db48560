"""A trial's signal handler that reports (say, its last metric on SIGTERM before a
preemption) may run while the interrupted code is inside a report: the SDK's report lock
(which keeps threads' steps in order) must not deadlock it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import pytest

from tests.unit.stub_server import answer_json, read_json, serving

SDK = Path(__file__).resolve().parents[2] / "sdk"


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict] = []
    trial_pid: list[int] = []

    def do_POST(self) -> None:  # noqa: N802
        body = read_json(self)
        self.seen.append(body)
        if body.get("step") == 0:
            # The trial is now blocked in its first report: interrupt it there, and answer
            # only once its handler's own report has arrived.
            os.kill(self.trial_pid[0], signal.SIGUSR1)
            for _ in range(200):
                if len(self.seen) > 1:
                    break
                threading.Event().wait(0.05)
        answer_json(self, {"stop": False})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


TRIAL = textwrap.dedent("""
    import signal, sys, time
    import autotune

    def on_signal(signum, frame):
        autotune.report_intermediate_result(0.25)

    signal.signal(signal.SIGUSR1, on_signal)
    print("ready", flush=True)
    sys.stdin.readline()
    autotune.report_intermediate_result(0.5)
    autotune.report_intermediate_result(0.75)
    print("done", flush=True)
""")


def test_a_report_from_a_signal_handler_inside_a_report_does_not_hang(stub: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(SDK), "AUTOTUNE_SERVER_URL": stub, "AUTOTUNE_TOKEN": "t",
           "AUTOTUNE_EXPERIMENT_ID": "e", "AUTOTUNE_TRIAL_ID": "e-0", "AUTOTUNE_REPORT_TIMEOUT": "20"}
    proc = subprocess.Popen([sys.executable, "-c", TRIAL], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        _Handler.seen.clear()
        _Handler.trial_pid[:] = [proc.pid]
        # A hang (a non-reentrant lock) would end only at this safety limit.
        out, err = proc.communicate("go\n", timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the trial hung: its signal handler's report waited for the report it interrupted")
    assert proc.returncode == 0, err
    assert out.strip() == "done"
    assert [b["metric"] for b in _Handler.seen] == [0.5, 0.25, 0.75]
