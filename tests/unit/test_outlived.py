"""A trial whose container ended while an injected sidecar keeps its pod running (Katib
#1042: istio-proxy): the pure rule (workloads/outlived.py) on hand-made pods shaped like the
Job controller's and Kubeflow's, and what KubernetesExecutor.poll does with it against a
recorded stand-in of the API (the real path: tests/e2e/test_operator_sidecar_outlived.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotune_operator.executors.kubernetes import ENDED_ANNOTATION
from autotune_operator.workloads.common import EXPERIMENT_LABEL, TRIAL_LABEL
from autotune_operator.workloads.outlived import (
    SIDECAR_GRACE_SECONDS,
    may_have_outlived,
    outlived,
    pod_outlived,
    restarts,
)
from tests.unit.test_k8s_trial_start import Cluster, Events, executor, job
from tests.unit.test_trial_start import T0, iso

GRACE = SIDECAR_GRACE_SECONDS
JOB_TASKS = [{"type": "master", "template": {"spec": {"containers": [{"name": "c"}]}}}]
KF_TASKS = [{"type": "worker", "template": {"spec": {"containers": [{"name": "pytorch"}]}}},
            {"type": "master", "template": {"spec": {"containers": [{"name": "pytorch"}]}}}]
ISTIO = {"name": "istio-proxy", "state": {"running": {"startedAt": iso(T0 + 1)}}}


def ended(name: str, code: int, at: float, reason: str | None = None, message: str = "") -> dict[str, Any]:
    term = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": iso(T0 + 1), "finishedAt": iso(at)}
    if message:
        term["message"] = message
    return {"name": name, "state": {"terminated": term}}


def pod(trial: str, name: str, statuses: list[dict[str, Any]], *, restart: str = "Never",
        containers: tuple[str, ...] | None = None, labels: dict[str, str] | None = None,
        init: list[dict[str, Any]] | None = None, phase: str = "Running") -> dict[str, Any]:
    """A trial's pod: ``containers`` in its spec (default: those with a status)."""
    names = containers if containers is not None else tuple(s["name"] for s in statuses)
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [{"name": n} for n in names]}
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses}
    if init is not None:
        spec["initContainers"] = [{"name": s["name"], "restartPolicy": "Always"} for s in init]
        status["initContainerStatuses"] = init
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": iso(T0),
                         "labels": {EXPERIMENT_LABEL: "q", TRIAL_LABEL: trial, **(labels or {})}},
            "spec": spec, "status": status}


def job_pod(code: int = 0, at: float = T0 + 100, **kw: Any) -> dict[str, Any]:
    return pod("q-0", "q-0-abcde", [ended("c", code, at), ISTIO], **kw)


# ----- the pure rule -----

def test_a_job_trial_kept_running_by_istio_proxy_ends_with_its_code_after_the_grace() -> None:
    p = job_pod(code=3, at=T0 + 100)
    assert outlived("job", "q-0", [p], JOB_TASKS, T0 + 100 + GRACE - 1, GRACE) is None  # within the grace
    o = outlived("job", "q-0", [p], JOB_TASKS, T0 + 100 + GRACE, GRACE)
    assert o is not None
    assert (o.trial, o.pod, o.container, o.exit_code, o.running) == ("q-0", "q-0-abcde", "c", 3, ("istio-proxy",))
    assert o.finished == T0 + 100  # the grace's start is in the pod's status: a restarted operator agrees
    assert o.trial_message() == "container c exited with code 3 (Error); pod q-0-abcde was kept running by istio-proxy"
    assert "istio-proxy still ran 30s after that" in o.event_message(GRACE)
    ok = outlived("job", "q-0", [job_pod(code=0)], JOB_TASKS, T0 + 1000, GRACE)
    assert ok is not None and ok.exit_code == 0


