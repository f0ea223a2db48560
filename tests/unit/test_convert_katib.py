"""`autotune convert` of Katib Experiments: each corpus file converts to a manifest that
AutoTune's own validator accepts, and field by field means what the Katib file meant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.cli import main
from autotune_operator.convert import ConvertError, convert_katib
from autotune_operator.convert.common import WORKLOAD_KIND_ANNOTATION
from autotune_operator.spec import load_experiment, validate_manifest
from tuner_server.searchspace import quniform_grid

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "convert" / "katib"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CORPUS / name).read_text())


def convert(name: str) -> tuple[dict[str, Any], list[str]]:
    conv = convert_katib(load(name))
    validate_manifest(conv.manifest)  # raises SpecError if AutoTune would refuse it
    return conv.manifest, conv.notes


def container(m: dict[str, Any], task: int = 0) -> dict[str, Any]:
    return m["spec"]["trainingConfig"]["tasks"][task]["template"]["spec"]["containers"][0]


def has_note(notes: list[str], *parts: str) -> bool:
    return any(all(p in n for p in parts) for n in notes)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.yaml")))
def test_every_corpus_file_converts_and_validates_through_the_cli(name: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.yaml"
    assert main(["convert", str(CORPUS / name), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    exp = load_experiment(str(out))  # the written file, as a user would apply it
    assert exp.manifest.kind == "AutoTuneExperiment"
    # every note is on stderr, one line each, and in the file's header
    notes = [line for line in err.splitlines() if line.startswith("autotune: convert: ")]
    assert len(notes) == len(err.splitlines())
    header = out.read_text()
    assert all(n[len("autotune: convert: "):] in header for n in notes)


def test_random_job_fields() -> None:
    m, notes = convert("random-job.yaml")
    s = m["spec"]
    assert m["metadata"] == {"name": "random", "namespace": "kubeflow",
                             "annotations": {WORKLOAD_KIND_ANNOTATION: "job"}}
    assert s["tuner"] == {"builtinTunerName": "Random", "classArgs": {"optimize_mode": "maximize"}}
    assert s["seed"] == 10 and s["objectiveGoal"] == 0.99 and s["primaryMetric"] == "Validation-accuracy"
    assert s["trialConcurrency"] == 3 and s["maxTrialNum"] == 12
    assert s["maxFailedTrialNum"] == 4  # Katib fails when failed > 3; AutoTune when failed reaches 4
    assert s["searchSpace"]["lr"] == {"_type": "uniform", "_value": [0.01, 0.03]}
    # Katib's int max is inclusive, NNI's randint upper bound is not
    assert s["searchSpace"]["num-layers"] == {"_type": "randint", "_value": [2, 6]}
    assert s["searchSpace"]["optimizer"] == {"_type": "choice", "_value": ["sgd", "adam", "ftrl"]}
    cmd = container(m)["command"]
    assert cmd[3:] == ["--lr=${parameters.lr}", "--num-layers=${parameters.num-layers}",
                       "--optimizer=${parameters.optimizer}"]
    assert m["spec"]["trainingConfig"]["tasks"][0]["template"]["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false"}
    # No metricsCollectorSpec is Katib's StdOut collector: the printed metrics are read as Katib read them,
    # and the objective takes its best value (Katib's default strategy), not AutoTune's default latest;
    # so does the additional metric (Katib's defaulting gives it the objective type's extreme too).
    assert s["metricsCollector"] == {"kind": "StdOut", "additionalMetricNames": ["Train-accuracy"]}
    assert s["metricStrategies"] == [{"name": "Validation-accuracy", "value": "max"},
                                     {"name": "Train-accuracy", "value": "max"}]
    assert not has_note(notes, "objectiveMetricName") and not has_note(notes, "additionalMetricNames")
    assert has_note(notes, "trialParameters[*].description")


def test_randint_upper_bound_reaches_katibs_max() -> None:
    m, _ = convert("random-job.yaml")
    exp = validate_manifest(m)
    d = next(d for d in exp.space.dims if d.name == "num-layers")
    import numpy as np

    rng = np.random.default_rng(0)
    assert {d.sample(rng) for _ in range(400)} == {2, 3, 4, 5}


def test_tpe_settings_steps_and_env_placeholders() -> None:
    m, notes = convert("tpe.yaml")
    s = m["spec"]
    assert s["tuner"]["builtinTunerName"] == "TPE"
    assert s["tuner"]["classArgs"] == {"optimize_mode": "minimize", "tpe_args": {
        "multivariate": False, "gamma": 0.25, "prior_weight": 1.1, "n_ei_candidates": 25}}
    assert s["seed"] == 10
    assert s["searchSpace"]["lr"] == {"_type": "loguniform", "_value": [0.0001, 0.1]}
    assert s["searchSpace"]["batch_size"] == {"_type": "quniform", "_value": [32, 256, 32]}
    assert s["searchSpace"]["hidden"] == {"_type": "choice", "_value": [16, 32, 64]}
    exp = validate_manifest(m)
    batch = next(d for d in exp.space.dims if d.name == "batch_size")
    assert batch.is_integer
    c = container(m)
    assert c["args"] == ["--lr", "${parameters.lr}", "--batch-size", "${parameters.batch_size}"]
    assert c["env"] == [{"name": "HIDDEN", "value": "${parameters.hidden}"}]
    assert s["maxTrialSeconds"] == 1800 and has_note(notes, "activeDeadlineSeconds", "maxTrialSeconds")
    assert "maxFailedTrialNum" not in s  # not given: no limit, as in Katib


def test_multivariate_tpe_startup() -> None:
    m, _ = convert("multivariate-tpe.yaml")
    assert m["spec"]["tuner"]["classArgs"]["tpe_args"] == {"multivariate": True, "n_startup_jobs": 5,
                                                            "n_ei_candidates": 24}
    assert m["spec"]["trialConcurrency"] == 3  # Katib's default parallelTrialCount


def test_bayesianoptimization_is_gptuner() -> None:
    m, notes = convert("bayesianoptimization.yaml")
    t = m["spec"]["tuner"]
    assert t["builtinTunerName"] == "GPTuner"
    assert t["classArgs"] == {"optimize_mode": "maximize", "cold_start_num": 5, "utility": "ei"}
    assert m["spec"]["maxFailedTrialNum"] == 1  # maxFailedTrialCount 0: the first failure ends it
    assert has_note(notes, "acq_func", "gp_hedge") and has_note(notes, "acq_optimizer", "dropped")


def test_hyperband_resource_parameter_becomes_the_budget() -> None:
    m, notes = convert("hyperband.yaml")
    s = m["spec"]
    assert "tuner" not in s
    assert s["advisor"] == {"builtinAdvisorName": "Hyperband",
                            "classArgs": {"optimize_mode": "maximize", "R": 9, "eta": 3, "max_brackets": 3}}
    assert "num-epochs" not in s["searchSpace"] and set(s["searchSpace"]) == {"lr", "num-layers"}
    assert container(m)["command"][-1] == "--num-epochs=$(EPOCHS)"
    assert has_note(notes, "resource_name", "num-epochs", "$EPOCHS")


def test_hyperband_fractional_r_l_is_refused_naming_it() -> None:
    doc = load("hyperband.yaml")
    for setting in doc["spec"]["algorithm"]["algorithmSettings"]:
        if setting["name"] == "r_l":
            setting["value"] = "9.5"
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == "spec.algorithm.algorithmSettings[r_l]"
    assert "whole number of epochs, got 9.5" in str(e.value)


def test_grid_steps_keep_katibs_values() -> None:
    m, notes = convert("grid.yaml")
    space = m["spec"]["searchSpace"]
    assert m["spec"]["tuner"]["builtinTunerName"] == "GridSearch"
    assert space["lr"] == {"_type": "quniform", "_value": [0.001, 0.01, 0.001]}
    # 0.55 is not a multiple of 0.2: Katib's grid walks 0.55, 0.75, 0.95 (rounding to multiples would not)
    assert space["momentum"] == {"_type": "choice", "_value": [0.55, 0.75, 0.95]}
    assert space["num-layers"] == {"_type": "choice", "_value": [1, 4, 7, 10]}
    assert has_note(notes, "spec.parameters[1].feasibleSpace.step", "choice")
    exp = validate_manifest(m)
    assert exp.space.cardinality() == 10 * 3 * 4


def test_cmaes_becomes_multivariate_tpe_with_notes() -> None:
    m, notes = convert("cmaes.yaml")
    assert m["spec"]["tuner"] == {"builtinTunerName": "TPE", "classArgs": {
        "optimize_mode": "minimize", "tpe_args": {"multivariate": True}}}
    assert has_note(notes, "algorithmName", "no CMA-ES", "TPE")
    assert has_note(notes, "[sigma]") and has_note(notes, "[restart_strategy]")


def test_sobol_and_normal_distribution() -> None:
    m, notes = convert("sobol.yaml")
    assert m["spec"]["tuner"]["classArgs"] == {"optimize_mode": "maximize", "rule": "sobol"}
    mu, sigma = m["spec"]["searchSpace"]["momentum"]["_value"]
    assert m["spec"]["searchSpace"]["momentum"]["_type"] == "normal"
    assert mu == pytest.approx(0.7) and sigma == pytest.approx(0.4 / 6)
    assert has_note(notes, "distribution", "normal")


def test_pytorchjob_tasks_primary_container_and_medianstop() -> None:
    m, notes = convert("pytorchjob-medianstop.yaml")
    tc = m["spec"]["trainingConfig"]
    assert tc["type"] == "pytorch"
    assert [(t["type"], t["replicas"], t.get("restartPolicy")) for t in tc["tasks"]] == [
        ("master", 1, "OnFailure"), ("worker", 2, "OnFailure")]
    master = tc["tasks"][0]["template"]["spec"]["containers"]
    assert [c["name"] for c in master] == ["pytorch", "sidecar"]  # the primary container first
    assert master[0]["command"][-2:] == ["--lr=${parameters.lr}", "--momentum=${parameters.momentum}"]
    assert m["metadata"]["annotations"][WORKLOAD_KIND_ANNOTATION] == "kubeflow"
    assert m["spec"]["assessor"] == {"builtinAssessorName": "Medianstop",
                                     "classArgs": {"optimize_mode": "minimize", "start_step": 5}}
    assert m["spec"]["objectiveGoal"] == 0.001
    assert has_note(notes, "min_trials_required", "2") and has_note(notes, "primaryContainerName", "moved")


def test_medianstop_defaults_are_katibs() -> None:
    doc = load("pytorchjob-medianstop.yaml")
    doc["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    conv = convert_katib(doc)
    assert conv.manifest["spec"]["assessor"]["classArgs"]["start_step"] == 4
    assert has_note(conv.notes, "min_trials_required", "3", "Katib default")


def test_pbt() -> None:
    m, notes = convert("pbt.yaml")
    assert m["spec"]["tuner"] == {"builtinTunerName": "PBTTuner", "classArgs": {
        "optimize_mode": "maximize", "population_size": 4, "fraction": 0.3}}
    assert m["spec"]["searchSpace"]["lr"] == {"_type": "quniform", "_value": [0.0001, 0.02, 0.0001]}
    assert has_note(notes, "suggestion_trial_dir") and has_note(notes, "resumePolicy", "FromVolume")


def test_unknown_fields_are_noted_never_silently_dropped() -> None:
    doc = load("random-job.yaml")
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "StdOut", "futureField": 1}}
    doc["spec"]["someFutureField"] = 1
    doc["spec"]["trialTemplate"]["successCondition"] = "status.conditions.#(type==\"Done\")#"
    doc["spec"]["trialTemplate"]["retain"] = True
    doc["metadata"]["uid"] = "abc"
    doc["status"] = {"trials": 3}
    notes = convert_katib(doc).notes
    for field in ("spec.metricsCollectorSpec.collector.futureField", "spec.someFutureField", "successCondition", "retain", "uid", "status"):
        assert has_note(notes, field), field


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["spec"]["algorithm"].update(algorithmName="annealing"), "spec.algorithm.algorithmName"),
    (lambda d: d["spec"]["algorithm"].update(algorithmName="enas"), "spec.algorithm.algorithmName"),
    (lambda d: d["spec"]["parameters"][0].pop("feasibleSpace"), "spec.parameters[0].feasibleSpace"),
    (lambda d: d["spec"]["parameters"][1]["feasibleSpace"].update(min="x"), "spec.parameters[1].feasibleSpace.min"),
    (lambda d: d["spec"]["parameters"][0].update(parameterType="float"), "spec.parameters[0].parameterType"),
    (lambda d: d["spec"]["objective"].update(type="max"), "spec.objective.type"),
    (lambda d: d["spec"]["trialTemplate"].update(configMap={"configMapName": "t"}), "spec.trialTemplate.configMap"),
    (lambda d: d["spec"]["trialTemplate"]["trialSpec"].update(kind="MPIJob"), "spec.trialTemplate.trialSpec.kind"),
    (lambda d: d["spec"]["trialTemplate"]["trialParameters"][0].update(reference="nope"),
     "spec.trialTemplate.trialParameters[0].reference"),
    (lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0].update(
        image="img:${trialParameters.optimizer}"),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].image"),
])
def test_bad_katib_input_names_the_field(edit: Any, field: str) -> None:
    doc = load("random-job.yaml")
    edit(doc)
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == field and "\n" not in str(e.value)


def run_cli(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    src = tmp_path / "in.yaml"
    src.write_text(text)
    rc = main(["convert", str(src)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suggestion = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Suggestion", "metadata": {"name": "s"},
                  "spec": {"algorithm": {"algorithmName": "random"}, "requests": 3}}
    doc = load("random-job.yaml")
    doc["spec"]["algorithm"]["algorithmName"] = "quantum-annealing"
    nofs = load("random-job.yaml")
    del nofs["spec"]["parameters"][2]["feasibleSpace"]
    cases = [
        ("spec: [unclosed", "is not valid YAML"),
        (yaml.safe_dump(suggestion), "kind: 'Suggestion' is not a Katib Experiment"),
        (yaml.safe_dump(doc), "spec.algorithm.algorithmName: unknown Katib algorithm 'quantum-annealing'"),
        (yaml.safe_dump(nofs), "spec.parameters[2].feasibleSpace: is required"),
        ("just a string", "must hold a YAML mapping"),
        (json.dumps({"kind": "AutoTuneExperiment"}), "already AutoTuneExperiment"),
    ]
    for text, expected in cases:
        rc, out, err = run_cli(tmp_path, text, capsys)
        assert rc == 2, expected
        assert out == ""
        assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_bayesianoptimization_with_a_normal_parameter_falls_back_to_tpe() -> None:
    doc = load("bayesianoptimization.yaml")
    doc["spec"]["parameters"][0]["feasibleSpace"]["distribution"] = "normal"
    conv = convert_katib(doc)
    validate_manifest(conv.manifest)
    assert conv.manifest["spec"]["tuner"]["builtinTunerName"] == "TPE"
    assert has_note(conv.notes, "GPTuner", "normal", "using TPE")


def test_a_file_with_the_experiment_and_other_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}}
    src = tmp_path / "both.yaml"
    src.write_text(yaml.safe_dump(pvc) + "---\n" + (CORPUS / "random-job.yaml").read_text())
    assert main(["convert", str(src), "-o", str(tmp_path / "o.yaml")]) == 0
    assert "PersistentVolumeClaim data) are not converted" in capsys.readouterr().err
    assert load_experiment(str(tmp_path / "o.yaml")).name == "random"


def test_katib_server_defaults_add_no_notes() -> None:
    """A `kubectl get experiment -o yaml` carries Katib's defaults; those that mean what
    AutoTune does anyway (default conditions, primary pod labels, resumePolicy Never,
    distribution uniform) are not reported as losses."""
    doc = load("pytorchjob-medianstop.yaml")
    tt = doc["spec"]["trialTemplate"]
    tt["successCondition"] = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    tt["failureCondition"] = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    tt["primaryPodLabels"] = {"training.kubeflow.org/job-role": "master"}
    doc["spec"]["resumePolicy"] = "Never"
    for p in doc["spec"]["parameters"]:
        p["feasibleSpace"]["distribution"] = "uniform"
    notes = convert_katib(doc).notes
    for word in ("successCondition", "failureCondition", "primaryPodLabels", "resumePolicy", "distribution"):
        assert not has_note(notes, word), word
    tt["primaryPodLabels"] = {"role": "main"}
    assert has_note(convert_katib(doc).notes, "primaryPodLabels", "role")


def test_int_log_uniform_and_single_value_ranges() -> None:
    doc = load("random-job.yaml")
    doc["spec"]["parameters"][1]["feasibleSpace"] = {"min": "8", "max": "512", "distribution": "logUniform"}
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.1", "max": "0.1"}
    conv = convert_katib(doc)
    exp = validate_manifest(conv.manifest)
    space = conv.manifest["spec"]["searchSpace"]
    assert space["num-layers"] == {"_type": "qloguniform", "_value": [8, 512, 1]}
    assert space["lr"] == {"_type": "choice", "_value": [0.1]}
    assert next(d for d in exp.space.dims if d.name == "num-layers").is_integer


def test_parameter_names_a_placeholder_cannot_hold_are_renamed_with_a_note() -> None:
    doc = load("random-job.yaml")
    doc["spec"]["parameters"][0]["name"] = "learning.rate"
    doc["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "learning.rate"
    conv = convert_katib(doc)
    validate_manifest(conv.manifest)
    assert "learning_rate" in conv.manifest["spec"]["searchSpace"]
    assert container(conv.manifest)["command"][3] == "--lr=${parameters.learning_rate}"
    assert has_note(conv.notes, "'learning.rate' is 'learning_rate'")


def test_a_max_off_the_step_is_not_a_value() -> None:
    """quniform/qloguniform clip to [low, high]: converted with Katib's max as high, 0..11 step 4
    gave 11 (and 8..100 step 8 log gave 100), values Katib's grid and rounding never give."""
    doc = load("random-job.yaml")
    doc["spec"]["parameters"][1]["feasibleSpace"] = {"min": "0", "max": "11", "step": "4"}
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.1", "max": "0.95", "step": "0.1"}
    conv = convert_katib(doc)
    exp = validate_manifest(conv.manifest)
    space = conv.manifest["spec"]["searchSpace"]
    assert space["num-layers"] == {"_type": "quniform", "_value": [0, 8, 4]}
    assert space["lr"] == {"_type": "quniform", "_value": [0.1, 0.9, 0.1]}
    dims = {d.name: d for d in exp.space.dims}
    assert quniform_grid(0, 8, 4) == [0, 4, 8] and dims["num-layers"].is_integer
    assert max(quniform_grid(0.1, 0.9, 0.1)) == pytest.approx(0.9)
    doc["spec"]["parameters"][1]["feasibleSpace"] = {"min": "8", "max": "100", "step": "8", "distribution": "logUniform"}
    space = convert_katib(doc).manifest["spec"]["searchSpace"]
    assert space["num-layers"] == {"_type": "qloguniform", "_value": [8, 96, 8]}


