"""The engine's rule for an assessor that raises: the point is kept, the answer is 'no
decision' (the trial goes on, no error to the caller) and the failure is recorded once per
trial as an 'assessor_failed' event naming the assessor and the error. Before 5cd8aa6 the
report raised AlgorithmFailure (a 500 over HTTP: the SDK then ended the trial). No built-in
assessor is known to raise any more (the crash found, Curvefitting's epoch_num beyond float
range, is refused at create), so a test-defined one stands in, set on the hosted experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tuner_server.assessors import Assessor
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.history import TrialRecord
from tuner_server.store import Store


class Raising(Assessor):
    name = "Raising"

    def configure(self, args: dict[str, Any]) -> None:
        pass

    def should_stop(self, trial: TrialRecord, history: Sequence[TrialRecord]) -> bool:
        raise ZeroDivisionError("float division by zero")


def test_an_assessor_that_raises_keeps_the_point_and_the_trial(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    e = Engine(store, clock=lambda: 1.0)
    config = ExperimentConfig(searchSpace=json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}),
                              tuner={"name": "Random"}, assessor={"name": "Medianstop"})
    e.register("e1", "e1", config)
    e.get("e1").assessor = Raising({})
    a = e.suggest("e1")
    assert a is not None and hasattr(a, "trial_id")
    tid = a.trial_id
    stops = [e.report_intermediate("e1", tid, v, step) for step, v in enumerate([0.1, 0.2, 0.3])]
    assert stops == [False, False, False]
    trial = e.trial("e1", tid)
    assert trial.record.intermediate == [0.1, 0.2, 0.3] and not trial.record.state.ended
    failures = store.trial_events("e1", tid, "assessor_failed")
    assert len(failures) == 1, failures
    assert failures[0]["payload"] == {"assessor": "Raising", "error": "ZeroDivisionError: float division by zero"}
