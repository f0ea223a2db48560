"""A large Pareto front in an AutoTuneExperiment's status, on a real kube-apiserver (and its
etcd): the status the operator writes stays under the object size limit (~1.5 MiB), and
says how large the front is. The front comes from a real tuner server engine (a perfect
trade-off: every trial is on it), the status from the operator's own writer."""

from __future__ import annotations

import json

from autotune_operator.decide import Phase
from autotune_operator.executors.kubernetes import ExperimentRef
from autotune_operator.runtime import StatusWriter, _status_patch
from autotune_operator.status import CLUSTER_FRONT_LIMIT, build_status
from tests.e2e.test_multiobjective_crd import mo_manifest
from tests.e2e.test_operator_crd import apply, crd  # noqa: F401  (the module-scoped CRD fixture)
from tuner_server.engine import Engine, ExperimentConfig, TrialState
from tuner_server.store import Store

TRIALS = 9000
# Model names as a choice: each front member's parameters are a few hundred bytes, as with
# a search space of a dozen parameters.
ARCHS = [f"registry.example.com/models/resnet-variant-{i:03d}-with-a-long-descriptive-name" for i in range(20)]


def engine_with_a_large_front() -> tuple[Engine, str]:
    engine = Engine(Store(":memory:"))
    space = {"x": {"_type": "uniform", "_value": [0.01, 1]}, "arch": {"_type": "choice", "_value": ARCHS},
             "lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]}}
    config = ExperimentConfig.model_validate({
        "searchSpace": json.dumps(space), "tuner": {"name": "Random"}, "seed": 1,
        "objectives": [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "latency", "optimizeMode": "minimize"}],
    })
    engine.register("big", "big-front", config)
    for seq in range(TRIALS):
        a = engine.suggest("big", seq)
        x = a.parameters["x"]
        engine.started("big", a.trial_id)
        engine.report_final("big", a.trial_id, {"accuracy": x, "latency": x * 12.5})  # more accuracy costs latency
        assert engine.end("big", a.trial_id, 0) is TrialState.SUCCEEDED
    return engine, "big"


def test_a_front_of_thousands_is_written_bounded(kube_cluster, crd):  # noqa: F811
    ns = kube_cluster.new_namespace("bigfront")
    assert apply(kube_cluster, ns, mo_manifest()).returncode == 0
    uid = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    engine, exp_id = engine_with_a_large_front()
    summary = engine.summary(exp_id)
    assert len(summary["paretoFront"]) == TRIALS  # every trial is on it
    st = build_status(summary, Phase.DONE, "all 9000 trials ended", summary["created"], summary["created"] + 60)
    writer = StatusWriter(kube_cluster.api_client(), ExperimentRef(ns, "experiment-sample", uid), None)
    writer.write(_status_patch(st, "pytorch"))  # raised "request is too large" with the whole front

    got = json.loads(kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o", "json").stdout)["status"]
    assert got["phase"] == "DONE" and got["paretoFrontSize"] == TRIALS
    front = got["paretoFront"]
    assert len(front) == CLUSTER_FRONT_LIMIT
    # Spread over the whole front: both ends (each objective's best here) are kept.
    xs = sorted(p["parameters"]["x"] for p in summary["paretoFront"])
    kept = sorted(p["parameters"]["x"] for p in front)
    assert kept[0] == xs[0] and kept[-1] == xs[-1]
    assert {b["objective"] for b in got["bestTrials"]} == {"accuracy", "latency"}
    assert len(json.dumps(got)) < 512 * 1024
    row = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns).stdout.splitlines()[1].split()
    assert str(TRIALS) in row  # FRONT, the printer column: the whole front's size
