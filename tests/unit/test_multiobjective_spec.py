"""spec.objectives: accepted with a multi-objective tuner, refused with a clear line otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.spec import SpecError, validate_manifest
from tuner_server.engine import ExperimentConfig
from tuner_server.history import OptimizeMode
from tuner_server.tuners import multi_objective_tuner_names

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed-001-example.yaml"
TWO = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "latency", "optimizeMode": "minimize"}]


def doc(tuner: dict[str, Any] | None = None, objectives: Any = TWO, **spec: Any) -> dict[str, Any]:
    d = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    d["spec"]["tuner"] = tuner or {"builtinTunerName": "MOTPE"}
    if objectives is not None:
        d["spec"]["objectives"] = objectives
    d["spec"].update(spec)
    return d


def problems(d: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate_manifest(d)
    return e.value.problems


def test_valid_multi_objective_experiment():
    exp = validate_manifest(doc())
    assert [o.name for o in exp.spec.objectives or []] == ["accuracy", "latency"]
    assert exp.optimize_mode is OptimizeMode.MAXIMIZE and exp.mode_source == "spec.objectives[0]"
    assert not any("optimize_mode" in w for w in exp.warnings)
    config = ExperimentConfig.model_validate(exp.tuner_config())
    assert [(o.name, o.optimizeMode) for o in config.objectives or []] == [
        ("accuracy", OptimizeMode.MAXIMIZE), ("latency", OptimizeMode.MINIMIZE)]
    assert "optimize_mode" not in exp.class_args


def test_single_objective_config_has_no_objectives_key():
    exp = validate_manifest(doc({"builtinTunerName": "TPE", "classArgs": '{"optimize_mode": "minimize"}'}, objectives=None))
    assert "objectives" not in exp.tuner_config()
    assert exp.optimize_mode is OptimizeMode.MINIMIZE


@pytest.mark.parametrize("name", ["Random", "GridSearch", "MOTPE"])
def test_multi_objective_tuners_accept(name: str):
    assert validate_manifest(doc({"builtinTunerName": name})).algorithm == name


@pytest.mark.parametrize("name", ["TPE", "Anneal", "Evolution", "GPTuner"])
def test_single_objective_tuners_refuse(name: str):
    (line,) = problems(doc({"builtinTunerName": name}))
    assert line.startswith(f"spec.tuner: tuner {name} optimizes a single objective but spec.objectives names 2")
    assert str(multi_objective_tuner_names()) in line


def test_one_objective_is_refused():
    (line,) = problems(doc(objectives=TWO[:1]))
    assert line.startswith("spec.objectives: needs at least 2 objectives")


def test_duplicate_names():
    (line,) = problems(doc(objectives=[TWO[0], {"name": "accuracy", "optimizeMode": "minimize"}]))
    assert line.startswith("spec.objectives: objective name(s) ['accuracy'] appear more than once")


def test_bad_mode_names_the_item():
    lines = problems(doc(objectives=[TWO[0], {"name": "latency", "optimizeMode": "minimise"}]))
    assert any(line.startswith("spec.objectives[1].optimizeMode:") and "'minimise'" in line for line in lines), lines


def test_unknown_key_and_missing_name():
    lines = problems(doc(objectives=[TWO[0], {"optimizeMode": "minimize", "goal": 0.9}]))
    assert "spec.objectives[1].name: is required" in lines
    assert "spec.objectives[1].goal: unknown field (check its spelling)" in lines


def test_optimize_mode_conflicts():
    lines = problems(doc({"builtinTunerName": "Random", "classArgs": '{"optimize_mode": "maximize"}'}))
    assert lines == [
        "spec.tuner.classArgs.optimize_mode: conflicts with spec.objectives, which gives each objective its "
        "optimizeMode; remove it"
    ]


def test_assessor_is_refused():
    lines = problems(doc(assessor={"builtinAssessorName": "Medianstop"}))
    assert any(line.startswith("spec.assessor: early stopping compares one metric") for line in lines), lines
