"""Where a trial process finds the function `autotune.tune()` was given.

Each trial is its own process (a crash, a leak or a kill stays in it), so it cannot be
handed the function object: it imports the function's file and looks the function up by
its qualified name (operator/function_trial.py). This module checks, in the caller's
process, that such a lookup finds this very function, and says what to do when it cannot:
a lambda, a function defined inside another one, or one defined in an interactive session
(no source file) exists only in the caller's memory.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Callable

HOW = "define it with 'def' at the top level of a .py file"


class FunctionRefError(ValueError):
    """The function cannot be found again by a trial process; the message says what to do."""


@dataclass(frozen=True)
class FunctionRef:
    """What a trial needs to import the function again."""

    file: str  # absolute path of the .py file that defines it
    qualname: str  # e.g. "train" or "Trainer.fit" (a staticmethod)
    module: str | None  # its importable module name ("pkg.train"), None when it is the caller's script
    root: str  # the directory to put first on sys.path (the script's, or the package's parent)

    @property
    def label(self) -> str:
        return f"{self.qualname}() in {self.file}"


def function_ref(fn: Callable[..., Any], main_module: ModuleType | None = None) -> FunctionRef:
    """The reference to ``fn``, or :class:`FunctionRefError` saying why a trial could not find
    it. ``main_module`` is the caller's ``__main__`` (injectable for tests)."""
    if not isinstance(fn, FunctionType):
        kind = type(fn).__name__
        raise FunctionRefError(f"tune() needs a plain Python function, got {kind} {fn!r:.80}: {HOW} "
                               f"and pass it (a trial process imports it by name)")
    name = fn.__qualname__
    if fn.__name__ == "<lambda>":
        raise FunctionRefError(f"tune() cannot use a lambda: a trial process imports the function by name and a "
                               f"lambda has none; {HOW}, e.g. 'def train(params): ...'")
    if "<locals>" in name:
        outer = name.split(".<locals>")[0]
        raise FunctionRefError(f"tune() cannot use {name}(), defined inside {outer}(): a trial process imports the "
                               f"function by name, and a nested one exists only while {outer}() runs; move it to "
                               f"the top level of its file")
    module_name = fn.__module__
    module = sys.modules.get(module_name) if module_name != "__main__" else (main_module or sys.modules.get("__main__"))
    source = _source_file(fn, module)
    if source is None:
        raise FunctionRefError(f"tune() cannot use {name}(): it has no source file (defined in an interactive "
                               f"session, a notebook cell or exec()), so a trial process cannot import it; put it "
                               f"in a .py file, import it from there and pass it")
    if module is None or _lookup(module, name) is not fn:
        raise FunctionRefError(f"tune() cannot use {name}(): the name {name} in {source} does not give this "
                               f"function (it was redefined, or replaced by a decorator without functools.wraps); "
                               f"pass the function that name gives")
    if module_name == "__main__":
        # `python -m pkg.train` runs pkg/train.py as __main__: import it as pkg.train, so
        # that its relative imports work in the trial too. A plain script has no such name.
        spec = getattr(module, "__spec__", None)
        as_module = getattr(spec, "name", None)
        if isinstance(as_module, str) and as_module and as_module != "__main__":
            return FunctionRef(str(source), name, as_module, str(_package_root(source, as_module)))
        return FunctionRef(str(source), name, None, str(source.parent))
    return FunctionRef(str(source), name, module_name, str(_package_root(source, module_name)))


def _source_file(fn: FunctionType, module: ModuleType | None) -> Path | None:
    """The .py file of the module whose name gives ``fn`` (the file that defines it, or that
    applies a decorator to it), if it is a real file."""
    filename = fn.__code__.co_filename
    if module is not None:
        module_file = getattr(module, "__file__", None)
        if module_file is None:
            return None  # __main__ of an interactive session: a cell's file is not its module
        # The file the trial imports to look the name up is the module's. The code's file
        # differs for a function wrapped by a decorator of another file (functools.wraps
        # copies the name and module, not the code): that file does not define the name.
        filename = str(module_file)
    if not filename or filename.startswith("<") or not filename.endswith(".py"):
        return None
    path = Path(filename)
    if not path.is_absolute():
        path = Path(os.getcwd()) / path
    return path.resolve() if path.is_file() else None


def _lookup(module: ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _package_root(source: Path, module_name: str) -> Path:
    """The sys.path entry that makes ``module_name`` importable from ``source``: 'pkg.train'
    in /src/pkg/train.py -> /src; a package's own __init__.py is one level deeper."""
    depth = module_name.count(".") + (1 if source.name == "__init__.py" else 0)
    parents = source.parents
    return parents[depth] if depth < len(parents) else source.parent
