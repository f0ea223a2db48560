"""A trial template the API server refuses (the CRD keeps a task's pod template as written,
so e.g. an invalid CPU quantity passes `kubectl apply`): the experiment is an ERROR at once
naming the field, nothing is created, and the operator goes on serving the others. Before,
each suggestion became a trial FAILED 'could not start: (422) ...' and the experiment used
up maxTrialNum that way, then ended DONE. A template of a shape the operator cannot build a
workload from (resources: a string) is an ERROR too."""

from __future__ import annotations

import sys

import pytest

from kube_harness.experiments import task, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, jobs, operator_env, trial_experiment


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("badtpl"), "badtpl", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def _bad(env, name: str, **container) -> dict:
    master = task("master", [sys.executable, str(env["script"]), "--x=${parameters.x}"], container="pytorch")
    master["template"]["spec"]["containers"][0].update(container)
    return trial_experiment(name, env["script"], max_trials=3, tasks=[master])


def test_a_template_the_api_server_refuses_is_an_error_at_once(kube_cluster, env):
    ns, op = env["ns"], env["op"]
    apply_manifest(kube_cluster, ns, _bad(env, "badpolicy", imagePullPolicy="Sometimes"))  # 422 Invalid
    apply_manifest(kube_cluster, ns, _bad(env, "badcpu", resources={"limits": {"cpu": "lots"}}))  # 400: not decodable
    # A shape the workload builder cannot read: before, the start raised AttributeError, kopf
    # retried it for ever and the experiment stayed PENDING 'starting'.
    apply_manifest(kube_cluster, ns, _bad(env, "badshape", resources="lots"))
    apply_manifest(kube_cluster, ns, trial_experiment("fine", env["script"], max_trials=1))
    refused = "the API server refuses the trials' Job"
    for name, said in (("badpolicy", (refused, 'spec.template.spec.containers[0].imagePullPolicy', '"Sometimes"')),
                       ("badcpu", (refused, "quantities must match")),
                       ("badshape", ("spec.trainingConfig.tasks", "cannot be built", "'str' object"))):
        st = wait_for_phase(kube_cluster, ns, name, "ERROR", "DONE", timeout=120, log=op.output)["status"]
        assert st["phase"] == "ERROR" and st["reason"] == "InvalidExperiment", st
        assert all(s in st["message"] for s in said), st["message"]
        assert not (st.get("trials") or {}).get("total") and not jobs(kube_cluster, ns, name), st
    done = wait_for_phase(kube_cluster, ns, "fine", "DONE", timeout=120, log=op.output)
    assert done["status"]["trials"]["succeeded"] == 1
