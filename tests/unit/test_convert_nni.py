"""`autotune convert` of NNI experiment configs (v2/v3 and the legacy v1 form)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.cli import main
from autotune_operator.convert import ConvertError, convert_nni
from autotune_operator.convert.common import WORKLOAD_KIND_ANNOTATION, duration_seconds
from autotune_operator.spec import load_experiment, validate_manifest

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "convert" / "nni"
SPACE = json.loads((CORPUS / "search_space.json").read_text())


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CORPUS / name).read_text())


def convert(doc: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[str]]:
    conv = convert_nni(doc, **kw)
    validate_manifest(conv.manifest)
    return conv.manifest, conv.notes


def container(m: dict[str, Any], task: int = 0) -> dict[str, Any]:
    return m["spec"]["trainingConfig"]["tasks"][task]["template"]["spec"]["containers"][0]


def has_note(notes: list[str], *parts: str) -> bool:
    return any(all(p in n for p in parts) for n in notes)


def test_v2_local_config() -> None:
    m, notes = convert(load("config.yml"), search_space=SPACE, code_base="../nni")
    s = m["spec"]
    assert m["metadata"] == {"name": "mnist-example"}
    assert s["searchSpace"] == SPACE  # NNI's format is AutoTune's: unchanged
    assert s["maxExecSeconds"] == 3600 and s["maxTrialSeconds"] == 1800
    assert s["maxTrialNum"] == 10 and s["trialConcurrency"] == 2 and s["seed"] == 7
    assert s["tuner"] == {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    assert s["assessor"] == {"builtinAssessorName": "Medianstop",
                             "classArgs": {"optimize_mode": "maximize", "start_step": 5}}
    c = container(m)
    assert c["command"] == ["python3", "mnist.py"] and c["workingDir"] == "../nni"
    assert c["env"] == [{"name": "CUDA_VISIBLE_DEVICES", "value": ""}]  # trialGpuNumber 0: no GPU, as NNI
    assert "image" not in c and has_note(notes, "image", "--image")
    assert has_note(notes, "experimentName", "mnist-example")
    assert has_note(notes, "maxExperimentDuration", "TIMEOUT")
    assert has_note(notes, "useActiveGpu")
    assert has_note(notes, "import autotune as nni")


def test_v3_remote_hyperband_shell_command_and_gpus() -> None:
    m, notes = convert(load("config_v3_remote.yml"), code_base=".", image="my/img:1")
    s = m["spec"]
    assert s["advisor"] == {"builtinAdvisorName": "Hyperband",
                            "classArgs": {"optimize_mode": "minimize", "R": 27, "eta": 3}}
    assert s["maxExecSeconds"] == 1800
    c = container(m)
    assert c["command"] == ["bash", "-c", "python3 train.py --epochs $EPOCHS && echo done"]  # NNI runs it in bash
    assert c["image"] == "my/img:1" and c["workingDir"] == "code"
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert has_note(notes, "trialGpuNumber 1", "--devices")
    assert has_note(notes, "platform 'remote'", "machineList")
    assert has_note(notes, "TRIAL_BUDGET") and has_note(notes, "nniManagerIp")


def test_v1_legacy_config() -> None:
    m, notes = convert(load("config_v1.yml"), search_space=SPACE, code_base="x")
    s = m["spec"]
    assert m["metadata"]["name"] == "example-sklearn"
    assert s["maxExecSeconds"] == 3600 and s["maxTrialNum"] == 100 and s["trialConcurrency"] == 1
    assert s["tuner"] == {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    assert container(m)["command"] == ["python3", "mnist.py"] and container(m)["workingDir"] == "x"
    assert has_note(notes, "authorName")


def test_kubeflow_platform_roles_become_tasks() -> None:
    m, notes = convert(load("config_kubeflow.yml"), search_space=SPACE)
    tc = m["spec"]["trainingConfig"]
    assert tc["type"] == "tensorflow"
    assert [(t["type"], t["replicas"]) for t in tc["tasks"]] == [("worker", 2), ("ps", 1)]
    w = container(m, 0)
    assert w["image"] == "msranni/nni:latest" and w["command"] == ["python3", "dist_mnist.py"]
    assert w["resources"]["limits"] == {"nvidia.com/gpu": 1, "cpu": "2", "memory": "8Gi"}
    assert m["metadata"]["annotations"] == {WORKLOAD_KIND_ANNOTATION: "kubeflow"}
    assert has_note(notes, "trainingService.storage")


def test_tuner_names_are_canonical_and_substitutes_noted() -> None:
    doc = load("config.yml")
    doc["tuner"] = {"name": "gridsearch"}
    m, _ = convert(doc, search_space={"x": {"_type": "choice", "_value": [1, 2]}})
    assert m["spec"]["tuner"]["builtinTunerName"] == "GridSearch"  # the CRD's enum takes only this spelling
    doc["tuner"] = {"name": "SMAC", "classArgs": {"optimize_mode": "maximize", "config_dedup": True}}
    m, notes = convert(doc, search_space=SPACE)
    assert m["spec"]["tuner"] == {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    assert has_note(notes, "no SMAC", "config_dedup")


@pytest.mark.parametrize("value,seconds", [("1h", 3600), ("30m", 1800), ("0.5h", 1800), ("2d", 172800), ("90", 90),
                                           ("1.5s", 2), (45, 45), ("1H", 3600), ("1.5H", 5400), ("90S", 90)])
def test_durations(value: Any, seconds: int) -> None:
    """NNI lowercases a duration before parsing it (parse_time), so '1H' is an hour there too."""
    assert duration_seconds(value, "maxExperimentDuration") == seconds


@pytest.mark.parametrize("edit,field", [
    (lambda d: d.update(maxExperimentDuration="one hour"), "maxExperimentDuration"),
    (lambda d: d.update(useAnnotation=True), "useAnnotation"),
    (lambda d: d.update(tuner={"className": "my.Tuner", "codeDirectory": "."}), "tuner.className"),
    (lambda d: d.update(tuner={"name": "NoSuchTuner"}), "tuner.name"),
    (lambda d: d.pop("tuner") and d.pop("assessor"), "tuner"),
    (lambda d: d.update(trialCommand=""), "trialCommand"),
    (lambda d: d.update(experimentType="nas"), "experimentType"),
    (lambda d: d.update(trialGpuNumber=-1), "trialGpuNumber"),  # was a limit nvidia.com/gpu: -1
    (lambda d: d.update(trialCodeDirectory=["src"]), "trialCodeDirectory"),  # was workingDir "['src']"
])
def test_bad_nni_input_names_the_field(edit: Any, field: str) -> None:
    doc = load("config.yml")
    edit(doc)
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    assert e.value.field == field and "\n" not in str(e.value)


@pytest.mark.parametrize("value,kind", [(["python3", "mnist.py"], "list"), (7, "int"), ({"cmd": "x"}, "dict")])
def test_a_trial_command_that_is_not_a_string_says_so(value: Any, kind: str) -> None:
    doc = load("config.yml")
    doc["trialCommand"] = value
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    # It said "is required" of a field that was there.
    assert e.value.field == "trialCommand" and f"must be a string (one command line, which NNI runs in bash), got {kind}" in str(e.value)
    assert "required" not in str(e.value)


def test_cli_reads_search_space_file_and_finds_nni_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "exp.yaml"
    out.parent.mkdir()
    assert main(["convert", str(CORPUS / "config.yml"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    exp = load_experiment(str(out))
    assert json.loads(exp.spec.searchSpace) == SPACE  # type: ignore[arg-type]
    wd = exp.spec.trainingConfig.tasks[0].template["spec"]["containers"][0]["workingDir"]
    assert (out.parent / wd).resolve() == CORPUS.resolve()  # trialCodeDirectory, seen from the new file
    assert "files that import nni: mnist.py" in err


def test_cli_missing_search_space_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = load("config.yml")
    doc["searchSpaceFile"] = "nope.json"
    src = tmp_path / "c.yml"
    src.write_text(yaml.safe_dump(doc))
    assert main(["convert", str(src)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("autotune: convert: searchSpaceFile: cannot read")


def test_v1_notes_and_errors_name_the_v1_fields() -> None:
    m, notes = convert(load("config_v1.yml"), search_space=SPACE)
    assert has_note(notes, "maxExecDuration '1h'") and not has_note(notes, "maxExperimentDuration")
    doc = load("config_v1.yml")
    doc["maxExecDuration"] = "soon"
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    assert e.value.field == "maxExecDuration"


def test_a_kubeflow_operator_that_is_not_a_name_is_refused_naming_it() -> None:
    """'operator: [tf-operator]' crashed `autotune convert` with TypeError: unhashable type: 'list'."""
    doc = load("config_kubeflow.yml")
    doc["trainingService"]["operator"] = ["tf-operator"]
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    assert e.value.field == "trainingService.operator" and "tf-operator or pytorch-operator" in str(e.value)


def test_snake_case_keys_convert_as_nni_reads_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NNI matches v2 keys without regard to case or '_' (trial_command is trialCommand);
    `autotune convert` said such a config was not an NNI config at all."""
    (tmp_path / "code").mkdir()
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    (tmp_path / "c.yml").write_text(yaml.safe_dump({
        "experiment_name": "snake", "search_space_file": "space.json", "trial_command": "python3 train.py",
        "trial_code_directory": "code", "trial_concurrency": 2, "max_trial_number": 3,
        "max_experiment_duration": "1h", "trial_gpu_number": 0,
        "tuner": {"name": "TPE", "class_args": {"optimize_mode": "maximize"}},
        "training_service": {"platform": "local", "use_active_gpu": False}}))
    out = tmp_path / "exp.yaml"
    assert main(["convert", str(tmp_path / "c.yml"), "-o", str(out)]) == 0, capsys.readouterr().err
    exp = load_experiment(str(out))
    s = exp.spec
    assert yaml.safe_load(out.read_text())["metadata"]["name"] == "snake" and json.loads(s.searchSpace) == SPACE  # type: ignore[arg-type]
    assert s.maxTrialNum == 3 and s.trialConcurrency == 2 and s.maxExecSeconds == 3600
    assert s.tuner is not None and s.tuner.builtinTunerName == "TPE"
    assert "maximize" in str(s.tuner.classArgs)  # class_args is classArgs; its own keys stay as written
    c = s.trainingConfig.tasks[0].template["spec"]["containers"][0]
    assert (out.parent / c["workingDir"]).resolve() == (tmp_path / "code").resolve()
    assert c["env"] == [{"name": "CUDA_VISIBLE_DEVICES", "value": ""}]
    err = capsys.readouterr().err
    assert "not an NNI v2 field" not in err and "useActiveGpu" in err


