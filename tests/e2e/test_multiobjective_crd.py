"""spec.objectives in the CRD against a real kube-apiserver: a multi-objective experiment
applies, and the schema refuses duplicate names, a bad direction and a single objective."""

from __future__ import annotations

import pytest

from tests.e2e.test_operator_crd import apply, crd  # noqa: F401  (the module-scoped CRD fixture)
from tests.e2e.test_operator_helpers import SEED_EXAMPLE

OBJECTIVES = "  objectives:\n    - {name: accuracy, optimizeMode: maximize}\n    - {name: latency, optimizeMode: minimize}\n"
TUNER = '''  tuner:
    builtinTunerName: TPE
    classArgs: |-
      {
        "optimize_mode": "minimize", 
        "constant_liar_type": "min"
      }
'''


def mo_manifest(objectives: str = OBJECTIVES) -> str:
    assert TUNER in SEED_EXAMPLE
    return SEED_EXAMPLE.replace(TUNER, objectives + "  tuner:\n    builtinTunerName: MOTPE\n")


def test_multi_objective_experiment_applies(kube_cluster, crd):  # noqa: F811
    ns = kube_cluster.new_namespace("mo")
    r = apply(kube_cluster, ns, mo_manifest())
    assert r.returncode == 0, r.stderr
    got = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o",
                               "jsonpath={.spec.objectives[1].name}").stdout
    assert got == "latency"


@pytest.mark.parametrize(
    "objectives, expect",
    [
        (OBJECTIVES.replace("latency", "accuracy"), "each objective name may appear once"),
        (OBJECTIVES.replace("optimizeMode: minimize", "optimizeMode: smallest"), "spec.objectives[1].optimizeMode"),
        ("  objectives:\n    - {name: accuracy, optimizeMode: maximize}\n", "spec.objectives"),
        (OBJECTIVES.replace("name: latency", "name: '  '"),
         'spec.objectives[1].name: Invalid value: "string": must name a metric, not be blank'),
    ],
)
def test_schema_refuses_bad_objectives(kube_cluster, crd, objectives, expect):  # noqa: F811
    ns = kube_cluster.new_namespace("mobad")
    r = apply(kube_cluster, ns, mo_manifest(objectives))
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr
