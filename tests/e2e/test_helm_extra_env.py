"""The chart's extraEnv / extraEnvFrom / extraVolumes / extraVolumeMounts for the operator and
the tuner server: what they render (nothing new when empty), that the real kube-apiserver
takes it, that a variable the chart sets itself is refused at render time, and that the
chart's operator pod, run by the fake node from the chart's own Deployment, really gets them
(a proxy from extraEnvFrom carries its tuner-server calls; a Lease identity from extraEnv)."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import urllib.parse
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import yaml

from kube_harness.experiments import wait_for_phase
from tests.e2e.test_operator_helpers import ROOT, TRIAL_SCRIPT, apply_manifest, install_crd, trial_experiment, wait_for
from tests.integration.conftest import ADMIN
from tests.integration.conftest import ServerProcess as TunerServer

CHART = str(ROOT / "helm" / "autotune")
COMPONENTS = ("operator", "tuner-server")
KEY = {"operator": "operator", "tuner-server": "tunerServer"}

EXTRAS = {
    "extraEnv": [{"name": "HTTP_PROXY", "value": "http://proxy.corp:3128"},
                 {"name": "NO_PROXY", "value": ".svc,.cluster.local"},
                 {"name": "CORP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "corp", "key": "token"}}}],
    "extraEnvFrom": [{"configMapRef": {"name": "corp-settings"}}, {"secretRef": {"name": "corp", "optional": True}}],
    "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca-bundle"}}],
    "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
}


def render(kube_cluster, tmp_path, values: dict[str, Any], *args: str) -> str:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump({"adminToken": "a", "viewerToken": "v", **values}))
    return kube_cluster.helm("template", "r", CHART, "-f", str(f), *args).stdout


def pod_spec(out: str, component: str) -> dict:
    (dep,) = [d for d in yaml.safe_load_all(out)
              if d and d["kind"] == "Deployment" and d["metadata"]["name"] == f"r-autotune-{component}"]
    return dep["spec"]["template"]["spec"]


def refusal(kube_cluster, tmp_path, values: dict[str, Any]) -> str:
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(values))
    r = kube_cluster.helm("template", "r", CHART, "-f", str(f), check=False)
    assert r.returncode != 0, f"rendered, but should be refused: {values}"
    return r.stderr


def test_extras_are_added_to_both_containers_after_the_charts_own(kube_cluster, tmp_path):
    ns = kube_cluster.new_namespace("hxe")
    plain = render(kube_cluster, tmp_path, {}, "-n", ns)
    extra = render(kube_cluster, tmp_path, {"operator": EXTRAS, "tunerServer": EXTRAS}, "-n", ns)
    for component in COMPONENTS:
        before, after = pod_spec(plain, component), pod_spec(extra, component)
        c0, c1 = before["containers"][0], after["containers"][0]
        n = len(c0["env"])
        assert c1["env"][:n] == c0["env"] and c1["env"][n:] == EXTRAS["extraEnv"], component
        assert "envFrom" not in c0 and c1["envFrom"] == EXTRAS["extraEnvFrom"], component
        assert c1["volumeMounts"] == c0["volumeMounts"] + EXTRAS["extraVolumeMounts"], component
        assert after["volumes"] == before["volumes"] + EXTRAS["extraVolumes"], component
        assert {k: v for k, v in c1.items() if k not in ("env", "envFrom", "volumeMounts")} == {
            k: v for k, v in c0.items() if k not in ("env", "volumeMounts")}, component
    # the real apiserver takes every object (EnvVar, EnvFromSource, Volume, VolumeMount validated)
    r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=extra, check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def test_helm_lint_is_clean_with_extras(kube_cluster, tmp_path):
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump({"operator": EXTRAS, "tunerServer": EXTRAS}))
    r = kube_cluster.helm("lint", "--strict", CHART, "-f", str(f))
    assert "0 chart(s) failed" in r.stdout and "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout + r.stderr


def test_empty_extras_render_what_no_extras_render(kube_cluster, tmp_path):
    """The defaults are empty lists; null (--set operator.extraEnv=null) is the same."""
    plain = render(kube_cluster, tmp_path, {})
    empty = {k: [] for k in EXTRAS}
    assert render(kube_cluster, tmp_path, {"operator": empty, "tunerServer": empty}) == plain
    nulls = {k: None for k in EXTRAS}
    assert render(kube_cluster, tmp_path, {"operator": nulls, "tunerServer": nulls}) == plain


@pytest.mark.parametrize("key,name,says", [
    ("operator", "AUTOTUNE_LOG_LEVEL", "from operator.logLevel: set that value instead"),
    ("operator", "AUTOTUNE_NAMESPACES", "from watchNamespaces: set that value instead"),
    ("operator", "AUTOTUNE_LEADER_ELECTION", "from operator.leaderElection.enabled: set that value instead"),
    ("operator", "POD_NAME", "to a value the rest of the chart relies on: leave it out"),
    ("operator", "AUTOTUNE_LIVENESS_ENDPOINT", "from operator.healthPort: set that value instead"),
    ("tunerServer", "AUTOTUNE_MAX_BODY", "from tunerServer.maxBody: set that value instead"),
    ("tunerServer", "AUTOTUNE_VIEWER_TOKEN", "from viewerToken (or existingAdminTokenSecret): set that value instead"),
])
def test_extra_env_naming_a_variable_the_chart_sets_is_refused(kube_cluster, tmp_path, key, name, says):
    """Kubernetes keeps a container's duplicate variable silently (the later one), so an
    extraEnv entry would either override the chart's value past its checks or be ignored,
    and a strategic-merge upgrade that removes one duplicate removes both. The render fails
    instead, naming the entry, the variable and the value to set."""
    err = refusal(kube_cluster, tmp_path, {key: {"extraEnv": [{"name": "FINE", "value": "1"}, {"name": name, "value": "x"}]}})
    assert f"{key}.extraEnv[1]: {name} is set by the chart itself, {says}" in err, err


def test_extra_env_may_set_what_the_chart_does_not_set_with_these_values(kube_cluster, tmp_path):
    """The refusal follows what the chart renders: with metrics off it sets no
    AUTOTUNE_METRICS_ENDPOINT, so extraEnv may (on, it is refused)."""
    mine = {"operator": {"extraEnv": [{"name": "AUTOTUNE_METRICS_ENDPOINT", "value": "http://0.0.0.0:9100/metrics"}]}}
    env = pod_spec(render(kube_cluster, tmp_path, {**mine, "metrics": {"enabled": False}}), "operator")["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "AUTOTUNE_METRICS_ENDPOINT"] == ["http://0.0.0.0:9100/metrics"]
    err = refusal(kube_cluster, tmp_path, mine)
    assert "AUTOTUNE_METRICS_ENDPOINT is set by the chart itself, from metrics.enabled and metrics.operatorPort" in err, err


def test_malformed_extra_env_is_refused_naming_the_entry(kube_cluster, tmp_path):
    err = refusal(kube_cluster, tmp_path, {"operator": {"extraEnv": {"HTTP_PROXY": "http://p:3128"}}})
    assert 'operator.extraEnv must be a list of EnvVar objects such as [{name: HTTP_PROXY, value: "http://proxy:3128"}], ' \
           'not {"HTTP_PROXY":"http://p:3128"}' in err, err
    err = refusal(kube_cluster, tmp_path, {"tunerServer": {"extraEnv": [{"name": "A", "value": "1"}, {"value": "2"}]}})
    assert "tunerServer.extraEnv[1] must be an EnvVar object" in err and '{"value":"2"}' in err, err
    err = refusal(kube_cluster, tmp_path, {"operator": {"extraEnv": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}})
    assert "operator.extraEnv[1]: A is named twice (also in operator.extraEnv[0])" in err, err


def test_an_extra_volume_clashing_with_the_charts_is_refused_by_the_apiserver(kube_cluster, tmp_path):
    """values.yaml says the API server refuses a volume or mount path the chart already uses."""
    ns = kube_cluster.new_namespace("hxv")
    out = render(kube_cluster, tmp_path, {"operator": {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]}}, "-n", ns)
    r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=out, check=False)
    assert r.returncode != 0 and 'spec.template.spec.volumes[1].name: Duplicate value: "tmp"' in r.stderr, r.stderr[-2000:]
    out = render(kube_cluster, tmp_path, {"tunerServer": {"extraVolumes": [{"name": "x", "emptyDir": {}}],
                                                          "extraVolumeMounts": [{"name": "x", "mountPath": "/tmp"}]}}, "-n", ns)
    r = kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", input=out, check=False)
    assert r.returncode != 0 and 'mountPath: Invalid value: "/tmp": must be unique' in r.stderr, r.stderr[-2000:]


class ForwardProxy:
    """A plain HTTP forward proxy (absolute-URI requests) that sends every request to one
    upstream, the tuner server, whatever host the URI names, and records the URIs."""

    def __init__(self, upstream: str):
        up = urllib.parse.urlsplit(upstream)
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.seen.append(self.path)
                target = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                try:
                    conn.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body or None, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def forward_proxy(upstream: str) -> Iterator[ForwardProxy]:
    proxy = ForwardProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()


def host_dirs() -> list[str]:
    """The checkout and the Python environment running the tests (one when it is inside the other)."""
    dirs = sorted({str(ROOT), sys.prefix})
    return [d for d in dirs if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in dirs)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def test_the_charts_operator_pod_runs_with_its_extra_env(kube_cluster, tmp_path):
    """The chart's own operator Deployment, its pod run by the fake node as a local process
    with the container's env as Kubernetes builds it: HTTP_PROXY comes from a ConfigMap
    (extraEnvFrom) and the Lease identity from extraEnv. The operator's calls to the tuner
    server's in-cluster Service (a name that resolves nowhere here) go through that proxy,
    which forwards them to a real tuner server, and an experiment runs to its end."""
    # The fake node runs pods on this host's network: the operator's health port must be free here.
    health_port = free_port()
    install_crd(kube_cluster)
    rel_ns, team = kube_cluster.new_namespace("hxr"), kube_cluster.new_namespace("teamhxr")
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    name = "xe" + uuid.uuid4().hex[:6]
    server = TunerServer(tmp_path / "tuner.db")
    server.start()
    try:
        with forward_proxy(server.url) as proxy:
            kube_cluster.kubectl("create", "configmap", "proxy-settings", "-n", rel_ns, f"--from-literal=HTTP_PROXY={proxy.url}")
            values = tmp_path / "values.yaml"
            values.write_text(yaml.safe_dump({
                "adminToken": ADMIN, "watchNamespaces": [team], "metrics": {"enabled": False},
                "operator": {"replicas": 1, "orphanSweepSeconds": 0, "healthPort": health_port,
                             "extraEnvFrom": [{"configMapRef": {"name": "proxy-settings"}}],
                             # The pod's "image" is this host: the chart's emptyDir at /tmp would
                             # hide `autotune` of a checkout (and its .venv) under /tmp, so the
                             # checkout and the Python environment are mounted back in place.
                             "extraVolumes": [{"name": f"host{i}", "hostPath": {"path": d}}
                                              for i, d in enumerate(host_dirs())],
                             "extraVolumeMounts": [{"name": f"host{i}", "mountPath": d, "readOnly": True}
                                                   for i, d in enumerate(host_dirs())],
                             "extraEnv": [{"name": "AUTOTUNE_LEADER_ELECTION_IDENTITY", "value": "from-extra-env"}]},
                # trials are not the operator: they report straight to the tuner server
                "tunerServer": {"replicas": 0, "persistence": {"enabled": False}, "externalURL": server.url},
            }))
            kube_cluster.helm("install", name, CHART, "-n", rel_ns, "-f", str(values))
            try:
                def pod_log() -> str:
                    out = kube_cluster.kubectl("get", "pods", "-n", rel_ns, "-l", "app.kubernetes.io/component=operator",
                                               "-o", "json").stdout
                    pods = json.loads(out)["items"]
                    return "\n".join(kube_cluster.pod_log(rel_ns, p["metadata"]["name"]) for p in pods
                                     if p.get("status", {}).get("phase") in ("Running", "Succeeded", "Failed"))

                lease = f"{name}-autotune-operator"

                def holder() -> str | None:
                    r = kube_cluster.kubectl("get", "lease", lease, "-n", rel_ns, "-o", "json", check=False)
                    return json.loads(r.stdout)["spec"].get("holderIdentity") if r.returncode == 0 else None

                try:
                    assert wait_for(holder, 90, "the chart's operator pod to take its Lease") == "from-extra-env"
                except AssertionError as e:
                    raise AssertionError(f"{e}\n{pod_log()[-4000:]}") from None
                apply_manifest(kube_cluster, team, trial_experiment("viaproxy", script, max_trials=2, concurrency=2))
                st = wait_for_phase(kube_cluster, team, "viaproxy", "DONE", timeout=180, log=pod_log)["status"]
                assert st["trials"]["succeeded"] == 2, st
                service = f"http://{name}-autotune-tuner-server.{rel_ns}.svc:8080/api/v1/experiments"
                assert any(u.startswith(service) for u in proxy.seen), proxy.seen[:20]
            finally:
                kube_cluster.helm("uninstall", name, "-n", rel_ns, check=False)
                wait_for(lambda: not json.loads(kube_cluster.kubectl("get", "pods", "-n", rel_ns, "-o", "json").stdout)["items"],
                         60, "the operator pod to be gone")
    finally:
        server.stop()


@pytest.mark.parametrize("key", ["operator", "tunerServer"])
def test_an_extra_env_value_that_is_no_string_is_refused_naming_the_entry(kube_cluster, tmp_path, key):
    """YAML reads `value: 4`, `value: true` and `value: 1.10` as a number or a boolean, while an
    EnvVar's value is a string: the chart rendered them as they were read, `helm template` and
    `helm lint` passed, and the API server refused the whole Deployment at install (1.10 had
    already become 1.1). Refused at render time instead, naming the entry; a quoted value and
    a valueFrom stay fine."""
    for value, shown, kind in ((4, "4", "number"), (True, "true", "boolean"), (1.1, "1.1", "number")):
        err = refusal(kube_cluster, tmp_path, {key: {"extraEnv": [{"name": "FINE", "value": "4"},
                                                                  {"name": "WORKERS", "value": value}]}})
        assert f"{key}.extraEnv[1]: WORKERS's value {shown} is read as a {kind}" in err, err
        assert f'quote it (value: "{shown}")' in err, err
    out = render(kube_cluster, tmp_path, {key: {"extraEnv": [{"name": "WORKERS", "value": "4"}, {"name": "EMPTY", "value": None}]}})
    env = pod_spec(out, "operator" if key == "operator" else "tuner-server")["containers"][0]["env"]
    assert {"name": "WORKERS", "value": "4"} in env, env


@pytest.mark.parametrize("key", ["operator", "tunerServer"])
def test_extra_lists_that_are_not_lists_are_refused_naming_the_value(kube_cluster, tmp_path, key):
    """extraEnvFrom, extraVolumes and extraVolumeMounts given as a mapping (one entry written
    without its '-') or a string: a volume map broke the rendered YAML ('did not find expected
    '-' indicator', naming no value) and an envFrom map rendered an object the API server
    refuses. The render names the value and what it must be."""
    cases = {
        "extraEnvFrom": ({"configMapRef": {"name": "x"}}, "a list of envFrom sources"),
        "extraVolumes": ({"name": "corp", "emptyDir": {}}, "a list of Volume objects"),
        "extraVolumeMounts": ("/etc/corp-ca", "a list of VolumeMount objects"),
    }
    for field, (value, what) in cases.items():
        err = refusal(kube_cluster, tmp_path, {key: {field: value}})
        assert f"{key}.{field} must be {what}" in err and json.dumps(value, separators=(",", ":"), sort_keys=True) in err, err
        err = refusal(kube_cluster, tmp_path, {key: {field: ["x"]}})
        assert f'{key}.{field}[0] must be an object, not "x"' in err, err
