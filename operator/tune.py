"""`autotune.tune(function, search_space, ...)`: an experiment run from Python.

For users of NNI's Python Experiment API, Katib's ``tune()`` and Optuna's ``optimize``:

    def train(params):                  # at the top level of its file
        ...                             # may call autotune.report_intermediate_result(acc)
        return acc                      # a number or a dict, as report_final_result takes

    if __name__ == "__main__":
        result = autotune.tune(train, {"lr": {"_type": "loguniform", "_value": [1e-4, 0.1]}},
                               tuner="TPE", max_trials=20, concurrency=2)

It is `autotune run` with the manifest built in memory (tune_spec.py) instead of read from
a file: the same validator (a bad argument is the same one-line error, naming the keyword),
the same local-mode run (progress line, output folder with status.json and trials.csv,
the embedded tuner server, Ctrl-C and crash safety; calling it again with the same
arguments resumes the run in the same folder), and each trial is a process running
function_trial.py. The result is read from the files the run wrote (tune_result.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

import yaml

from autotune_operator import cli
from autotune_operator.function_ref import FunctionRef, FunctionRefError, function_ref
from autotune_operator.spec import SpecError, validate_manifest
from autotune_operator.tune_result import TuneResult, read_result
from autotune_operator.tune_spec import TuneArgumentError, TuneOptions, build_manifest, explain, trial_command

DEFAULT_OUTPUT = "autotune-runs"  # `autotune run`'s --output default
MANIFEST_FILE = "tune.yaml"  # the manifest tune() ran, kept in the output folder
IMPORT_CHECK_SECONDS = 600.0


class TuneError(RuntimeError):
    """The experiment could not run (its output folder is in use, or holds a different
    experiment, or the tuner server failed); the message is `autotune run`'s."""


