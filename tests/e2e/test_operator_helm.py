"""The Helm chart: lint, install against the real apiserver, least-privilege RBAC for the
operator's ServiceAccount (checked with its own token, and by running the operator with
it), and the restricted Pod Security Standard for the chart's pods."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
import yaml
from kubernetes import client

from kube_harness.experiments import experiment_manifest, wait_for_phase
from tests.e2e.test_operator_helpers import ROOT, TRIAL_SCRIPT, apply_manifest, install_crd, running_operator, trial_experiment

CHART = str(ROOT / "helm" / "autotune")


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={a,b}"], ["--set", "tunerServer.persistence.enabled=false"],
                                    ["--set", "metrics.serviceMonitor.enabled=true"], ["--set", "metrics.enabled=false"],
                                    ["--set", "metrics.tunerServerAuth=none"]])
def test_helm_lint_is_clean(kube_cluster, values):
    r = kube_cluster.helm("lint", "--strict", CHART, *values)
    assert "0 chart(s) failed" in r.stdout, r.stdout + r.stderr
    assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout


def test_chart_crd_matches_crds_dir():
    assert (ROOT / "helm/autotune/crds/autotuneexperiments.yaml").read_text() == (ROOT / "crds/autotuneexperiments.yaml").read_text()


@contextmanager
def installed_release(kube_cluster, prefix: str) -> Iterator[dict[str, str]]:
    """The chart installed in a new namespace, watching a new team namespace; uninstalled after.
    The images are not on the fake nodes: the Deployments are scaled to 0 and a test runs the
    operator as a local process with the chart's ServiceAccount token instead."""
    install_crd(kube_cluster)
    rel_ns = kube_cluster.new_namespace(prefix)
    team = kube_cluster.new_namespace(f"team{prefix}")
    name = prefix + uuid.uuid4().hex[:6]
    kube_cluster.helm("install", name, CHART, "-n", rel_ns, "--set", f"watchNamespaces={{{team}}}",
                      "--set", "operator.replicas=0", "--set", "tunerServer.replicas=0")
    try:
        yield {"name": name, "ns": rel_ns, "team": team}
    finally:
        kube_cluster.helm("uninstall", name, "-n", rel_ns, check=False)


@pytest.fixture(scope="module")
def release(kube_cluster):
    with installed_release(kube_cluster, "at") as rel:
        yield rel


def sa_token(kube_cluster, release) -> str:
    sa = f"{release['name']}-autotune-operator"
    return kube_cluster.kubectl("create", "token", sa, "-n", release["ns"], "--duration=1h").stdout.strip()


def test_helm_install_creates_everything(kube_cluster, release):
    ns, name = release["ns"], release["name"]
    out = json.loads(kube_cluster.kubectl("get", "deploy,svc,pvc,secret,sa", "-n", ns, "-o", "json").stdout)["items"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in out}
    full = f"{name}-autotune"
    for want in [("Deployment", f"{full}-operator"), ("Deployment", f"{full}-tuner-server"), ("Service", f"{full}-tuner-server"),
                 ("PersistentVolumeClaim", f"{full}-tuner-server"), ("Secret", f"{full}-admin-token"),
                 ("ServiceAccount", f"{full}-operator")]:
        assert want in kinds, (want, sorted(kinds))
    kube_cluster.kubectl("get", "rolebinding", f"{full}-operator", "-n", release["team"])
    status = kube_cluster.helm("status", name, "-n", ns).stdout
    assert "STATUS: deployed" in status


def can(api: client.ApiClient, verb: str, resource: str, ns: str | None, group: str = "", sub: str | None = None) -> bool:
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, namespace=ns, group=group, subresource=sub)))
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def test_operator_service_account_has_least_privilege(kube_cluster, release):
    api = kube_cluster.token_client(sa_token(kube_cluster, release))
    team, other = release["team"], release["ns"]
    allowed = [
        ("watch", "autotuneexperiments", team, "tensorstack.dev", None),
        ("patch", "autotuneexperiments", team, "tensorstack.dev", "status"),
        ("create", "jobs", team, "batch", None),
        ("delete", "jobs", team, "batch", None),
        ("create", "tfjobs", team, "kubeflow.org", None),
        ("create", "pytorchtrainingjobs", team, "batch.tensorstack.dev", None),
        ("create", "secrets", team, "", None),
        ("create", "events", team, "", None),
        ("list", "pods", team, "", None),  # when trials really started
        ("patch", "pods", team, "", None),  # a stopped trial's pods: activeDeadlineSeconds (kept with their logs)
        ("get", "pods", team, "", "log"),  # what trials print (spec.metricsCollector)
        ("list", "customresourcedefinitions", None, "apiextensions.k8s.io", None),
    ]
    denied = [
        ("create", "jobs", other, "batch", None),  # not a watched namespace
        ("create", "jobs", "kube-system", "batch", None),
        ("list", "autotuneexperiments", None, "tensorstack.dev", None),  # not cluster-wide
        ("get", "secrets", team, "", None),  # can write its token Secret, never read Secrets
        ("list", "secrets", team, "", None),
        ("create", "pods", team, "", None),
        ("delete", "pods", team, "", None),
        ("patch", "pods", other, "", None),  # only where it runs trials
        ("get", "pods", other, "", "log"),  # logs only where it runs trials
        ("create", "pods", team, "", "exec"),
        ("create", "deployments", team, "apps", None),
        ("create", "rolebindings", team, "rbac.authorization.k8s.io", None),
        ("delete", "namespaces", None, "", None),
        ("update", "customresourcedefinitions", None, "apiextensions.k8s.io", None),
        ("delete", "autotuneexperiments", team, "tensorstack.dev", None),
    ]
    bad = [a for a in allowed if not can(api, a[0], a[1], a[2], a[3], a[4])]
    assert not bad, f"the operator cannot: {bad}"
    extra = [d for d in denied if can(api, d[0], d[1], d[2], d[3], d[4])]
    assert not extra, f"the operator may, but should not: {extra}"


