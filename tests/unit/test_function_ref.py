"""Which functions `autotune.tune()` can hand to trial processes, and how a trial finds them again."""

from __future__ import annotations

import functools
import json
import importlib.machinery
import sys
import textwrap
import types
from pathlib import Path
from typing import Callable, Iterator

import pytest

from autotune_operator import function_trial
from autotune_operator.function_ref import FunctionRef, FunctionRefError, function_ref
from autotune_operator.tune import check_import


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder whose files the test imports (the trial side loads into this process): sys.path
    and the modules imported from the folder are as before after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def top_level(params: dict) -> float:
    return 1.0


class Trainer:
    @staticmethod
    def fit(params: dict) -> float:
        return 2.0


def replaced(params: dict) -> float:
    return 0.0


_original_replaced = replaced


def replaced(params: dict) -> float:  # noqa: F811  (redefined on purpose: the name no longer gives the first)
    return 3.0


def test_top_level_function_of_a_module_is_found_by_module_and_file() -> None:
    ref = function_ref(top_level)
    here = Path(__file__).resolve()
    assert ref == FunctionRef(str(here), "top_level", __name__, str(here.parents[__name__.count(".")]))
    # the root makes the module importable: tests.unit.test_function_ref from the repository
    assert (Path(ref.root) / Path(*__name__.split("."))).with_suffix(".py") == here


def test_static_method_by_qualified_name() -> None:
    assert function_ref(Trainer.fit).qualname == "Trainer.fit"


def test_lambda_is_refused_saying_what_to_do() -> None:
    with pytest.raises(FunctionRefError, match=r"cannot use a lambda.*define it with 'def' at the top level"):
        function_ref(lambda params: 1.0)


def test_nested_function_is_refused_naming_its_outer_function() -> None:
    def inner(params: dict) -> float:
        return 1.0

    with pytest.raises(FunctionRefError, match=r"inner\(\), defined inside .*test_nested_function.*move it to the top level"):
        function_ref(inner)


def test_function_without_a_source_file_is_refused() -> None:
    namespace: dict = {"__name__": "made_by_exec"}
    exec("def train(params):\n    return 1.0\n", namespace)
    with pytest.raises(FunctionRefError, match=r"no source file .*put it in a .py file"):
        function_ref(namespace["train"])


