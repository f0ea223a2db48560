"""KubernetesExecutor.read_log: what it asks the API server and what it makes of the answers.

The API server is a recorded stand-in (the real path, kube-apiserver + the fake kubelet, is
tests/e2e/test_operator_stdout_metrics.py): the request goes through the real client's
serialization (``ApiClient.param_serialize``) and the stand-in answers the pod log GET as a
kubelet does (kube_harness/container_logs.render: timestamps, sinceTime). The point is the
cost, which e2e cannot see: one pod LIST per pass shared with started(), one log GET per
running trial, none for a container that has not run, and no GET at all after a 403.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.executors.kubernetes import ExperimentRef, KubernetesExecutor
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads.common import EXPERIMENT_LABEL, TRIAL_LABEL
from autotune_operator.workloads.pod_logs import PodLogCursor
from kube_harness.container_logs import parse_ns, record, render
from tests.unit.test_k8s_trial_start import UID, Events, Raw, job
from tests.unit.test_trial_start import MANIFEST, T0, iso

S = int(T0) * 10**9


def manifest(tasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    m = copy.deepcopy(MANIFEST)
    m["spec"]["primaryMetric"] = "accuracy"
    m["spec"]["metricsCollector"] = {"kind": "StdOut"}
    if tasks is not None:
        m["spec"]["trainingConfig"]["tasks"] = tasks
    return m


def pod(name: str, trial: str, uid: str, containers: tuple[str, ...] = ("c",), ran: bool = True,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    state = {"running": {"startedAt": iso(T0 + 1)}} if ran else {"waiting": {"reason": "ContainerCreating"}}
    return {"metadata": {"name": name, "uid": uid, "creationTimestamp": iso(T0),
                         "labels": {EXPERIMENT_LABEL: "q", TRIAL_LABEL: trial, **(labels or {})}},
            "spec": {"containers": [{"name": c} for c in containers]},
            "status": {"phase": "Running" if ran else "Pending",
                       "containerStatuses": [{"name": c, "state": state} for c in containers]}}


@dataclass
class Response:
    status: int
    reason: str
    data: bytes

    def read(self) -> bytes:
        return self.data


@dataclass
class Cluster:
    """Workloads, pods and their containers' log records; every pod LIST and log GET asked."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)  # (pod, container) -> records (no newline)
    pod_lists: list[str] = field(default_factory=list)
    log_gets: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    log_error: int | None = None  # answer log GETs with this status
    down: bool = False  # log GETs fail to connect

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, label_selector: str) -> dict:
        return {"items": list(self.jobs)}

    def patch_namespaced_custom_object(self, *a: Any) -> None:
        pass

    def list_namespaced_pod(self, ns: str, label_selector: str, _preload_content: bool) -> Raw:
        self.pod_lists.append(label_selector)
        return Raw(json.dumps({"items": self.pods}).encode())

    def get_log(self, url: str) -> Response:
        u = urllib.parse.urlparse(url)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        name = u.path.split("/")[-2]
        self.log_gets.append((name, q))
        if self.down:
            raise ConnectionError("connection refused")
        if self.log_error:
            return Response(self.log_error, "Forbidden" if self.log_error == 403 else "Error", b"{}")
        since = parse_ns(q["sinceTime"]) if "sinceTime" in q else None
        out = render(self.logs.get((name, q["container"]), []), timestamps=q.get("timestamps") == "true", since_ns=since)
        return Response(200, "OK", b"".join(out))


