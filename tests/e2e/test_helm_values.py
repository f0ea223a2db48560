"""The Helm chart with non-default values: what it renders, and what a real kube-apiserver
and kube-controller-manager make of it."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tests.e2e.test_operator_helpers import ROOT, install_crd, wait_for

CHART = str(ROOT / "helm" / "autotune")


def rendered(kube_cluster, tmp_path, values: str, *args: str) -> list[dict]:
    """The chart's objects as `helm template` renders them with this values.yaml text."""
    f = tmp_path / "values.yaml"
    f.write_text(values)
    out = kube_cluster.helm("template", "r", CHART, "-f", str(f), *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def container(objs: list[dict], component: str) -> dict:
    (dep,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == f"r-autotune-{component}"]
    return dep["spec"]["template"]["spec"]["containers"][0]


def test_numeric_image_tags_render_as_written(kube_cluster, tmp_path):
    """YAML (and --set) read a tag such as 2 or 20240101 as a number: the image must still be
    repo:2, not Go's 'repo:%!s(float64=2)' (a reference no kubelet can pull). A number that is
    not whole may have lost its text (1.10 reads as 1.1): refused, saying to quote it."""
    objs = rendered(kube_cluster, tmp_path, "image:\n  operator: {tag: 2}\n  tunerServer: {tag: 20240101}\n",
                    "--set", "image.registry=registry.example.com:5000")
    assert container(objs, "operator")["image"] == "registry.example.com:5000/autotune/operator:2"
    assert container(objs, "tuner-server")["image"] == "registry.example.com:5000/autotune/tuner-server:20240101"
    env = {e["name"]: e.get("value") for e in container(objs, "operator")["env"]}
    assert env["AUTOTUNE_COLLECTOR_IMAGE"] == "registry.example.com:5000/autotune/operator:2"
    objs = rendered(kube_cluster, tmp_path, "", "--set", "image.tunerServer.tag=7")
    assert container(objs, "tuner-server")["image"] == "autotune/tuner-server:7"
    objs = rendered(kube_cluster, tmp_path, "image:\n  tunerServer: {tag: \"1.10\"}\n")  # quoted: kept as written
    assert container(objs, "tuner-server")["image"] == "autotune/tuner-server:1.10"
    (tmp_path / "float.yaml").write_text("image:\n  tunerServer: {tag: 1.10}\n")
    r = kube_cluster.helm("template", "r", CHART, "-f", str(tmp_path / "float.yaml"), check=False)
    assert r.returncode != 0 and 'image.tunerServer.tag: 1.1 is read as a number; quote it (tag: "1.1")' in r.stderr, r.stderr


def test_accelerator_node_selectors_as_a_mapping_or_a_json_string(kube_cluster, tmp_path):
    """values.yaml says 'JSON object': written there as one (a YAML mapping) it must reach the
    operator as JSON, not Go's 'map[...]' (the operator exits: not valid JSON)."""
    want = {"huawei.com/Ascend910": {"accelerator": "npu-910b"}, "nvidia.com/gpu": {"gpu": "a100"}}
    for values in (f"operator:\n  acceleratorNodeSelectors: {json.dumps(want)}\n",
                   f"operator:\n  acceleratorNodeSelectors: {json.dumps(json.dumps(want))}\n"):
        env = {e["name"]: e.get("value") for e in container(rendered(kube_cluster, tmp_path, values), "operator")["env"]}
        assert json.loads(env["AUTOTUNE_ACCELERATOR_NODE_SELECTORS"]) == want, values
    env = {e["name"] for e in container(rendered(kube_cluster, tmp_path, ""), "operator")["env"]}
    assert "AUTOTUNE_ACCELERATOR_NODE_SELECTORS" not in env  # default: the built-in selectors


def test_existing_service_account_install_starts_the_tuner_server(kube_cluster):
    """serviceAccount.create=false with the operator's own ServiceAccount named: the tuner
    server's pods must still be creatable (its ServiceAccount, which has no API access, was
    created only with serviceAccount.create, so its ReplicaSet could not create a pod)."""
    install_crd(kube_cluster)
    ns = kube_cluster.new_namespace("hsa")
    kube_cluster.kubectl("create", "serviceaccount", "ops-made", "-n", ns)
    name = "sa" + uuid.uuid4().hex[:6]
    kube_cluster.helm("install", name, CHART, "-n", ns, "--set", "serviceAccount.create=false",
                      "--set", "serviceAccount.name=ops-made", "--set", "operator.replicas=0",
                      "--set", "tunerServer.persistence.enabled=false")
    try:
        def pods() -> list[dict]:
            out = kube_cluster.kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=tuner-server",
                                       "-o", "json").stdout
            return json.loads(out)["items"]

        def why() -> str:
            return kube_cluster.kubectl("get", "rs,events", "-n", ns, "-o", "wide", check=False).stdout[-3000:]

        (pod,) = wait_for(pods, 60, "the tuner server's pod")
        assert pod["spec"]["serviceAccountName"] == f"{name}-autotune-tuner-server", why()
        assert pod["spec"]["automountServiceAccountToken"] is False
        sa = json.loads(kube_cluster.kubectl("get", "sa", f"{name}-autotune-tuner-server", "-n", ns, "-o", "json").stdout)
        assert sa["automountServiceAccountToken"] is False
        # the operator's ServiceAccount is the one named, not created
        kube_cluster.kubectl("get", "sa", "ops-made", "-n", ns)
        assert kube_cluster.kubectl("get", "sa", f"{name}-autotune-operator", "-n", ns, check=False).returncode != 0
    finally:
        kube_cluster.helm("uninstall", name, "-n", ns, check=False)