def as_main(script: Path, *, has_file: bool = True, spec_name: str | None = None) -> types.ModuleType:
    """A ``__main__`` module that ran ``script`` (which defines ``train``): a script run by
    path, with ``spec_name`` one run with ``python -m``, without a file an interactive one."""
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("def train(params):\n    return 1.0\n")
    namespace: dict = {"__name__": "__main__"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    main = types.ModuleType("__main__")
    if has_file:
        main.__file__ = str(script)
    if spec_name is not None:
        main.__spec__ = importlib.machinery.ModuleSpec(spec_name, None)
    main.train = namespace["train"]  # type: ignore[attr-defined]
    return main


def test_interactive_main_is_refused_even_with_a_cell_file(tmp_path: Path) -> None:
    # A notebook cell's code names a file, but __main__ (the kernel) has none: no trial can import it.
    main = as_main(tmp_path / "cell.py", has_file=False)
    with pytest.raises(FunctionRefError, match="no source file"):
        function_ref(main.train, main_module=main)


def test_script_main_is_found_by_file_with_its_folder_as_root(tmp_path: Path) -> None:
    main = as_main(tmp_path / "train.py")
    assert function_ref(main.train, main_module=main) == FunctionRef(str((tmp_path / "train.py").resolve()), "train",
                                                                    None, str(tmp_path.resolve()))


def test_main_run_with_dash_m_is_found_by_its_module_name(tmp_path: Path) -> None:
    # `python -m pkg.train`: the trial imports pkg.train (its relative imports need the package).
    main = as_main(tmp_path / "pkg" / "train.py", spec_name="pkg.train")
    assert function_ref(main.train, main_module=main) == FunctionRef(
        str((tmp_path / "pkg" / "train.py").resolve()), "train", "pkg.train", str(tmp_path.resolve()))


@pytest.mark.parametrize("thing, kind", [(len, "builtin_function_or_method"),
                                         (functools.partial(top_level), "partial"),
                                         (Trainer(), "Trainer")])
def test_what_is_not_a_plain_function_is_refused(thing: object, kind: str) -> None:
    with pytest.raises(FunctionRefError, match=f"needs a plain Python function, got {kind}"):
        function_ref(thing)  # type: ignore[arg-type]


def test_a_name_that_no_longer_gives_the_function_is_refused() -> None:
    with pytest.raises(FunctionRefError, match=r"the name replaced in .* does not give this function"):
        function_ref(_original_replaced)


def test_decorated_function_with_wraps_is_the_one_its_name_gives() -> None:
    assert function_ref(wrapped).qualname == "wrapped"


def _decorate(fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def wrapper(params):  # type: ignore[no-untyped-def]
        return fn(params)
    return wrapper


@_decorate
def wrapped(params: dict) -> float:
    return 1.0


def test_function_decorated_in_another_file_is_found_in_its_own_file(importable: Path) -> None:
    tmp_path = importable
    # functools.wraps gives the wrapper the function's name and module but not its code: the
    # code's file is the decorator's, which does not define the name the trial looks up.
    (tmp_path / "deco_h38.py").write_text(textwrap.dedent("""
        import functools
        def logged(fn):
            @functools.wraps(fn)
            def wrapper(params):
                return fn(params)
            return wrapper
    """))
    (tmp_path / "train_h38.py").write_text(textwrap.dedent("""
        from deco_h38 import logged
        @logged
        def train(params):
            return params["x"] + 1
    """))
    sys.path.insert(0, str(tmp_path))
    import train_h38  # type: ignore[import-not-found]

    ref = function_ref(train_h38.train)
    assert ref == FunctionRef(str((tmp_path / "train_h38.py").resolve()), "train", "train_h38", str(tmp_path.resolve()))
    assert function_trial.load(ref.file, ref.qualname, ref.root, ref.module)({"x": 1}) == 2


# ----- the trial side (function_trial.py) -----

def test_trial_imports_the_script_not_as_main_so_its_guard_does_not_run(importable: Path) -> None:
    tmp_path = importable
    marker = tmp_path / "guard-ran"
    script = tmp_path / "my_script_h35.py"
    script.write_text(textwrap.dedent(f"""
        def train(params):
            return params["x"] * 2
        if __name__ == "__main__":
            open({str(marker)!r}, "w").close()
    """))
    fn = function_trial.load(str(script), "train", str(tmp_path), None)
    assert fn({"x": 4}) == 8
    assert fn.__module__ == "my_script_h35" and sys.modules["my_script_h35"].__name__ != "__main__"
    assert not marker.exists()


def test_trial_names_a_function_that_is_gone(importable: Path) -> None:
    script = importable / "gone_h35.py"
    script.write_text("def other(params):\n    return 1\n")
    with pytest.raises(function_trial.LoadError, match=r"train is not defined in .*gone_h35.py"):
        function_trial.load(str(script), "train", str(importable), None)


def test_trial_says_why_the_import_failed(importable: Path) -> None:
    script = importable / "broken_h35.py"
    script.write_text("import no_such_module_h35\n")
    with pytest.raises(function_trial.LoadError, match=r"importing .*broken_h35.py failed: "
                                                       r"ModuleNotFoundError: No module named 'no_such_module_h35'"):
        function_trial.load(str(script), "train", str(importable), None)
    assert "broken_h35" not in sys.modules  # a half-imported module is not left behind


@pytest.mark.parametrize("exc, line", [
    (ValueError("bad lr"), "ValueError: bad lr"),
    (ValueError("first\nlast"), "ValueError: last"),
    (KeyError("lr"), "KeyError: 'lr'"),
    (RuntimeError(), "RuntimeError"),
])
def test_last_line_of_an_exception_keeps_its_type(exc: BaseException, line: str) -> None:
    assert function_trial.last_line(exc) == line


def metric_with_a_set(params: dict) -> dict:
    return {"default": 0.5, "classes": {1, 2}}


def metric_with_arrays(params: dict) -> dict:
    import numpy as np

    return {"default": np.float32(0.5), "confusion": np.array([[3, 1], [0, 4]])}


def failed_trial(fn: Callable[[dict], object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What the trial that calls ``fn`` (nothing reported yet) wrote to $AUTOTUNE_FAILURE_FILE; it must fail."""
    failure = tmp_path / "failure.txt"
    monkeypatch.setenv("AUTOTUNE_FAILURE_FILE", str(failure))
    monkeypatch.setitem(function_trial.autotune._state, "final", False)
    assert function_trial.run(fn, fn.__name__) == function_trial.EXIT_FAILED
    return failure.read_text()


def test_a_returned_dict_that_is_not_json_fails_the_trial_saying_so(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Found only when the report was sent (json's TypeError, outside the launcher's checks):
    # the trial ended "exited with code 1" with no word of why.
    assert failed_trial(metric_with_a_set, tmp_path, monkeypatch).startswith(
        "metric_with_a_set() returned {'default': 0.5, 'classes': {1, 2}}, which is not a metric: a metric dict must "
        "be JSON (numbers, strings, lists, string keys): Object of type set is not JSON serializable")


def test_numpy_arrays_in_a_metric_dict_are_reported_as_lists() -> None:
    assert function_trial.autotune._check_metric(metric_with_arrays({})) == {"default": 0.5, "confusion": [[3, 1], [0, 4]]}


def test_a_file_that_exits_at_import_fails_the_import_check(tmp_path: Path) -> None:
    # Exit code 0: the check passed, and every trial then ended without calling the function.
    script = tmp_path / "exits_h38.py"
    script.write_text("import sys\ndef train(params):\n    return 1.0\nsys.exit(0)\n")
    ref = FunctionRef(str(script), "train", None, str(tmp_path))
    with pytest.raises(FunctionRefError, match=r"importing .*exits_h38.py called sys.exit\(0\), so no trial can call "
                                               r"train\(\): put that code under 'if __name__ == \"__main__\":'"):
        check_import(ref)


def exits_without_result(params: dict) -> float:
    sys.exit(0)


def test_a_function_that_exits_without_a_result_fails_saying_so(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert failed_trial(exits_without_result, tmp_path, monkeypatch).startswith(
        "exits_without_result() called sys.exit(0) and reported no final result")


def test_a_package_module_whose_own_import_fails_says_what_it_missed(importable: Path) -> None:
    tmp_path = importable
    # Importing pkg.train failed inside it; the trial then imported the file alone, whose
    # relative import failed in turn, and that error was the one shown.
    pkg = tmp_path / "pkg_h38"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "train.py").write_text("from .helper import X\nimport no_such_dep_h38\ndef train(params):\n    return X\n")
    with pytest.raises(function_trial.LoadError, match=r"importing .*train.py failed: ModuleNotFoundError: "
                                                       r"No module named 'no_such_dep_h38'"):
        function_trial.load(str(pkg / "train.py"), "train", str(tmp_path), "pkg_h38.train")


def test_the_file_sees_the_arguments_the_callers_script_had(tmp_path: Path) -> None:
    # A top-level argparse (outside the __main__ guard) sets globals the function reads: with
    # no arguments in the trial, it trained on the defaults, not what the caller was given.
    seen = tmp_path / "argv.json"
    script = tmp_path / "args_h38.py"
    script.write_text(textwrap.dedent(f"""
        import argparse, json, sys
        parser = argparse.ArgumentParser()
        parser.add_argument("--data", required=True)
        parser.add_argument("rest", nargs="*")
        ARGS = parser.parse_args()
        json.dump(sys.argv, open({str(seen)!r}, "w"))
        def train(params):
            return 1.0
    """))
    ref = FunctionRef(str(script), "train", None, str(tmp_path))
    check_import(ref, ["--data", "digits", "--", "-x"])  # a trial's import, in a process like a trial's
    assert json.loads(seen.read_text()) == [str(script), "--data", "digits", "--", "-x"]


def test_a_script_whose_name_is_no_identifier_is_importable_by_its_module_name(importable: Path) -> None:
    # A multiprocessing spawn child (a DataLoader's workers on macOS) unpickles the function's
    # helpers by module name; under a made-up name it failed and the pool restarted it forever.
    script = importable / "my-train-h38.py"
    script.write_text("def train(params):\n    return 1.0\n")
    fn = function_trial.load(str(script), "train", str(importable), None)
    assert fn.__module__ == "my-train-h38"
    del sys.modules[fn.__module__]  # as in a new process, whose sys.path has the script's folder
    assert importlib.import_module(fn.__module__).train({}) == 1.0