def test_the_terminated_reason_and_message_are_in_the_trials_message() -> None:
    p = pod("q-0", "q-0-x", [ended("c", 137, T0 + 5, "OOMKilled", "out of memory\n"), ISTIO])
    o = outlived("job", "q-0", [p], JOB_TASKS, T0 + 60, GRACE)
    assert o is not None and o.trial_message().startswith("container c exited with code 137 (OOMKilled: out of memory)")
    long = pod("q-0", "q-0-x", [ended("c", 1, T0 + 5, "Error", "Traceback\n  line\n" * 400), ISTIO])
    o = outlived("job", "q-0", [long], JOB_TASKS, T0 + 60, GRACE)
    assert o is not None and "(Error: Traceback line Traceback line" in o.trial_message()
    assert len(o.trial_message()) < 700 and "...)" in o.trial_message()


def test_a_kubeflow_master_is_decided_from_its_own_pod_not_a_workers() -> None:
    kf = {"training.kubeflow.org/replica-type": "master", "training.kubeflow.org/replica-index": "0",
          "training.kubeflow.org/job-role": "master"}
    master = pod("q-0", "q-0-master-0", [ended("pytorch", 0, T0 + 10), ISTIO], labels=kf)
    worker = pod("q-0", "q-0-worker-0", [{"name": "pytorch", "state": {"running": {}}}, ISTIO],
                 labels={"training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": "0"})
    o = outlived("kubeflow", "q-0", [worker, master], KF_TASKS, T0 + 100, GRACE)
    assert o is not None and (o.pod, o.container, o.exit_code) == ("q-0-master-0", "pytorch", 0)
    # A worker whose container ended beside its proxy decides nothing: the master leads.
    worker_done = pod("q-0", "q-0-worker-0", [ended("pytorch", 1, T0 + 10), ISTIO], labels=worker["metadata"]["labels"])
    master_running = pod("q-0", "q-0-master-0", [{"name": "pytorch", "state": {"running": {}}}, ISTIO], labels=kf)
    assert outlived("kubeflow", "q-0", [worker_done, master_running], KF_TASKS, T0 + 100, GRACE) is None


def test_a_native_sidecar_is_not_a_regular_container() -> None:
    # The autotune-metrics sidecar (initContainers, restartPolicy Always) still runs: the
    # kubelet stops it itself once the regular containers have ended.
    native = [{"name": "autotune-metrics", "state": {"running": {"startedAt": iso(T0)}}}]
    p = pod("q-0", "q-0-x", [ended("c", 0, T0 + 10)], init=native)
    assert outlived("job", "q-0", [p], JOB_TASKS, T0 + 1000, GRACE) is None