def tune(
    function: Callable[..., Any],
    search_space: Mapping[str, Any] | str | os.PathLike[str],
    *,
    tuner: str | None = None,
    class_args: Mapping[str, Any] | None = None,
    optimize_mode: str | None = None,
    assessor: str | None = None,
    assessor_args: Mapping[str, Any] | None = None,
    advisor: str | None = None,
    advisor_args: Mapping[str, Any] | None = None,
    max_trials: int | None = None,
    concurrency: int = 1,
    max_exec_seconds: int | None = None,
    max_trial_seconds: int | None = None,
    seed: int = 0,
    objective_goal: float | None = None,
    output: str | os.PathLike[str] = DEFAULT_OUTPUT,
    name: str | None = None,
    quiet: bool = False,
    devices: Sequence[str | int] | None = None,
    env: Mapping[str, str] | None = None,
    extra_spec: Mapping[str, Any] | None = None,
) -> TuneResult:
    """Run the experiment; return its result once it ends.

    ``search_space``: NNI's format, as a dict, JSON text or a JSON file's path (a Path, or a str
    ending in .json). ``tuner`` (default TPE) with ``class_args``, or ``advisor`` with
    ``advisor_args``; ``optimize_mode`` "maximize" (default) or "minimize"; ``assessor`` with
    ``assessor_args`` stops bad trials early (the function's report_intermediate_result then
    returns True, or its process is killed).
    ``max_trials``, ``concurrency``, ``max_exec_seconds``, ``max_trial_seconds``, ``seed`` and
    ``objective_goal`` are spec.maxTrialNum, trialConcurrency, maxExecSeconds,
    maxTrialSeconds, seed and objectiveGoal; any other spec field goes in ``extra_spec``
    (e.g. ``{"maxFailedTrialNum": 3}``). Results go to ``output/name`` (name: the function's,
    'train_mlp' -> 'train-mlp'). ``quiet``: no progress line and no summary. ``devices``: one
    trial per device (CUDA_VISIBLE_DEVICES etc.). ``env``: variables for every trial, kept in
    the manifest (tune.yaml, experiment.json) as the script's arguments are: the trials inherit
    the caller's environment, so export a secret instead.

    Raises :class:`~autotune_operator.tune_spec.TuneArgumentError` (a ValueError) for
    invalid arguments, :class:`~autotune_operator.function_ref.FunctionRefError` for a
    function a trial cannot import, :class:`TuneError` when the run could not proceed, and
    KeyboardInterrupt after stopping every trial on Ctrl-C. A run that ended ERROR (e.g.
    spec.maxFailedTrialNum reached) is returned, with ``phase`` "ERROR" and its ``message``.
    """
    if os.environ.get("AUTOTUNE_TRIAL_ID") or os.environ.get("AUTOTUNE_IMPORT_CHECK"):
        raise RuntimeError("autotune.tune() was called inside a trial process; put the tune() call under "
                           "'if __name__ == \"__main__\":'")
    if threading.current_thread() is not threading.main_thread():
        # The run installs SIGTERM/SIGHUP handlers (to stop every trial), which only the main thread can.
        raise TuneError("autotune.tune() must be called from the main thread")
    ref = function_ref(function)
    search_space = read_search_space(search_space)
    options = TuneOptions(
        tuner=tuner, class_args=class_args, optimize_mode=optimize_mode, assessor=assessor, assessor_args=assessor_args,
        advisor=advisor, advisor_args=advisor_args, max_trials=max_trials, concurrency=concurrency,
        max_exec_seconds=max_exec_seconds, max_trial_seconds=max_trial_seconds, seed=seed, objective_goal=objective_goal,
        name=name, extra_spec=extra_spec, env=env)
    argv = script_argv(function, sys.argv)
    manifest = build_manifest(ref, search_space, options, python=interpreter(), workdir=os.getcwd(), argv=argv)
    try:
        exp = validate_manifest(manifest)
    except SpecError as e:
        raise TuneArgumentError(explain(e.problems)) from None
    device_list = devices_arg(devices)
    check_import(ref, argv)
    out_root = Path(output).resolve()
    with tempfile.TemporaryDirectory(prefix="autotune-tune-") as tmp:
        path = Path(tmp) / MANIFEST_FILE
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        args = argparse.Namespace(experiment=str(path), output=str(out_root), workdir=None, server=None, ui=False,
                                  quiet=quiet, verbose=False,
                                  devices=device_list)
        code, said = _run(args, quiet)
    out = out_root / exp.name
    if code == cli.EXIT_INVALID:
        raise TuneError(_in_python_terms(said or f"the experiment could not start in {out}"))
    try:  # how to go on from a shell: `autotune run <out>/tune.yaml --output <output>`
        (out / MANIFEST_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    except OSError:
        pass
    if code == cli.EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    try:
        result = read_result(out)
    except (OSError, ValueError) as e:
        raise TuneError(said or f"no results in {out}: {e}") from None
    if code != cli.EXIT_OK and result.phase != "ERROR":
        raise TuneError(said or f"the run in {out} failed (exit code {code})")
    return result


def script_argv(function: Callable[..., Any], argv: Sequence[str]) -> list[str]:
    """The arguments the function's file is imported with in a trial: the caller's, when the
    function is the script's own (its top-level argparse then sets the same globals). Not for
    a function of an imported module: the caller's command line is not that module's, and in
    a notebook it names the kernel's connection file, new with each kernel, so a run could
    not be resumed after a restart (it is part of the trials' command)."""
    return list(argv[1:]) if getattr(function, "__module__", None) == "__main__" else []


def devices_arg(devices: Sequence[str | int] | None) -> str | None:
    """``devices`` as `autotune run --devices` takes it ("0,1"). A str is taken as that form
    already (joining its characters split "01" into two devices); anything but a list of ids
    is refused here, not as a TypeError from inside the run."""
    if devices is None or isinstance(devices, str):
        return devices or None
    ids = list(devices) if isinstance(devices, Sequence) else None
    if ids is None or any(isinstance(d, bool) or not isinstance(d, (str, int)) or "," in str(d) or not str(d).strip()
                          for d in ids):
        raise TuneArgumentError([f"devices: give the device ids, one trial per device, like [0, 1] or '0,1'; "
                                 f"got {devices!r}"])
    return ",".join(str(d).strip() for d in ids) or None


def read_search_space(value: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any] | str:
    """The search space as a dict or JSON text. A Path, or a str that names a file and is not
    JSON text (an object starts with '{'), is NNI's search_space.json: NNI's own
    search_space_file is a str, and read as JSON text it was "not valid JSON" at column 1."""
    if isinstance(value, str) and (value.lstrip().startswith("{") or not value.strip().endswith(".json")):
        return value
    if not isinstance(value, (str, os.PathLike)):
        return value
    try:
        return Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TuneArgumentError([f"search_space: cannot read {os.fspath(value)}: {e}"]) from None


def check_import(ref: FunctionRef, argv: Sequence[str] = (), timeout: float = IMPORT_CHECK_SECONDS) -> None:
    """Import the function once in a process like a trial's before starting any trial: a
    script whose tune() call is not under the __main__ guard, a syntax error or a missing
    module would otherwise fail every trial, one after another."""
    with tempfile.TemporaryDirectory(prefix="autotune-check-") as tmp:
        failure = Path(tmp) / "failure.txt"
        env = {**os.environ, "AUTOTUNE_IMPORT_CHECK": "1", "AUTOTUNE_FAILURE_FILE": str(failure)}
        for k in ("AUTOTUNE_TRIAL_ID", "AUTOTUNE_PARAMETERS"):
            env.pop(k, None)
        cmd = trial_command(ref, interpreter(), argv, check=True)
        try:
            done = subprocess.run(cmd, cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FunctionRefError(f"importing {ref.file} took more than {timeout:.0f} s; a trial imports it before "
                                   f"calling {ref.qualname}(): move slow work into the function") from None
        if done.returncode != 0:
            why = failure.read_text(encoding="utf-8").strip() if failure.exists() else ""
            tail = done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else []
            raise FunctionRefError(why or f"importing {ref.file} failed: "
                                   f"{tail[0] if tail else f'exit code {done.returncode}'}")


def interpreter(executable: str | None = None) -> str:
    """The calling Python (``sys.executable``) by one name for the trials' command. `python3
    train.py` and `python train.py` in one venv run the same interpreter, but as two paths
    they changed the experiment's trainingConfig, so a run could not be resumed from the other
    one. Not the symlink's target: that is the base Python, outside the venv."""
    path = Path(executable or sys.executable)
    for name in ("python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        try:
            candidate = path.with_name(name)
            if os.path.samefile(candidate, path):
                return str(candidate)
        except (OSError, ValueError):  # no such name beside it (ValueError: no path at all)
            continue
    return str(path)


class _Tee(io.TextIOBase):
    """Passes writes to ``stream`` and keeps the last line `autotune run` addressed to the
    user ("autotune: ..."): its exit code alone does not say why it could not run."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last: str | None = None

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("autotune: ") and not line.startswith("autotune: warning:"):
                self.last = line[len("autotune: "):]
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def _run(args: argparse.Namespace, quiet: bool) -> tuple[int, str | None]:
    tee = _Tee(sys.stderr)
    summary = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    with contextlib.redirect_stderr(tee), summary:  # type: ignore[type-var]
        code = cli.cmd_run(args)
    return code, tee.last


def _in_python_terms(message: str) -> str:
    """`autotune run`'s advice, for the keyword arguments that do the same."""
    message = message.replace("use another --output", "use another output= or name=").replace("--output", "output=")
    if "spec.trainingConfig changed" in message:  # the trials' command, which tune() writes
        message += (" (tune()'s trainingConfig runs the function's file, in the working directory, with the Python "
                    "that called it, its arguments and env=: one of them differs)")
    return message
