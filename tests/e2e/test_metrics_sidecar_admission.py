"""The File/TensorFlowEvent collectors' sidecar passes the real API server's checks: a trial pod
built by the operator's workload builder (sidecar + emptyDir) is admitted in a namespace that
enforces the *restricted* Pod Security Standard, and the API server keeps the init container's
``restartPolicy: Always`` (a native sidecar). Server-side dry runs: nothing is scheduled."""

from __future__ import annotations

import copy

import pytest
from kubernetes.client.rest import ApiException

from autotune_operator.workloads import build
from autotune_operator.workloads.metrics_sidecar import SIDECAR, STATE_VOLUME
from tests.unit.test_workloads import spec_of, trial

RESTRICTED = {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def trial_pod(collector: dict) -> dict:
    def mutate(doc):
        doc["spec"]["primaryMetric"] = "accuracy"
        doc["spec"]["metricsCollector"] = collector
        tmpl = doc["spec"]["trainingConfig"]["tasks"][0]["template"]
        tmpl["spec"].pop("securityContext", None)
        tmpl["spec"]["containers"][0]["securityContext"] = dict(RESTRICTED)  # the trial's own: compliant
    job = build("job", spec_of(mutate=mutate), trial())
    tmpl = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trial", "labels": tmpl["metadata"]["labels"]},
            "spec": tmpl["spec"]}


@pytest.fixture
def restricted_ns(kube_cluster, core_v1):
    ns = kube_cluster.new_namespace("pss")
    kube_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    yield ns
    core_v1.delete_namespace(ns)


@pytest.mark.parametrize("collector", [{"kind": "File", "path": "/var/log/katib/metrics.log"},
                                       {"kind": "TensorFlowEvent", "path": "/var/log/katib/tfevent"}])
def test_trial_pod_with_the_sidecar_is_admitted_under_restricted_pss(core_v1, restricted_ns, collector):
    pod = trial_pod(collector)
    created = core_v1.create_namespaced_pod(restricted_ns, pod, dry_run="All")
    (side,) = [c for c in created.spec.init_containers if c.name == SIDECAR]
    assert side.restart_policy == "Always"  # kept: the API server knows native sidecars
    # The shared directory, and the sidecar's own (its cursor across its restarts).
    assert [v.name for v in created.spec.volumes if v.empty_dir is not None] == [SIDECAR, STATE_VOLUME]

    # The namespace really enforces it: the same pod with a sidecar that may escalate is refused.
    bad = copy.deepcopy(pod)
    for c in bad["spec"]["initContainers"]:
        if c["name"] == SIDECAR:
            c["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as e:
        core_v1.create_namespaced_pod(restricted_ns, bad, dry_run="All")
    assert e.value.status == 403 and "allowPrivilegeEscalation" in e.value.body


def test_chart_gives_the_operator_its_own_image_for_the_sidecar_unless_told(kube_cluster):
    import yaml

    from tests.e2e.test_operator_helm import CHART

    def operator_container(*values: str) -> dict:
        docs = [d for d in yaml.safe_load_all(kube_cluster.helm("template", "x", CHART, *values).stdout) if d]
        (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "x-autotune-operator"]
        return dep["spec"]["template"]["spec"]["containers"][0]

    c = operator_container("--set", "image.registry=reg.example", "--set", "image.operator.tag=9.9")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["AUTOTUNE_COLLECTOR_IMAGE"] == c["image"] == "reg.example/autotune/operator:9.9"
    c = operator_container("--set", "operator.collectorImage=mirror.example/autotune:1")
    assert {e["name"]: e.get("value") for e in c["env"]}["AUTOTUNE_COLLECTOR_IMAGE"] == "mirror.example/autotune:1"
