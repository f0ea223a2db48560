"""A stopped trial whose pod is evicted before the kubelet has killed it does not run again.

The operator stops a trial's batch-Job pod in place (activeDeadlineSeconds: 1,
workloads/stop_in_place.py); the kubelet then SIGTERMs the container and waits for the pod's
grace period. A node drain in that window evicts the pod (the Eviction API sets the condition
DisruptionTarget), and the Job's podFailurePolicy makes the Job controller replace it
without counting a failure: the new pod, without the deadline, would run the stopped trial
again from its start. The operator must delete such a Job once it sees the replacement (or
the disrupted pod before it ends).

Real kube-apiserver and kube-controller-manager (the Job controller), the fake node agent as
the kubelet (it honours activeDeadlineSeconds and keeps the API server's DisruptionTarget
condition: kube-harness.md), the real tuner server and operator. The trial ignores SIGTERM
and its pods have an hour of grace, given in full (the agent caps grace periods at 10 s
unless a pod opts out with its annotation kube-harness/honour-grace-period), so the stopped
pod stays Running, stopping, until the test evicts it, however long the test takes to get
there: the window is not a bet on the machine's speed. The drain evicts with a grace period
of 1 s (kubectl drain --grace-period=1), which shortens the kill, as it does on a kubelet.
Each trial needs both GPUs of the one GPU node, so the second trial waits while the stopped
pod holds them, which keeps the experiment running (the operator looks at a stopped trial's
Job again only while its experiment runs; a second trial stopped by maxTrialSeconds too
would end it). The nodes are cordoned before the eviction (as `kubectl drain` does), so the
replacement and the second trial then wait. Before the fix the stopped trial's Job stayed,
its replacement pod waiting to run the trial.
"""

from __future__ import annotations

import sys

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, task
from kube_harness.node_agent import HONOUR_GRACE_ANNOTATION
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, jobs, operator_env, wait_for

TRIAL_LABEL = "autotune.tensorstack.dev/trial"
LIMIT = 4  # maxTrialSeconds
GRACE = 3600  # the trial pods' terminationGracePeriodSeconds, given in full (HONOUR_GRACE_ANNOTATION)
EVICTION_GRACE = 1  # the drain's grace period: ends the stopping pod's kill, shortened
SCRIPT = '''\
import signal, time
import autotune
p = autotune.get_next_parameter()
signal.signal(signal.SIGTERM, lambda *a: print("SIGTERM: ignored, still training", flush=True))
for step in range(int(p["steps"])):
    autotune.report_intermediate_result(float(step))
    print(f"step {step}", flush=True)
    time.sleep(0.5)
autotune.report_final_result(1.0)
'''


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("evictstop"), "evictstop",
                      {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}, script=SCRIPT) as e:
        yield e


def test_a_stopped_trials_pod_evicted_while_it_stops_is_not_replaced(kube_cluster, env):
    ns, name = env["ns"], "evict"
    core = client.CoreV1Api(kube_cluster.api_client())
    # Both GPUs of the one GPU node: the second trial waits while the stopped pod holds them.
    t = task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"],
             limits={"nvidia.com/gpu": 2})
    t["template"]["metadata"] = {"annotations": {HONOUR_GRACE_ANNOTATION: "true"}}
    t["template"]["spec"]["terminationGracePeriodSeconds"] = GRACE  # the window the drain falls in
    space = '{"steps": {"_type": "choice", "_value": [400, 401]}}'
    nodes = [n.metadata.name for n in core.list_node().items]
    try:
        apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=2, concurrency=1,
                                                             tasks=[t], maxTrialSeconds=LIMIT))

        def stopping() -> client.V1Pod | None:  # patched by the operator, still running (SIGTERM ignored)
            for p in core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={name}-0").items:
                if p.spec.active_deadline_seconds == 1 and p.status.phase == "Running":
                    return p
            return None

        pod = wait_for(stopping, 90, "the stopped trial's pod, patched and still running")
        kube_cluster.kubectl("cordon", *nodes)  # a drain: cordon, then evict
        core.create_namespaced_pod_eviction(pod.metadata.name, ns, client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=ns),
            delete_options=client.V1DeleteOptions(grace_period_seconds=EVICTION_GRACE)))
        # The Job controller replaces the evicted pod (podFailurePolicy Ignore on DisruptionTarget)...
        wait_for(lambda: [p for p in core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={name}-0").items
                          if p.metadata.uid != pod.metadata.uid] or not _job_exists(kube_cluster, ns, f"{name}-0"),
                 60, "the evicted pod's replacement (or the Job's deletion)")
        # ...and the operator deletes the stopped trial's Job rather than let the new pod run it.
        wait_for(lambda: not _job_exists(kube_cluster, ns, f"{name}-0"), 60,
                 "the stopped trial's Job to be deleted")
        assert f"{name}-0" not in [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)]
    finally:
        try:
            _end_experiment(kube_cluster, ns, name)
        finally:
            kube_cluster.kubectl("uncordon", *nodes)


def _job_exists(kube_cluster, ns: str, job: str) -> bool:
    return any(j["metadata"]["name"] == job for j in jobs(kube_cluster, ns, job.rsplit("-", 1)[0]))


def _end_experiment(kube_cluster, ns: str, name: str) -> None:
    """Delete the experiment, then its Jobs and pods (a pod with a grace period of 1 s), before
    the nodes take pods again: with an hour of grace honoured, a trial pod left stopping (the
    second trial's, stopped by maxTrialSeconds) would run on, ignoring SIGTERM, long after this
    test. Not left to the garbage collector, which may take its discovery period (30 s) to
    watch a CRD's objects."""
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--ignore-not-found", "--timeout=60s", check=False)
    kube_cluster.kubectl("delete", "jobs,pods", "-n", ns, "-l", f"{LABEL}={name}", "--grace-period=1",
                         "--ignore-not-found", "--timeout=60s", check=False)
