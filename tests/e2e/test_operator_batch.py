"""The operator end to end with batch/v1 Jobs: a real kube-apiserver + controller-manager,
fake nodes running the trial pods as local processes, the tuner server and the operator
(`autotune operator`) as local processes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client, watch

from kube_harness.experiments import MAXIMIZE, get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import (
    LABEL,
    apply_manifest,
    events_of,
    jobs,
    operator_env,
    stopped_in_place,
    trial_experiment,
    wait_for,
)


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("operator"), "op", {"AUTOTUNE_WORKLOAD_KIND": "auto"}) as e:
        yield e


class JobTimeline:
    """Watches Jobs and records (monotonic) when each was first seen and when it completed."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.batch = client.BatchV1Api(api)
        self.ns = ns
        self.created: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.w = watch.Watch()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            for ev in self.w.stream(self.batch.list_namespaced_job, self.ns, timeout_seconds=300):
                j = ev["object"]
                now = time.monotonic()
                self.created.setdefault(j.metadata.name, now)
                # SuccessCriteriaMet comes first (the operator acts on it); Complete follows
                # once the pod's end is tracked, often ~1 s later.
                if any(c.type in ("SuccessCriteriaMet", "Complete") and c.status == "True" for c in (j.status.conditions or [])):
                    self.done.setdefault(j.metadata.name, now)
        except Exception:
            pass

    def gaps(self) -> list[float]:
        """Seconds from one Job completing to the next one being created (concurrency 1)."""
        order = sorted(self.created, key=self.created.get)
        return [self.created[b] - self.done[a] for a, b in zip(order, order[1:]) if a in self.done]

    def stop(self) -> None:
        self.w.stop()


def test_experiment_runs_to_done(kube_cluster, env, capsys):
    ns, name = env["ns"], "grid"
    timeline = JobTimeline(kube_cluster.api_client(), ns)
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=4, concurrency=1))
    first = wait_for_phase(kube_cluster, ns, name, "RUNNING", "DONE", timeout=60, interval=0.2)
    seen_running = first["status"]["phase"] == "RUNNING"
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)["status"]
    timeline.stop()
    assert seen_running
    assert st["trials"]["total"] == 4 and st["trials"]["succeeded"] == 4, st
    assert st["bestTrial"]["value"] == 4 and st["bestTrial"]["parameters"] == {"x": 4}
    assert st["workloadKind"] == "job" and st["startTime"] and st["completionTime"]
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in st["conditions"])
    row = kube_cluster.kubectl("get", "ate", name, "-n", ns, "--no-headers").stdout.split()
    assert row[1:4] == ["DONE", "4", "4"], row

    js = jobs(kube_cluster, ns, name)
    assert sorted(j["metadata"]["name"] for j in js) == [f"{name}-{i}" for i in range(4)] or len(js) == 4
    j = js[0]
    ref = j["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "AutoTuneExperiment" and ref["name"] == name
    c = j["spec"]["template"]["spec"]["containers"][0]
    env_vars = {e["name"]: e for e in c["env"]}
    assert env_vars["AUTOTUNE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{name}-autotune-token"
    assert c["command"][-1].startswith("--x=") and "${" not in c["command"][-1]
    # the trial saw its substituted argument: the final result carries it
    trials = env["server"].get(f"/api/v1/experiments/{ref['uid']}/trials").json()
    assert all(t["state"] == "SUCCEEDED" for t in trials)

    reasons = {e["reason"] for e in events_of(kube_cluster, ns, name)}
    assert {"TrialCreated", "TrialSucceeded", "ExperimentDone"} <= reasons, reasons

    gaps = timeline.gaps()
    with capsys.disabled():
        print(f"\n[operator latency] job finished -> next job created: "
              f"{', '.join(f'{g:.2f}s' for g in gaps)}")
    # Only a gross stall is a failure here (a pass blocked for many resyncs): the latency itself
    # is measured by bench/operator_latency.py (docs/kubernetes.md), as a loaded machine (this
    # control plane, the operator, the tuner server and the trials on 2 cores) may take seconds.
    assert gaps and max(gaps) < 15.0, gaps


def test_timeout_stops_running_trials(kube_cluster, env):
    ns, name = env["ns"], "slow"
    space = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [20]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=10, concurrency=2,
                                                      space=space, maxExecSeconds=4, tuner="Random"))
    wait_for_phase(kube_cluster, ns, name, "TIMEOUT", timeout=60, log=env["op"].output)
    # TIMEOUT is written as the stop begins; the counts follow once the stopped trials have ended.
    st = wait_for(lambda: (lambda s: s if s["trials"]["running"] + s["trials"]["waiting"] == 0 else None)(
        get_experiment(kube_cluster, ns, name)["status"]), 30, "the stopped trials to be counted")
    assert st["trials"]["stopped"] == 2 and st["phase"] == "TIMEOUT", st
    assert "maxExecSeconds" in st["message"]
    # Their Jobs stay, their pods stopped by the kubelet and kept with their logs (stop_in_place.py).
    kept = sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name))
    assert len(kept) == 2, kept
    for trial in kept:
        wait_for(lambda: stopped_in_place(kube_cluster, ns, trial), 30, f"{trial}'s pod stopped and kept")
    assert any(c["type"] == "TimedOut" and c["status"] == "True" and c["reason"] == "MaxExecSecondsReached"
               for c in st["conditions"]), st["conditions"]


