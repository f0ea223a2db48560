"""KubernetesExecutor.started(): what it asks the API server, pass by pass.

The API objects are recorded stand-ins for the two Kubernetes API classes the executor
calls (the real path runs against kube-apiserver in tests/e2e/test_operator_trial_start.py):
here the point is the cost, which e2e cannot see: one labelled pod LIST per pass while a
trial's start is unknown, naming only those trials, and none once every trial has started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.executors.kubernetes import ExperimentRef, KubernetesExecutor
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads.common import EXPERIMENT_LABEL, TRIAL_LABEL
from tests.unit.test_trial_start import MANIFEST, T0, iso, pod, running

UID = "uid-q"


def job(tid: str, created: float = T0, complete: bool = False) -> dict[str, Any]:
    status = {"conditions": [{"type": "Complete", "status": "True"}]} if complete else {}
    return {"metadata": {"name": tid, "labels": {EXPERIMENT_LABEL: "q", TRIAL_LABEL: tid},
                         "ownerReferences": [{"uid": UID}], "creationTimestamp": iso(created)}, "status": status}


@dataclass
class Raw:
    data: bytes


@dataclass
class Cluster:
    """What the API server holds, and every LIST of pods asked of it (its label selector)."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    pod_lists: list[str] = field(default_factory=list)
    forbid_pods: bool = False

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, label_selector: str) -> dict:
        return {"items": list(self.jobs)}

    def patch_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str, body: dict) -> None:
        for j in self.jobs:  # the executor's "ended" annotation (its Event is posted once)
            if j["metadata"]["name"] == name:
                j["metadata"].setdefault("annotations", {}).update((body.get("metadata") or {}).get("annotations") or {})
                j.setdefault("spec", {}).update(body.get("spec") or {})  # (a stopped trial's Job deadline)

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: dict) -> None:
        self.jobs.append(body)

    def list_namespaced_pod(self, ns: str, label_selector: str, _preload_content: bool) -> Raw:
        self.pod_lists.append(label_selector)
        if self.forbid_pods:
            raise ApiException(status=403, reason="Forbidden")
        wanted = label_selector.split(f"{TRIAL_LABEL} in (")[1].rstrip(")").split(",") if " in (" in label_selector else None
        items = [p for p in self.pods if wanted is None or p["metadata"]["labels"][TRIAL_LABEL] in wanted]
        return Raw(json.dumps({"items": items}).encode())


class Events:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, bool]] = []

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        self.emitted.append((reason, warning))


def executor(cluster: Cluster, events: Events) -> KubernetesExecutor:
    ex = KubernetesExecutor(client.ApiClient(client.Configuration()), ExperimentRef("ns", "q", UID),
                            validate_manifest(MANIFEST).spec, "job", events=events)  # type: ignore[arg-type]
    ex.custom = cluster  # type: ignore[assignment]
    ex.core = cluster  # type: ignore[assignment]
    return ex


def step(ex: KubernetesExecutor) -> dict[str, float]:
    ex.poll()
    return dict(ex.started())


def test_one_pod_list_per_pass_while_a_start_is_unknown_and_none_after() -> None:
    cluster, events = Cluster(jobs=[job("q-0"), job("q-1")]), Events()
    cluster.pods = [pod("q-0", T0), pod("q-1", T0)]  # both Pending
    ex = executor(cluster, events)
    assert not ex.starts_on_launch
    assert step(ex) == {}
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0,q-1)"]
    cluster.pods[0] = pod("q-0", T0, [running(T0 + 30)])
    assert step(ex) == {"q-0": T0 + 30}
    assert step(ex) == {"q-0": T0 + 30}
    assert cluster.pod_lists[1:] == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in ({t})" for t in ("q-0,q-1", "q-1")]
    # q-1 runs and ends between two passes: looked up once more, its container's start kept
    cluster.jobs[1] = job("q-1", complete=True)
    cluster.pods[1] = pod("q-1", T0, [{"name": "c", "state": {"terminated": {
        "exitCode": 0, "startedAt": iso(T0 + 40), "finishedAt": iso(T0 + 45)}}}])
    assert step(ex) == {"q-0": T0 + 30, "q-1": T0 + 40}
    n = len(cluster.pod_lists)
    # Handed over in the pass q-1 ended; forgotten after (test_k8s_forget_ended.py).
    assert step(ex) == {"q-0": T0 + 30} and step(ex) == {"q-0": T0 + 30}
    assert len(cluster.pod_lists) == n  # every trial's start known: no more pod LISTs
    assert [r for r, _ in events.emitted] == ["TrialSucceeded"]  # no warning about pods


def test_a_restarted_executor_looks_up_only_trials_still_running() -> None:
    cluster = Cluster(jobs=[job("q-0", complete=True), job("q-1")],
                      pods=[pod("q-0", T0, [running(T0 + 1)]), pod("q-1", T0, [running(T0 + 2)])])
    ex = executor(cluster, Events())
    cluster.jobs[0]["metadata"]["annotations"] = {"autotune.tensorstack.dev/ended": "true"}
    assert step(ex) == {"q-1": T0 + 2}  # q-0 ended before this executor: its start was reported then
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-1)"]


def test_many_waiting_trials_select_by_experiment_only() -> None:
    cluster = Cluster(jobs=[job(f"q-{i}") for i in range(60)])
    ex = executor(cluster, Events())
    step(ex)
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q"]


def test_pods_not_readable_fall_back_to_the_workloads_creation_once_with_a_warning() -> None:
    cluster, events = Cluster(jobs=[job("q-0", created=T0 + 3)], forbid_pods=True), Events()
    ex = executor(cluster, events)
    assert step(ex) == {"q-0": T0 + 3}
    cluster.jobs.append(job("q-1", created=T0 + 9))
    assert step(ex) == {"q-0": T0 + 3, "q-1": T0 + 9}
    assert len(cluster.pod_lists) == 1 and events.emitted == [("PodsNotReadable", True)]


def test_a_trial_created_run_and_ended_between_two_passes_gets_its_start() -> None:
    """Never seen running (its Job was complete at the first poll after its launch): its start
    was never looked up, so the trial had none (or its first report's) instead of its pod's."""
    from autotune_operator.executors.base import TrialLaunch

    cluster = Cluster()
    ex = executor(cluster, Events())
    ex.launch(TrialLaunch("q-0", 0, {}, {}))
    (created,) = cluster.jobs
    created["metadata"]["creationTimestamp"] = iso(T0)
    created["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.pods = [pod("q-0", T0, [{"name": "c", "state": {"terminated": {
        "exitCode": 0, "startedAt": iso(T0 + 2), "finishedAt": iso(T0 + 3)}}}])]
    exits = ex.poll()
    assert [(e.trial_id, e.exit_code) for e in exits] == [("q-0", 0)]
    assert ex.started() == {"q-0": T0 + 2}
    assert cluster.pod_lists == [f"{EXPERIMENT_LABEL}=q,{TRIAL_LABEL} in (q-0)"]
    assert step(ex) == {} and len(cluster.pod_lists) == 1  # looked up once; forgotten once handed over
