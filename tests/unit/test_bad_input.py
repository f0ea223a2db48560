"""Mistakes a new user makes in a manifest that tests/invalid/ cannot hold (files that are
not UTF-8 text) or whose message is checked more closely than a corpus substring."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune_operator.cli import main
from autotune_operator.spec import SpecError, load_experiment, load_experiment_text

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed-001-example.yaml"


@pytest.mark.parametrize("content, byte", [(b"\xff\x00 a: 1", "0xff"), (b"apiVersion: v1\nkind: \xd0\x00", "0xd0")])
def test_file_that_is_not_utf8_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 content: bytes, byte: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_bytes(content)
    for command in ("validate", "run"):
        assert main([command, str(path), "--output", str(tmp_path / "out")][: 2 if command == "validate" else 4]) == 2
        err = capsys.readouterr().err
        assert f"{path} is not UTF-8 text (byte {byte}" in err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_yaml_error_names_the_file_line_and_column_on_one_line() -> None:
    with pytest.raises(SpecError) as e:
        load_experiment_text("spec:\n  a: [1, 2\n", source="exp.yaml")
    (line,) = e.value.problems
    assert line == "exp.yaml is not valid YAML: line 3, column 1: expected ',' or ']', but got '<stream end>' " \
                   "(while parsing a flow sequence at line 2)"
    assert "<unicode string>" not in line


def test_duplicate_yaml_key_is_refused_but_merge_keys_still_override() -> None:
    text = SEED.read_text(encoding="utf-8")
    with pytest.raises(SpecError, match=r"line 8, column 3: found duplicate key 'maxTrialNum'"):
        load_experiment_text(text.replace("  maxTrialNum: 50\n", "  maxTrialNum: 50\n  maxTrialNum: 5\n"))
    # YAML merge keys ('<<: *anchor') are not duplicates: the explicit key wins, as in kubectl.
    merged = text.replace("metadata:\n  name: experiment-sample\n",
                          "metadata: &m\n  name: experiment-sample\n  namespace: a\n").replace(
        "spec:\n", "x-defaults: &d {maxTrialNum: 50, trialConcurrency: 3}\nspec:\n  <<: *d\n", 1)
    assert load_experiment_text(merged.replace("x-defaults", "status")).spec.maxTrialNum == 50


def test_duplicate_json_keys_are_refused_in_search_space_and_class_args() -> None:
    text = SEED.read_text(encoding="utf-8")
    dup_space = text.replace('"learning_rate": {', '"batch_size": {"_type": "choice", "_value": [1]},\n      "learning_rate": {')
    with pytest.raises(SpecError) as e:
        load_experiment_text(dup_space)
    assert e.value.problems == ["spec.searchSpace: names 'batch_size' twice in one object (JSON would keep only the last)"]
    dup_args = text.replace('"constant_liar_type": "min"', '"constant_liar_type": "min", "optimize_mode": "maximize"')
    with pytest.raises(SpecError, match=r"spec.tuner.classArgs: names 'optimize_mode' twice"):
        load_experiment_text(dup_args)


def test_seed_example_still_loads_from_a_file() -> None:
    assert load_experiment(str(SEED)).spec.maxTrialNum == 50


@pytest.mark.parametrize(
    "old, new, warning",
    [
        ("builtinTunerName: TPE", "builtinTunerName: tpe",
         "spec.tuner.builtinTunerName 'tpe' is read as 'TPE' here, but a cluster accepts only 'TPE'"),
        ('    builtinTunerName: TPE\n    classArgs: |-\n      {\n        "optimize_mode": "minimize", \n        "constant_liar_type": "min"\n      }',
         "    builtinTunerName: Grid",
         "spec.tuner.builtinTunerName 'Grid' is read as 'GridSearch' here, but a cluster accepts only 'GridSearch'"),
        ('  tuner:\n', '  assessor:\n    builtinAssessorName: MedianStop\n  tuner:\n',
         "spec.assessor.builtinAssessorName 'MedianStop' is read as 'Medianstop' here"),
    ],
)
def test_name_the_crd_would_refuse_is_run_locally_with_a_warning(old: str, new: str, warning: str) -> None:
    """Local mode finds algorithms by any case and by alias (so NNI configs work), but
    `autotune validate` must not let a manifest through silently that kubectl refuses."""
    exp = load_experiment_text(SEED.read_text(encoding="utf-8").replace(old, new, 1))
    assert any(w.startswith(warning) for w in exp.warnings), exp.warnings


def test_canonical_names_give_no_spelling_warning() -> None:
    exp = load_experiment_text(SEED.read_text(encoding="utf-8").replace(
        '  tuner:\n', '  assessor:\n    builtinAssessorName: Medianstop\n  tuner:\n'))
    assert not [w for w in exp.warnings if "cluster accepts only" in w]


def test_nested_choice_option_without_name_is_refused_but_plain_dicts_are_values() -> None:
    from tuner_server.searchspace import SearchSpaceError, parse_search_space

    forgot = {"opt": {"_type": "choice", "_value": [{"name": "sgd", "lr": {"_type": "uniform", "_value": [0, 1]}}]}}
    with pytest.raises(SearchSpaceError, match=r"option 0 has sub-parameters \['lr'\] but no \"_name\""):
        parse_search_space(forgot)
    plain = parse_search_space({"opt": {"_type": "choice", "_value": [{"lr": 0.1}, {"lr": 0.01, "momentum": 0.9}]}})
    assert plain.to_parameters({"opt": 1}) == {"opt": {"lr": 0.01, "momentum": 0.9}}


def test_a_stored_experiment_that_no_longer_loads_does_not_stop_the_engine(tmp_path: Path) -> None:
    """Validation grows stricter between versions. An experiment an older server stored
    (here a Curvefitting threshold of NaN, refused now) used to raise in Engine(): the
    tuner server, and every other experiment on it, could not start."""
    from tuner_server.engine import Conflict, Engine, ExperimentConfig, InvalidConfig
    from tuner_server.store import Store, StoredExperiment

    space = '{"x": {"_type": "uniform", "_value": [0, 1]}}'
    store = Store(tmp_path / "t.db")
    old = {"searchSpace": space, "tuner": {"name": "Random", "classArgs": {}},
           "assessor": {"name": "Curvefitting", "classArgs": {"threshold": float("nan")}}}
    store.add_experiment(StoredExperiment("old", "old", old, "t" * 32, 1.0))
    good = ExperimentConfig.model_validate({"searchSpace": space, "tuner": {"name": "Random"}})
    Engine(store).register("good", "good", good)
    store.close()

    engine = Engine(Store(tmp_path / "t.db"))
    assert engine.suggest("good") is not None  # the other experiment is served
    with pytest.raises(InvalidConfig, match=r"'old' is stored but its configuration no longer loads .*threshold"):
        engine.summary("old")
    with pytest.raises(Conflict, match="no longer loads"):
        engine.register("old", "old", good)
    engine.delete("old")  # its data can still be removed, and the id reused
    assert engine.register("old", "old", good).stored.id == "old"
    assert sorted(h.stored.id for h in Engine(Store(tmp_path / "t.db")).list()) == ["good", "old"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"AUTOTUNE_ADMIN_TOKEN_FILE": "/nonexistent/token"}, "AUTOTUNE_ADMIN_TOKEN_FILE '/nonexistent/token': cannot read it"),
        ({"AUTOTUNE_RESYNC_SECONDS": "2s"}, "AUTOTUNE_RESYNC_SECONDS must be a number of seconds > 0, not '2s'"),
        ({"AUTOTUNE_RESYNC_SECONDS": "0"}, "AUTOTUNE_RESYNC_SECONDS must be a number of seconds > 0, not '0'"),
        ({"AUTOTUNE_RESYNC_SECONDS": "nan"}, "AUTOTUNE_RESYNC_SECONDS must be a number of seconds > 0, not 'nan'"),
        ({"AUTOTUNE_ORPHAN_SWEEP_SECONDS": "-1"},
         "AUTOTUNE_ORPHAN_SWEEP_SECONDS must be a number of seconds >= 0 (0: no sweep), not '-1'"),
        ({"AUTOTUNE_SERVER_URL": "tuner:8080"}, "AUTOTUNE_SERVER_URL must be an http:// or https:// URL, not 'tuner:8080'"),
        ({"AUTOTUNE_TRIAL_SERVER_URL": "tuner"}, "AUTOTUNE_TRIAL_SERVER_URL must be an http:// or https:// URL"),
        ({"AUTOTUNE_ACCELERATOR_NODE_SELECTORS": "{gpu: x}"}, "AUTOTUNE_ACCELERATOR_NODE_SELECTORS is not valid JSON"),
    ],
)
def test_operator_settings_mistakes_are_one_line(env: dict[str, str], message: str) -> None:
    """These were tracebacks (FileNotFoundError, ValueError, JSONDecodeError), or accepted:
    a URL without a scheme was retried for ever, resync 0 reconciled in a busy loop."""
    from autotune_operator.runtime import Settings

    base = {} if "AUTOTUNE_ADMIN_TOKEN_FILE" in env else {"AUTOTUNE_ADMIN_TOKEN": "t" * 20}
    with pytest.raises(SystemExit) as e:
        Settings.from_env({**base, **env})
    assert str(e.value.code).startswith(message)


def test_operator_settings_defaults_still_load() -> None:
    from autotune_operator.runtime import Settings

    s = Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20})
    assert s.resync_seconds == 2.0 and s.server_url.startswith("http://")


def test_yaml_exponent_hint_only_for_what_yaml_turned_into_text() -> None:
    from tuner_server.searchspace import yaml_number_hint

    assert yaml_number_hint("1e-4") == " (YAML reads an unquoted 1e-4 as text: write 0.0001)"
    assert yaml_number_hint("0.001") == ""  # quoted on purpose: YAML reads 0.001 unquoted as a number
    assert yaml_number_hint("abc") == "" and yaml_number_hint(5) == ""


def test_utf16_with_a_byte_order_mark_is_read_like_kubectl_does(tmp_path: Path) -> None:
    """PowerShell's '>' writes UTF-16 with a BOM; the manifest is still YAML."""
    for encoding in ("utf-16", "utf-16-be"):
        path = tmp_path / f"{encoding}.yaml"
        text = SEED.read_text(encoding="utf-8")
        path.write_bytes(("\ufeff" + text).encode(encoding) if encoding == "utf-16-be" else text.encode(encoding))
        assert load_experiment(str(path)).spec.maxTrialNum == 50
    no_bom = tmp_path / "no-bom.yaml"
    no_bom.write_bytes(SEED.read_text(encoding="utf-8").encode("utf-16-be"))
    with pytest.raises(SpecError, match=r"no-bom.yaml is not valid YAML: character #x0000 at offset 0 is not allowed"):
        load_experiment(str(no_bom))


