"""spec.metricStrategies (Katib's objective.metricStrategies): which logged value of a
metric becomes the trial's final one, over real HTTP with the MLflow requests a trial's
client sends (the same path collected output metrics take)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autotune_operator.spec import SpecError, validate_manifest
from tests.unit.test_mlflow_runs import Setup, _doc
from tuner_server.engine import Engine
from tuner_server.embedded import EmbeddedServer
from tuner_server.history import TrialState
from tuner_server.store import Store

ADMIN = "admin-token-0123456789"


def _run(tmp_path: Path, strategies: list[dict[str, str]] | None, curve: list[tuple[str, Any]],
         **cfg: Any) -> dict[str, Any]:
    s = Setup(tmp_path, metricStrategies=strategies, **cfg)
    try:
        t = s.trial()
        steps: dict[str, int] = {}
        for key, value in curve:
            t.log(key, value, step=steps.setdefault(key, 0))
            steps[key] += 1
        name = s.view(t)["name"]
        assert s.engine.end("exp.one", name, 0) is TrialState.SUCCEEDED
        return s.view(t)
    finally:
        s.close()


CURVE = [("accuracy", 0.5), ("loss", 0.9), ("accuracy", 0.8), ("loss", 0.2), ("accuracy", 0.7), ("loss", 0.4)]


def test_without_strategies_the_latest_values_are_final(tmp_path: Path) -> None:
    v = _run(tmp_path, None, CURVE, primaryMetric="accuracy")
    assert v["value"] == 0.7 and v["metrics"] == {"default": 0.7, "accuracy": 0.7, "loss": 0.4}


def test_max_for_the_objective_and_min_for_another_metric(tmp_path: Path) -> None:
    v = _run(tmp_path, [{"name": "accuracy", "value": "max"}, {"name": "loss", "value": "min"}], CURVE,
             primaryMetric="accuracy")
    assert v["value"] == 0.8 and v["metrics"] == {"default": 0.8, "accuracy": 0.8, "loss": 0.2}
    assert v["intermediate"] == [0.5, 0.8, 0.7]  # the curve is every value, whatever the strategy


def test_a_nan_is_never_the_min_or_max(tmp_path: Path) -> None:
    v = _run(tmp_path, [{"name": "accuracy", "value": "min"}], [("accuracy", 0.6), ("accuracy", "NaN"),
                                                                ("accuracy", 0.9)], primaryMetric="accuracy")
    assert v["value"] == 0.6


def test_strategies_apply_to_each_objective(tmp_path: Path) -> None:
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "loss", "optimizeMode": "minimize"}]
    v = _run(tmp_path, [{"name": "loss", "value": "min"}], CURVE, objectives=objectives)
    assert v["metrics"] == {"accuracy": 0.7, "loss": 0.2}


def test_the_strategy_survives_a_server_restart(tmp_path: Path) -> None:
    s = Setup(tmp_path, primaryMetric="accuracy", metricStrategies=[{"name": "accuracy", "value": "max"}])
    t = s.trial()
    name = s.view(t)["name"]
    for step, acc in enumerate([0.4, 0.9, 0.6]):
        t.log("accuracy", acc, step=step)
    s.close()
    s.engine.store.close()
    engine = Engine(Store(s.db))  # replays the logged values from the store
    with EmbeddedServer(engine, ADMIN):
        assert engine.end("exp.one", name, 0) is TrialState.SUCCEEDED
    assert next(x for x in engine.trials_view("exp.one") if x["name"] == name)["value"] == 0.9


def test_metric_strategies_in_the_spec() -> None:
    exp = validate_manifest(_doc(primaryMetric="accuracy", metricStrategies=[{"name": "accuracy", "value": "max"}]))
    assert exp.tuner_config()["metricStrategies"] == [{"name": "accuracy", "value": "max"}]
    assert "metricStrategies" not in validate_manifest(_doc(primaryMetric="a")).tuner_config()
    for bad, where in (
        (dict(metricStrategies=[{"name": "accuracy", "value": "max"}]), "spec.metricStrategies: choose among"),
        (dict(primaryMetric="a", metricStrategies=[{"name": "a", "value": "best"}]), "spec.metricStrategies[0].value"),
        (dict(primaryMetric="a", metricStrategies=[{"name": "a", "value": "max"}, {"name": "a", "value": "min"}]),
         "spec.metricStrategies[1].name: 'a' is listed twice"),
        (dict(primaryMetric="a", metricStrategies=[{"name": "", "value": "max"}]), "spec.metricStrategies[0].name"),
    ):
        with pytest.raises(SpecError) as e:
            validate_manifest(_doc(**bad))
        assert len(e.value.problems) == 1 and e.value.problems[0].startswith(where), e.value.problems


def test_an_early_stopped_trial_takes_its_curves_value_by_the_strategy(tmp_path: Path) -> None:
    """Its value is chosen among its curve as a succeeded trial's is (Katib does so too): with
    max, its best accuracy, not the last one it reached before the assessor stopped it. A
    converted Katib experiment always has the objective's strategy written out."""
    for strategies, expected in (([{"name": "accuracy", "value": "max"}], 0.8), (None, 0.6)):
        s = Setup(tmp_path / str(expected), primaryMetric="accuracy", metricStrategies=strategies)
        try:
            t = s.trial()
            name = s.view(t)["name"]
            for step, acc in enumerate([0.5, 0.8, 0.6]):
                t.log("accuracy", acc, step=step)
            s.engine.request_stop("exp.one", name, "stopped early by the assessor")
            assert s.engine.end("exp.one", name, -15, killed=True) is TrialState.EARLY_STOPPED
            assert s.view(t)["value"] == expected
        finally:
            s.close()
