"""The start-up dry run of a trial's workload (runtime._check_accepted): which refusals make
the experiment an ERROR (every trial would be refused) and which are left to the trials."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from autotune_operator import runtime
from autotune_operator.executors.kubernetes import ExperimentRef
from autotune_operator.workloads import WorkloadError

REF = ExperimentRef("ns", "exp", "uid-1")
SAMPLE = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "exp-0", "namespace": "ns"}, "spec": {}}


def _refusing(monkeypatch: pytest.MonkeyPatch, status: int, body: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    class Custom:
        def __init__(self, api: Any) -> None:
            pass

        def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, obj: dict[str, Any],
                                            dry_run: str) -> None:
            sent.append({"obj": obj, "dry_run": dry_run, "plural": plural})
            e = ApiException(status=status, reason=body.get("reason"))
            e.body = json.dumps(body)
            raise e

    monkeypatch.setattr(runtime.client, "CustomObjectsApi", Custom)
    return sent


def test_an_invalid_workload_is_an_error_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _refusing(monkeypatch, 422, {"reason": "Invalid", "message": 'Job.batch "exp-check-abcde" is invalid: ...',
                                        "details": {"causes": [{"field": "spec.template.spec.containers[0].name",
                                                                "message": "Invalid value: \"A_b\""}]}})
    with pytest.raises(WorkloadError, match=r"refuses the trials' Job .*: spec\.template\.spec\.containers\[0\]\.name: "
                                            r"Invalid value: \"A_b\"$"):
        runtime._check_accepted(None, REF, "job", "pytorch", SAMPLE)  # type: ignore[arg-type]
    (call,) = sent
    assert call["dry_run"] == "All" and call["obj"]["metadata"] == {"namespace": "ns", "generateName": "exp-check-"}


def test_a_body_that_cannot_be_decoded_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _refusing(monkeypatch, 400, {"reason": "BadRequest",
                                 "message": 'Job in version "v1" cannot be handled as a Job: quantities must match'})
    with pytest.raises(WorkloadError, match="quantities must match"):
        runtime._check_accepted(None, REF, "job", "pytorch", SAMPLE)  # type: ignore[arg-type]


@pytest.mark.parametrize("status, message", [
    (400, 'admission webhook "audit.example.com" does not support dry run'),  # side effects: every dry run refused
    (400, 'admission webhook "policy.example.com" denied the request: not now'),
    (403, 'jobs.batch "exp-check-x" is forbidden: exceeded quota: compute'),
    (500, "etcdserver: request timed out"),
])
def test_other_refusals_are_left_to_the_trials(monkeypatch: pytest.MonkeyPatch, status: int, message: str) -> None:
    _refusing(monkeypatch, status, {"reason": "x", "message": message})
    runtime._check_accepted(None, REF, "job", "pytorch", SAMPLE)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["job", "t9k"])
@pytest.mark.parametrize("template", [
    {"spec": {"containers": [{"name": "c", "image": "i", "resources": "lots"}]}},
    {"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": ["x"]}}]}},
    {"metadata": "x", "spec": {"containers": [{"name": "c", "image": "i"}]}},
    {"metadata": {"labels": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    {"spec": {"initContainers": "x", "containers": [{"name": "c", "image": "i"}]}},
    {"spec": {"tolerations": ["y"], "containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}},
])
def test_a_template_of_a_shape_no_workload_can_be_built_from_is_a_workload_error(family: str, template: Any) -> None:
    # (each raised AttributeError/TypeError/ValueError before: the start was retried for ever)
    from autotune_operator.spec import validate_manifest
    from autotune_operator.workloads.accelerators import AcceleratorPolicy
    m = {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "exp"},
         "spec": {"maxTrialNum": 1, "searchSpace": '{"x": {"_type": "choice", "_value": [1]}}',
                  "tuner": {"builtinTunerName": "GridSearch", "classArgs": '{"optimize_mode": "maximize"}'},
                  "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": template}]}}}
    with pytest.raises(WorkloadError, match=r"^spec\.trainingConfig\.tasks: a trial's .* workload cannot be built"):
        runtime._check_buildable(validate_manifest(m).spec, REF, family, AcceleratorPolicy())


def test_a_builders_own_refusal_keeps_its_message() -> None:
    # A WorkloadError is a ValueError: the wrong-shape wrapping (10145cf) must not take it, or
    # the Kubeflow rule's message (8cd1656) got "cannot be built ... a field has a shape
    # Kubernetes does not give it" around it, pointing at the wrong fix.
    from autotune_operator.spec import validate_manifest
    from autotune_operator.workloads.accelerators import AcceleratorPolicy
    m = {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "exp"},
         "spec": {"maxTrialNum": 1, "searchSpace": '{"x": {"_type": "choice", "_value": [1]}}',
                  "tuner": {"builtinTunerName": "GridSearch", "classArgs": '{"optimize_mode": "maximize"}'},
                  "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": {
                      "spec": {"containers": [{"name": "trainer", "image": "i"}]}}}]}}}
    with pytest.raises(WorkloadError) as e:
        runtime._check_buildable(validate_manifest(m).spec, REF, "kubeflow", AcceleratorPolicy())
    assert str(e.value).startswith("the Kubeflow training operator would refuse these trials: ")
    assert "cannot be built" not in str(e.value)
