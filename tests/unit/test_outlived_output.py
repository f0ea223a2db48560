"""Nothing a trial wrote is lost on the cluster path when its output is read through a pod's
log: an outlived trial's workload (a mesh proxy kept its pod running) is deleted only once its
output was read to its end, or after OUTPUT_WAIT_SECONDS with a Warning Event; a restarted
metrics sidecar's replay is not counted twice; a File's last line without a newline is taken
from a sidecar the kubelet never stops (Istio as an ordinary container). KubernetesExecutor
against the recorded API stand-in of test_k8s_read_log (real request building, kubelet-shaped
log answers); the pass order is the controller's: poll, read_log(final) of the ended trial
until it returns no line, started()."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from autotune_operator.executors.kubernetes import ExperimentRef, KubernetesExecutor
from autotune_operator.relay_marks import FILE_KEY, mark
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads.metrics_sidecar import SIDECAR
from autotune_operator.workloads.outlived import OUTPUT_WAIT_SECONDS, delete_now
from kube_harness.container_logs import record
from tests.unit.test_k8s_read_log import S, Api, Cluster, lines_at, manifest, pod
from tests.unit.test_k8s_trial_start import UID, Events, job
from tests.unit.test_trial_start import T0, iso


def test_delete_now_waits_for_the_output_then_gives_up() -> None:
    assert delete_now(True, 100.0, 100.0) == "delete"
    assert delete_now(False, 100.0, 100.0 + OUTPUT_WAIT_SECONDS - 1) is None
    assert delete_now(False, 100.0, 100.0 + OUTPUT_WAIT_SECONDS) == "give up"
    assert delete_now(False, 0.0, 5.0, wait=5.0) == "give up"


@dataclass
class DeletingCluster(Cluster):
    deleted: list[str] = field(default_factory=list)

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                        propagation_policy: str) -> None:
        self.deleted.append(name)
        self.jobs = [j for j in self.jobs if j["metadata"]["name"] != name]


def outlived_pod(collector: str = "StdOut") -> dict[str, Any]:
    """The trial's container ended (exit 0) 100 s ago; istio-proxy (an ordinary container) runs on."""
    p = pod("q-0-a", "q-0", "u0", containers=("c", "istio-proxy"))
    p["spec"]["restartPolicy"] = "Never"  # a Job's pod
    p["status"]["containerStatuses"][0]["state"] = {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": iso(T0 + 1), "finishedAt": iso(T0 + 100)}}
    if collector != "StdOut":
        p["spec"]["initContainers"] = [{"name": SIDECAR, "restartPolicy": "Always"}]
        p["status"]["initContainerStatuses"] = [{"name": SIDECAR, "restartCount": 1,
                                                 "state": {"running": {"startedAt": iso(T0 + 50)}}}]
    return p


def running_job() -> dict[str, Any]:
    j = job("q-0")
    j["status"] = {"active": 1, "ready": 0}
    return j


def executor(cluster: Cluster, events: Events, clock: list[float], collector: dict[str, Any] | None = None
             ) -> KubernetesExecutor:
    m = manifest()
    if collector is not None:
        m = copy.deepcopy(m)
        m["spec"]["metricsCollector"] = collector
    ex = KubernetesExecutor(Api(cluster), ExperimentRef("ns", "q", UID), validate_manifest(m).spec, "job",
                            events=events, clock=lambda: clock[0])  # type: ignore[arg-type]
    ex.custom = cluster  # type: ignore[assignment]
    ex.core = cluster  # type: ignore[assignment]
    ex.now = lambda: T0 + 200  # past the 30 s grace
    return ex


def drain(ex: KubernetesExecutor, cursor: Any = None) -> tuple[list[str] | None, Any]:
    """The controller's final read: until a read returns no line (None: it could not read)."""
    got: list[str] = []
    for _ in range(10):
        chunk = ex.read_log("q-0", cursor, final=True)
        if chunk is None:
            return None, cursor
        got.extend(chunk.lines)
        cursor = chunk.cursor
        if not chunk.lines:
            return got, cursor
    raise AssertionError("never reached the end")


def test_an_outlived_trials_workload_waits_until_its_output_was_read_to_its_end() -> None:
    cluster, events, clock = DeletingCluster(jobs=[running_job()], pods=[outlived_pod()]), Events(), [0.0]
    lines_at(cluster, "q-0-a", "c", (1.0, "accuracy=0.5"), (90.0, "accuracy=0.9"))
    ex = executor(cluster, events, clock)
    (exit_,) = ex.poll()
    assert exit_.trial_id == "q-0" and exit_.exit_code == 0
    cluster.down = True  # the controller's read of its output fails this pass
    assert drain(ex)[0] is None
    ex.started()
    assert cluster.deleted == []  # before: deleted here, and accuracy=0.9 was never read
    clock[0] = 10.0
    ex.poll()  # the next pass: still kept
    assert cluster.deleted == []
    cluster.down = False
    lines, _ = drain(ex)
    assert lines == ["accuracy=0.5", "accuracy=0.9"]
    ex.started()
    assert cluster.deleted == ["q-0"]
    assert [r for r, _ in events.emitted] == ["TrialSidecarOutlived"]


def test_an_output_never_readable_is_given_up_after_the_wait_with_one_event() -> None:
    cluster, events, clock = DeletingCluster(jobs=[running_job()], pods=[outlived_pod()], log_error=500), Events(), [0.0]
    ex = executor(cluster, events, clock)
    ex.poll()
    assert drain(ex)[0] is None
    ex.started()
    clock[0] = OUTPUT_WAIT_SECONDS - 1
    ex.poll()
    ex.started()
    assert cluster.deleted == []
    clock[0] = OUTPUT_WAIT_SECONDS
    ex.poll()
    assert cluster.deleted == ["q-0"]
    ex.started()
    assert [r for r, _ in events.emitted] == ["TrialSidecarOutlived", "TrialOutputUnread"]


def test_without_a_collector_nothing_is_waited_for() -> None:
    cluster, events, clock = DeletingCluster(jobs=[running_job()], pods=[outlived_pod()]), Events(), [0.0]
    ex = executor(cluster, events, clock)
    ex._collects = False  # (no spec.metricsCollector: the controller reads nothing)
    ex.poll()
    ex.started()
    assert cluster.deleted == ["q-0"]


FILE = {"kind": "File", "path": "/var/log/katib/metrics.log"}


def test_a_restarted_sidecars_replay_is_read_once_and_the_unfinished_last_line_on_the_final_read() -> None:
    """The sidecar's log as the API serves it after its container restarted: only the current
    instance's lines, which begin with the file again. Istio keeps the pod running, so the
    kubelet never stops the sidecar: its last line (no newline) is only shown unfinished."""
    cluster, events, clock = DeletingCluster(jobs=[running_job()], pods=[outlived_pod("File")]), Events(), [0.0]
    first = [mark(FILE_KEY, 0, i, f"accuracy=0.{i}") for i in range(3)]
    lines_at(cluster, "q-0-a", SIDECAR, *((1.0 + i, line) for i, line in enumerate(first)))
    ex = executor(cluster, events, clock, FILE)
    chunk = ex.read_log("q-0", None)
    assert chunk is not None and chunk.lines == ("accuracy=0.0", "accuracy=0.1", "accuracy=0.2")
    # The sidecar restarted: the API now serves the new instance's log, the file from its start.
    again = [mark(FILE_KEY, 0, i, f"accuracy=0.{i}") for i in range(5)] + [
        mark(FILE_KEY, 0, 5, "accuracy=0.99", partial=True)]
    cluster.logs[("q-0-a", SIDECAR)] = [record(line.encode(), at_ns=S + (60 + i) * 10**9)[:-1]
                                        for i, line in enumerate(again)]
    more = ex.read_log("q-0", chunk.cursor)
    assert more is not None and more.lines == ("accuracy=0.3", "accuracy=0.4")  # not 0.0-0.2 again
    (exit_,) = ex.poll()  # the trial's container ended: istio-proxy outlived it
    lines, _ = drain(ex, more.cursor)
    assert lines == ["accuracy=0.99"]  # the final read takes the unfinished last line
    ex.started()
    assert cluster.deleted == ["q-0"]
