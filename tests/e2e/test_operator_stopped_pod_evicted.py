"""A stopped trial whose pod is evicted before the kubelet has killed it does not run again.

The operator stops a trial's batch-Job pod in place (activeDeadlineSeconds: 1,
workloads/stop_in_place.py); the kubelet then SIGTERMs the container and waits for the pod's
grace period. A node drain in that window evicts the pod (the Eviction API sets the condition
DisruptionTarget), and the Job's podFailurePolicy makes the Job controller replace it
without counting a failure: the new pod, without the deadline, would run the stopped trial
again from its start. The operator must delete such a Job once it sees the replacement.

Real kube-apiserver and kube-controller-manager (the Job controller), the fake node agent as
the kubelet (it honours activeDeadlineSeconds, kills after the grace period capped at 10 s,
and keeps the API server's DisruptionTarget condition: kube-harness.md), the real tuner
server and operator. The trial ignores SIGTERM, so its pod stays Running for the grace
period; the nodes are cordoned before the eviction (as `kubectl drain` does) so the
replacement waits, and a second trial waits too, which keeps the experiment running.
Before the fix the stopped trial's Job stayed, its replacement pod waiting to run the trial.
"""

from __future__ import annotations

import sys

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, task
from tests.e2e.test_operator_helpers import apply_manifest, jobs, operator_env, wait_for

TRIAL_LABEL = "autotune.tensorstack.dev/trial"
LIMIT = 4  # maxTrialSeconds
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
    t = task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"])
    t["template"]["spec"]["terminationGracePeriodSeconds"] = 10  # the window the drain falls in
    space = '{"steps": {"_type": "choice", "_value": [400, 401]}}'
    apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=2, concurrency=1, tasks=[t],
                                                         maxTrialSeconds=LIMIT))

    def stopping() -> client.V1Pod | None:  # patched by the operator, still running (SIGTERM ignored)
        for p in core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={name}-0").items:
            if p.spec.active_deadline_seconds == 1 and p.status.phase == "Running":
                return p
        return None

    pod = wait_for(stopping, 90, "the stopped trial's pod, patched and still running")
    nodes = [n.metadata.name for n in core.list_node().items]
    kube_cluster.kubectl("cordon", *nodes)  # a drain: cordon, then evict
    try:
        core.create_namespaced_pod_eviction(pod.metadata.name, ns, client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=ns)))
        # The Job controller replaces the evicted pod (podFailurePolicy Ignore on DisruptionTarget)...
        wait_for(lambda: [p for p in core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={name}-0").items
                          if p.metadata.uid != pod.metadata.uid] or not _job_exists(kube_cluster, ns, f"{name}-0"),
                 60, "the evicted pod's replacement (or the Job's deletion)")
        # ...and the operator deletes the stopped trial's Job rather than let the new pod run it.
        wait_for(lambda: not _job_exists(kube_cluster, ns, f"{name}-0"), 60,
                 "the stopped trial's Job to be deleted")
        assert f"{name}-0" not in [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)]
    finally:
        kube_cluster.kubectl("uncordon", *nodes)


def _job_exists(kube_cluster, ns: str, job: str) -> bool:
    return any(j["metadata"]["name"] == job for j in jobs(kube_cluster, ns, job.rsplit("-", 1)[0]))
