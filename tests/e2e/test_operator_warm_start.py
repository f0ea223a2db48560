"""spec.warmStart through the operator on a real kube-apiserver: a second AutoTuneExperiment
imports the first one's trials (found by name in its namespace, by uid in the tuner
server), warns about a source that does not exist, and imports nothing twice when the
operator is killed and restarted mid-run."""

from __future__ import annotations

import json
import sys

import pytest

from kube_harness.experiments import MAXIMIZE, experiment_manifest, get_experiment, task, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, events_of, operator_env, wait_for
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store

SCRIPT = '''\
import os, time
import autotune
p = autotune.get_next_parameter()
time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
autotune.report_final_result(-(float(p["x"]) - 8.0) ** 2)
'''
SPACE = '{"x": {"_type": "uniform", "_value": [0, 10]}}'


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("warm"), "warm", script=SCRIPT) as e:
        yield e


def experiment(name: str, script: str, max_trials: int, sleep: float = 0.0, **spec):
    return experiment_manifest(name, space=SPACE, max_trials=max_trials, tuner="TPE", tuner_args=MAXIMIZE,
                               tasks=[task("master", [sys.executable, script], env={"TRIAL_SLEEP": sleep})], **spec)


def test_second_experiment_starts_from_the_first(kube_cluster, env):
    ns, server, op = env["ns"], env["server"], env["op"]
    apply_manifest(kube_cluster, ns, experiment("first", str(env["script"]), 12))
    wait_for_phase(kube_cluster, ns, "first", "DONE", timeout=240, log=op.output)

    second = experiment("second", str(env["script"]), 3, sleep=2.0, warmStart={"experiments": ["first", "never-was"]})
    apply_manifest(kube_cluster, ns, second)
    wait_for(lambda: ((get_experiment(kube_cluster, ns, "second").get("status") or {}).get("trials") or {}).get("total", 0) >= 1,
             120, "the second experiment's first trial")
    # Kill the operator mid-run; the restarted one must not import again.
    op.kill()
    op.start()
    st = wait_for_phase(kube_cluster, ns, "second", "DONE", timeout=240, log=op.output)["status"]
    assert st["trials"]["total"] == 3, st  # the 12 imports are not its trials
    ws = st["warmStart"]
    assert ws["imported"] == 12 and ws["sources"] == {"first": 12}, ws
    assert ws["message"].startswith("warm start: imported 12 trials from first, skipped 0"), ws  # kept across the restart
    assert "'never-was' not found" in ws["message"]

    uid = get_experiment(kube_cluster, ns, "second")["metadata"]["uid"]
    summary = server.get(f"/api/v1/experiments/{uid}").json()
    assert summary["imported"] == {"total": 12, "sources": {"first": 12}}

    events = {(e["reason"], e["type"]): e["message"] for e in events_of(kube_cluster, ns, "second")}
    assert "no AutoTuneExperiment 'never-was'" in events[("WarmStartSourceMissing", "Warning")]
    assert events[("WarmStart", "Normal")].startswith("warm start: imported 12 trials from first")

    # TPE starts with 10 random trials here; warm, its first trial is already the model's
    # (a cold TPE with the same seed would draw its first prior sample).
    trials = server.get(f"/api/v1/experiments/{uid}/trials").json()
    cold = Engine(Store(":memory:"))
    cold.register("c", "second", ExperimentConfig.model_validate(
        {"searchSpace": SPACE, "tuner": {"name": "TPE", "classArgs": json.loads(MAXIMIZE)}, "optimizeMode": "maximize"}))
    assert trials[0]["parameters"] != cold.suggest("c").parameters
    assert abs(trials[0]["parameters"]["x"] - 8.0) < 2.0, trials[0]  # near the first run's best region
