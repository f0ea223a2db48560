"""`autotune convert` of Azure ML sweep jobs (CLI v2 YAML, type: sweep)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.cli import main
from autotune_operator.convert import ConvertError, convert_azure, detect
from autotune_operator.spec import load_experiment, validate_manifest
from tuner_server.searchspace import parse_search_space

# Azure's own example (azureml-examples cli/jobs/single-step/lightgbm/iris/job-sweep.yml), with a
# local input file, an output and an early-termination policy added.
JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: src
  command: >-
    python main.py
    --iris-csv ${{inputs.iris_csv}}
    --learning-rate ${{search_space.learning_rate}}
    --boosting ${{ search_space.boosting }}
  environment: azureml:AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu:11
inputs:
  iris_csv:
    type: uri_file
    path: ./data/iris.csv
compute: azureml:cpu-cluster
sampling_algorithm: random
search_space:
  learning_rate:
    type: uniform
    min_value: 0.01
    max_value: 0.9
  boosting:
    type: choice
    values: ["gbdt", "dart"]
objective:
  goal: minimize
  primary_metric: test-multi_logloss
limits:
  max_total_trials: 20
  max_concurrent_trials: 10
  timeout: 7200
  trial_timeout: 600
display_name: lightgbm-iris-sweep-example
experiment_name: lightgbm-iris-sweep-example
description: Run a hyperparameter sweep job for LightGBM on Iris dataset.
"""


