"""Which pod and container hold a trial's output (workloads/primary_pod.py), on hand-made
pod objects shaped like the Job controller's, Kubeflow's and T9k's pods."""

from __future__ import annotations

import datetime as dt
from typing import Any

from autotune_operator.workloads.common import TRIAL_LABEL
from autotune_operator.workloads.primary_pod import LogSource, primary_pod, primary_replica, replica_of

T0 = 1_800_000_000.0


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task(rtype: str, *containers: str) -> dict[str, Any]:
    return {"type": rtype, "replicas": 1, "template": {"spec": {"containers": [{"name": c} for c in containers]}}}


def pod(name: str, trial: str = "e-1", created: float = T0, labels: dict[str, str] | None = None,
        containers: tuple[str, ...] = ("main",), ran: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A pod of ``trial``; ``ran``: containers that have started (default: all)."""
    ran = containers if ran is None else ran
    statuses = [{"name": c, "state": {"running": {"startedAt": iso(created + 1)}} if c in ran
                 else {"waiting": {"reason": "ContainerCreating"}}} for c in containers]
    return {"metadata": {"name": name, "uid": f"uid-{name}-{created}", "creationTimestamp": iso(created),
                         "labels": {TRIAL_LABEL: trial, **(labels or {})}},
            "spec": {"containers": [{"name": c} for c in containers]},
            "status": {"containerStatuses": statuses}}


def kf(rtype: str, index: int, **kw: Any) -> dict[str, Any]:
    """A Kubeflow training-operator pod: named <job>-<type>-<index> and labelled so."""
    labels = {"training.kubeflow.org/replica-type": rtype, "training.kubeflow.org/replica-index": str(index)}
    if kw.pop("role", False):
        labels["training.kubeflow.org/job-role"] = "master"
    return pod(f"e-1-{rtype}-{index}", labels=labels, **kw)


def test_primary_replica_is_chief_then_master_then_worker_then_the_first_task() -> None:
    assert primary_replica(["Worker", "PS", "Chief"]) == "chief"
    assert primary_replica(["worker", "master"]) == "master"
    assert primary_replica(["ps", "worker"]) == "worker"  # TFJob without a chief: worker 0 leads
    assert primary_replica(["evaluator"]) == "evaluator"


def test_replica_of_reads_kubeflow_labels_legacy_labels_other_prefixes_then_the_name() -> None:
    assert replica_of(kf("master", 0), "e-1") == ("master", 0)
    legacy = pod("x", labels={"replica-type": "Worker", "replica-index": "2"})
    assert replica_of(legacy, "e-1") == ("worker", 2)
    other = pod("y", labels={"example.com/replica-type": "chief", "example.com/replica-index": "0"})
    assert replica_of(other, "e-1") == ("chief", 0)
    assert replica_of(pod("e-1-worker-3"), "e-1") == ("worker", 3)  # T9k-style: name only
    assert replica_of(pod("e-1-abcde"), "e-1") is None  # a Job's pod
    assert replica_of(pod("e-10-worker-0"), "e-1") is None  # another trial's name prefix


def test_a_jobs_newest_pod_and_the_templates_first_container() -> None:
    old = pod("e-1-aaaaa", created=T0, containers=("sidecar", "train"))
    new = pod("e-1-bbbbb", created=T0 + 30, containers=("sidecar", "train"))
    src = primary_pod("job", "e-1", [new, old], [task("master", "train", "sidecar")])
    assert src == LogSource("e-1-bbbbb", f"uid-e-1-bbbbb-{T0 + 30}", "train", True)


def test_pods_of_other_trials_and_of_an_earlier_experiment_of_the_same_name_are_ignored() -> None:
    other = pod("e-2-zzzzz", trial="e-2", created=T0 + 60)
    stale = pod("e-1-old", created=T0 - 600)
    assert primary_pod("job", "e-1", [other, stale], [task("master", "main")], not_before=T0) is None
    assert primary_pod("job", "e-1", [other, stale], [task("master", "main")]).pod == "e-1-old"


def test_a_container_that_has_not_started_has_no_log_yet() -> None:
    src = primary_pod("job", "e-1", [pod("e-1-p", ran=())], [task("master", "main")])
    assert src is not None and not src.has_log
    restarted = pod("e-1-q", ran=())
    restarted["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1}}
    assert primary_pod("job", "e-1", [restarted], [task("master", "main")]).has_log


def test_pytorch_reads_the_masters_pod_not_a_workers() -> None:
    pods = [kf("worker", 0, created=T0), kf("master", 0, created=T0 + 1, containers=("pytorch",)), kf("worker", 1)]
    src = primary_pod("kubeflow", "e-1", pods, [task("worker", "w"), task("master", "pytorch")])
    assert src is not None and (src.pod, src.container) == ("e-1-master-0", "pytorch")


def test_tfjob_with_a_chief_reads_the_chief_without_one_worker_0() -> None:
    tasks = [task("worker", "tensorflow"), task("ps", "tensorflow")]
    pods = [kf("ps", 0), kf("worker", 1), kf("worker", 0, role=True)]
    assert primary_pod("kubeflow", "e-1", pods, tasks).pod == "e-1-worker-0"
    with_chief = [*pods, kf("chief", 0, containers=("tf",))]
    src = primary_pod("kubeflow", "e-1", with_chief, [task("chief", "tf"), *tasks])
    assert (src.pod, src.container) == ("e-1-chief-0", "tf")


def test_t9k_pods_recognised_by_name_and_a_recreated_replica_pod_is_read_anew() -> None:
    tasks = [task("master", "pytorch"), task("worker", "pytorch")]
    first = pod("e-1-master-0", created=T0, containers=("pytorch",))
    again = pod("e-1-master-0", created=T0 + 90, containers=("pytorch",))
    src = primary_pod("t9k", "e-1", [pod("e-1-worker-0", containers=("pytorch",)), first, again], tasks)
    assert src.pod == "e-1-master-0" and src.uid == f"uid-e-1-master-0-{T0 + 90}"


def test_only_the_role_label_left_and_no_leader_at_all() -> None:
    odd = pod("e-1-launcher", labels={"training.kubeflow.org/job-role": "master"})
    assert primary_pod("kubeflow", "e-1", [odd], [task("master", "main")]).pod == "e-1-launcher"
    # Only workers 1.. exist yet (worker 0 not created): nothing to read rather than the wrong pod.
    assert primary_pod("kubeflow", "e-1", [kf("worker", 1)], [task("worker", "main")]) is None


def test_a_pod_without_the_templates_container_is_read_from_its_first() -> None:
    p = pod("e-1-x", containers=("renamed", "istio-proxy"))
    assert primary_pod("job", "e-1", [p], [task("master", "main")]).container == "renamed"


def test_t9k_pods_of_a_renamed_training_job_recognised_by_name() -> None:
    """A dotted trial's training job is named <trial with '-'>-<hash> (workloads/names.py); its
    replica pods (T9k labels them with the trial only) are found under that name."""
    from autotune_operator.workloads.names import training_job_name
    trial = "my.exp-3"
    tasks = [task("master", "pytorch"), task("worker", "pytorch")]
    job = training_job_name(trial, [("master", 1), ("worker", 1)])
    assert job != trial
    pods = [pod(f"{job}-worker-0", trial=trial, containers=("pytorch",)),
            pod(f"{job}-master-0", trial=trial, containers=("pytorch",))]
    src = primary_pod("t9k", trial, pods, tasks)
    assert src is not None and src.pod == f"{job}-master-0"