def test_a_step_range_holding_one_value_is_a_choice_of_it() -> None:
    doc = load("random-job.yaml")
    doc["spec"]["parameters"][1]["feasibleSpace"] = {"min": "5", "max": "9", "step": "5"}
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.5", "max": "0.9", "step": "0.5", "distribution": "logUniform"}
    conv = convert_katib(doc)
    validate_manifest(conv.manifest)
    space = conv.manifest["spec"]["searchSpace"]
    assert space["num-layers"] == {"_type": "choice", "_value": [5]}
    assert space["lr"] == {"_type": "choice", "_value": [0.5]}


KATIB_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"


def test_a_stdout_collector_keeps_its_formats_and_other_collectors_are_noted() -> None:
    doc = load("random-job.yaml")
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "StdOut"},
                                           "source": {"filter": {"metricsFormat": [KATIB_FORMAT]}}}
    m = convert_katib(doc).manifest
    validate_manifest(m)
    assert m["spec"]["metricsCollector"]["metricsFormat"] == [KATIB_FORMAT]
    for kind, words in (("PrometheusMetric", "not from Prometheus"), ("Custom", "custom collector"),
                        ("None", "reports its"), ("Push", "reports its")):
        doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": kind}}
        conv = convert_katib(doc)
        validate_manifest(conv.manifest)
        assert "metricsCollector" not in conv.manifest["spec"], kind
        assert has_note(conv.notes, f"collector.kind {kind}", words), conv.notes
        # Without a collector the trial reports through the SDK or MLflow; the note says how.
        assert has_note(conv.notes, "objectiveMetricName", "report_final_result")