def sa_kubeconfig(kube_cluster, release, tmp_path) -> str:
    """A kubeconfig that authenticates only with the chart's operator ServiceAccount token."""
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": kube_cluster.server, "certificate-authority": str(kube_cluster.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": sa_token(kube_cluster, release)}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }))
    return str(kubeconfig)


def test_operator_runs_with_only_its_service_account(kube_cluster, release, tmp_path):
    """The chart's RBAC is enough: the operator, authenticated only by the SA token, runs an experiment."""
    kubeconfig = sa_kubeconfig(kube_cluster, release, tmp_path)
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    ns, name = release["team"], "rbac"
    port = free_port()
    env = {"KUBECONFIG": kubeconfig, "AUTOTUNE_METRICS_ENDPOINT": f"http://127.0.0.1:{port}/metrics"}
    with running_operator(kube_cluster, tmp_path, [ns], env) as (_, op):
        apply_manifest(kube_cluster, ns, trial_experiment(name, script, max_trials=2, concurrency=2))
        st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=op.output)["status"]
        assert st["trials"]["succeeded"] == 2, st
        assert "Forbidden" not in op.output() and " 403" not in op.output(), op.output()[-4000:]
        # its metrics endpoint (what the chart turns on) saw the experiment from start to end
        metrics = operator_metrics(f"http://127.0.0.1:{port}/metrics")
        assert metrics["autotune_operator_experiments_created_total"] == 1, metrics
        assert metrics['autotune_operator_experiments_finished_total{phase="DONE"}'] == 1
        assert metrics['autotune_operator_experiments{phase="DONE"}'] == 1
        assert metrics['autotune_operator_trials_finished_total{state="SUCCEEDED"}'] == 2
        assert metrics['autotune_operator_workloads_created_total{family="job"}'] == 2
        assert metrics['autotune_operator_tuner_call_duration_seconds_count{method="suggest"}'] >= 2


