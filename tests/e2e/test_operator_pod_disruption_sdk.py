"""A trial reporting with the SDK whose pod is evicted: the Job's new pod reports from step 0
again, and its values must make the trial's curve and result.

Before, the tuner server took the new pod's reports at steps the evicted pod had reported as
retries and dropped them: the curve kept the evicted pod's values up to its last step (the
assessor judged a killed run). Each SDK process now sends a session of its own, so the new
pod's step 0 is a new run of the trial (tuner_server/report_session.py).
Real kube-apiserver and controller manager (the Job controller makes the new pod), fake nodes
running pods as local processes, the tuner server and the operator as local processes.
"""

from __future__ import annotations

import sys

import pytest
from kubernetes import client

from kube_harness.experiments import experiment_manifest, get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import LABEL, apply_manifest, jobs, operator_env, wait_for

# The first pod reports 0.11, 0.12 and holds until it is evicted (so it is evicted midway
# however slow the machine); a later pod reports 0.21 .. 0.26 and its result. The values
# differ per pod, so the curve says which pod's reports it holds.
TRAIN = '''\
import os
import time

import autotune

autotune.get_next_parameter()
ran_before = os.path.join(os.path.dirname(os.path.abspath(__file__)), "a-pod-ran")
first_pod = not os.path.exists(ran_before)
open(ran_before, "a").close()
if first_pod:
    for v in (0.11, 0.12):
        autotune.report_intermediate_result(v)
    open(ran_before + "-reported", "a").close()
    time.sleep(3600)
for v in (0.21, 0.22, 0.23, 0.24, 0.25, 0.26):
    autotune.report_intermediate_result(v)
autotune.report_final_result(0.26)
'''
SPACE = '{"alpha": {"_type": "choice", "_value": [0.0001]}}'


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("disruptsdk"), "disruptsdk",
                      {"AUTOTUNE_RESYNC_SECONDS": "0.5"}, script=TRAIN) as e:
        yield e


def test_an_evicted_pods_replacement_reports_from_step_0_and_makes_the_curve(kube_cluster, env):
    ns, name = env["ns"], "evictedsdk"
    core = client.CoreV1Api(kube_cluster.api_client())
    apply_manifest(kube_cluster, ns, experiment_manifest(
        name, [sys.executable, str(env["script"])], space=SPACE, max_trials=1, maxFailedTrialNum=1,
        annotations={"autotune.tensorstack.dev/workload-kind": "job"}))
    (job,) = wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the trial's Job")
    tid = job["metadata"]["name"]
    reported = env["script"].parent / "a-pod-ran-reported"
    wait_for(reported.exists, 120, "the first pod's two reports")
    (first,) = core.list_namespaced_pod(ns, label_selector=f"{LABEL}={name}").items
    core.create_namespaced_pod_eviction(first.metadata.name, ns, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=ns)))

    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1 and st["trials"]["failed"] == 0, st
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    (t,) = env["server"].get(f"/api/v1/experiments/{uid}/trials").json()
    assert t["name"] == tid and t["state"] == "SUCCEEDED" and t["value"] == 0.26, t
    # Before the fix: [0.11, 0.12, 0.23, 0.24, 0.25, 0.26] (the new pod's steps 0 and 1 dropped).
    assert t["intermediate"] == [0.21, 0.22, 0.23, 0.24, 0.25, 0.26], t