@pytest.mark.parametrize("strategies,expected", [
    # Katib's default for a maximized objective, and for the additional metric too
    ([], [{"name": "Validation-accuracy", "value": "max"}, {"name": "Train-accuracy", "value": "max"}]),
    # AutoTune's default: nothing to write
    ([{"name": "Validation-accuracy", "value": "latest"}], [{"name": "Train-accuracy", "value": "max"}]),
    ([{"name": "Train-accuracy", "value": "min"}],
     [{"name": "Validation-accuracy", "value": "max"}, {"name": "Train-accuracy", "value": "min"}]),
])
def test_metric_strategies_keep_katibs_ranking(strategies: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    doc = load("random-job.yaml")
    doc["spec"]["objective"]["metricStrategies"] = strategies
    m = convert_katib(doc).manifest
    validate_manifest(m)
    assert m["spec"].get("metricStrategies", []) == expected
    doc["spec"]["objective"].update(type="minimize", metricStrategies=[])
    assert convert_katib(doc).manifest["spec"]["metricStrategies"] == [{"name": "Validation-accuracy", "value": "min"},
                                                                       {"name": "Train-accuracy", "value": "min"}]


@pytest.mark.parametrize("edit,field", [
    (lambda o, c: o.update(metricStrategies=[{"name": "nope", "value": "max"}]), "spec.objective.metricStrategies[0].name"),
    (lambda o, c: o.update(metricStrategies=[{"name": "Train-accuracy", "value": "best"}]),
     "spec.objective.metricStrategies[0].value"),
    (lambda o, c: c.update(source={"filter": {"metricsFormat": ["(unclosed"]}}),
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]"),
    (lambda o, c: c.update(source={"filter": {"metricsFormat": ["acc=(\\d+)"]}}),
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]"),
])
def test_bad_metric_settings_name_the_field(edit: Any, field: str) -> None:
    doc = load("random-job.yaml")
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "StdOut"}}
    edit(doc["spec"]["objective"], doc["spec"]["metricsCollectorSpec"])
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == field and "\n" not in str(e.value)