def test_operator_reads_printed_metrics_with_only_its_service_account(kube_cluster, release, tmp_path):
    """spec.metricsCollector with the chart's RBAC: the trial's pod log (pods/log) is readable."""
    from tests.e2e.test_operator_stdout_metrics import TRAIN, printed

    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    ns, name = release["team"], "rbac-stdout"
    with running_operator(kube_cluster, tmp_path, [ns], {"KUBECONFIG": sa_kubeconfig(kube_cluster, release, tmp_path)}) as (
            server, op):
        apply_manifest(kube_cluster, ns, experiment_manifest(
            name, [sys.executable, str(script), "--alpha=${parameters.alpha}"], max_trials=1,
            space='{"alpha": {"_type": "choice", "_value": [0.001]}}', primaryMetric="accuracy",
            metricsCollector={"kind": "StdOut"}))
        exp = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=op.output)
        assert exp["status"]["trials"]["succeeded"] == 1, exp["status"]
        assert "Forbidden" not in op.output() and " 403" not in op.output(), op.output()[-4000:]
        pod = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"job-name={name}-0", "-o", "json").stdout)
        acc, _ = printed(kube_cluster.pod_log(ns, pod["items"][0]["metadata"]["name"]))
        (trial,) = server.get(f"/api/v1/experiments/{exp['metadata']['uid']}/trials").json()
        assert trial["intermediate"] == acc and trial["metrics"]["accuracy"] == acc[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def operator_metrics(url: str) -> dict[str, float]:
    """name{labels} -> value, from the operator's text exposition."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def render(kube_cluster, *values: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(kube_cluster.helm("template", "x", CHART, *values).stdout) if d]


def test_chart_wires_metrics_and_renders_service_monitors_only_when_asked(kube_cluster):
    def pick(docs: list[dict], kind: str, name: str) -> dict | None:
        return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)

    def container(docs: list[dict], deployment: str) -> dict:
        return pick(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]

    def env(docs: list[dict], deployment: str) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in container(docs, deployment)["env"]}

    docs = render(kube_cluster)
    assert env(docs, "x-autotune-operator")["AUTOTUNE_METRICS_ENDPOINT"] == "http://0.0.0.0:9090/metrics"
    assert {"name": "metrics", "containerPort": 9090} in container(docs, "x-autotune-operator")["ports"]
    svc = pick(docs, "Service", "x-autotune-operator-metrics")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    op_pod = pick(docs, "Deployment", "x-autotune-operator")["spec"]["template"]["metadata"]
    assert op_pod["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
    assert env(docs, "x-autotune-tuner-server")["AUTOTUNE_METRICS_AUTH"] == "token"
    # annotation-based discovery sends no token: a token-protected tuner server is not annotated
    assert "annotations" not in pick(docs, "Deployment", "x-autotune-tuner-server")["spec"]["template"]["metadata"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]

    docs = render(kube_cluster, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kps")
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"x-autotune-operator", "x-autotune-tuner-server"}
    assert all(m["metadata"]["labels"]["release"] == "kps" for m in monitors.values())
    tuner = monitors["x-autotune-tuner-server"]
    assert tuner["spec"]["endpoints"][0]["authorization"]["credentials"] == {"name": "x-autotune-admin-token", "key": "viewer-token"}
    # each monitor selects exactly its component's Service
    services = [d for d in docs if d["kind"] == "Service"]
    for m in monitors.values():
        want = m["spec"]["selector"]["matchLabels"]
        hits = [s["metadata"]["name"] for s in services if want.items() <= s["metadata"]["labels"].items()]
        port = m["spec"]["endpoints"][0]["port"]
        assert len(hits) == 1 and port in [p["name"] for p in pick(docs, "Service", hits[0])["spec"]["ports"]], (want, hits)

    docs = render(kube_cluster, "--set", "metrics.tunerServerAuth=none", "--set", "metrics.serviceMonitor.enabled=true")
    assert env(docs, "x-autotune-tuner-server")["AUTOTUNE_METRICS_AUTH"] == "none"
    assert pick(docs, "Deployment", "x-autotune-tuner-server")["spec"]["template"]["metadata"]["annotations"][
        "prometheus.io/port"] == "8080"
    assert "authorization" not in pick(docs, "ServiceMonitor", "x-autotune-tuner-server")["spec"]["endpoints"][0]

    docs = render(kube_cluster, "--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true")
    assert "AUTOTUNE_METRICS_ENDPOINT" not in env(docs, "x-autotune-operator")
    assert [p["name"] for p in container(docs, "x-autotune-operator")["ports"]] == ["health"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor" or d["metadata"]["name"].endswith("-metrics")]

    r = kube_cluster.helm("template", "x", CHART, "--set", "metrics.tunerServerAuth=open", check=False)
    assert r.returncode != 0 and "metrics.tunerServerAuth must be token or none" in r.stderr


def test_chart_pods_meet_restricted_pod_security(kube_cluster, release):
    ns = kube_cluster.new_namespace("pss")
    kube_cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted")
    rendered = kube_cluster.helm("template", "x", CHART, "-n", ns).stdout
    deployments = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    assert len(deployments) == 2

    def pod(name: str, spec: dict) -> str:
        return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})

    for d in deployments:
        spec = dict(d["spec"]["template"]["spec"])
        spec.pop("serviceAccountName", None)  # its ServiceAccount lives in the release namespace
        r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=pod("p", spec), check=False)
        assert r.returncode == 0, (d["metadata"]["name"], r.stderr)
    # control: the namespace really enforces the restricted level
    lax = {"containers": [{"name": "c", "image": "busybox"}]}
    r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=pod("bad", lax), check=False)
    assert r.returncode != 0 and "restricted" in r.stderr, r.stderr


def test_chart_admission_policy_matches_crds_dir(kube_cluster):
    """The chart's immutable-spec policy is the one in crds/ (only names and labels differ)."""
    rendered = [d for d in yaml.safe_load_all(kube_cluster.helm("template", "x", CHART).stdout) if d]
    ours = [d for d in yaml.safe_load_all((ROOT / "crds" / "autotuneexperiments-immutable.yaml").read_text()) if d]
    policy = {d["kind"]: d for d in rendered if d["kind"].startswith("ValidatingAdmissionPolicy")}
    plain = {d["kind"]: d for d in ours}
    assert set(policy) == set(plain) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert policy["ValidatingAdmissionPolicy"]["spec"] == plain["ValidatingAdmissionPolicy"]["spec"]
    binding = policy["ValidatingAdmissionPolicyBinding"]["spec"]
    assert binding["policyName"] == policy["ValidatingAdmissionPolicy"]["metadata"]["name"]
    assert binding["validationActions"] == ["Deny"]
    off = kube_cluster.helm("template", "x", CHART, "--set", "immutableSpecPolicy=false").stdout
    assert "ValidatingAdmissionPolicy" not in off
