"""Each examples/*.yaml runs as whichever workload kind a cluster picks (the README's
`kubectl apply -f` of an example): a batch Job, a Kubeflow job, whose training operator
refuses a replica without a container named after the framework (8cd1656), or a T9k one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autotune_operator.executors.base import trial_env
# The operator's start-up check builds the same dummy trial: every ${parameters.X} has a value.
from autotune_operator.runtime import _AnyParameters
from autotune_operator.spec import validate_manifest
from autotune_operator.workloads import TrialWorkload, build
from autotune_operator.workloads.common import Owner

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("family", ["job", "kubeflow", "t9k"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_builds_as_every_workload_kind(path: Path, family: str) -> None:
    exp = validate_manifest(yaml.safe_load(path.read_text()))
    name = f"{exp.name}-0"
    trial = TrialWorkload(name, "ns", exp.name, Owner("tensorstack.dev/v1beta1", "AutoTuneExperiment", exp.name, "uid"),
                          _AnyParameters(), trial_env("http://tuner:8080", "t", "uid", name, 0, {}), "secret", 0)
    body = build(family, exp.spec, trial)  # raises WorkloadError naming what that kind refuses
    assert body["metadata"]["labels"]