def test_sixty_four_additional_metrics_convert_to_a_valid_manifest() -> None:
    """The most metric names a collector takes (64 additional + the objective) each get a
    strategy written out (Katib's default for every one): the spec must take them all."""
    doc = load("random-job.yaml")
    doc["spec"]["objective"]["additionalMetricNames"] = [f"m{i}" for i in range(64)]
    m = convert_katib(doc).manifest
    validate_manifest(m)
    assert len(m["spec"]["metricStrategies"]) == 65


@pytest.mark.parametrize("trial_spec", [
    # Katib's examples/v1beta1/kubeflow-trainer/trainjob-pytorch.yaml: the command is not a container's.
    {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
     "spec": {"runtimeRef": {"name": "torch-distributed"},
              "trainer": {"numNodes": 2, "image": "pytorch-mnist", "command": ["python3", "mnist.py",
                                                                              "--lr=${trialParameters.learningRate}"]}}},
    # Katib's Tekton example: parameters go in the PipelineRun's params.
    {"apiVersion": "tekton.dev/v1beta1", "kind": "PipelineRun",
     "spec": {"params": [{"name": "lr", "value": "${trialParameters.learningRate}"}], "pipelineRef": {"name": "p"}}},
])
def test_a_trial_kind_autotune_cannot_run_is_refused_for_its_kind(trial_spec: dict[str, Any]) -> None:
    """Not for where its placeholders are: moving them would not help, the kind is the problem."""
    doc = load("random-job.yaml")
    doc["spec"]["trialTemplate"]["trialSpec"] = trial_spec
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "learningRate", "reference": "lr"}]
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == "spec.trialTemplate.trialSpec.kind"
    assert f"'{trial_spec['kind']}' is not a trial kind AutoTune runs" in str(e.value)


