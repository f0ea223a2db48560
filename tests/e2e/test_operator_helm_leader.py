"""The Helm chart's leader election: what it renders (replicas, RollingUpdate, the Downward
API env, the Lease's RBAC), that the operator's ServiceAccount may use its Lease and no
other, and that the operator runs an experiment with only that ServiceAccount and leader
election on, holding the chart's Lease in the release namespace."""

from __future__ import annotations

import json

import pytest
import yaml

from kube_harness.experiments import wait_for_phase
from tests.e2e.test_operator_helm import CHART, can, free_port, installed_release, operator_metrics, render
from tests.e2e.test_operator_helpers import TRIAL_SCRIPT, apply_manifest, running_operator, trial_experiment, wait_for


def pick(docs: list[dict], kind: str, name: str) -> dict | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def test_chart_renders_replicas_with_leader_election(kube_cluster):
    docs = render(kube_cluster, "-n", "rel")
    dep = pick(docs, "Deployment", "x-autotune-operator")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["AUTOTUNE_LEADER_ELECTION"]["value"] == "true"
    assert env["AUTOTUNE_LEADER_ELECTION_LEASE"]["value"] == "x-autotune-operator"
    assert [env[f"AUTOTUNE_LEADER_ELECTION_{k}"]["value"] for k in ("LEASE_SECONDS", "RENEW_DEADLINE_SECONDS", "RETRY_SECONDS")] == [
        "15", "10", "2"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    role = pick(docs, "Role", "x-autotune-operator-leader-election")
    assert role["metadata"]["namespace"] == "rel"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["x-autotune-operator"],
         "verbs": ["get", "update"]}]
    binding = pick(docs, "RoleBinding", "x-autotune-operator-leader-election")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "x-autotune-operator", "namespace": "rel"}]
    assert not any("lease" in json.dumps(d.get("rules", "")) for d in docs if d["kind"] == "ClusterRole")

    # Off: one replica, Recreate, no Lease RBAC; several replicas without it are refused.
    docs = render(kube_cluster, "--set", "operator.leaderElection.enabled=false", "--set", "operator.replicas=1")
    dep = pick(docs, "Deployment", "x-autotune-operator")
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and "affinity" not in dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AUTOTUNE_LEADER_ELECTION"] == "false" and "AUTOTUNE_LEADER_ELECTION_LEASE" not in env
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding") and "leader" in d["metadata"]["name"]]
    r = kube_cluster.helm("template", "x", CHART, "--set", "operator.leaderElection.enabled=false", check=False)
    assert r.returncode != 0 and "operator.replicas > 1 needs operator.leaderElection.enabled" in r.stderr


@pytest.fixture(scope="module")
def release(kube_cluster):
    with installed_release(kube_cluster, "le") as rel:
        yield {**rel, "lease": f"{rel['name']}-autotune-operator"}


def sa_kubeconfig(kube_cluster, release, path) -> str:
    sa = f"{release['name']}-autotune-operator"
    token = kube_cluster.kubectl("create", "token", sa, "-n", release["ns"], "--duration=1h").stdout.strip()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": kube_cluster.server, "certificate-authority": str(kube_cluster.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }))
    return token


def test_service_account_may_use_its_lease_only(kube_cluster, release, tmp_path):
    api = kube_cluster.token_client(sa_kubeconfig(kube_cluster, release, tmp_path / "kc"))
    ns, team, lease = release["ns"], release["team"], release["lease"]
    g = "coordination.k8s.io"

    def may(verb: str, namespace: str | None, name: str | None = None) -> bool:
        from kubernetes import client

        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource="leases", namespace=namespace, group=g,
                                                            name=name)))
        return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed

    assert may("create", ns) and may("get", ns, lease) and may("update", ns, lease)
    assert not may("update", ns, "kube-scheduler") and not may("get", ns, "someone-elses")
    assert not may("delete", ns, lease) and not may("list", ns)
    assert not may("create", team) and not may("update", team, lease) and not may("create", "kube-system")
    assert not can(api, "list", "leases", None, g)


def test_operator_with_only_its_service_account_leads_on_the_charts_lease(kube_cluster, release, tmp_path):
    kubeconfig = tmp_path / "sa.kubeconfig"
    sa_kubeconfig(kube_cluster, release, kubeconfig)
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    ns, name, lease = release["team"], "lease", release["lease"]
    port = free_port()
    # What the chart's Deployment sets (POD_* from the Downward API).
    env = {"KUBECONFIG": str(kubeconfig), "AUTOTUNE_METRICS_ENDPOINT": f"http://127.0.0.1:{port}/metrics",
           "POD_NAME": "le-operator-pod-1", "POD_NAMESPACE": release["ns"], "AUTOTUNE_LEADER_ELECTION": "true",
           "AUTOTUNE_LEADER_ELECTION_LEASE": lease}
    with running_operator(kube_cluster, tmp_path, [ns], env) as (_, op):
        apply_manifest(kube_cluster, ns, trial_experiment(name, script, max_trials=2, concurrency=2))
        st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=op.output)["status"]
        assert st["trials"]["succeeded"] == 2, st
        assert "Forbidden" not in op.output() and " 403" not in op.output(), op.output()[-4000:]
        got = json.loads(kube_cluster.kubectl("get", "lease", lease, "-n", release["ns"], "-o", "json").stdout)["spec"]
        assert got["holderIdentity"].startswith("le-operator-pod-1_") and got["leaseDurationSeconds"] == 15, got
        assert operator_metrics(f"http://127.0.0.1:{port}/metrics")["autotune_operator_leader"] == 1
    # Stopped (SIGTERM): released.
    wait_for(lambda: not json.loads(kube_cluster.kubectl("get", "lease", lease, "-n", release["ns"], "-o", "json").stdout)[
        "spec"].get("holderIdentity"), 10, "the Lease to be released")
