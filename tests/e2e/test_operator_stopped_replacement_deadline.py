"""A pod stopped on a later pass keeps its grace period: the operator's Job deadline moves.

The operator stops a trial's batch-Job pod in place (activeDeadlineSeconds: 1) and gives the
Job a deadline of the pod's grace period plus 60 s after the stop (stop_in_place.job_deadline),
which bounds a replacement of a pod disrupted while it stops once no operator looks. A pass
that later finds such a replacement running stops it too; when that pass comes more than 50 s
after the first stop, the first deadline leaves the replacement less than its grace period,
and the Job controller would fail the Job and delete the replacement (its logs with it) while
it stops. The operator must push its own deadline out (job_deadline_needed).

Real kube-apiserver and kube-controller-manager (the Job controller), the fake node agent as
the kubelet (kube-harness.md), the real tuner server and operator processes. The Job is left
as an operator leaves it after such a first stop (the stop's reason, our deadline and its
annotation), with a running pod not stopped yet, by the test: making that state by evicting
a stopping pod (test_operator_stopped_pod_evicted.py does) would bet on the test evicting it
before the fake kubelet's kill (at most 10 s), and on a minute passing in between. Here the
deadline leaves the pod 20 s less than its 300 s grace period (the fake kubelet kills after
10 s anyway, so what is checked is the deadline the real API server holds, against the grace
period the pod declares), and a restarted operator stops the pod. Before the fix the Job
kept that deadline.
"""

from __future__ import annotations

import json
import math
import sys
import time

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, task
from tests.e2e.test_operator_helpers import OperatorProcess, apply_manifest, jobs, operator_env, wait_for
# The same trial: reports a step each 0.5 s and ignores SIGTERM, so only the kubelet's kill ends it.
from tests.e2e.test_operator_stopped_pod_evicted import SCRIPT

TRIAL_LABEL = "autotune.tensorstack.dev/trial"
STOP_ANNOTATION = "autotune.tensorstack.dev/stop-reason"
DEADLINE_ANNOTATION = "autotune.tensorstack.dev/stop-deadline"
GRACE = 300  # the pods' terminationGracePeriodSeconds
SLACK = 10  # stop_in_place.STOP_SLACK_SECONDS
EXTRA = {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("replstop"), "replstop", EXTRA, script=SCRIPT) as e:
        yield e


def test_a_pod_stopped_after_the_jobs_first_stop_gets_its_grace_period_before_the_jobs_deadline(kube_cluster, env):
    ns, name = env["ns"], "repl"
    trial = f"{name}-0"
    core = client.CoreV1Api(kube_cluster.api_client())
    batch = client.BatchV1Api(kube_cluster.api_client())
    t = task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"])
    t["template"]["spec"]["terminationGracePeriodSeconds"] = GRACE
    space = '{"steps": {"_type": "choice", "_value": [2000]}}'  # (runs until stopped)
    apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=1, concurrency=1, tasks=[t]))

    def pods() -> list[client.V1Pod]:
        return core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={trial}").items

    def running() -> client.V1Pod | None:
        return next((p for p in pods() if p.status.phase == "Running"
                     and any(c.state.running for c in p.status.container_statuses or [])), None)

    pod = wait_for(running, 90, "the trial's pod running")
    env["op"].kill()
    job = wait_for(lambda: (lambda j: j if j.status.start_time else None)(batch.read_namespaced_job(trial, ns)),
                   30, "the Job's status.startTime")
    started = job.status.start_time.timestamp()  # (what the Job controller counts the deadline from)
    # As an operator leaves the Job after stopping its first pod a while ago: our deadline, now
    # too short for a pod stopped now (it leaves GRACE - 20 s), which a running pod not stopped
    # yet (a replacement) then needs.
    ours = math.ceil(time.time() - started) + GRACE - 20
    patch = {"metadata": {"annotations": {STOP_ANNOTATION: "stopped by the experiment",
                                          DEADLINE_ANNOTATION: str(ours)}},
             "spec": {"activeDeadlineSeconds": ours}}
    kube_cluster.kubectl("patch", "job", trial, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    restarted = time.time()
    op = OperatorProcess(kube_cluster, env["server"], [ns], env["tmp"] / "operator-2.log", extra_env=dict(EXTRA))
    op.start()
    try:
        wait_for(lambda: next((p for p in pods() if p.metadata.uid == pod.metadata.uid
                               and p.spec.active_deadline_seconds == 1), None),
                 120, "the restarted operator stopping the pod")
        need = math.ceil(restarted - started) + GRACE + SLACK
        job = wait_for(lambda: (lambda j: j if (j.spec.active_deadline_seconds or 0) >= need else None)(
            batch.read_namespaced_job(trial, ns)), 30, f"the Job's deadline pushed out to at least {need} (was {ours})")
        assert job.metadata.annotations[DEADLINE_ANNOTATION] == str(job.spec.active_deadline_seconds)
        # The pod's own failure (DeadlineExceeded, counted: backoffLimit 0) ends the Job, not the
        # Job's deadline; the pod stays, with its logs.
        failed = wait_for(lambda: next((c for c in (batch.read_namespaced_job(trial, ns).status.conditions or [])
                                        if c.type == "Failed" and c.status == "True"), None),
                          60, "the stopped trial's Job to fail")
        assert failed.reason == "BackoffLimitExceeded", failed
        kept = [p for p in pods() if p.metadata.uid == pod.metadata.uid]
        assert kept and kept[0].status.phase == "Failed" and kept[0].status.reason == "DeadlineExceeded", kept
        assert "SIGTERM: ignored" in kube_cluster.pod_log(ns, pod.metadata.name)
        assert trial in [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)]
    finally:
        op.stop()
