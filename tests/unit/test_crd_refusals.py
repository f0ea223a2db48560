"""What the cluster refuses at `kubectl apply` (the CRD's rules, the admission policy) and
what `autotune validate` / the operator refuse say the same thing: a user who reads one
message recognises the other. The apiserver side runs in tests/e2e/test_operator_crd.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from autotune_operator.spec import SpecError, validate_manifest

ROOT = Path(__file__).resolve().parents[2]
SEED = yaml.safe_load((ROOT / "tests" / "fixtures" / "seed-001-example.yaml").read_text())


def schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "autotuneexperiments.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def field_message(*path: str) -> str:
    """The message of the one CEL rule on the CRD field at ``path`` (under spec)."""
    node = schema()["properties"]["spec"]
    for p in path:
        node = node["items"] if p == "[]" else node["properties"][p]
    (rule,) = node["x-kubernetes-validations"]
    return rule["message"]


def policy_message(field: str) -> str:
    """The admission policy's message about spec.<field>'s shape, whitespace folded."""
    docs = yaml.safe_load_all((ROOT / "crds" / "autotuneexperiments-immutable.yaml").read_text())
    policy = next(d for d in docs if d and d["kind"] == "ValidatingAdmissionPolicy")
    (v,) = [v for v in policy["spec"]["validations"] if f"type(object.spec.{field})" in v["expression"]]
    return " ".join(v["message"].split())


def refusal(edit: Callable[[dict[str, Any]], None]) -> list[str]:
    doc = copy.deepcopy(SEED)
    edit(doc["spec"])
    with pytest.raises(SpecError) as e:
        validate_manifest(doc)
    return e.value.problems


def multi(names: list[str]) -> Callable[[dict[str, Any]], None]:
    def edit(s: dict[str, Any]) -> None:
        s["objectives"] = [{"name": n, "optimizeMode": "maximize"} for n in names]
        s["tuner"] = {"builtinTunerName": "MOTPE"}
    return edit


@pytest.mark.parametrize("edit, where, crd_field", [
    (lambda s: s.update(primaryMetric=" \t"), "spec.primaryMetric", ("primaryMetric",)),
    (multi(["accuracy", "  "]), "spec.objectives[1].name", ("objectives", "[]", "name")),
    (lambda s: s.update(primaryMetric="a", metricStrategies=[{"name": "a", "value": "max"}, {"name": " ", "value": "min"}]),
     "spec.metricStrategies[1].name", ("metricStrategies", "[]", "name")),
])
def test_a_blank_metric_name_is_refused_in_the_crds_words(edit, where, crd_field) -> None:
    message = field_message(*crd_field)
    assert message == "must name a metric, not be blank"
    assert refusal(edit) == [f"{where}: {message}"]


def field_messages(*path: str) -> list[str]:
    """The messages of the CEL rules on the CRD field at ``path`` (under spec)."""
    node = schema()["properties"]["spec"]
    for p in path:
        node = node["items"] if p == "[]" else node["properties"][p]
    return [r["message"] for r in node.get("x-kubernetes-validations") or []]


def collector(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(s: dict[str, Any]) -> None:
        s.update(primaryMetric="accuracy", metricsCollector={"kind": "File", "path": path})
    return edit


@pytest.mark.parametrize("edit, where, crd_field", [
    (collector("   "), "spec.metricsCollector.path", ("metricsCollector", "path")),
    (collector("/"), "spec.metricsCollector.path", ("metricsCollector", "path")),
    (collector("./"), "spec.metricsCollector.path", ("metricsCollector", "path")),
    (lambda s: s.update(primaryMetric="accuracy", metricsCollector={"kind": "StdOut", "additionalMetricNames": ["loss", " "]}),
     "spec.metricsCollector.additionalMetricNames[1]", ("metricsCollector", "additionalMetricNames", "[]")),
])
def test_a_blank_or_rootlike_collector_path_or_metric_name_is_refused_in_the_crds_words(edit, where, crd_field) -> None:
    # autotune validate refused these and the operator ended ERROR, while kubectl apply took them.
    (problem,) = refusal(edit)
    assert problem.startswith(f"{where}: "), problem
    said = problem[len(where) + 2:].split(" (got ")[0]  # (validate also quotes the value)
    assert said in field_messages(*crd_field)


@pytest.mark.parametrize("experiments, index", [(["older", "  "], 1), (["\t"], 0), ([""], 0)])
def test_a_blank_warm_start_experiment_is_refused_in_the_crds_words(experiments: list[str], index: int) -> None:
    # A rule on the item, never the root (a990558): an old object keeps taking status writes.
    message = field_message("warmStart", "experiments", "[]")
    assert message == "must name an earlier experiment, not be blank"
    problems = refusal(lambda s: s.update(warmStart={"experiments": experiments}))
    assert problems == [f"spec.warmStart.experiments[{index}]: {message}"]


def test_warm_start_from_itself_is_refused_in_the_policys_words_on_create_only() -> None:
    # The admission policy's, not a CRD root rule: that one is checked on every update, so an
    # object made before it could no longer lose its finalizer (tests/e2e/test_crd_rules_old_objects.py).
    assert not [r for r in schema()["x-kubernetes-validations"] if "warmStart" in r["rule"]]
    docs = yaml.safe_load_all((ROOT / "crds" / "autotuneexperiments-immutable.yaml").read_text())
    policy = next(d for d in docs if d and d["kind"] == "ValidatingAdmissionPolicy")
    (v,) = [v for v in policy["spec"]["validations"] if "object.spec.warmStart.experiments" in v["expression"]]
    assert v["expression"].startswith("oldObject != null ||")
    tail = "' is this experiment itself; name an earlier one"
    assert tail in v["messageExpression"]
    problems = refusal(lambda s: s.update(warmStart={"experiments": ["older", "experiment-sample"]}))
    assert problems == [f"spec.warmStart.experiments[1]: 'experiment-sample{tail}"]


@pytest.mark.parametrize("field, value", [
    ("searchSpace", ["batch_size", "learning_rate"]), ("searchSpace", 5), ("searchSpace", True),
    ("storage", ["10Gi"]), ("storage", 10),
])
def test_a_search_space_or_storage_neither_string_nor_mapping_is_refused_in_the_policys_words(field, value) -> None:
    message = policy_message(field)
    assert message.startswith(f"spec.{field} must be ")
    (problem,) = refusal(lambda s: s.update({field: value}))
    assert problem.startswith(f"spec.{field}: {message[len(f'spec.{field} '):]}"), problem


@pytest.mark.parametrize("field, value", [
    ("searchSpace", {"x": {"_type": "choice", "_value": [1, 2]}}),
    ("storage", "10Gi"), ("storage", {"size": "10Gi", "storageClassName": "fast"}),
])
def test_a_string_or_mapping_still_validates(field, value) -> None:
    doc = copy.deepcopy(SEED)
    doc["spec"][field] = value
    validate_manifest(doc)
