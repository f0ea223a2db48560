"""`autotune.tune()`'s manifest builder: keyword arguments -> AutoTuneExperiment, checked by
the same validator as `autotune run`, with each problem naming the keyword argument."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotune_operator.function_ref import FunctionRef
from autotune_operator.spec import SpecError, validate_manifest
from autotune_operator.tune_spec import TuneArgumentError, TuneOptions, build_manifest, default_name, explain

REF = FunctionRef("/src/pkg/train.py", "train_mlp", "pkg.train", "/src")
SPACE = {"lr": {"_type": "loguniform", "_value": [1e-4, 0.1]}, "units": {"_type": "choice", "_value": [16, 32]}}


def build(**kw: Any) -> dict[str, Any]:
    space = kw.pop("search_space", SPACE)
    return build_manifest(REF, space, TuneOptions(**kw), python="/venv/bin/python", workdir="/work")


def problems(**kw: Any) -> list[str]:
    """The lines tune() raises for these arguments (the builder's, else the validator's)."""
    try:
        validate_manifest(build(**kw))
    except SpecError as e:
        return explain(e.problems)
    except TuneArgumentError as e:
        return e.problems
    return []


def test_defaults_make_a_valid_tpe_experiment_that_maximizes() -> None:
    m = build(max_trials=20, concurrency=2)
    exp = validate_manifest(m)
    assert m["metadata"]["name"] == "train-mlp"
    assert m["spec"]["tuner"] == {"builtinTunerName": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    assert exp.optimize_mode.value == "maximize" and exp.spec.maxTrialNum == 20 and exp.spec.trialConcurrency == 2
    assert not any("no optimize_mode" in w for w in exp.warnings)  # tune()'s default is explicit
    assert "maxExecSeconds" not in m["spec"] and "objectiveGoal" not in m["spec"]


def test_trial_command_runs_the_launcher_with_the_function_reference() -> None:
    container = build()["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/venv/bin/python", "-P", "-m", "autotune_operator.function_trial",
                                    "--file", "/src/pkg/train.py", "--qualname", "train_mlp", "--root", "/src",
                                    "--module", "pkg.train"]
    assert container["workingDir"] == "/work" and "env" not in container
    script = FunctionRef("/home/u/train.py", "train", None, "/home/u")
    cmd = build_manifest(script, SPACE, TuneOptions(), python="py", workdir="/w")["spec"]["trainingConfig"]["tasks"][0][
        "template"]["spec"]["containers"][0]["command"]
    assert "--module" not in cmd
    with_args = build_manifest(script, SPACE, TuneOptions(), python="py", workdir="/w", argv=["--data", "x"])
    assert with_args["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["command"][-3:] == [
        "--", "--data", "x"]  # the caller's arguments, which the file sees again


def test_keyword_arguments_map_to_spec_fields() -> None:
    m = build(tuner="Anneal", class_args={"seed": 3}, optimize_mode="minimize", assessor="Medianstop",
              assessor_args={"start_step": 2}, max_trials=9, concurrency=3, max_exec_seconds=600,
              max_trial_seconds=60, seed=7, objective_goal=0.01, name="my-run", env={"A": "1"},
              extra_spec={"maxFailedTrialNum": 2})
    s = m["spec"]
    assert s["tuner"] == {"builtinTunerName": "Anneal", "classArgs": {"seed": 3, "optimize_mode": "minimize"}}
    assert s["assessor"] == {"builtinAssessorName": "Medianstop", "classArgs": {"start_step": 2}}
    assert (s["maxTrialNum"], s["trialConcurrency"], s["maxExecSeconds"], s["maxTrialSeconds"], s["seed"],
            s["objectiveGoal"], s["maxFailedTrialNum"]) == (9, 3, 600, 60, 7, 0.01, 2)
    assert m["metadata"]["name"] == "my-run"
    assert s["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    exp = validate_manifest(m)
    assert exp.optimize_mode.value == "minimize" and exp.spec.maxFailedTrialNum == 2


def test_advisor_replaces_the_default_tuner() -> None:
    m = build(advisor="Hyperband", advisor_args={"R": 9})
    assert "tuner" not in m["spec"]
    assert m["spec"]["advisor"] == {"builtinAdvisorName": "Hyperband", "classArgs": {"R": 9, "optimize_mode": "maximize"}}
    assert validate_manifest(m).algorithm == "Hyperband"


def test_class_args_direction_is_kept_and_algorithms_that_ignore_it_get_none() -> None:
    assert build(class_args={"optimize_mode": "minimize"})["spec"]["tuner"]["classArgs"] == {"optimize_mode": "minimize"}
    grid = build(tuner="GridSearch")
    assert grid["spec"]["tuner"]["classArgs"] == {}
    assert not any("ignores" in w for w in validate_manifest(grid).warnings)


def test_several_objectives_through_extra_spec_get_no_single_direction() -> None:
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    m = build(tuner="MOTPE", extra_spec={"objectives": objectives})
    assert m["spec"]["tuner"]["classArgs"] == {}
    assert [o.name for o in validate_manifest(m).spec.objectives or []] == ["accuracy", "size"]


def test_search_space_may_be_json_text() -> None:
    assert validate_manifest(build(search_space='{"x": {"_type": "uniform", "_value": [0, 1]}}')).space.top == ("x",)


@pytest.mark.parametrize("qualname, name", [("train", "train"), ("train_mlp", "train-mlp"),
                                            ("Trainer.fit", "trainer.fit"), ("__call__", "call"), ("_", "tune")])
def test_default_name_is_an_rfc1123_name_from_the_function(qualname: str, name: str) -> None:
    assert default_name(FunctionRef("/f.py", qualname, None, "/")) == name


@pytest.mark.parametrize("kw, line", [
    (dict(max_trials=0), "max_trials: spec.maxTrialNum: Input should be greater than or equal to 1 (got 0)"),
    (dict(concurrency=True), "concurrency: spec.trialConcurrency: must be an integer, not a boolean (got True)"),
    (dict(max_exec_seconds=-5), "max_exec_seconds: spec.maxExecSeconds: "),
    (dict(max_trial_seconds=0), "max_trial_seconds: spec.maxTrialSeconds: "),
    (dict(seed=-1), "seed: spec.seed: "),
    (dict(objective_goal="0.9"), "objective_goal: spec.objectiveGoal: must be a number (got '0.9')"),
    (dict(tuner="TPEE"), "tuner: spec.tuner: unknown builtinTunerName 'TPEE'"),
    (dict(class_args={"optimize_mode": "max"}), "class_args: spec.tuner: classArgs.optimize_mode must be"),
    (dict(assessor="Medianstp"), "assessor: spec.assessor: unknown builtinAssessorName 'Medianstp'"),
    (dict(assessor="Medianstop", assessor_args={"start_step": -1}), "assessor_args: spec.assessor: Medianstop classArgs.start_step"),
    (dict(advisor="Hyperbnd"), "advisor: spec.advisor.builtinAdvisorName: unknown advisor 'Hyperbnd'"),
    (dict(advisor="Hyperband", tuner="TPE"), "advisor: spec.advisor: cannot be given together with spec.tuner"),
    (dict(name="Bad_Name"), "name: metadata.name: must be a lowercase RFC 1123 name"),
    (dict(search_space={"x": {"_type": "uniformm", "_value": [0, 1]}}), "search_space: spec.searchSpace parameter 'x': unknown _type 'uniformm'"),
    (dict(search_space={"x": {"_type": "uniform", "_value": [1, 0]}}), "search_space: spec.searchSpace parameter 'x': uniform needs low < high"),
    (dict(extra_spec={"maxTrailNum": 3}), "extra_spec['maxTrailNum']: spec.maxTrailNum: unknown field (check its spelling)"),
    (dict(extra_spec={"maxFailedTrialNum": 0}), "extra_spec['maxFailedTrialNum']: spec.maxFailedTrialNum: Input should be greater"),
    (dict(extra_spec={"maxTrialNum": 3}), "extra_spec['maxTrialNum']: spec.maxTrialNum is set by tune()'s max_trials= argument"),
    (dict(extra_spec={"trainingConfig": {}}), "extra_spec['trainingConfig']: spec.trainingConfig cannot be given: tune()'s trials run the function"),
    (dict(optimize_mode="min"), "optimize_mode: must be 'maximize' or 'minimize', got 'min'"),
    (dict(extra_spec="abc"), "extra_spec: must be a dict, got str 'abc'"),
    (dict(env=[("A", "1")]), "env: must be a dict, got list [('A', '1')]"),
    (dict(assessor="Medianstop", assessor_args=3), "assessor_args: must be a dict, got int 3"),
    (dict(env={"N": 4}), "env: spec.trainingConfig.tasks[0].template.spec.containers[0].env[0].value: must be a string"),
    (dict(optimize_mode="minimize", class_args={"optimize_mode": "maximize"}), "optimize_mode: 'minimize' conflicts with class_args"),
])
def test_each_bad_argument_is_one_line_naming_the_keyword_and_the_field(kw: dict[str, Any], line: str) -> None:
    got = problems(**kw)
    assert len(got) == 1 and got[0].startswith(line), got
    assert "\n" not in got[0]


def test_explain_leaves_lines_without_a_field_as_they_are() -> None:
    assert explain(["the manifest must be a YAML mapping, got list"]) == ["the manifest must be a YAML mapping, got list"]


def test_argument_error_is_a_value_error_with_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        build(extra_spec={"seed": 1, "tuner": {}})
    assert isinstance(info.value, TuneArgumentError) and len(info.value.problems) == 2
    assert str(info.value).splitlines() == info.value.problems


def test_tune_passes_every_manifest_keyword_through_its_options() -> None:
    # tune()'s signature is the public list; TuneOptions carries the manifest's part of it.
    from dataclasses import fields
    import inspect

    from autotune_operator.tune import tune

    own = {"function", "search_space", "output", "quiet", "devices"}  # how the run goes, not the manifest
    assert set(inspect.signature(tune).parameters) - own == {f.name for f in fields(TuneOptions)}
    assert {f.name: f.default for f in fields(TuneOptions)} == {
        k: p.default for k, p in inspect.signature(tune).parameters.items() if k not in own}


def test_python_and_python3_of_one_venv_give_one_trial_command(tmp_path: Path) -> None:
    # `python3 train.py` after `python train.py`: the same call, which must resume the run, not
    # be refused as a changed spec.trainingConfig. The venv's name is kept, not its target.
    from autotune_operator.tune import interpreter

    base = tmp_path / "usr" / "python3.11"
    base.parent.mkdir()
    base.write_text("")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(base)
    (venv / "python3").symlink_to("python")
    assert interpreter(str(venv / "python3")) == interpreter(str(venv / "python")) == str(venv / "python")
    other = tmp_path / "other"
    other.mkdir()
    (other / "python").write_text("")  # another interpreter that happens to sit beside it
    (other / "python3").write_text("")
    assert interpreter(str(other / "python3")) == str(other / "python3")


def test_a_changed_trial_command_says_what_it_holds() -> None:
    from autotune_operator.tune import _in_python_terms

    said = _in_python_terms("spec.trainingConfig changed since the run in /o/train: resuming it may change only "
                            "maxTrialNum; use another --output for a new search")
    assert said.endswith("use another output= or name= for a new search (tune()'s trainingConfig runs the function's "
                         "file, in the working directory, with the Python that called it, its arguments and env=: "
                         "one of them differs)")


def test_search_space_file_may_be_named_by_a_str_as_in_nni(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune_operator.tune import read_search_space

    text = json.dumps(SPACE)
    (tmp_path / "search_space.json").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert read_search_space("search_space.json") == text == read_search_space(tmp_path / "search_space.json")
    assert read_search_space(text) == text and read_search_space(SPACE) is SPACE  # JSON text, a dict: as given
    with pytest.raises(TuneArgumentError, match=r"^search_space: cannot read missing\.json: .*No such file"):
        read_search_space("missing.json")


@pytest.mark.parametrize("devices, arg", [([0, 1], "0,1"), (["cuda0", 3], "cuda0,3"), ("0,1", "0,1"), ("01", "01"),
                                          ((), None), (None, None)])
def test_devices_become_the_runs_device_list(devices: Any, arg: str | None) -> None:
    from autotune_operator.tune import devices_arg

    assert devices_arg(devices) == arg


@pytest.mark.parametrize("devices", [2, [0, None], ["0,1"], [True]])
def test_devices_that_are_not_a_list_of_ids_are_refused_naming_the_keyword(devices: Any) -> None:
    # 2 was a TypeError from inside the run; "01" was split into devices 0 and 1.
    from autotune_operator.tune import devices_arg

    with pytest.raises(TuneArgumentError, match=r"^devices: give the device ids, one trial per device, like \[0, 1\]"):
        devices_arg(devices)


def test_only_a_scripts_own_function_gets_the_scripts_arguments() -> None:
    # A notebook's argv names the kernel's connection file, new with each kernel: in the trials'
    # command it would refuse to resume the run after a restart, and is not the module's anyway.
    import types

    from autotune_operator.tune import script_argv

    main_fn = types.FunctionType(top_level.__code__, {"__name__": "__main__"})
    assert main_fn.__module__ == "__main__"
    assert script_argv(main_fn, ["train.py", "--data", "x"]) == ["--data", "x"]
    assert script_argv(top_level, ["ipykernel_launcher.py", "-f", "/run/kernel-1.json"]) == []


def top_level(params: dict) -> float:
    return 1.0


def test_a_long_function_name_gives_a_name_trials_can_be_named_after() -> None:
    """Trial Jobs are <name>-<n> or <name>-final-<n>, at most 63 characters on Kubernetes."""
    name = default_name(FunctionRef("/f.py", "train_a_residual_network_on_imagenet_with_cosine_schedule", None, "/"))
    assert len(name) <= 47 and name == "train-a-residual-network-on-imagenet-with-cosin"