def _pod(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("name,edit,field", [
    ("random-job.yaml", lambda d: d["spec"]["trialTemplate"]["trialSpec"].update(kind=["Job"]),
     "spec.trialTemplate.trialSpec.kind"),
    ("random-job.yaml", lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"].update(spec="x"),
     "spec.trialTemplate.trialSpec.spec.template.spec"),
    ("random-job.yaml", lambda d: _pod(d).update(containers=-1), "spec.trialTemplate.trialSpec.spec.template.spec.containers"),
    ("random-job.yaml", lambda d: _pod(d)["containers"][0].update(command=-1),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command"),
    ("random-job.yaml", lambda d: _pod(d)["containers"][0].update(env=-1),
     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env"),
    ("pytorchjob-medianstop.yaml", lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"].update(pytorchReplicaSpecs={}),
     "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs"),
    ("random-job.yaml", lambda d: d["spec"].update(metricsCollectorSpec={"collector": {"kind": ["File"]}}),
     "spec.metricsCollectorSpec.collector.kind"),
])
def test_malformed_katib_input_names_the_field_not_a_traceback(name: str, edit: Any, field: str) -> None:
    """Each crashed `autotune convert` with a TypeError/AttributeError/IndexError traceback."""
    doc = load(name)
    edit(doc)
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == field and "\n" not in str(e.value)


def test_cli_input_nested_too_deeply_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PyYAML's parser recurses per level: this crashed `autotune convert` with a RecursionError traceback."""
    text = (CORPUS / "random-job.yaml").read_text().replace("spec:\n", "spec:\n  x: " + "[" * 5000 + "]" * 5000 + "\n", 1)
    rc, out, err = run_cli(tmp_path, text, capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "is not valid YAML: nested too deeply" in err, err


def test_a_katib_name_too_long_for_autotunes_trial_names_says_so() -> None:
    doc = load("random-job.yaml")
    doc["metadata"]["name"] = "resnet50-imagenet-lr-sweep-with-cosine-schedule-v2"
    with pytest.raises(ConvertError) as e:
        convert_katib(doc)
    assert e.value.field == "metadata.name" and "at most 47 characters" in str(e.value)