class Api(client.ApiClient):
    """The real client's request building; the request itself goes to the stand-in."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(client.Configuration(host="https://k8s.invalid"))
        self.cluster = cluster

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, post_params: Any = None,
                 _request_timeout: Any = None) -> Response:  # type: ignore[override]
        assert method == "GET" and "/api/v1/namespaces/ns/pods/" in url
        if "*/*" not in (header_params or {}).get("Accept", "*/*"):  # as kube-apiserver does for the log
            return Response(406, "Not Acceptable", b"{}")
        return self.cluster.get_log(url)


def executor(cluster: Cluster, events: Events, family: str = "job", tasks: list[dict[str, Any]] | None = None,
             clock: list[float] | None = None) -> KubernetesExecutor:
    now = clock if clock is not None else [0.0]
    ex = KubernetesExecutor(Api(cluster), ExperimentRef("ns", "q", UID), validate_manifest(manifest(tasks)).spec,
                            family, events=events, clock=lambda: now[0])  # type: ignore[arg-type]
    ex.custom = cluster  # type: ignore[assignment]
    ex.core = cluster  # type: ignore[assignment]
    return ex


def lines_at(cluster: Cluster, pod_name: str, container: str, *entries: tuple[float, str]) -> None:
    cluster.logs.setdefault((pod_name, container), []).extend(
        record(text.encode(), at_ns=S + int(at * 10**9))[:-1] for at, text in entries)


def test_one_pod_list_per_pass_shared_with_started_and_one_log_get_per_trial() -> None:
    cluster, events = Cluster(jobs=[job("q-0"), job("q-1")]), Events()
    cluster.pods = [pod("q-0-aaaaa", "q-0", "u0"), pod("q-1-bbbbb", "q-1", "u1")]
    lines_at(cluster, "q-0-aaaaa", "c", (0.1, "epoch 0"), (0.2, "accuracy=0.5"))
    lines_at(cluster, "q-1-bbbbb", "c", (0.3, "accuracy=0.6"))
    ex = executor(cluster, events)
    ex.poll()
    assert set(ex.started()) == {"q-0", "q-1"}
    c0 = ex.read_log("q-0", None)
    c1 = ex.read_log("q-1", None)
    assert c0 is not None and c0.lines == ("epoch 0", "accuracy=0.5")
    assert c1 is not None and c1.lines == ("accuracy=0.6",)
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-1)"]  # listed once, for both
    assert [(n, q) for n, q in cluster.log_gets] == [
        ("q-0-aaaaa", {"container": "c", "timestamps": "true", "limitBytes": str(4 * 1024 * 1024)}),
        ("q-1-bbbbb", {"container": "c", "timestamps": "true", "limitBytes": str(4 * 1024 * 1024)})]
    # Next pass: q-0 printed two more lines, one in the same second as before.
    lines_at(cluster, "q-0-aaaaa", "c", (0.2, "loss=0.9"), (1.5, "accuracy=0.7"))
    ex.poll()
    ex.started()  # every start known: no LIST here
    c0b = ex.read_log("q-0", c0.cursor)
    assert c0b is not None and c0b.lines == ("loss=0.9", "accuracy=0.7")
    assert len(cluster.pod_lists) == 2 and cluster.log_gets[-1][1]["sinceTime"] == iso(T0)  # whole seconds
    assert c0b.cursor == PodLogCursor("u0", S + 1_500_000_000, 1)
    c0c = ex.read_log("q-0", c0b.cursor)  # same pass: the LIST is reused, nothing new is read
    assert c0c is not None and c0c.lines == () and c0c.cursor == c0b.cursor
    assert len(cluster.pod_lists) == 2 and cluster.log_gets[-1][1]["sinceTime"] == iso(T0 + 1)


def test_the_pods_list_is_listed_again_when_old_even_without_a_poll() -> None:
    now = [0.0]
    cluster = Cluster(jobs=[job("q-0")], pods=[pod("q-0-a", "q-0", "u0", ran=False)])
    ex = executor(cluster, Events(), clock=now)
    assert ex.read_log("q-0", None) is None and cluster.log_gets == []  # not started: no GET (it would be a 400)
    cluster.pods = [pod("q-0-a", "q-0", "u0")]
    lines_at(cluster, "q-0-a", "c", (0.5, "accuracy=0.1"))
    assert ex.read_log("q-0", None) is None  # the same pass's LIST says it has not run
    now[0] = 11.0
    chunk = ex.read_log("q-0", None)
    assert chunk is not None and chunk.lines == ("accuracy=0.1",) and len(cluster.pod_lists) == 2


def test_a_replaced_pod_is_read_from_its_start_and_a_final_read_takes_the_last_line() -> None:
    cluster = Cluster(jobs=[job("q-0")], pods=[pod("q-0-a", "q-0", "u0")])
    lines_at(cluster, "q-0-a", "c", (0.1, "accuracy=0.1"))
    ex = executor(cluster, Events())
    first = ex.read_log("q-0", None)
    assert first is not None and first.lines == ("accuracy=0.1",)
    new = pod("q-0-b", "q-0", "u1")
    new["metadata"]["creationTimestamp"] = iso(T0 + 60)
    cluster.pods.append(new)
    cluster.logs[("q-0-b", "c")] = [record(b"accuracy=0.2", at_ns=S + 61 * 10**9)[:-1],
                                    record(b"accuracy=0.3", partial=True, at_ns=S + 62 * 10**9)[:-1]]
    ex.poll()
    second = ex.read_log("q-0", first.cursor)
    assert second is not None and second.lines == ("accuracy=0.2",)  # no sinceTime of the old pod
    assert "sinceTime" not in cluster.log_gets[-1][1] and second.cursor.uid == "u1"
    last = ex.read_log("q-0", second.cursor, final=True)
    assert last is not None and last.lines == ("accuracy=0.3",)
    assert last.unterminated and not second.unterminated  # the controller drops it if the trial was killed


def test_kubeflow_reads_the_masters_first_template_container() -> None:
    tasks = [{"type": "worker", "replicas": 2, "template": {"spec": {"containers": [{"name": "w", "command": ["t"]}]}}},
             {"type": "master", "replicas": 1, "template": {"spec": {"containers": [
                 {"name": "pytorch", "command": ["t"]}, {"name": "sidecar", "command": ["s"]}]}}}]
    cluster = Cluster(jobs=[job("q-0")], pods=[
        pod("q-0-worker-0", "q-0", "w0", containers=("w",)),
        pod("q-0-master-0", "q-0", "m0", containers=("pytorch", "sidecar"),
            labels={"training.kubeflow.org/replica-type": "master", "training.kubeflow.org/replica-index": "0"})])
    lines_at(cluster, "q-0-master-0", "pytorch", (0.1, "accuracy=0.9"))
    lines_at(cluster, "q-0-worker-0", "w", (0.1, "accuracy=0.1"))
    ex = executor(cluster, Events(), family="kubeflow", tasks=tasks)
    chunk = ex.read_log("q-0", None)
    assert chunk is not None and chunk.lines == ("accuracy=0.9",)
    assert [(n, q["container"]) for n, q in cluster.log_gets] == [("q-0-master-0", "pytorch")]


def test_forbidden_logs_warn_once_and_are_not_asked_again() -> None:
    cluster, events = Cluster(jobs=[job("q-0")], pods=[pod("q-0-a", "q-0", "u0")], log_error=403), Events()
    ex = executor(cluster, events)
    assert ex.read_log("q-0", None) is None
    ex.poll()
    assert ex.read_log("q-0", None) is None and ex.read_log("q-0", None) is None
    assert len(cluster.log_gets) == 1 and events.emitted == [("PodLogsNotReadable", True)]


def test_api_errors_and_a_server_down_give_none_never_raise() -> None:
    cluster, events = Cluster(jobs=[job("q-0")], pods=[pod("q-0-a", "q-0", "u0")], log_error=500), Events()
    lines_at(cluster, "q-0-a", "c", (0.1, "accuracy=0.1"))
    ex = executor(cluster, events)
    assert ex.read_log("q-0", None) is None
    cluster.log_error, cluster.down = None, True
    assert ex.read_log("q-0", None) is None
    cluster.down = False
    chunk = ex.read_log("q-0", None)  # and it reads again once the server answers
    assert chunk is not None and chunk.lines == ("accuracy=0.1",) and events.emitted == []
    # A trial whose pods are gone (killed, deleted): nothing to read.
    cluster.pods = []
    ex.poll()
    assert ex.read_log("q-0", chunk.cursor) is None


def test_pods_not_listable_warn_once() -> None:
    class NoPods(Cluster):
        def list_namespaced_pod(self, ns: str, label_selector: str, _preload_content: bool) -> Raw:
            self.pod_lists.append(label_selector)
            raise ApiException(status=403, reason="Forbidden")

    cluster, events = NoPods(jobs=[job("q-0")]), Events()
    ex = executor(cluster, events)
    assert ex.read_log("q-0", None) is None and ex.read_log("q-0", None) is None
    ex.poll()
    ex.started()
    assert len(cluster.pod_lists) == 1 and events.emitted == [("PodsNotReadable", True)]


def test_the_list_names_the_trials_read_this_pass_and_many_select_by_experiment() -> None:
    cluster = Cluster(jobs=[job("q-0"), job("q-1", complete=True)],
                      pods=[pod("q-0-a", "q-0", "u0"), pod("q-1-a", "q-1", "u1")])
    lines_at(cluster, "q-1-a", "c", (0.1, "accuracy=0.4"))
    ex = executor(cluster, Events())
    ex.poll()  # q-0 runs, q-1 ended just now: both are read this pass (q-1 drained)
    chunk = ex.read_log("q-1", None, final=True)
    assert chunk is not None and chunk.lines == ("accuracy=0.4",)
    ex.started()
    ex.read_log("q-0", None)
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-1)"]
    ex.read_log("q-7", None)  # not among them: listed again, with it
    assert cluster.pod_lists[-1] == f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-1,q-7)"
    many = Cluster(jobs=[job(f"q-{i}") for i in range(60)])
    ex = executor(many, Events())
    ex.poll()
    ex.started()
    ex.read_log("q-3", None)
    assert many.pod_lists == [f"{EXPERIMENT_LABEL}=q"]