def test_max_failed_trials_ends_error_and_names_the_last_failure(kube_cluster, env):
    ns, name = env["ns"], "failing"
    space = '{"x": {"_type": "choice", "_value": [1, 2, 3]}, "fail": {"_type": "choice", "_value": [1]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=10, concurrency=1, space=space,
                                                      tuner="Random", maxFailedTrialNum=2))
    st = wait_for_phase(kube_cluster, ns, name, "ERROR", timeout=90, log=env["op"].output)["status"]
    assert st["trials"]["failed"] == 2 and st["trials"]["total"] == 2, st  # not the 10 maxTrialNum allows
    assert st["message"].startswith("maxFailedTrialNum (2) reached: 2 trial(s) failed; last: failing-1: "), st
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in st["conditions"]), st["conditions"]
    assert "ExperimentError" in {e["reason"] for e in events_of(kube_cluster, ns, name)}


def test_objective_goal_ends_done_before_max_trials(kube_cluster, env):
    ns, name = env["ns"], "goal"
    # The trials report x; the grid has 1..4 and the goal is 2: at most 3 trials, not 4.
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=4, concurrency=1,
                                                      objectiveGoal=2))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=90, log=env["op"].output)["status"]
    best = st["bestTrial"]
    assert best["value"] >= 2 and st["trials"]["total"] < 4 and st["trials"]["succeeded"] == st["trials"]["total"], st
    assert st["message"] == f"objectiveGoal (2) reached by {best['name']} ({best['value']:g})", st
    assert any(c["type"] == "Succeeded" and c["status"] == "True" and c["reason"] == "GoalReached"
               for c in st["conditions"]), st["conditions"]


def test_a_trial_past_max_trial_seconds_is_stopped_and_failed(kube_cluster, env):
    ns, name = env["ns"], "hung"
    space = '{"x": {"_type": "choice", "_value": [1]}, "sleep": {"_type": "choice", "_value": [20]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=1, concurrency=1, space=space,
                                                      tuner="Random", maxTrialSeconds=3))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=45, log=env["op"].output)["status"]  # not 60 s of sleep
    assert st["trials"]["failed"] == 1 and st["trials"]["stopped"] == 0, st
    (trial,) = env["server"].get(f"/api/v1/experiments/{get_experiment(kube_cluster, ns, name)['metadata']['uid']}/trials").json()
    assert trial["state"] == "FAILED" and trial["message"] == "ran longer than maxTrialSeconds (3s) and was stopped", trial
    wait_for(lambda: stopped_in_place(kube_cluster, ns, f"{name}-0"), 30, "the stopped trial's pod stopped and kept")
    assert [j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)] == [f"{name}-0"]


