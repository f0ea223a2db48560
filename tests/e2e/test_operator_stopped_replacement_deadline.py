"""A replacement pod stopped on a later pass keeps its grace period: the Job's deadline moves.

The operator stops a trial's batch-Job pod in place (activeDeadlineSeconds: 1) and gives the
Job a deadline of the pod's grace period plus 60 s after the stop (stop_in_place.job_deadline),
which bounds a replacement of a pod disrupted while it stops once no operator looks. A pass
that finds such a replacement running stops it too; when that pass comes more than 50 s after
the first stop, the first deadline leaves the replacement less than its grace period, and the
Job controller would fail the Job and delete the replacement (its logs with it) while it
stops. The operator must push its deadline out (job_deadline_needed).

Real kube-apiserver and kube-controller-manager (the Job controller), the fake node agent as
the kubelet (kube-harness.md), the real tuner server and operator processes. The pod declares
a 300 s grace period (the fake kubelet kills after at most 10 s, so what is checked is the
deadline the real API server holds, against the grace period the pod declares). The first
operator stops the trial and is killed; the pod, ignoring SIGTERM, is evicted while it stops
and the Job controller replaces it (podFailurePolicy Ignore on DisruptionTarget); a minute
later (waited for on the clock) a second operator finds the replacement running and stops
it. Before the fix the Job kept the first deadline, shorter than the replacement's grace.
"""

from __future__ import annotations

import math
import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube_harness.experiments import experiment_manifest, task
from tests.e2e.test_operator_helpers import OperatorProcess, apply_manifest, jobs, operator_env, wait_for

TRIAL_LABEL = "autotune.tensorstack.dev/trial"
DEADLINE_ANNOTATION = "autotune.tensorstack.dev/stop-deadline"
LIMIT = 4  # maxTrialSeconds
GRACE = 300  # the pods' terminationGracePeriodSeconds
SLACK = 10  # stop_in_place.STOP_SLACK_SECONDS
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
EXTRA = {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("replstop"), "replstop", EXTRA, script=SCRIPT) as e:
        yield e


def test_a_replacement_stopped_a_minute_after_the_stop_gets_its_grace_period_before_the_jobs_deadline(
        kube_cluster, env):
    ns, name = env["ns"], "repl"
    trial = f"{name}-0"
    core = client.CoreV1Api(kube_cluster.api_client())
    batch = client.BatchV1Api(kube_cluster.api_client())
    t = task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"])
    t["template"]["spec"]["terminationGracePeriodSeconds"] = GRACE
    space = '{"steps": {"_type": "choice", "_value": [2000, 2001]}}'
    apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=2, concurrency=1, tasks=[t],
                                                         maxTrialSeconds=LIMIT))

    def pods() -> list[client.V1Pod]:
        return core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={trial}").items

    def stopped_and_bounded() -> client.V1Pod | None:
        """The first operator's stop: the pod patched (still running, SIGTERM ignored) and the
        Job given our deadline."""
        try:
            job = batch.read_namespaced_job(trial, ns)
        except ApiException as e:
            if e.status == 404:  # not created yet
                return None
            raise
        if not (job.metadata.annotations or {}).get(DEADLINE_ANNOTATION):
            return None
        return next((p for p in pods() if p.spec.active_deadline_seconds == 1 and p.status.phase == "Running"), None)

    first = wait_for(stopped_and_bounded, 90, "the stopped trial's pod patched, still running, and its Job's deadline")
    env["op"].kill()  # no operator looks while the pod is evicted and replaced
    job = batch.read_namespaced_job(trial, ns)
    started = job.status.start_time.timestamp()  # (what the Job controller counts the deadline from)
    first_deadline = job.spec.active_deadline_seconds
    assert job.metadata.annotations[DEADLINE_ANNOTATION] == str(first_deadline)
    core.create_namespaced_pod_eviction(first.metadata.name, ns, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=ns)))
    replacement = wait_for(lambda: next((p for p in pods() if p.metadata.uid != first.metadata.uid
                                         and p.status.phase == "Running"), None),
                           90, "the evicted pod's replacement running")
    assert replacement.spec.active_deadline_seconds is None  # (a new pod: the stop is not on it)
    # A pass from now on that stops the replacement needs more than the first deadline leaves.
    wait_for(lambda: time.time() >= started + first_deadline - GRACE, 120,
             "the first deadline to be too short for a pod stopped now", interval=1)
    restarted = time.time()
    op = OperatorProcess(kube_cluster, env["server"], [ns], env["tmp"] / "operator-2.log", extra_env=dict(EXTRA))
    op.start()
    try:
        wait_for(lambda: next((p for p in pods() if p.metadata.uid == replacement.metadata.uid
                               and p.spec.active_deadline_seconds == 1), None),
                 120, "the second operator stopping the replacement")
        need = math.ceil(restarted - started) + GRACE + SLACK
        job = wait_for(lambda: (lambda j: j if (j.spec.active_deadline_seconds or 0) >= need else None)(
            batch.read_namespaced_job(trial, ns)), 30,
            f"the Job's deadline pushed out to at least {need} (it was {first_deadline})")
        assert job.metadata.annotations[DEADLINE_ANNOTATION] == str(job.spec.active_deadline_seconds)
        # The replacement's own failure (DeadlineExceeded, counted: backoffLimit 0) ends the Job,
        # not the Job's deadline; the replacement stays, with its logs.
        failed = wait_for(lambda: next((c for c in (batch.read_namespaced_job(trial, ns).status.conditions or [])
                                        if c.type == "Failed" and c.status == "True"), None),
                          60, "the stopped trial's Job to fail")
        assert failed.reason == "BackoffLimitExceeded", failed
        kept = [p for p in pods() if p.metadata.uid == replacement.metadata.uid]
        assert kept and kept[0].status.phase == "Failed" and kept[0].status.reason == "DeadlineExceeded", kept
        assert trial in [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)]
    finally:
        op.stop()