@pytest.mark.parametrize("release", ["team.autotune", "2024-autotune", "r" + "-abcdefgh" * 5 + "-xyz", "myrel"])
def test_every_object_is_accepted_for_any_legal_release_name(kube_cluster, release):
    """Helm allows release names of up to 53 characters, with dots and a leading digit; the
    chart's Services (<fullname>-tuner-server, -operator-metrics) must still be DNS-1035
    labels, and the operator's tuner-server URL must name the Service that exists."""
    assert len(release) <= 53
    ns = kube_cluster.new_namespace("hrel")
    out = kube_cluster.helm("template", release, CHART, "-n", ns).stdout
    r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=out, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    objs = [d for d in yaml.safe_load_all(out) if d]
    services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    env = {e["name"]: e.get("value") for e in next(
        o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator")
    )["spec"]["template"]["spec"]["containers"][0]["env"]}
    host = env["AUTOTUNE_SERVER_URL"].split("//")[1].split(".")[0]
    assert host in services and host.endswith("-tuner-server"), (host, services)
    if release == "myrel":  # a name that was valid keeps its Services' names
        assert services == {"myrel-autotune-tuner-server", "myrel-autotune-operator-metrics"}


def test_operator_metrics_port_cannot_be_the_health_port(kube_cluster, tmp_path):
    """The operator's liveness endpoint listens on operator.healthPort (8080); metrics.operatorPort=8080 (a common
    metrics port) rendered two listeners on one port: the operator could not start both."""
    r = kube_cluster.helm("template", "r", CHART, "--set", "metrics.operatorPort=8080", check=False)
    assert r.returncode != 0 and "metrics.operatorPort: 8080 is the operator's health port" in r.stderr, r.stderr
    # with metrics off the port is not used at all
    rendered(kube_cluster, tmp_path, "", "--set", "metrics.operatorPort=8080", "--set", "metrics.enabled=false")
    # operator.healthPort moves the health port, and the same rule follows it
    r = kube_cluster.helm("template", "r", CHART, "--set", "operator.healthPort=9090", check=False)
    assert r.returncode != 0 and "metrics.operatorPort: 9090 is the operator's health port" in r.stderr, r.stderr
    objs = rendered(kube_cluster, tmp_path, "", "--set", "operator.healthPort=8181", "--set", "metrics.operatorPort=8080")
    op = container(objs, "operator")
    env = {e["name"]: e.get("value") for e in op["env"]}
    assert env["AUTOTUNE_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8181/healthz", env
    assert {"name": "health", "containerPort": 8181} in op["ports"], op["ports"]
    assert op["livenessProbe"]["httpGet"]["port"] == "health"


def test_keep_stopped_pods_reaches_the_operator_as_true_or_false(kube_cluster, tmp_path):
    """operator.keepStoppedPods (default true) is AUTOTUNE_KEEP_STOPPED_PODS, which the operator
    reads as true/false (anything else stops it with a message naming the variable)."""
    from autotune_operator.runtime import Settings

    for values, want in (("", True), ("operator:\n  keepStoppedPods: false\n", False)):
        env = {e["name"]: e.get("value") for e in container(rendered(kube_cluster, tmp_path, values), "operator")["env"]}
        assert env["AUTOTUNE_KEEP_STOPPED_PODS"] == str(want).lower(), values
        keep = env["AUTOTUNE_KEEP_STOPPED_PODS"]
        assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t", "AUTOTUNE_KEEP_STOPPED_PODS": keep}).keep_stopped_pods is want


def test_patch_on_pods_is_granted_only_when_stopped_pods_are_kept(kube_cluster, tmp_path):
    """RBAC cannot narrow 'patch' on pods to activeDeadlineSeconds, so a chart with
    keepStoppedPods false (stopped trials' Jobs deleted) does not grant it at all."""
    for values, want in (("", True), ("operator:\n  keepStoppedPods: false\n", False)):
        objs = rendered(kube_cluster, tmp_path, values)
        pod_verbs = [set(rule["verbs"]) for o in objs if o["kind"] in ("ClusterRole", "Role")
                     for rule in o.get("rules") or [] if "pods" in rule.get("resources", [])]
        assert pod_verbs and all("list" in v for v in pod_verbs), (values, pod_verbs)
        assert any("patch" in v for v in pod_verbs) is want, (values, pod_verbs)


def test_operator_health_port_must_be_a_port_number(kube_cluster, tmp_path):
    """operator.healthPort rendered whatever it was: null gave `containerPort: ` and the
    liveness endpoint http://0.0.0.0:<nil>/healthz (the operator failing at start), text a
    port the API server refuses. Refused at render time, naming the value; a number as text
    (--set-string) is a port too."""
    (tmp_path / "half.yaml").write_text("operator: {healthPort: 8080.5}\n")
    for args, shown in ((("--set", "operator.healthPort=null"), "null"), (("--set", "operator.healthPort=http"), '"http"'),
                        (("--set", "operator.healthPort=0"), "0"), (("--set", "operator.healthPort=70000"), "70000"),
                        (("-f", str(tmp_path / "half.yaml")), "8080.5")):
        r = kube_cluster.helm("template", "r", CHART, *args, check=False)
        assert r.returncode != 0 and f"operator.healthPort must be a port number (1-65535), not {shown}" in r.stderr, r.stderr
    op = container(rendered(kube_cluster, tmp_path, "", "--set-string", "operator.healthPort=8181"), "operator")
    assert {"name": "health", "containerPort": 8181} in op["ports"], op["ports"]


def test_the_port_clash_message_does_not_suggest_the_clashing_port(kube_cluster, tmp_path):
    """With operator.healthPort 9090 (metrics.operatorPort's default) the refusal said
    'choose another, e.g. 9090': the very port that clashed."""
    r = kube_cluster.helm("template", "r", CHART, "--set", "operator.healthPort=9090", check=False)
    assert r.returncode != 0 and "metrics.operatorPort: 9090 is the operator's health port" in r.stderr, r.stderr
    assert "e.g. 9090" not in r.stderr and "give one of the two another port" in r.stderr, r.stderr