@pytest.mark.parametrize(
    "name,kwargs,expect",
    [
        ("badspace", {"space": '{"x": {"_type": "choice", "_value": []}}'}, "x"),
        ("badtype", {"space": '{"x": {"_type": "gaussian", "_value": [1, 2]}}'}, "gaussian"),
        ("distributed", {}, "one process"),  # its master task made 2 replicas below
    ],
)
def test_invalid_spec_past_the_crd_is_error(kube_cluster, env, name, kwargs, expect):
    ns = env["ns"]
    manifest = trial_experiment(name, env["script"], **kwargs)
    if name == "distributed":
        manifest["spec"]["trainingConfig"]["tasks"][0]["replicas"] = 2
    apply_manifest(kube_cluster, ns, manifest)
    st = wait_for_phase(kube_cluster, ns, name, "ERROR", timeout=60, log=env["op"].output)["status"]
    assert expect in st["message"], st
    assert not jobs(kube_cluster, ns, name)
    assert env["op"].proc.poll() is None, "the operator must not crash on an invalid experiment"


def test_restart_neither_loses_nor_duplicates_trials(kube_cluster, env):
    ns, name = env["ns"], "restart"
    space = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4, 5, 6]}, "sleep": {"_type": "choice", "_value": [0.7]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=6, concurrency=2,
                                                      space=space, tuner="GridSearch"))
    wait_for(lambda: len(jobs(kube_cluster, ns, name)) >= 2, 60, "two trial Jobs")
    env["op"].kill()
    time.sleep(3)  # trials end while no operator runs
    env["op"].start()
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["total"] == 6 and st["trials"]["succeeded"] == 6, st
    names = sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name))
    assert names == sorted(f"{name}-{i}" for i in range(6)), names
    pods = json.loads(kube_cluster.kubectl("get", "pods", "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout)["items"]
    assert len(pods) == 6, "one pod per trial: nothing ran twice"
    ended = sorted(e["message"].split()[1] for e in events_of(kube_cluster, ns, name) if e["reason"] == "TrialSucceeded")
    assert ended == sorted(names), f"one TrialSucceeded event per trial, even across the restart: {ended}"


def test_delete_removes_workloads_secret_and_server_state(kube_cluster, env):
    ns, name = env["ns"], "gone"
    space = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [20]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=2, space=space))
    wait_for(lambda: len(jobs(kube_cluster, ns, name)) == 2, 60, "the trial Jobs")
    uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
    assert env["server"].get(f"/api/v1/experiments/{uid}").status_code == 200
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s")
    wait_for(lambda: not jobs(kube_cluster, ns, name), 60, "GC of the experiment's Jobs")
    wait_for(lambda: kube_cluster.kubectl("get", "secret", f"{name}-autotune-token", "-n", ns, check=False).returncode != 0,
             30, "GC of the token Secret")
    assert env["server"].get(f"/api/v1/experiments/{uid}").status_code == 404


EARLY_STOP_SCRIPT = '''\
import time
import autotune
x = float(autotune.get_next_parameter()["x"])
for step in range(4):
    time.sleep(1.5)
    if autotune.report_intermediate_result(x * (step + 1)):
        # Told to stop, it trains on (a script that ignores the advice): only the operator's
        # stop ends it, however late it comes; it cannot finish first on a slow machine.
        time.sleep(600)
autotune.report_final_result(x * 4)
'''


def test_assessor_stops_a_bad_trial_early(kube_cluster, env, tmp_path):
    """Medianstop: the second trial (x=1) is below the first one's (x=4) running average at
    step 1, so the operator stops its pod (kept, with its logs); the trial ends EARLY_STOPPED
    with an Event."""
    ns, name = env["ns"], "median"
    script = tmp_path / "early.py"
    script.write_text(EARLY_STOP_SCRIPT)
    apply_manifest(kube_cluster, ns, trial_experiment(
        name, script, max_trials=2, concurrency=1, space='{"x": {"_type": "choice", "_value": [4, 1]}}', tuner="Batch",
        assessor={"builtinAssessorName": "Medianstop", "classArgs": MAXIMIZE}))
    st = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=120, log=env["op"].output)["status"]
    assert st["trials"]["succeeded"] == 1 and st["trials"]["earlyStopped"] == 1, st
    assert st["bestTrial"]["parameters"] == {"x": 4}
    evs = events_of(kube_cluster, ns, name)
    assert any(e["reason"] == "TrialEarlyStopped" and f"{name}-1" in e["message"] for e in evs), [e["reason"] for e in evs]
    wait_for(lambda: stopped_in_place(kube_cluster, ns, f"{name}-1"), 30, "the stopped trial's pod stopped and kept")
    assert sorted(j["metadata"]["name"] for j in jobs(kube_cluster, ns, name)) == [f"{name}-0", f"{name}-1"]


