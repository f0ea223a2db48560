"""The orphan sweep after an operator restart: an experiment deleted while the tuner server
was down leaves its state behind (the finalizer gives up; the in-memory retry dies with the
operator). A fresh operator's sweep removes that state (of an experiment whose name is now
gone, and of one created again under the same name: another uid), and leaves alone a live
experiment, an experiment with no owner (an older operator's) and one owned in an
unwatched namespace."""

from __future__ import annotations

import json

import pytest

from kube_harness.experiments import get_experiment
from tests.e2e.test_operator_helpers import apply_manifest, events_of, jobs, operator_env, trial_experiment, wait_for
from tests.integration.test_tuner_server_http import config

SPACE = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [30]}}'


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("sweep"), "sweep", {"AUTOTUNE_WORKLOAD_KIND": "job"}) as e:
        yield e


def test_a_fresh_operator_sweeps_the_state_of_an_experiment_deleted_while_the_server_was_down(kube_cluster, env):
    ns, server, op = env["ns"], env["server"], env["op"]
    names = ("gone", "reused", "live")
    for name in names:
        apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, space=SPACE))
    uids = {}
    for name in names:
        wait_for(lambda: jobs(kube_cluster, ns, name), 60, f"{name}'s first trial Job; operator log:\n{op.output()[-3000:]}")
        uids[name] = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    listed = {e["experimentId"]: e for e in server.get("/api/v1/experiments").json()}
    assert listed[uids["live"]]["owner"] == {"namespace": ns, "name": "live", "uid": uids["live"]}
    # Never the sweep's to delete: no owner (as an older operator registered), and an owner
    # in a namespace this operator does not watch (whose CR it cannot see as missing).
    with server.client() as c:
        for exp_id, owner in (("legacy-uid", None), ("elsewhere-uid", {"namespace": "not-watched", "name": "x",
                                                                        "uid": "elsewhere-uid"})):
            body = {"name": exp_id, "config": config(), **({"owner": owner} if owner else {})}
            assert c.put(f"/api/v1/experiments/{exp_id}", json=body).status_code == 200
    live_trials = server.get(f"/api/v1/experiments/{uids['live']}/trials").json()

    server.stop()
    try:
        r = kube_cluster.kubectl("delete", "ate", "gone", "reused", "-n", ns, "--timeout=60s", check=False, timeout=90)
        assert r.returncode == 0, f"{r.stderr}\noperator log:\n{op.output()[-3000:]}"
        for name in ("gone", "reused"):
            assert any(e["reason"] == "TunerStateNotDeleted" for e in events_of(kube_cluster, ns, name))
        op.stop()  # its in-memory retry of the deletes goes with it
    finally:
        server.start()  # same port and database
    for name in ("gone", "reused"):  # the leak the sweep is for
        assert server.get(f"/api/v1/experiments/{uids[name]}").status_code == 200
    apply_manifest(kube_cluster, ns, trial_experiment("reused", env["script"], max_trials=2, space=SPACE))
    new_uid = get_experiment(kube_cluster, ns, "reused")["metadata"]["uid"]
    assert new_uid != uids["reused"]

    op.start()  # a fresh operator: sweeps at start
    for name in ("gone", "reused"):
        wait_for(lambda: server.get(f"/api/v1/experiments/{uids[name]}").status_code == 404, 90,
                 f"the sweep to remove {name}'s old state; operator log:\n{op.output()[-3000:]}", interval=1)
        assert "orphan sweep removed the tuner-server state of " + uids[name] in op.output()
    wait_for(lambda: server.get(f"/api/v1/experiments/{new_uid}").status_code == 200, 60,
             "the new 'reused' registered by the fresh operator")
    assert f"owner {ns}/gone no longer exists" in op.output()
    assert f"owner {ns}/reused was deleted (the object there now has uid {new_uid})" in op.output()
    after = {e["experimentId"]: e for e in server.get("/api/v1/experiments").json()}
    assert set(after) == {uids["live"], new_uid, "legacy-uid", "elsewhere-uid"}, json.dumps(after)[:2000]
    assert after[new_uid]["owner"] == {"namespace": ns, "name": "reused", "uid": new_uid}
    still = server.get(f"/api/v1/experiments/{uids['live']}/trials").json()
    assert [t["name"] for t in still[:len(live_trials)]] == [t["name"] for t in live_trials]
    assert get_experiment(kube_cluster, ns, "live")
    assert op.proc is not None and op.proc.poll() is None
