"""maxTrialSeconds counts from when a trial really starts running, not from when its
workload is created: a trial whose pod waits in Pending for a device is not stopped, and
once its container runs it is stopped maxTrialSeconds after the container's startedAt.

The trial asks for more GPUs than any fake node has, so the harness's scheduler leaves its
pod Pending (Unschedulable), as a real cluster does while every GPU is taken. The test then
plays that node's kubelet: nothing runs a pod bound to a node the fake node agent does not
manage, and there is no container runtime here, so it binds the pod to such a node and
writes the status a kubelet writes when the container starts (the pods/status
subresource, a running containerStatus with startedAt).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import pytest
from kubernetes import client

from kube_harness.experiments import get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, jobs, operator_env, trial_experiment, wait_for

LIMIT = 3  # maxTrialSeconds
KUBELET_NODE = "node-whose-kubelet-is-this-test"  # not one of the fake node agent's


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    # A short resync: the operator looks often, so a wrong rule would stop the queued trial.
    with operator_env(kube_cluster, tmp_path_factory.mktemp("trialstart"), "tstart",
                      {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}) as e:
        yield e


def pods_of(core: client.CoreV1Api, ns: str, exp: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(ns, label_selector=f"{LABEL}={exp}").items


def trial_view(env, uid: str) -> dict:
    (t,) = env["server"].get(f"/api/v1/experiments/{uid}/trials").json()
    return t


def test_a_trial_queued_for_a_gpu_is_not_stopped_and_its_clock_starts_when_it_runs(kube_cluster, env):
    ns, name = env["ns"], "queued"
    core = client.CoreV1Api(kube_cluster.api_client())
    space = '{"x": {"_type": "choice", "_value": [1]}}'
    command = [sys.executable, str(env["script"]), "--x=${parameters.x}"]
    manifest = trial_experiment(name, env["script"], max_trials=1, concurrency=1, space=space, tuner="Random",
                                maxTrialSeconds=LIMIT, tasks=[task("master", command, limits={"nvidia.com/gpu": 4})])
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    try:
        # The pod waits for a node with 4 GPUs (the fake GPU node has 2).
        (pod,) = wait_for(lambda: [p for p in pods_of(core, ns, name) if any(
            c.type == "PodScheduled" and c.reason == "Unschedulable" for c in (p.status.conditions or []))],
            60, "the trial's pod to be Unschedulable")
        (job,) = jobs(kube_cluster, ns, name)
        created = dt.datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()
        uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
        # Well past maxTrialSeconds since its workload was created (a dozen operator passes
        # at least): still there, still waiting, not stopped.
        while time.time() < created + 3 * LIMIT + 2:
            time.sleep(0.5)
        assert [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)] == [job["metadata"]["name"]]
        t = trial_view(env, uid)
        assert t["state"] == "WAITING" and t["started"] is None, t
        st = get_experiment(kube_cluster, ns, name)["status"]
        assert st["phase"] == "RUNNING" and st["trials"]["waiting"] == 1 and st["trials"]["running"] == 0, st
        assert core.read_namespaced_pod(pod.metadata.name, ns).status.phase == "Pending"

        # The kubelet's part: a GPU came free, the pod is bound and its container starts.
        core.create_namespaced_pod_binding(pod.metadata.name, ns, client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=KUBELET_NODE)), _preload_content=False)
        started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        container = pod.spec.containers[0]
        core.patch_namespaced_pod_status(pod.metadata.name, ns, {"status": {
            "phase": "Running",
            "startTime": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "", "ready": True, "restartCount": 0,
                "started": True, "state": {"running": {"startedAt": started_at.strftime("%Y-%m-%dT%H:%M:%SZ")}}}],
        }})
        s = started_at.timestamp()

        st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=60, log=env["op"].output)["status"]
        assert st["trials"]["failed"] == 1 and st["trials"]["stopped"] == 0, st
        t = trial_view(env, uid)
        assert t["state"] == "FAILED" and t["message"] == f"ran longer than maxTrialSeconds ({LIMIT}s) and was stopped", t
        # Its time is the container's: started when it ran, stopped no sooner than LIMIT later,
        # although its workload had existed for far longer than LIMIT by then.
        assert t["started"] == s, (t, s)
        assert t["ended"] - t["started"] >= LIMIT, t
        assert s - created >= 3 * LIMIT, (s, created)
        # Stopped in place (stop_in_place.py): this test plays the kubelet, so what is checked is
        # the operator's part: the pod asked to stop (activeDeadlineSeconds), neither it nor its
        # Job deleted, the Job saying why.
        (p,) = wait_for(lambda: [p for p in pods_of(core, ns, name) if p.spec.active_deadline_seconds == 1], 30,
                        "the stopped trial's pod to get activeDeadlineSeconds")
        assert not p.metadata.deletion_timestamp
        (j,) = jobs(kube_cluster, ns, name)
        assert j["metadata"]["annotations"]["autotune.tensorstack.dev/stop-reason"] == t["message"], j["metadata"]
    finally:
        # No kubelet confirms the deletion of a pod on KUBELET_NODE: remove it as one would.
        for p in pods_of(core, ns, name):
            core.delete_namespaced_pod(p.metadata.name, ns, grace_period_seconds=0)


def test_trials_that_ran_on_a_node_have_their_containers_start_time(kube_cluster, env):
    """Trials the fake node agent runs (short ones, which may start and end between two
    operator passes): each trial's start in the tuner server is its pod's container startedAt
    (kept no earlier than the trial's creation: startedAt has whole seconds)."""
    ns, name = env["ns"], "ran"
    core = client.CoreV1Api(kube_cluster.api_client())
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
        trial_experiment(name, env["script"], max_trials=2, concurrency=2)))
    wait_for_phase(kube_cluster, ns, name, "DONE", timeout=90, log=env["op"].output)
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    trials = {t["name"]: t for t in env["server"].get(f"/api/v1/experiments/{uid}/trials").json()}
    pods = {p.metadata.labels["autotune.tensorstack.dev/trial"]: p for p in pods_of(core, ns, name)}
    assert sorted(trials) == sorted(pods) and len(trials) == 2
    for tid, t in trials.items():
        (cs,) = pods[tid].status.container_statuses
        ran = cs.state.terminated.started_at.timestamp()
        assert t["state"] == "SUCCEEDED" and t["started"] == max(ran, t["created"]), (t, ran)
