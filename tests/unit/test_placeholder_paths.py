"""Dotted placeholders (${parameters.a.b}) are checked against the values trials can get:
a path some trial's value has is accepted, one no value has is refused naming the field
(it failed every trial at its start: executors/base.py substitute raised KeyError)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.spec import SpecError, validate_manifest

SEED = yaml.safe_load((Path(__file__).resolve().parents[1] / "fixtures" / "seed-001-example.yaml").read_text())
SPACE = {
    "optimizer": {"_type": "choice", "_value": [
        {"_name": "adam"},
        {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.1, 0.9]},
         "schedule": {"_type": "choice", "_value": [{"_name": "step", "gamma": {"_type": "uniform", "_value": [0.1, 0.5]}}]}},
    ]},
    "layers": {"_type": "choice", "_value": [{"depth": 2, "width": 64}, {"depth": 3, "width": 32}]},
    "lr": {"_type": "loguniform", "_value": [0.0001, 0.1]},
}


def manifest(arg: str) -> dict[str, Any]:
    doc = copy.deepcopy(SEED)
    doc["spec"]["searchSpace"] = json.dumps(SPACE)
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"] = ["python3", arg]
    return doc


@pytest.mark.parametrize("ref", ["optimizer", "optimizer._name", "optimizer.momentum", "optimizer.schedule._name",
                                 "optimizer.schedule.gamma", "layers", "layers.depth", "lr"])
def test_a_path_some_trial_has_is_accepted(ref: str):
    validate_manifest(manifest(f"--x=${{parameters.{ref}}}"))


@pytest.mark.parametrize("ref,missing", [("lr.value", "'lr' has no 'value'"),
                                         ("optimizer.momentun", "'optimizer' has no 'momentun'"),
                                         ("optimizer.schedule.beta", "'optimizer' has no 'schedule.beta'"),
                                         ("optimizer._name.x", "'optimizer' has no '_name.x'"),
                                         ("layers.height", "'layers' has no 'height'")])
def test_a_path_no_trial_has_is_refused(ref: str, missing: str):
    with pytest.raises(SpecError) as e:
        validate_manifest(manifest(f"--x=${{parameters.{ref}}}"))
    assert e.value.problems == [f"spec.trainingConfig.tasks[0].template.spec.containers[0].command[1]: "
                                f"${{parameters.{ref}}} is never a trial's value: {missing} in any of its values"]


@pytest.mark.parametrize("name", ["学习率", "learning rate", "lr (base)"])
def test_any_parameter_name_can_be_a_placeholder(name: str) -> None:
    """A search space may name a parameter in Chinese (the manual's language) or with a space;
    ${parameters.学习率} was refused as 'looks like a parameter placeholder; write
    ${parameters.NAME}', which it already was."""
    from autotune_operator.executors.base import substitute

    doc = copy.deepcopy(SEED)
    doc["spec"]["searchSpace"] = json.dumps({name: {"_type": "uniform", "_value": [0, 1]}})
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"] = [
        "python3", f"--lr=${{parameters.{name}}}"]
    validate_manifest(doc)
    assert substitute(f"--lr=${{parameters.{name}}}", {name: 0.5}) == "--lr=0.5"


def test_a_mapping_key_whose_value_is_null_is_still_a_path_trials_have() -> None:
    """substitute() fills ${parameters.clip.max} with `null` when the option's max is null: the
    key is there. It was refused as 'never a trial's value' (a null counted as a missing key)."""
    from autotune_operator.executors.base import substitute

    doc = manifest("--clip=${parameters.clip.max}")
    doc["spec"]["searchSpace"] = json.dumps({"clip": {"_type": "choice", "_value": [{"max": None}, {"max": None, "p": 2}]}})
    validate_manifest(doc)
    assert substitute("--clip=${parameters.clip.max}", {"clip": {"max": None}}) == "--clip=null"
    doc = manifest("--clip=${parameters.clip.min}")  # a key no option has is still refused
    doc["spec"]["searchSpace"] = json.dumps({"clip": {"_type": "choice", "_value": [{"max": None}]}})
    with pytest.raises(SpecError, match="'clip' has no 'min'"):
        validate_manifest(doc)


def test_a_parameter_name_holding_dots_can_be_a_placeholder() -> None:
    """A search space may name a parameter 'model.lr' (a module path) or a nested one
    'sgd.momentum'. The placeholder was split at every dot, so ${parameters.model.lr} was
    refused as 'names no search-space parameter (have ['model.lr'])' and substitute() could
    not fill it in: such a parameter reached no command line. The longest name that leads on
    is now taken; nesting through dots still works beside it."""
    from autotune_operator.executors.base import substitute

    space = {"model.lr": {"_type": "uniform", "_value": [0, 1]},
             "opt": {"_type": "choice", "_value": [{"_name": "sgd", "sgd.momentum": {"_type": "choice", "_value": [0.9]}}]},
             "layers": {"_type": "choice", "_value": [{"a.b": 1, "a": {"c": 2}}]}}
    refs = ["model.lr", "opt.sgd.momentum", "opt._name", "layers.a.b", "layers.a.c"]
    doc = manifest("x")
    doc["spec"]["searchSpace"] = json.dumps(space)
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"] = [
        "python3", *[f"--x=${{parameters.{r}}}" for r in refs]]
    validate_manifest(doc)
    params = {"model.lr": 0.5, "opt": {"_name": "sgd", "sgd.momentum": 0.9}, "layers": {"a.b": 1, "a": {"c": 2}}}
    assert [substitute(f"${{parameters.{r}}}", params) for r in refs] == ["0.5", "0.9", "sgd", "1", "2"]
    doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"] = ["--x=${parameters.model.lr.x}"]
    with pytest.raises(SpecError, match="'model.lr' has no 'x'"):
        validate_manifest(doc)
