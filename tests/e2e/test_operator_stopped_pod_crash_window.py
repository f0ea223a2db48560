"""An operator killed between stopping a pod and pushing out the Job's deadline: its successor pushes it.

When the operator stops a pod of a trial it stopped earlier (a replacement of a pod disrupted
while it stopped), the Job's deadline it set at the first stop may leave that pod less than
its grace period, so it pushes the deadline out (stop_in_place.job_deadline_needed). The pod's
patch and the Job's are two requests: an operator killed between them left the short
deadline, and the restarted one, finding the pod patched already (nothing to stop), kept it;
the Job controller then failed the Job at that deadline and deleted the pod while it stopped,
its logs with it. The patch that stops a pod now writes when (autotune.tensorstack.dev/
stopped-at), so the restarted operator reads what the pod needs from the pod itself.

Real kube-apiserver and kube-controller-manager (the Job controller), the fake node agent as
the kubelet (kube-harness.md), the real tuner server and operator processes. The crash is
made by the test, deterministically: it kills the operator, then leaves the Job and the pod as
a killed operator leaves them (the stop's reason and our short deadline on the Job; the pod
patched, with its stopped-at, as the operator patches it) and starts a new operator. The pod
ignores SIGTERM and is given its whole grace period (kube-harness/honour-grace-period), so it
is still stopping, however long the restart takes, when the new operator looks. Before the
fix the Job kept the short deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, task
from kube_harness.node_agent import HONOUR_GRACE_ANNOTATION
from tests.e2e.test_operator_helpers import OperatorProcess, apply_manifest, operator_env, wait_for
# The same trial: reports a step each 0.5 s and ignores SIGTERM, so only a kill ends it.
from tests.e2e.test_operator_stopped_pod_evicted import SCRIPT, _end_experiment

TRIAL_LABEL = "autotune.tensorstack.dev/trial"
STOP_ANNOTATION = "autotune.tensorstack.dev/stop-reason"
DEADLINE_ANNOTATION = "autotune.tensorstack.dev/stop-deadline"
STOPPED_AT_ANNOTATION = "autotune.tensorstack.dev/stopped-at"
GRACE = 300  # the pods' terminationGracePeriodSeconds, given in full
SLACK = 10  # stop_in_place.STOP_SLACK_SECONDS
EXTRA = {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("crashstop"), "crashstop", EXTRA, script=SCRIPT) as e:
        yield e


def test_a_pod_stopped_by_an_operator_killed_before_the_jobs_patch_gets_its_grace_period(kube_cluster, env):
    ns, name = env["ns"], "crash"
    trial = f"{name}-0"
    core = client.CoreV1Api(kube_cluster.api_client())
    batch = client.BatchV1Api(kube_cluster.api_client())
    t = task("master", [sys.executable, str(env["script"]), "--steps=${parameters.steps}"])
    t["template"]["metadata"] = {"annotations": {HONOUR_GRACE_ANNOTATION: "true"}}
    t["template"]["spec"]["terminationGracePeriodSeconds"] = GRACE
    space = '{"steps": {"_type": "choice", "_value": [2000]}}'  # (runs until stopped)
    op = None
    try:
        apply_manifest(kube_cluster, ns, experiment_manifest(name, space=space, max_trials=1, concurrency=1, tasks=[t]))

        def pods() -> list[client.V1Pod]:
            return core.list_namespaced_pod(ns, label_selector=f"{TRIAL_LABEL}={trial}").items

        def running() -> client.V1Pod | None:
            return next((p for p in pods() if p.status.phase == "Running"
                         and any(c.state.running for c in p.status.container_statuses or [])), None)

        pod = wait_for(running, 90, "the trial's pod running")
        env["op"].kill()  # the crash (SIGKILL)
        job = wait_for(lambda: (lambda j: j if j.status.start_time else None)(batch.read_namespaced_job(trial, ns)),
                       30, "the Job's status.startTime")
        started = job.status.start_time.timestamp()  # (what the Job controller counts the deadline from)
        # The Job as the first stop left it, a while ago: its reason, and our deadline, which
        # leaves a pod stopped now 20 s less than its grace period.
        ours = math.ceil(time.time() - started) + GRACE - 20
        kube_cluster.kubectl("patch", "job", trial, "-n", ns, "--type=merge", "-p", json.dumps(
            {"metadata": {"annotations": {STOP_ANNOTATION: "stopped by the experiment",
                                          DEADLINE_ANNOTATION: str(ours)}},
             "spec": {"activeDeadlineSeconds": ours}}))
        # The pod as the killed operator patched it (stop_in_place.stop_patch), the Job's push not made.
        at = math.ceil(time.time())
        stamp = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        kube_cluster.kubectl("patch", "pod", pod.metadata.name, "-n", ns, "--type=merge", "-p", json.dumps(
            {"metadata": {"annotations": {STOPPED_AT_ANNOTATION: stamp}}, "spec": {"activeDeadlineSeconds": 1}}))
        op = OperatorProcess(kube_cluster, env["server"], [ns], env["tmp"] / "operator-2.log", extra_env=dict(EXTRA))
        op.start()
        need = math.ceil(at - started) + GRACE + SLACK
        job = wait_for(lambda: (lambda j: j if (j.spec.active_deadline_seconds or 0) >= need else None)(
            batch.read_namespaced_job(trial, ns)), 60, f"the Job's deadline pushed out to at least {need} (was {ours})")
        assert job.metadata.annotations[DEADLINE_ANNOTATION] == str(job.spec.active_deadline_seconds)
        # The pod was not stopped again (its stopped-at is the killed operator's) and still stops,
        # with its logs; the Job has not failed.
        (same,) = [p for p in pods() if p.metadata.uid == pod.metadata.uid]
        assert same.metadata.annotations[STOPPED_AT_ANNOTATION] == stamp and same.spec.active_deadline_seconds == 1
        assert same.status.phase == "Running", same.status
        assert not [c for c in job.status.conditions or [] if c.type == "Failed" and c.status == "True"], job.status
        wait_for(lambda: "SIGTERM: ignored" in kube_cluster.pod_log(ns, pod.metadata.name), 60,
                 "the stopped pod's SIGTERM in its log")
    finally:
        if op is None and env["op"].proc.poll() is not None:  # failed between the kill and the restart:
            # an operator runs the cleanup (it removes the experiment's finalizer)
            op = OperatorProcess(kube_cluster, env["server"], [ns], env["tmp"] / "operator-2.log", extra_env=dict(EXTRA))
            op.start()
        try:
            _end_experiment(kube_cluster, ns, name)  # (the pod's whole grace: ended with a 1 s deletion)
        finally:
            if op is not None:
                op.stop()
