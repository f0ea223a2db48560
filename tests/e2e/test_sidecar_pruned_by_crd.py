"""A training job CRD generated from a Kubernetes API older than 1.28 (a structural schema of
the pod template without initContainers[].restartPolicy, as Kubeflow's training operator built
on k8s.io/api 0.26 ships) makes the real kube-apiserver prune the File collector's native
sidecar into an init container that never ends: the experiment must end ERROR at once,
saying so, instead of creating trials that never start."""

from __future__ import annotations

import sys

import pytest
import yaml

from kube_harness.experiments import experiment_manifest, task, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, operator_env

ANY = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
# A container as an old generated schema has it: these fields, and no restartPolicy.
OLD_CONTAINER = {"type": "object", "properties": {
    "name": {"type": "string"}, "image": {"type": "string"}, "imagePullPolicy": {"type": "string"},
    "command": {"type": "array", "items": {"type": "string"}}, "args": {"type": "array", "items": {"type": "string"}},
    "env": {"type": "array", "items": ANY}, "resources": ANY, "securityContext": ANY,
    "volumeMounts": {"type": "array", "items": ANY}, "workingDir": {"type": "string"}}}
OLD_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "pytorchjobs.kubeflow.org"},
    "spec": {
        "group": "kubeflow.org", "scope": "Namespaced",
        "names": {"kind": "PyTorchJob", "plural": "pytorchjobs", "singular": "pytorchjob", "listKind": "PyTorchJobList"},
        "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                          "spec": {"type": "object", "properties": {
                              "runPolicy": ANY,
                              "pytorchReplicaSpecs": {"type": "object", "additionalProperties": {
                                  "type": "object", "properties": {
                                      "replicas": {"type": "integer"}, "restartPolicy": {"type": "string"},
                                      "template": {"type": "object", "properties": {
                                          "metadata": ANY,
                                          "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                                   "properties": {
                                                       "containers": {"type": "array", "items": OLD_CONTAINER},
                                                       "initContainers": {"type": "array", "items": OLD_CONTAINER}}}}}}}}}},
                          "status": ANY}}}}],
    },
}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(OLD_CRD))
    kube_cluster.wait_crd_established("pytorchjobs.kubeflow.org")
    with operator_env(kube_cluster, tmp_path_factory.mktemp("oldcrd"), "oldcrd") as e:
        yield e
    kube_cluster.kubectl("delete", "crd", "pytorchjobs.kubeflow.org", "--timeout=50s", check=False)


def test_file_collector_on_a_crd_that_prunes_the_sidecar_is_an_error_at_once(kube_cluster, env):
    ns, name = env["ns"], "old-crd-file"
    cmd = [sys.executable, str(env["script"]), "--x=${parameters.x}"]
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, space='{"x": {"_type": "choice", "_value": [1, 2]}}', max_trials=1, primaryMetric="accuracy",
        metricsCollector={"kind": "File", "path": "/var/log/katib/metrics.log"}, tasks=[task("master", cmd)],
        annotations={"autotune.tensorstack.dev/workload-kind": "kubeflow"}))
    st = wait_for_phase(kube_cluster, ns, name, "ERROR", "RUNNING", timeout=60, interval=0.3,
                        log=env["op"].output)["status"]
    assert st["phase"] == "ERROR", (st, env["op"].output()[-3000:])
    assert "this cluster's PyTorchJob (kubeflow.org/v1) drops that field" in st["message"], st
    out = kube_cluster.kubectl("get", "pytorchjobs", "-n", ns, "-l", f"{LABEL}={name}", "-o", "name").stdout
    assert not out.strip(), out  # nothing created by the check (a dry run) nor by trials
    # The StdOut collector needs no sidecar: the same experiment runs on this CRD.
    apply_manifest(kube_cluster, ns, experiment_manifest(
        "old-crd-stdout", cmd, space='{"x": {"_type": "choice", "_value": [1, 2]}}', max_trials=1,
        primaryMetric="accuracy", metricsCollector={"kind": "StdOut"},
        annotations={"autotune.tensorstack.dev/workload-kind": "kubeflow"}))
    st = wait_for_phase(kube_cluster, ns, "old-crd-stdout", "RUNNING", "ERROR", timeout=60, interval=0.3,
                        log=env["op"].output)["status"]
    assert st["phase"] == "RUNNING", st