def patch_spec(kube_cluster, ns: str, name: str, spec: dict):
    return kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}),
                                check=False)


def test_limits_edited_while_running_take_effect(kube_cluster, env):
    """maxTrialNum and trialConcurrency raised on a running experiment: it runs the new
    number of trials (not the original 2), with a SpecUpdated Event and observedGeneration."""
    ns, name = env["ns"], "grow"
    space = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4, 5, 6]}, "sleep": {"_type": "choice", "_value": [2.0]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=1, space=space))
    wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the first trial's Job")
    r = patch_spec(kube_cluster, ns, name, {"maxTrialNum": 5, "trialConcurrency": 2})
    assert r.returncode == 0, r.stderr

    def unfinished() -> int:
        done = {"Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"}
        return sum(1 for j in jobs(kube_cluster, ns, name)
                   if not any(c["type"] in done and c["status"] == "True" for c in (j.get("status") or {}).get("conditions") or []))

    wait_for(lambda: unfinished() == 2, 60, "two trials running at once (trialConcurrency 2)")
    ate = wait_for_phase(kube_cluster, ns, name, "DONE", timeout=180, log=env["op"].output)
    st = ate["status"]
    assert st["trials"]["total"] == 5 and st["trials"]["succeeded"] == 5, st
    assert st["observedGeneration"] == ate["metadata"]["generation"] == 2, (st, ate["metadata"])
    updated = [e["message"] for e in events_of(kube_cluster, ns, name) if e["reason"] == "SpecUpdated"]
    assert updated and "maxTrialNum 2 -> 5" in updated[0] and "trialConcurrency 1 -> 2" in updated[0], updated
    # The experiment has ended: still only the limits may change (raising them resumes it,
    # test_operator_resume.py); anything else is refused.
    r = patch_spec(kube_cluster, ns, name, {"seed": 9})
    assert r.returncode != 0 and "spec.seed cannot change" in r.stderr, r.stderr
    # ...while metadata still may: the finalizer's removal lets it be deleted.
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--timeout=60s")


def test_search_defining_edits_are_refused_at_apply_time(kube_cluster, env):
    ns, name = env["ns"], "fixed"
    space = '{"x": {"_type": "choice", "_value": [1, 2]}, "sleep": {"_type": "choice", "_value": [20]}}'
    apply_manifest(kube_cluster, ns, trial_experiment(name, env["script"], max_trials=2, concurrency=1, space=space))
    wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the first trial's Job")
    generation = get_experiment(kube_cluster, ns, name)["metadata"]["generation"]

    # searchSpace is schemaless: the ValidatingAdmissionPolicy from crds/ refuses it (it
    # becomes active a moment after it is created, hence the wait).
    new_space = '{"x": {"_type": "choice", "_value": [7]}}'
    r = wait_for(lambda: (lambda r: r if r.returncode else None)(patch_spec(kube_cluster, ns, name, {"searchSpace": new_space})),
                 30, "the admission policy to refuse a searchSpace edit")
    assert "spec.searchSpace cannot change" in r.stderr, r.stderr
    for edit, field in [({"tuner": {"builtinTunerName": "Random"}}, "spec.tuner"),
                        ({"tuner": {"classArgs": '{"optimize_mode": "minimize"}'}}, "spec.tuner"),
                        ({"assessor": {"builtinAssessorName": "Medianstop"}}, "spec.assessor"),
                        ({"seed": 5}, "spec.seed"),
                        ({"objectiveGoal": 0.5}, "spec.objectiveGoal"),
                        ({"primaryMetric": "loss"}, "spec.primaryMetric"),
                        ({"trainingConfig": {"type": "xgboost"}}, "spec.trainingConfig")]:
        r = patch_spec(kube_cluster, ns, name, edit)
        assert r.returncode != 0 and f"{field} cannot change" in r.stderr, (edit, r.stderr)
        assert "maxTrialNum, maxFailedTrialNum, maxTrialSeconds, trialConcurrency and maxExecSeconds" in r.stderr
    ate = get_experiment(kube_cluster, ns, name)
    assert ate["metadata"]["generation"] == generation and ate["spec"]["searchSpace"] == space
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--wait=false")
