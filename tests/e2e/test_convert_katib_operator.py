"""A Katib Hyperband Experiment, converted, run by the operator on a real kube-apiserver:
the trials are batch Jobs again (the workload-kind annotation), Katib's resource parameter
arrives as --num-epochs=$(EPOCHS) expanded by Kubernetes from the advisor's budget, and the
search ends DONE after Katib's one round of brackets (max_brackets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from autotune_operator.convert import convert_katib
from autotune_operator.spec import validate_manifest
from kube_harness.experiments import ENDED, wait_for_phase
from tests.e2e.test_operator_helpers import ROOT, apply_manifest, jobs, operator_env

SCRIPT = ROOT / "tests" / "integration" / "trials" / "katib_argv.py"


def katib_hyperband(record: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "katib-hb"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
                {"name": "resource_name", "value": "num-epochs"}, {"name": "eta", "value": "3"},
                {"name": "r_l", "value": "3"}, {"name": "random_state", "value": "5"}]},
            "parallelTrialCount": 3, "maxTrialCount": 20,
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
                {"name": "num-epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "epochs", "reference": "num-epochs"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "training", "image": "python:3.11",
                                    "command": [sys.executable, str(SCRIPT), "--lr=${trialParameters.lr}",
                                                "--num-epochs=${trialParameters.epochs}"],
                                    "env": [{"name": "KATIB_RECORD", "value": str(record)}]}],
                    "restartPolicy": "Never"}}}}}}}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("convert-katib")
    # "auto" would pick Kubeflow or T9k jobs where installed: the annotation must win.
    with operator_env(kube_cluster, tmp, "convert-op", {"AUTOTUNE_WORKLOAD_KIND": "auto"}, script=None) as e:
        yield e


def test_converted_katib_hyperband_runs_as_jobs_with_its_budget(kube_cluster, env):
    ns, record = env["ns"], env["tmp"] / "runs.jsonl"
    manifest = convert_katib(katib_hyperband(record)).manifest
    validate_manifest(manifest)
    apply_manifest(kube_cluster, ns, manifest)
    ate = wait_for_phase(kube_cluster, ns, "katib-hb", *ENDED, timeout=300, log=env["op"].output)
    st = ate["status"]
    assert st["phase"] == "DONE", st
    # r_l 3, eta 3: brackets s=1 (3 configs x 1 epoch, the best x 3) and s=0 (2 x 3), then done
    assert st["trials"]["total"] == 6 and st["trials"]["succeeded"] == 6, st
    assert st.get("workloadKind") == "job"
    assert len(jobs(kube_cluster, ns, "katib-hb")) == 6
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["num_epochs"] for r in runs) == [1, 1, 1, 3, 3, 3]
    assert all(r["num_epochs"] == r["budget"] for r in runs)  # $(EPOCHS) is the advisor's budget
    assert all(r["lr"] == pytest.approx(r["params"]["lr"]) for r in runs)
    assert all("num-epochs" not in r["params"] for r in runs)


TOY = ROOT / "tests" / "integration" / "trials" / "toy.py"


def katib_with_trial_metadata(record: Path) -> dict[str, Any]:
    """Two grid trials whose template reads Katib's trial metadata in argv and env."""
    refs = {"name": "${trialSpec.Name}", "ns": "${trialSpec.Namespace}", "kind": "${trialSpec.Kind}",
            "team": "${trialSpec.Labels[team]}", "owner": "${trialSpec.Annotations[example.com/owner]}"}
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "katib-meta"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "grid"}, "parallelTrialCount": 2, "maxTrialCount": 2,
            "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2"}}],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "x", "reference": "x"}] + [{"name": k, "reference": v} for k, v in refs.items()],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"labels": {"team": "vision"}, "annotations": {"example.com/owner": "ana"}},
                    "spec": {"template": {"spec": {
                        "containers": [{"name": "training", "image": "python:3.11",
                                        "command": [sys.executable, str(TOY), "--steps=1",
                                                    "--echo=${trialParameters.ns}/${trialParameters.name}/${trialParameters.x}"],
                                        "env": [{"name": "TOY_RECORD", "value": str(record)},
                                                {"name": "TOY_FROM_SPEC", "value": "${trialParameters.ns}:${trialParameters.name}:"
                                                 "${trialParameters.kind}:${trialParameters.team}:${trialParameters.owner}"}]}],
                        "restartPolicy": "Never"}}}}}}}


def test_converted_katib_trial_metadata_reaches_each_pod(kube_cluster, env):
    """${trialSpec.Namespace} through the Downward API, ${trialSpec.Name} as $(AUTOTUNE_TRIAL_ID),
    both expanded by Kubernetes in argv and in an env value; labels, annotations and kind written in."""
    ns, record = env["ns"], env["tmp"] / "meta.jsonl"
    manifest = convert_katib(katib_with_trial_metadata(record)).manifest
    validate_manifest(manifest)
    apply_manifest(kube_cluster, ns, manifest)
    ate = wait_for_phase(kube_cluster, ns, "katib-meta", *ENDED, timeout=300, log=env["op"].output)
    assert ate["status"]["phase"] == "DONE", ate["status"]
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 2
    for r in runs:
        assert r["echo"] == f"{ns}/{r['trial']}/{r['params']['x']}"
        assert r["env"]["TOY_FROM_SPEC"] == f"{ns}:{r['trial']}:Job:vision:ana"
