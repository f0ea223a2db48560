"""Deleting a namespace that holds a running experiment, with the operator watching given
namespaces (--namespaces, the chart's operator.namespaces): the experiment's finalizer runs
(its tuner-server state removed), the namespace goes, and the operator serves the others.
Before, kopf stopped watching the namespace at the namespace controller's first status write
(conditions, none True yet), so the finalizer was never removed and the namespace stayed
Terminating for as long as the operator ran."""

from __future__ import annotations

from kube_harness.experiments import get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import (TRIAL_SCRIPT, apply_manifest, install_crd, jobs, running_operator,
                                             trial_experiment, wait_for)

SPACE = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [30]}}'


def test_deleting_a_watched_namespace_with_a_running_experiment_completes(kube_cluster, tmp_path):
    install_crd(kube_cluster)
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    ns, keep = kube_cluster.new_namespace("nsdel"), kube_cluster.new_namespace("nskeep")
    with running_operator(kube_cluster, tmp_path, [ns, keep], {"AUTOTUNE_WORKLOAD_KIND": "job"}) as (server, op):
        apply_manifest(kube_cluster, ns, trial_experiment("a", script, max_trials=4, concurrency=2, space=SPACE))
        wait_for(lambda: len(jobs(kube_cluster, ns, "a")) == 2, 60, f"the trial Jobs; operator log:\n{op.output()[-3000:]}")
        uid = get_experiment(kube_cluster, ns, "a")["metadata"]["uid"]
        r = kube_cluster.kubectl("delete", "namespace", ns, "--timeout=60s", check=False, timeout=90)
        assert r.returncode == 0, f"{r.stderr}\n" + kube_cluster.kubectl("get", "namespace", ns, "-o", "yaml", check=False).stdout
        assert server.get(f"/api/v1/experiments/{uid}").status_code == 404  # the finalizer ran
        apply_manifest(kube_cluster, keep, trial_experiment("b", script, max_trials=1))
        assert wait_for_phase(kube_cluster, keep, "b", "DONE", timeout=120, log=op.output)["status"]["trials"]["succeeded"] == 1
        assert op.proc is not None and op.proc.poll() is None