def job(**changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load(JOB)
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return doc


def convert(doc: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[str]]:
    conv = convert_azure(doc, **kw)
    validate_manifest(conv.manifest)
    return conv.manifest, conv.notes


def container(m: dict[str, Any]) -> dict[str, Any]:
    return m["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]


def has_note(notes: list[str], *parts: str) -> bool:
    return any(all(p in n for p in parts) for n in notes)


def test_azure_example_maps_objective_limits_space_and_trial() -> None:
    m, notes = convert(job(), code_base="../azure")
    s = m["spec"]
    assert m["metadata"] == {"name": "lightgbm-iris-sweep-example"}
    assert s["primaryMetric"] == "test-multi_logloss"
    assert s["maxTrialNum"] == 20 and s["trialConcurrency"] == 10
    assert s["maxExecSeconds"] == 7200 and s["maxTrialSeconds"] == 600
    assert s["searchSpace"] == {"learning_rate": {"_type": "uniform", "_value": [0.01, 0.9]},
                                "boosting": {"_type": "choice", "_value": ["gbdt", "dart"]}}
    assert s["tuner"] == {"builtinTunerName": "Random", "classArgs": {"optimize_mode": "minimize"}}
    assert "assessor" not in s and "seed" not in s
    c = container(m)
    # No shell characters once Azure's expressions are replaced: an argv, as Azure's shell would split it.
    assert c["command"] == ["python", "main.py", "--iris-csv", "../data/iris.csv",
                            "--learning-rate", "${parameters.learning_rate}", "--boosting", "${parameters.boosting}"]
    assert c["workingDir"] == "../azure/src"
    assert {"name": "AZUREML_SWEEP_boosting", "value": "${parameters.boosting}"} in c["env"]
    assert "image" not in c and has_note(notes, "trial.environment", "azureml:AzureML-lightgbm", "--image")
    assert has_note(notes, "compute", "dropped") and has_note(notes, "description", "dropped")


def test_loguniform_bounds_are_logarithms() -> None:
    space = {"lr": {"type": "loguniform", "min_value": math.log(1e-4), "max_value": math.log(0.1)},
             "units": {"type": "qloguniform", "min_value": 0, "max_value": math.log(256), "q": 8}}
    m, notes = convert(job(search_space=space, trial={"command": "python t.py --lr ${{search_space.lr}} "
                                                                 "--units ${{search_space.units}}"}))
    assert m["spec"]["searchSpace"] == {"lr": {"_type": "loguniform", "_value": [0.0001, 0.1]},
                                        "units": {"_type": "qloguniform", "_value": [1.0, 256.0, 8]}}
    assert has_note(notes, "search_space.lr", "logarithms", "[0.0001, 0.1]")
    low, high = parse_search_space(m["spec"]["searchSpace"]).dims[0].args
    assert (low, high) == (0.0001, 0.1)


@pytest.mark.parametrize("kind", ["loguniform", "qloguniform"])
def test_a_log_bound_whose_exp_underflows_is_refused_naming_it(kind: str) -> None:
    """exp(-800) is 0.0 in a float: the converted loguniform [0.0, ...] was refused by the
    experiment's own check as 'loguniform needs low > 0, got low=0.0', with no word of the
    -800 the user wrote or that Azure's bounds are logarithms."""
    space = {"lr": {"type": kind, "min_value": -800, "max_value": -2, **({"q": 1} if kind == "qloguniform" else {})}}
    with pytest.raises(ConvertError) as e:
        convert(job(search_space=space, trial={"command": "python t.py --lr ${{search_space.lr}}"}))
    assert e.value.field == "search_space.lr.min_value", e.value
    assert "logarithm" in e.value.message and "exp(-800" in e.value.message and "too small" in e.value.message, e.value
    # A small but representable bound still converts (exp(-700) is about 1e-304).
    space["lr"]["min_value"] = -700
    m, _ = convert(job(search_space=space, trial={"command": "python t.py --lr ${{search_space.lr}}"}))
    assert 0 < m["spec"]["searchSpace"]["lr"]["_value"][0] < 1e-300


def test_normal_family_randint_and_quniform_keep_their_arguments() -> None:
    space = {"a": {"type": "normal", "mu": 10, "sigma": 3}, "b": {"type": "qnormal", "mu": 0, "sigma": 1, "q": 2},
             "c": {"type": "lognormal", "mu": 0, "sigma": 0.5}, "d": {"type": "qlognormal", "mu": 1, "sigma": 1, "q": 1},
             "e": {"type": "randint", "upper": 10}, "f": {"type": "quniform", "min_value": 1, "max_value": 9, "q": 2}}
    m, _ = convert(job(search_space=space, trial={"command": "python t.py"}))
    assert m["spec"]["searchSpace"] == {
        "a": {"_type": "normal", "_value": [10, 3]}, "b": {"_type": "qnormal", "_value": [0, 1, 2]},
        "c": {"_type": "lognormal", "_value": [0, 0.5]}, "d": {"_type": "qlognormal", "_value": [1, 1, 1]},
        "e": {"_type": "randint", "_value": [0, 10]},  # Azure's [0, upper)
        "f": {"_type": "quniform", "_value": [1, 9, 2]}}


def test_sampling_algorithms() -> None:
    m, _ = convert(job(sampling_algorithm={"type": "random", "seed": 123, "rule": "sobol"}))
    assert m["spec"]["tuner"]["classArgs"] == {"optimize_mode": "minimize", "rule": "sobol"}
    assert m["spec"]["seed"] == 123

    grid = job(sampling_algorithm="grid")
    grid["search_space"]["learning_rate"] = {"type": "choice", "values": [0.1, 0.5]}
    m, _ = convert(grid)
    assert m["spec"]["tuner"] == {"builtinTunerName": "GridSearch", "classArgs": {}}

    m, notes = convert(job(sampling_algorithm={"type": "bayesian"}))
    assert m["spec"]["tuner"] == {"builtinTunerName": "GPTuner", "classArgs": {"optimize_mode": "minimize"}}
    normal = job(sampling_algorithm="bayesian")
    normal["search_space"]["learning_rate"] = {"type": "normal", "mu": 0.5, "sigma": 0.1}
    m, notes = convert(normal)
    assert m["spec"]["tuner"]["builtinTunerName"] == "TPE"
    assert has_note(notes, "bayesian", "learning_rate", "TPE")


def test_early_termination_policies() -> None:
    m, _ = convert(job(early_termination={"type": "bandit", "slack_factor": 0.1, "delay_evaluation": 5,
                                          "evaluation_interval": 2}))
    assert m["spec"]["assessor"] == {"builtinAssessorName": "Bandit", "classArgs": {
        "optimize_mode": "minimize", "evaluation_interval": 2, "delay_evaluation": 5, "slack_factor": 0.1}}
    m, _ = convert(job(early_termination={"type": "bandit", "slack_amount": 0.2}))
    assert m["spec"]["assessor"]["classArgs"] == {"optimize_mode": "minimize", "evaluation_interval": 1,
                                                  "delay_evaluation": 0, "slack_amount": 0.2}
    m, _ = convert(job(early_termination={"type": "truncation_selection", "truncation_percentage": 20,
                                          "evaluation_interval": 1, "delay_evaluation": 5,
                                          "exclude_finished_jobs": True}))
    assert m["spec"]["assessor"] == {"builtinAssessorName": "TruncationSelection", "classArgs": {
        "optimize_mode": "minimize", "evaluation_interval": 1, "delay_evaluation": 5, "truncation_percentage": 20,
        "exclude_finished_jobs": True}}
    m, notes = convert(job(early_termination={"type": "median_stopping", "delay_evaluation": 5,
                                              "evaluation_interval": 2}))
    # Azure's rule: applied every evaluation_interval from delay_evaluation, median over all runs
    assert m["spec"]["assessor"] == {"builtinAssessorName": "Medianstop", "classArgs": {
        "optimize_mode": "minimize", "evaluation_interval": 2, "delay_evaluation": 5, "median_over": "all"}}
    assert not [n for n in notes if "median" in n.lower() or "evaluation_interval" in n], notes
    m, notes = convert(job(early_termination={"type": "MedianStopping", "evaluation_interval": 0}))
    assert m["spec"]["assessor"] == {"builtinAssessorName": "Medianstop", "classArgs": {  # the REST API's spelling
        "optimize_mode": "minimize", "evaluation_interval": 1, "delay_evaluation": 0, "median_over": "all"}}
    assert has_note(notes, "evaluation_interval 0", "every report")


def test_outputs_literal_inputs_and_shell_commands() -> None:
    doc = job(inputs={"A": 0.5, "name": "hello"}, outputs={"model": None},
              trial={"code": ".", "command": "python t.py --a ${{inputs.A}} --n ${{inputs.name}} "
                                             "--out ${{outputs.model}} --lr ${{search_space.learning_rate}} "
                                             "--b ${{search_space.boosting}} | tee log.txt",
                     "environment": {"image": "python:3.11", "conda_file": "conda.yml"},
                     "environment_variables": {"OMP_NUM_THREADS": 1}})
    m, notes = convert(doc)
    c = container(m)
    assert c["command"] == ["bash", "-c", "mkdir -p outputs/$(AUTOTUNE_TRIAL_ID)/model && python t.py --a 0.5 "
                            "--n hello --out outputs/$(AUTOTUNE_TRIAL_ID)/model --lr ${parameters.learning_rate} "
                            "--b ${parameters.boosting} | tee log.txt"]
    assert has_note(notes, "outputs", "outputs/$(AUTOTUNE_TRIAL_ID)/NAME")
    assert c["image"] == "python:3.11" and has_note(notes, "conda_file", "python:3.11")
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in c["env"]
    assert c["workingDir"] == "."


def test_an_input_named_like_a_parameter_is_the_parameter() -> None:
    """The Python SDK sweeps a command job's inputs (command_job(learning_rate=Uniform(...))):
    its command says ${{inputs.learning_rate}}, and each trial gets the sampled value."""
    doc = job(inputs={"learning_rate": 0.9, "iris_csv": {"type": "uri_file", "path": "data/iris.csv"}},
              trial={"code": "src", "command": "python main.py --iris-csv ${{inputs.iris_csv}} "
                                               "--learning-rate ${{inputs.learning_rate}} --boosting ${{inputs.boosting}}"})
    m, _ = convert(doc)
    assert container(m)["command"] == ["python", "main.py", "--iris-csv", "../data/iris.csv", "--learning-rate",
                                       "${parameters.learning_rate}", "--boosting", "${parameters.boosting}"]


def test_image_flag_and_unused_parameter() -> None:
    m, notes = convert(job(trial={"command": "python t.py --lr ${{search_space.learning_rate}}"}), image="my/img:1")
    assert container(m)["image"] == "my/img:1"
    assert has_note(notes, "search_space.boosting", "AZUREML_SWEEP_boosting")


def test_defaults_of_limits_and_name() -> None:
    doc = job(limits=None, display_name=None, experiment_name=None, name="My_Sweep")
    m, notes = convert(doc)
    assert m["spec"]["maxTrialNum"] == 1000 and m["spec"]["trialConcurrency"] == 1000  # Azure's defaults
    assert has_note(notes, "max_concurrent_trials", "lower it")
    assert m["metadata"]["name"] == "my-sweep" and has_note(notes, "name 'My_Sweep'", "my-sweep")
    m, notes = convert(job(display_name=None, experiment_name=None), default_name="job-sweep")
    assert m["metadata"]["name"] == "job-sweep"


@pytest.mark.parametrize("change, field, words", [
    ({"objective": None}, "objective", "is required"),
    ({"objective": {"goal": "maximise", "primary_metric": "acc"}}, "objective.goal", "maximize or minimize"),
    ({"objective": {"goal": "maximize"}}, "objective.primary_metric", "mlflow.log_metric"),
    ({"search_space": {"x": {"type": "beta", "a": 1}}}, "search_space.x.type", "'beta'"),
    ({"search_space": {"x": {"type": "uniform", "min_value": 1}}}, "search_space.x.max_value", "is required"),
    ({"search_space": {"x": {"type": "uniform", "min_value": 1, "max_value": 2, "q": 1}}}, "search_space.x.q",
     "not a key"),
    ({"search_space": {"x": {"type": "loguniform", "min_value": 1, "max_value": 1000}}}, "search_space.x.max_value",
     "logarithm"),
    ({"sampling_algorithm": "grid"}, "search_space.learning_rate.type", "grid sampling takes only choice"),
    ({"sampling_algorithm": "hyperband"}, "sampling_algorithm.type", "random, grid or bayesian"),
    ({"sampling_algorithm": None}, "sampling_algorithm", "is required"),
    ({"sampling_algorithm": {"type": "random", "rule": "halton"}}, "sampling_algorithm.rule", "random or sobol"),
    ({"early_termination": {"type": "bandit"}}, "early_termination.slack_factor", "neither"),
    ({"early_termination": {"type": "bandit", "slack_factor": 0.1, "slack_amount": 1}},
     "early_termination.slack_factor", "both"),
    ({"early_termination": {"type": "truncation_selection"}}, "early_termination.truncation_percentage", "required"),
    ({"early_termination": {"type": "truncation_selection", "truncation_percentage": 100}},
     "early_termination.truncation_percentage", "1..99"),
    ({"early_termination": {"type": "asha"}}, "early_termination.type", "'asha'"),
    ({"limits": {"max_total_trials": 0}}, "limits.max_total_trials", ">= 1"),
    ({"limits": {"max_trials": 3}}, "limits.max_trials", "not a sweep limit"),
    ({"inputs": {"iris_csv": {"type": "uri_file", "path": "https://x/iris.csv"}}}, "inputs.iris_csv.path",
     "download it"),
    ({"inputs": {"iris_csv": {"type": "uri_folder", "path": "azureml:cifar10:1"}}}, "inputs.iris_csv.path",
     "registered data asset"),
    ({"inputs": None}, "trial.command", "inputs has no 'iris_csv'"),
    ({"trial": {"command": "python t.py ${{search_space.nope}}"}}, "trial.command", "search_space has no 'nope'"),
    ({"trial": {"command": "python t.py ${{parent.jobs.x}}"}}, "trial.command", "${{parent.jobs.x}}"),
    ({"trial": {"code": "src"}}, "trial.command", "is required"),
    ({"trial": None}, "trial", "is required"),
    ({"trial": "file:./train.yml"}, "trial", "refers to a component"),
])
def test_bad_input_names_the_field(change: dict[str, Any], field: str, words: str) -> None:
    doc = job()
    for k, v in copy.deepcopy(change).items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    with pytest.raises(ConvertError) as e:
        convert_azure(doc)
    assert e.value.field == field and words in e.value.message, str(e.value)


def test_detection_before_nni() -> None:
    doc = job()
    assert detect(doc) == "azure"  # its `trial` mapping alone would read as an NNI v1 config
    del doc["$schema"]
    assert detect(doc) == "azure"
    assert detect({"type": "sweep", "search_space": {}}) == "azure"
    assert detect({"trialCommand": "python t.py"}) == "nni"


def test_cli_converts_without_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "azure").mkdir()
    src = tmp_path / "azure" / "job-sweep.yml"
    src.write_text(JOB)
    out = tmp_path / "out" / "exp.yaml"
    out.parent.mkdir()
    assert main(["convert", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "autotune: convert: trial.environment:" in err
    exp = load_experiment(out)
    assert exp.name == "lightgbm-iris-sweep-example"
    doc = yaml.safe_load(out.read_text())
    assert doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["workingDir"] == "../azure/src"


def test_cli_names_trial_files_that_log_with_azureml_v1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A script logging with azureml.core's Run reports nothing AutoTune reads: every trial would
    fail for a missing objective, so the conversion says which files to change."""
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "main.py").write_text("import mlflow\nmlflow.log_metric('acc', 1.0)\n")
    (tmp_path / "src" / "pkg" / "old.py").write_text("from azureml.core import Run\nrun = Run.get_context()\n")
    (tmp_path / "job.yml").write_text(JOB)
    assert main(["convert", str(tmp_path / "job.yml"), "-o", str(tmp_path / "exp.yaml")]) == 0
    err = capsys.readouterr().err
    assert "trial code: pkg/old.py import azureml.core" in err and "mlflow.log_metric" in err
    assert "main.py" not in err


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "job.yml"
    src.write_text(JOB.replace("sampling_algorithm: random", "sampling_algorithm: grid"))
    assert main(["convert", str(src)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip().splitlines() == [
        "autotune: convert: search_space.learning_rate.type: is uniform; grid sampling takes only choice parameters "
        "(Azure's rule): list its values, or use random or bayesian sampling"]
    assert main(["convert", str(src), "--search-space", "s.json"]) == 2
    assert "--search-space: is for NNI configs" in capsys.readouterr().err
