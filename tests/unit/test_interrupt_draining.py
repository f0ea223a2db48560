"""Ctrl-C while a trial that exited by itself still waits for its output (its final read
failed: the controller keeps it in `draining` for a later pass): there is no later pass, so
it ends with what was recorded. It was dropped from `draining` and then requeued as if
Ctrl-C had cut it: a finished attempt thrown away and run again. A real engine and store; a
scripted executor whose final log read fails."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from autotune_operator.controller import ExperimentController
from autotune_operator.executors.base import LogChunk, TrialExit
from autotune_operator.spec import validate_manifest
from tests.unit.test_stop_cause import MANIFEST, T0, ScriptedExecutor, state
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine
from tuner_server.store import Store


class FailingFinalRead(ScriptedExecutor):
    """Each trial printed one line; a final read of its output fails (None: try again later)."""

    def read_log(self, trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None:
        if final:
            return None
        return LogChunk(("acc=0.5",), 1) if cursor is None else LogChunk((), cursor)


def test_ctrl_c_ends_a_trial_waiting_for_its_output_instead_of_requeueing_it(tmp_path: Path) -> None:
    doc = copy.deepcopy(MANIFEST)
    doc["spec"].update({"metricsCollector": {"kind": "StdOut"}, "primaryMetric": "acc"})
    doc["spec"]["tuner"]["classArgs"] = '{"optimize_mode": "maximize"}'
    engine = Engine(Store(tmp_path / "s.db"), clock=lambda: T0)
    ex = FailingFinalRead()
    c = ExperimentController(validate_manifest(doc), "s", InProcessClient(engine), ex, "http://x", clock=lambda: T0)
    c.start()
    c.step()
    a, b = ex.launches
    c.step()  # reads both logs once: acc=0.5 recorded
    ex.end(TrialExit(b, 0))  # b finished; its final read fails, so its end waits
    c.step()
    assert b in c.state.draining
    c.interrupt("interrupted by the user")
    assert state(engine, a) == ("WAITING", "interrupted by the user")  # cut by Ctrl-C: runs again
    got = engine.trial("s", b).record
    assert got.state.value == "SUCCEEDED" and got.value == 0.5, (got.state, got.value)