def test_no_limit_on_an_infinite_space_is_said_in_a_warning() -> None:
    text = SEED.read_text(encoding="utf-8").replace("  maxExecSeconds: 7200\n", "").replace("  maxTrialNum: 50\n", "")
    warning = "neither spec.maxTrialNum nor spec.maxExecSeconds is set and the search space is infinite"
    infinite = text.replace('"_type": "choice", "_value": [0.0001, 0.001, 0.01, 0.1]', '"_type": "uniform", "_value": [0, 1]')
    assert any(w.startswith(warning) for w in load_experiment_text(infinite).warnings)
    # A finite space ends when used up; a limit ends it anyway: no warning.
    assert not any(w.startswith(warning) for w in load_experiment_text(text).warnings)
    assert not any(w.startswith(warning) for w in load_experiment_text(infinite.replace("spec:\n", "spec:\n  maxTrialNum: 5\n", 1)).warnings)


@pytest.mark.parametrize("raw, message", [
    ("lr=0.1", r"\$AUTOTUNE_PARAMETERS is not JSON \(Expecting value"),
    ("[0.1]", r"\$AUTOTUNE_PARAMETERS must be a JSON object"),
])
def test_sdk_names_a_hand_set_parameters_variable_that_is_not_a_json_object(raw: str, message: str) -> None:
    """Running a script by hand with AUTOTUNE_PARAMETERS=lr=0.1 gave a bare JSONDecodeError."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import autotune; autotune.get_next_parameter()"],
                       env={**os.environ, "AUTOTUNE_PARAMETERS": raw}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    import re
    assert re.search(message, r.stderr.splitlines()[-1]), r.stderr