def test_a_container_the_kubelet_restarts_is_not_ended() -> None:
    # OnFailure: a failed container is restarted in place (its Job's backoffLimit decides).
    crashed = pod("q-0", "q-0-x", [ended("c", 2, T0 + 10), ISTIO], restart="OnFailure")
    assert outlived("job", "q-0", [crashed], JOB_TASKS, T0 + 1000, GRACE) is None
    done = pod("q-0", "q-0-x", [ended("c", 0, T0 + 10), ISTIO], restart="OnFailure")
    assert outlived("job", "q-0", [done], JOB_TASKS, T0 + 1000, GRACE) is not None
    # Always (and the pod's default): even an exit 0 runs again.
    assert outlived("job", "q-0", [pod("q-0", "q-0-x", [ended("c", 0, T0 + 10), ISTIO], restart="Always")],
                    JOB_TASKS, T0 + 1000, GRACE) is None
    backing_off = {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": ended("c", 2, T0 + 10)["state"]}
    assert outlived("job", "q-0", [pod("q-0", "q-0-x", [backing_off, ISTIO], restart="OnFailure")],
                    JOB_TASKS, T0 + 1000, GRACE) is None


def test_restart_rules_of_kubernetes_134_containers() -> None:
    assert restarts("Never", [], 1) is False and restarts("OnFailure", [], 0) is False
    assert restarts("OnFailure", [], 1) and restarts("Always", [], 0)
    rules = [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]
    assert restarts("Never", rules, 42) and not restarts("Never", rules, 1)
    not_in = [{"action": "Restart", "exitCodes": {"operator": "NotIn", "values": [0]}}]
    assert restarts("Never", not_in, 3) and not restarts("Never", not_in, 0)
    p = pod("q-0", "q-0-x", [ended("c", 42, T0 + 10), ISTIO])
    p["spec"]["containers"][0].update({"restartPolicy": "Never", "restartPolicyRules": rules})
    assert pod_outlived(p, "c", "q-0", T0 + 1000, GRACE) is None


def test_nothing_to_decide_without_another_live_container_or_on_a_pod_that_is_going() -> None:
    alone = pod("q-0", "q-0-x", [ended("c", 0, T0 + 10)])
    assert outlived("job", "q-0", [alone], JOB_TASKS, T0 + 1000, GRACE) is None
    both = pod("q-0", "q-0-x", [ended("c", 0, T0 + 10), ended("istio-proxy", 0, T0 + 11)])
    assert outlived("job", "q-0", [both], JOB_TASKS, T0 + 1000, GRACE) is None
    # A container listed in the spec with no status yet has not ended either.
    unreported = pod("q-0", "q-0-x", [ended("c", 0, T0 + 10)], containers=("c", "istio-proxy"))
    assert outlived("job", "q-0", [unreported], JOB_TASKS, T0 + 1000, GRACE) is not None
    for going in (job_pod(phase="Failed"), job_pod(phase="Succeeded")):
        assert outlived("job", "q-0", [going], JOB_TASKS, T0 + 1000, GRACE) is None
    deleting = job_pod()
    deleting["metadata"]["deletionTimestamp"] = iso(T0 + 200)
    evicted = job_pod()
    evicted["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    for p in (deleting, evicted):
        assert outlived("job", "q-0", [p], JOB_TASKS, T0 + 1000, GRACE) is None
    running = pod("q-0", "q-0-x", [{"name": "c", "state": {"running": {}}}, ISTIO])
    assert outlived("job", "q-0", [running], JOB_TASKS, T0 + 1000, GRACE) is None
    assert outlived("job", "q-0", [], JOB_TASKS, T0 + 1000, GRACE) is None
    assert outlived("job", "q-1", [job_pod()], JOB_TASKS, T0 + 1000, GRACE) is None  # another trial's pod


def test_a_job_counting_its_pods_ready_needs_no_look() -> None:
    assert not may_have_outlived("job", {"status": {"active": 1, "ready": 1}})
    assert may_have_outlived("job", {"status": {"active": 1, "ready": 0}})
    assert may_have_outlived("job", {"status": {"active": 1}})  # not counted: look
    assert may_have_outlived("kubeflow", {"status": {}})


# ----- the executor: poll reports it; started(), which the controller calls after reading
# the ended trials' output in the same pass, deletes the workload -----

@dataclass
class DeletingCluster(Cluster):
    deleted: list[str] = field(default_factory=list)

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                        propagation_policy: str) -> None:
        self.deleted.append(name)
        self.jobs = [j for j in self.jobs if j["metadata"]["name"] != name]


def running_job(tid: str) -> dict[str, Any]:
    j = job(tid)
    j["status"] = {"active": 1, "ready": 0}
    return j


def test_poll_ends_the_trial_with_the_containers_code_posts_one_event_and_started_deletes_it() -> None:
    cluster, events = DeletingCluster(jobs=[running_job("q-0")], pods=[job_pod(code=3, at=T0 + 100)]), Events()
    ex = executor(cluster, events)
    mono = [0.0]
    ex.clock = lambda: mono[0]
    ex.now = lambda: T0 + 110  # within the grace: the Job's own status may still come
    assert ex.poll() == [] and "q-0" in ex.active()
    ex.now = lambda: T0 + 125
    assert ex.poll() == [] and len(cluster.pod_lists) == 1  # pods looked at most every 10 s
    mono[0] = 21.0
    ex.now = lambda: T0 + 131
    (exit_,) = ex.poll()
    assert (exit_.trial_id, exit_.exit_code, exit_.killed) == ("q-0", 3, False)
    assert exit_.message and "exited with code 3" in exit_.message
    assert events.emitted == [("TrialSidecarOutlived", True)]
    assert cluster.jobs[0]["metadata"]["annotations"] == {ENDED_ANNOTATION: "true"}
    assert ex.active() == set() and cluster.deleted == []  # its output is read before its pod goes
    ex.started()
    assert cluster.deleted == ["q-0"]
    assert ex.poll() == [] and events.emitted == [("TrialSidecarOutlived", True)]


@dataclass
class FlakyDeletingCluster(DeletingCluster):
    fail_deletes: int = 1

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str,
                                        propagation_policy: str) -> None:
        if self.fail_deletes:
            self.fail_deletes -= 1
            raise ConnectionResetError("connection reset by peer")
        super().delete_namespaced_custom_object(group, version, ns, plural, name, propagation_policy)


