"""`autotune convert` of Katib's trial metadata references (``reference: ${trialSpec.X}``):
each becomes what a trial pod of AutoTune has, and the converted manifest validates, builds
pods whose env Kubernetes can expand, and runs locally with the same values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.cli import main, process_template
from autotune_operator.convert import ConvertError, convert_katib
from autotune_operator.convert.katib_trial import NAMESPACE_ENV, NAMESPACE_VAR
from autotune_operator.spec import load_experiment, validate_manifest
from autotune_operator.workloads.common import Owner, TrialWorkload, pod_template

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "convert" / "katib"
VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def load(name: str = "trial-metadata.yaml") -> dict[str, Any]:
    return yaml.safe_load((CORPUS / name).read_text())


def trainer(m: dict[str, Any]) -> dict[str, Any]:
    return m["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]


def test_every_reference_becomes_a_value_or_a_variable_the_pod_has() -> None:
    conv = convert_katib(load())
    validate_manifest(conv.manifest)
    c = trainer(conv.manifest)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    # Per trial: the trial's id, and its namespace through the Downward API (first in env).
    assert c["env"][0] == NAMESPACE_ENV == {"name": NAMESPACE_VAR,
                                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert env["TRIAL_NAME"] == "$(AUTOTUNE_TRIAL_ID)" and env["TRIAL_NAMESPACE"] == f"$({NAMESPACE_VAR})"
    assert c["command"][-1] == f"--out=/models/$({NAMESPACE_VAR})/$(AUTOTUNE_TRIAL_ID)"
    # The same for every trial: read from the trial template, as Katib does, and written in.
    assert (env["TRIAL_KIND"], env["TRIAL_API_VERSION"]) == ("Job", "batch/v1")
    assert (env["TRIAL_TEAM"], env["TRIAL_OWNER"]) == ("vision", "owner=ana")
    assert c["image"] == "registry.example.com/vision/trainer:1.0"  # a fixed value may go anywhere
    for ref in ("${trialSpec.Namespace}", "${trialSpec.Labels[team]}", "${trialSpec.Annotations[example.com/owner]}"):
        assert any(ref in n for n in conv.notes), ref


def test_the_namespace_variable_is_set_only_where_it_is_used_and_once() -> None:
    doc = load()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["true"]},
                             {"name": "mark", "image": "busybox", "args": ["${trialParameters.trialNamespace}"]}]
    spec = convert_katib(doc).manifest["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]
    assert "env" not in spec["initContainers"][0]
    assert spec["initContainers"][1]["env"] == [NAMESPACE_ENV]
    assert [e["name"] for e in spec["containers"][0]["env"]].count(NAMESPACE_VAR) == 1


def test_a_cluster_pod_defines_each_variable_before_an_env_value_uses_it() -> None:
    """Kubernetes expands $(VAR) in an env value only from the variables listed before it."""
    m = convert_katib(load()).manifest
    exp = validate_manifest(m).manifest
    trial = TrialWorkload(name="trial-metadata-3", namespace="team-a", experiment="trial-metadata", sequence=3,
                          parameters={"lr": 0.01}, env={"AUTOTUNE_TRIAL_ID": "trial-metadata-3", "EPOCHS": "4"},
                          owner=Owner("tensorstack.dev/v1beta1", "AutoTuneExperiment", "trial-metadata", "uid-1"),
                          token_secret="trial-metadata-token")
    pod = pod_template(exp.spec.trainingConfig.tasks[0].template, trial)
    env = pod["spec"]["containers"][0]["env"]
    for i, e in enumerate(env):
        for name in VAR.findall(e.get("value") or ""):
            assert name in {x["name"] for x in env[:i]}, f"{e['name']} uses $({name}) before it is defined"
    assert any(e.get("value") == "$(AUTOTUNE_TRIAL_ID)" for e in env)


def test_local_mode_sets_the_namespace_from_the_manifest_or_default(tmp_path: Path) -> None:
    m = convert_katib(load()).manifest
    c = trainer(m)
    c["command"] = ["python3", "-c", "pass"]
    for namespace, expected in (("team-a", "team-a"), (None, "default")):
        doc = yaml.safe_load(yaml.safe_dump(m))
        if namespace is None:
            doc["metadata"].pop("namespace")
        path = tmp_path / "exp.yaml"
        path.write_text(yaml.safe_dump(doc))
        t = process_template(load_experiment(str(path)), path, str(tmp_path))
        assert t.env[NAMESPACE_VAR] == expected
    # Any other valueFrom still needs a cluster, and says so.
    c["env"].append({"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
    path.write_text(yaml.safe_dump(m))
    assert main(["run", str(path), "--output", str(tmp_path / "runs"), "--workdir", str(tmp_path)]) == 2


@pytest.mark.parametrize("reference, field, message", [
    ("${trialSpec.Labels[missing]}", "reference", "metadata.labels has no key 'missing' (have ['team'])"),
    ("${trialSpec.Annotations[team]}", "reference", "metadata.annotations has no key 'team' (have ['example.com/owner'])"),
    ("${trialSpec.Labels}", "reference", "needs a key"),
    ("${trialSpec.Name[x]}", "reference", "only ${trialSpec.Labels[KEY]} and ${trialSpec.Annotations[KEY]} take a key"),
    ("${trialSpec.Uid}", "reference", "is not trial metadata Katib knows"),
])
def test_references_that_cannot_be_mapped_are_refused_naming_them(reference: str, field: str, message: str) -> None:
    doc = load()
    doc["spec"]["trialTemplate"]["trialParameters"][5]["reference"] = reference
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == f"spec.trialTemplate.trialParameters[5].{field}"
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_per_trial_reference_outside_command_args_and_env_is_refused() -> None:
    doc = load()
    c = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    c["workingDir"] = "/work/${trialParameters.trialNamespace}"
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].workingDir"
    assert "only in a container's command, args and env values" in str(e.value)


def test_the_converted_file_passes_autotune_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.yaml"
    assert main(["convert", str(CORPUS / "trial-metadata.yaml"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    assert "valid AutoTuneExperiment 'trial-metadata'" in capsys.readouterr().out
