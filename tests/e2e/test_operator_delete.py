"""Deleting an experiment while the tuner server is down: the finalizer gives up on the
server's state after a bounded retry (Warning Event), the experiment and its Jobs go, and
the state is removed in the background once the server is back."""

from __future__ import annotations

import pytest

from kube_harness.experiments import get_experiment
from tests.e2e.test_operator_helpers import apply_manifest, events_of, jobs, operator_env, trial_experiment, wait_for


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("delete"), "del", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def test_delete_with_the_tuner_server_down_does_not_hang(kube_cluster, env):
    ns, name, server = env["ns"], "orphan", env["server"]
    space = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [30]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=2, space=space))
    wait_for(lambda: len(jobs(kube_cluster, ns, name)) == 2, 60, f"the trial Jobs; operator log:\n{env['op'].output()[-3000:]}")
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    server.stop()
    try:
        # Before: the finalizer retried the DELETE for 120 s and kubectl timed out here.
        r = kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s", check=False, timeout=90)
        assert r.returncode == 0, f"{r.stderr}\noperator log:\n{env['op'].output()[-3000:]}"
        assert not get_experiment(kube_cluster, ns, name)
        wait_for(lambda: not jobs(kube_cluster, ns, name), 60, "GC of the experiment's Jobs")
        evs = events_of(kube_cluster, ns, name)
        warn = [e for e in evs if e["reason"] == "TunerStateNotDeleted"]
        assert warn and warn[0]["type"] == "Warning" and uid in warn[0]["message"], [e["reason"] for e in evs]
    finally:
        server.start()  # same port and database
    wait_for(lambda: server.get(f"/api/v1/experiments/{uid}").status_code == 404, 90,
             f"the background retry to remove the state; operator log:\n{env['op'].output()[-3000:]}", interval=1)
    assert env["op"].proc.poll() is None
