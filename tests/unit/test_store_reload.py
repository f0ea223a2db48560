"""A restarted engine (the tuner server, or a rerun `autotune run`) shows every trial exactly
as the engine that recorded it did: the history, not the process, is the source of truth."""

from __future__ import annotations

from pathlib import Path

from tuner_server.engine import Assignment, Engine, ExperimentConfig
from tuner_server.store import Store

SPACE = '{"x": {"_type": "uniform", "_value": [0, 1]}}'


def test_trials_read_back_equal_the_trials_recorded(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    e = Engine(Store(db), clock=lambda: 1.0)
    e.register("e1", "e1", ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}}))
    finals = [0.5, {"default": 0.7, "loss": 0.2}]  # a plain number and a dict, as NNI's SDK allows
    for i, metric in enumerate([*finals, None]):
        a = e.suggest("e1", i)
        assert isinstance(a, Assignment)
        e.started("e1", a.trial_id)
        e.report_intermediate("e1", a.trial_id, 0.1 * (i + 1))
        if metric is not None:
            e.report_final("e1", a.trial_id, metric)
            e.end("e1", a.trial_id, 0)
    before = e.trials_view("e1")
    after = Engine(Store(db), clock=lambda: 2.0).trials_view("e1")
    assert after == before
    assert [t["metrics"] for t in after] == [None, {"default": 0.7, "loss": 0.2}, None]