def test_a_failed_delete_does_not_fail_the_pass_and_is_tried_again() -> None:
    cluster = FlakyDeletingCluster(jobs=[running_job("q-0")], pods=[job_pod(code=0, at=T0 + 100)])
    ex = executor(cluster, Events())
    ex.now = lambda: T0 + 140
    (exit_,) = ex.poll()
    assert exit_.trial_id == "q-0"
    ex.started()  # the API drops the DELETE: logged, not raised out of the controller's pass
    assert cluster.deleted == []
    ex.started()
    assert cluster.deleted == ["q-0"]


def test_a_restarted_operator_reaches_the_same_decision_without_a_second_event() -> None:
    cluster, events = DeletingCluster(jobs=[running_job("q-0")], pods=[job_pod(code=0, at=T0 + 100)]), Events()
    first = executor(cluster, events)
    first.now = lambda: T0 + 140
    (a,) = first.poll()  # ... and the operator dies before started() deletes the Job
    again = executor(cluster, events)
    again.now = lambda: T0 + 141
    (b,) = again.poll()
    assert (a.exit_code, a.message) == (b.exit_code, b.message) == (0, None)  # exit 0: no message
    assert [r for r, _ in events.emitted] == ["TrialSidecarOutlived"]
    again.poll()  # (the controller's pass may end before started(): the next poll deletes it)
    assert cluster.deleted == ["q-0"]


def test_no_pod_list_while_every_job_counts_its_pods_ready_and_none_when_switched_off() -> None:
    ready = running_job("q-0")
    ready["status"]["ready"] = 1
    cluster = DeletingCluster(jobs=[ready], pods=[pod("q-0", "q-0-x", [{"name": "c", "state": {"running": {}}}, ISTIO])])
    ex = executor(cluster, Events())
    ex._started["q-0"] = T0  # its start known: started() lists nothing either
    ex.now = lambda: T0 + 1000
    for _ in range(3):
        assert ex.poll() == []
    assert cluster.pod_lists == []
    off = DeletingCluster(jobs=[running_job("q-0")], pods=[job_pod()])
    ex = executor(off, Events())
    ex.sidecar_grace = None
    ex.now = lambda: T0 + 1000
    assert ex.poll() == [] and off.pod_lists == [] and off.deleted == []


def test_the_grace_setting() -> None:
    import pytest

    from autotune_operator.runtime import Settings

    base = {"AUTOTUNE_ADMIN_TOKEN": "t" * 20}
    assert Settings.from_env(base).sidecar_grace_seconds == SIDECAR_GRACE_SECONDS == 30
    assert Settings.from_env({**base, "AUTOTUNE_SIDECAR_GRACE_SECONDS": "2.5"}).sidecar_grace_seconds == 2.5
    assert Settings.from_env({**base, "AUTOTUNE_SIDECAR_GRACE_SECONDS": "0"}).sidecar_grace_seconds == 0  # never
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(SystemExit, match="AUTOTUNE_SIDECAR_GRACE_SECONDS"):
            Settings.from_env({**base, "AUTOTUNE_SIDECAR_GRACE_SECONDS": bad})
