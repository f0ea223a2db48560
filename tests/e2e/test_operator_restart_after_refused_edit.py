"""On a cluster without the ValidatingAdmissionPolicy (Kubernetes < 1.30, or Helm's
immutableSpecPolicy off) the API server accepts a spec.searchSpace edit; the running operator
ignores it with a Warning Event. An operator restart must not take the edited spec: the tuner
server holds the experiment with the configuration it was registered with, and registering the
edited one was answered 409 and turned the running experiment ERROR. After the fix the restarted
operator keeps the spec it ran with (status.appliedSpec), says so once per edit, and the
experiment goes on with its trials. On the real kube-apiserver."""

from __future__ import annotations

import json

import pytest

from kube_harness.experiments import get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, events_of, install_crd, operator_env, trial_experiment, wait_for

POLICY_BINDING = "validatingadmissionpolicybinding/autotuneexperiments.tensorstack.dev-immutable-spec"
# Each trial lasts ~3 s (3 reports, 1 s apart): the experiment is still RUNNING across the restart.
SPACE = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4, 5, 6, 7, 8]}, "sleep": {"_type": "choice", "_value": [1.0]}}'
EDITED = ['{"x": {"_type": "choice", "_value": [20]}, "sleep": {"_type": "choice", "_value": [1.0]}}',
          '{"x": {"_type": "choice", "_value": [30]}, "sleep": {"_type": "choice", "_value": [1.0]}}']


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("operator"), "refusededit", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        # As on a cluster without the policy: only the CRD's own rules, which cannot see the
        # schemaless searchSpace. Put back afterwards for the tests of the same session.
        kube_cluster.kubectl("delete", POLICY_BINDING, "--ignore-not-found")
        try:
            yield e
        finally:
            install_crd(kube_cluster)


def refused(kube_cluster, ns: str, name: str) -> list[str]:
    return [e["message"] for e in events_of(kube_cluster, ns, name)
            if e["reason"] == "SpecChangeRefused" and e["type"] == "Warning"]


def patch_space(kube_cluster, ns: str, name: str, space: str) -> None:
    r = kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"searchSpace": space}}),
                             check=False)
    assert r.returncode == 0, r.stderr


def test_a_refused_search_space_edit_survives_operator_restarts(kube_cluster, env):
    ns, name, op = env["ns"], "kept", env["op"]
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=6, concurrency=1, space=SPACE))
    wait_for(lambda: (get_experiment(kube_cluster, ns, name).get("status") or {}).get("trials", {}).get("total", 0) >= 1,
             120, "the first trial")
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]

    # Edited while the operator runs: refused with one Warning, as before.
    patch_space(kube_cluster, ns, name, EDITED[0])
    wait_for(lambda: refused(kube_cluster, ns, name), 30, "the SpecChangeRefused Event")
    # ... and recorded as handled (observedGeneration, written after the Event in the same
    # pass): killed in between, the restarted operator cannot know the Warning was given and
    # gives it again (3 Warnings, seen once here).
    wait_for(lambda: get_experiment(kube_cluster, ns, name)["status"].get("observedGeneration") == 2, 30,
             "the refused edit's generation observed")

    # A restart after that edit, and an edit made while no operator runs, then a restart.
    # The status already says generation 2 and RUNNING (the running operator wrote it), so
    # the restarted operator is known to run the experiment only once it issues a trial.
    op.kill()
    issued = get_experiment(kube_cluster, ns, name)["status"]["trials"]["total"]
    op.start()
    wait_for(lambda: (st := get_experiment(kube_cluster, ns, name)["status"])["trials"]["total"] > issued
             and st.get("phase") == "RUNNING" and st.get("observedGeneration") == 2, 120,
             "the restarted operator's next trial")
    op.kill()
    patch_space(kube_cluster, ns, name, EDITED[1])
    op.start()

    ate = wait_for_phase(kube_cluster, ns, name, "DONE", "ERROR", timeout=180, log=op.output)
    st = ate["status"]
    assert st["phase"] == "DONE" and st["trials"]["total"] == 6 and st["trials"]["succeeded"] == 6, st
    assert ate["metadata"]["uid"] == uid and st["observedGeneration"] == ate["metadata"]["generation"] == 3, ate
    trials = env["server"].get(f"/api/v1/experiments/{uid}/trials").json()
    assert [t["name"] for t in trials] == [f"{name}-{i}" for i in range(6)]
    assert {t["parameters"]["x"] for t in trials} <= set(range(1, 9)), trials  # all drawn from the original space
    # One Warning per edit (the restart after the first does not repeat it), naming the field.
    msgs = refused(kube_cluster, ns, name)
    assert len(msgs) == 2 and all(m.startswith("spec.searchSpace changed, but only maxTrialNum") for m in msgs), msgs
    assert not [e for e in events_of(kube_cluster, ns, name) if e["reason"] == "ExperimentError"]
