"""One trial of `autotune.tune()`: import the function, call it, report what it returned.

    python -P -m autotune_operator.function_trial --file FILE --qualname NAME --root DIR [--module MOD] [-- ARGS...]

It lives in autotune_operator, not in the SDK, because it is only ever run by the
interpreter that called tune(), which has AutoTune installed (tune() needs it), while the
SDK that local mode puts on a trial's PYTHONPATH is the single file sdk/autotune/__init__.py
(it would hide an `autotune.function_trial`). Standard library and that SDK only: it
starts in the time Python and the function's own imports take.

The file is imported under a name other than ``__main__`` (its module name, or its file
name), so the caller's ``if __name__ == "__main__":`` block, which calls tune(), does not run
again here. A tune() call that is not under that guard raises in the trial (the SDK sees
AUTOTUNE_TRIAL_ID) instead of starting experiments recursively.

The function gets the trial's parameters as a dict. Its return value, a number or a dict
(what report_final_result takes), is reported as the final result, unless it already
reported one itself (or a process it started did, with the trial's variables it inherits). Why a trial failed (its exception's last line, a None returned) goes
to the file named by $AUTOTUNE_FAILURE_FILE, which local mode shows as the trial's message.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any, Callable

import autotune

EXIT_FAILED = 1
# The caller's script itself, imported here: never under "__main__" (its guard would run tune()).
SCRIPT_MODULE = "__autotune_function__"


class LoadError(Exception):
    """The function could not be imported; the message says why."""


def last_line(e: BaseException) -> str:
    """'ValueError: bad lr' — what a trial's message shows of an exception."""
    lines = [ln.strip() for ln in "".join(traceback.format_exception_only(type(e), e)).splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    kind = type(e).__name__
    # A message of several lines ends with its own last line: keep the exception's type in front.
    return last if last.startswith(kind) or last.split(":")[0].endswith("." + kind) else f"{kind}: {last}".rstrip(": ")


def _import_file(file: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise LoadError(f"{file} cannot be imported as Python source")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickling (multiprocessing inside the function) finds it by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_module(file: str, module: str | None) -> ModuleType:
    """The function's module: imported by name when it has one that gives this file, else
    the file itself (the caller's script) under a name that is not __main__."""
    if module:
        try:
            m = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
                # Found, and one of its own imports failed: that is the error to show. The
                # file imported alone would hide it behind its relative imports' failure.
                raise
            m = None
        if m is not None and os.path.realpath(getattr(m, "__file__", "") or "") == os.path.realpath(file):
            return m
    stem = os.path.splitext(os.path.basename(file))[0]
    # The script's own name, as `import train` from its folder would give it, unless that
    # name is taken already (a script called json.py or autotune.py). Also a name that is no
    # identifier (my-train.py): importlib finds the file by it all the same, and so does a
    # multiprocessing spawn child unpickling one of its functions, which a made-up name fails.
    name = stem if stem and "." not in stem and stem not in sys.modules else SCRIPT_MODULE
    return _import_file(file, name)


def find(module: ModuleType, qualname: str) -> Callable[..., Any]:
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise LoadError(f"{qualname} is not defined in {module.__file__} (was it renamed?)")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(f"{qualname} in {module.__file__} is not a function but {type(obj).__name__}")
    return obj  # type: ignore[no-any-return]


def load(file: str, qualname: str, root: str, module: str | None) -> Callable[..., Any]:
    if root not in sys.path:
        sys.path.insert(0, root)  # as `python FILE` puts the script's folder first
    try:
        return find(load_module(file, module), qualname)
    except LoadError:
        raise
    except SystemExit as e:
        # Unguarded top-level code (`sys.exit(main())`): with code 0 the import check passed
        # and every trial then ended without calling the function.
        raise LoadError(f"importing {file} called sys.exit({e.code!r}), so no trial can call {qualname}(): put "
                        f"that code under 'if __name__ == \"__main__\":'") from None
    except Exception as e:
        traceback.print_exc()
        raise LoadError(f"importing {file} failed: {last_line(e)}") from None


def _fail(message: str) -> int:
    print(f"autotune: trial failed: {message}", file=sys.stderr, flush=True)
    path = os.environ.get("AUTOTUNE_FAILURE_FILE")
    if path:
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(message + "\n")
        except OSError:  # the log has it too
            pass
    return EXIT_FAILED


def _reported_elsewhere() -> bool:
    """Whether the tuner server holds a final result for this trial that this process did not
    send: the trial's variables reach the processes the function starts, and their SDK reports
    as this trial. (A running trial's value is set by a final report only.)"""
    if not autotune._connected():
        return False
    try:
        return autotune._request("GET", autotune._trial_path(), None).get("value") is not None
    except autotune.ReportError:
        return False


def run(fn: Callable[..., Any], qualname: str) -> int:
    params = autotune.get_next_parameter()
    try:
        value = fn(params)
    except SystemExit as e:
        if autotune._state.get("final"):
            raise  # it reported its final result, then ended the process as it chose to
        return _fail(f"{qualname}() called sys.exit({e.code!r}) and reported no final result: return the metric "
                     f"instead of exiting")
    except Exception as e:
        traceback.print_exc()
        return _fail(f"{qualname}() raised {last_line(e)}")
    if autotune._state.get("final"):
        return 0  # it reported its final result itself: that one counts
    if value is None and _reported_elsewhere():
        return 0  # a process it started (a script run with subprocess, a worker) reported it
    if value is None:
        return _fail(f"{qualname}() returned None and reported no final result: return the metric (a number, or a "
                     f"dict like {{'default': accuracy, 'loss': loss}}) or call autotune.report_final_result()")
    try:
        autotune.report_final_result(value)
    except ValueError as e:
        return _fail(f"{qualname}() returned {value!r:.80}, which is not a metric: {e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autotune_operator.function_trial")
    p.add_argument("--file", required=True)
    p.add_argument("--qualname", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--module")
    p.add_argument("--check", action="store_true", help="only import the function (tune() does this once first)")
    given = sys.argv[1:] if argv is None else argv
    # After the first "--": the arguments the caller's script was run with, as they are (split
    # here, not by argparse, whose handling of a later "--" differs between Python versions).
    cut = given.index("--") if "--" in given else len(given)
    args = p.parse_args(given[:cut])
    # The file sees the command line the caller's script had, `python FILE ARGS...` (an
    # argparse at its top level would otherwise read this launcher's options, or none).
    sys.argv = [args.file, *given[cut + 1:]]
    try:
        fn = load(args.file, args.qualname, args.root, args.module)
    except LoadError as e:
        return _fail(str(e))
    if args.check:
        return 0
    try:
        return run(fn, args.qualname)
    except autotune.ReportError as e:
        return _fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