def test_a_key_given_twice_in_two_spellings_is_refused_naming_it() -> None:
    doc = load("config.yml")
    doc["trial_command"] = "python3 other.py"
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    assert e.value.field == "trialCommand" and "trial_command" in str(e.value)


def test_dngo_under_nni_s_own_name_dngotuner_becomes_tpe() -> None:
    """NNI's builtin name is DNGOTuner (its docs: `tuner: {name: DNGOTuner}`); docs/convert.md
    promises DNGO becomes TPE, but that name was refused as an unknown tuner."""
    doc = load("config.yml")
    doc["tuner"] = {"name": "DNGOTuner", "classArgs": {"optimize_mode": "maximize", "num_epochs_per_training": 500}}
    m, notes = convert(doc, search_space=SPACE)
    assert m["spec"]["tuner"] == {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    assert has_note(notes, "no DNGOTuner", "TPE", "num_epochs_per_training")


def test_a_negative_kubeflow_role_gpu_number_is_refused_naming_it() -> None:
    """gpuNumber: -1 became the limit nvidia.com/gpu: -1, which Kubernetes rejects at pod creation."""
    doc = load("config_kubeflow.yml")
    doc["trainingService"]["worker"]["gpuNumber"] = -1
    with pytest.raises(ConvertError) as e:
        convert_nni(doc, search_space=SPACE)
    assert e.value.field == "trainingService.worker.gpuNumber" and ">= 0" in str(e.value)
