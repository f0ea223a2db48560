"""`autotune.tune()`'s arguments as an AutoTuneExperiment manifest (a plain dict).

Pure: nothing runs and nothing is read here. The manifest is then checked by the same
validator as a file given to `autotune run` (spec.validate_manifest), and
:func:`explain` puts the keyword argument's name in front of each problem line
(``max_trials: spec.maxTrialNum: Input should be greater than or equal to 1 (got 0)``).

Each trial runs ``python -P -m autotune_operator.function_trial FILE QUALNAME ...`` with
the interpreter that called tune(): the one with AutoTune installed, whose packages the
function's own imports (scikit-learn, torch) also come from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from autotune_operator.function_ref import FunctionRef
from autotune_operator.spec import API_GROUP, API_VERSION, KIND, MAX_NAME_CHARS, with_mode
from tuner_server.history import OptimizeMode

LAUNCHER = "autotune_operator.function_trial"
DEFAULT_TUNER = "TPE"


def _spec(field_name: str, default: Any = None) -> Any:
    """A keyword that sets spec.<field_name> as it is (when not None)."""
    return field(default=default, metadata={"spec": field_name})


@dataclass(frozen=True)
class TuneOptions:
    """tune()'s keyword arguments that make the manifest, as one value (tune() documents
    them). The fields marked with _spec are copied to the spec field they name."""

    tuner: str | None = None
    class_args: Mapping[str, Any] | None = None
    optimize_mode: str | None = None
    assessor: str | None = None
    assessor_args: Mapping[str, Any] | None = None
    advisor: str | None = None
    advisor_args: Mapping[str, Any] | None = None
    max_trials: int | None = _spec("maxTrialNum")
    concurrency: int = _spec("trialConcurrency", 1)
    max_exec_seconds: int | None = _spec("maxExecSeconds")
    max_trial_seconds: int | None = _spec("maxTrialSeconds")
    seed: int = _spec("seed", 0)
    objective_goal: float | None = _spec("objectiveGoal")
    name: str | None = None  # metadata.name; default: the function's
    extra_spec: Mapping[str, Any] | None = None  # any other spec field
    env: Mapping[str, str] | None = None  # the trial container's env

    def spec_fields(self) -> dict[str, Any]:
        """The spec fields copied from keywords, those that were given."""
        return {f.metadata["spec"]: getattr(self, f.name) for f in fields(self)
                if "spec" in f.metadata and getattr(self, f.name) is not None}


# spec fields tune() sets from its own keyword arguments: extra_spec may not set them too.
KEYWORD_FIELDS: dict[str, str] = {
    **{f.metadata["spec"]: f.name for f in fields(TuneOptions) if "spec" in f.metadata},
    "searchSpace": "search_space",
    "tuner": "tuner",
    "assessor": "assessor",
    "advisor": "advisor",
    "trainingConfig": "the function",
}
# A problem line's field -> the keyword argument that set it (longest prefix first).
_ARGUMENT_OF: tuple[tuple[str, str], ...] = (
    ("spec.tuner.classArgs", "class_args"),
    ("spec.advisor.classArgs", "advisor_args"),
    ("spec.assessor.classArgs", "assessor_args"),
    ("metadata.name", "name"),
    # The trial container's env is env='s; nothing else in trainingConfig comes from the caller.
    ("spec.trainingConfig.tasks[0].template.spec.containers[0].env", "env"),
    *((f"spec.{f}", a) for f, a in KEYWORD_FIELDS.items() if f != "trainingConfig"),
)

# TuneOptions' dict fields (their annotations are strings: `from __future__ import annotations`).
_MAPPINGS = tuple(f.name for f in fields(TuneOptions) if str(f.type).startswith("Mapping"))
_ARGS_OF = {"tuner": "class_args", "advisor": "advisor_args", "assessor": "assessor_args"}


class TuneArgumentError(ValueError):
    """tune()'s arguments do not make a valid experiment. ``problems``: one line each,
    naming the keyword argument and the manifest field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems) if len(problems) > 1 else problems[0])


def default_name(ref: FunctionRef) -> str:
    """The experiment's name from the function's: 'train_mlp' -> 'train-mlp' (an RFC 1123 name)."""
    text = re.sub(r"[^a-z0-9.-]+", "-", ref.qualname.lower()).strip("-.")
    return (text or "tune")[:MAX_NAME_CHARS].rstrip("-.") or "tune"


def trial_command(ref: FunctionRef, python: str, argv: Sequence[str] = (), *, check: bool = False) -> list[str]:
    """The trial's command line. -P: the trial's working directory must not shadow modules
    (a folder named like one would); the launcher puts the function's own folder first on
    sys.path, as `python script.py` does. ``argv``: the caller's script's arguments (see
    tune.script_argv), which the file sees again when imported, as multiprocessing's spawn
    gives them: a top-level argparse then sets the same globals as in the caller.
    ``check``: only import the function (tune()'s import check)."""
    cmd = [python, "-P", "-m", LAUNCHER, "--file", ref.file, "--qualname", ref.qualname, "--root", ref.root]
    cmd += (["--module", ref.module] if ref.module else []) + (["--check"] if check else [])
    return cmd + (["--", *argv] if argv else [])


def _algorithm(name: str, args: Mapping[str, Any] | None, optimize_mode: str | None,
               multi_objective: bool) -> dict[str, Any]:
    out = dict(args or {})
    # The direction the caller gave; maximize when nothing gives one. Not with spec.objectives
    # (each objective has its own), nor for algorithms that ignore it (a warning otherwise).
    if not multi_objective and "optimize_mode" not in out:
        out = with_mode(name, out, OptimizeMode(optimize_mode or OptimizeMode.MAXIMIZE.value))
    return out


def build_manifest(ref: FunctionRef, search_space: Mapping[str, Any] | str, options: TuneOptions, *,
                   python: str, workdir: str, argv: Sequence[str] = ()) -> dict[str, Any]:
    """The manifest tune() runs. Raises :class:`TuneArgumentError` only for what the
    validator cannot name (an extra_spec key that a keyword argument sets, a non-mapping);
    everything else is left to it."""
    o = options
    not_dicts = [f"{k}: must be a dict, got {type(v).__name__} {v!r:.60}" for k in _MAPPINGS
                 if (v := getattr(o, k)) is not None and not isinstance(v, Mapping)]
    if not_dicts:
        raise TuneArgumentError(not_dicts)
    extra = dict(o.extra_spec or {})
    problems = [f"extra_spec['{k}']: " + (f"spec.{k} is set by tune()'s {a}= argument" if a != "the function" else
                                          f"spec.{k} cannot be given: tune()'s trials run the function")
                for k, a in KEYWORD_FIELDS.items() if k in extra]
    mode, class_args = o.optimize_mode, o.class_args
    if mode is not None and mode not in ("maximize", "minimize"):
        problems.append(f"optimize_mode: must be 'maximize' or 'minimize', got {mode!r}")
    elif mode is not None and class_args and "optimize_mode" in class_args and class_args["optimize_mode"] != mode:
        problems.append(f"optimize_mode: {mode!r} conflicts with class_args['optimize_mode'] "
                        f"{class_args['optimize_mode']!r}; give one")
    if problems:
        raise TuneArgumentError(problems)
    multi = extra.get("objectives") is not None
    if o.advisor is not None:
        algorithms: dict[str, Any] = {"advisor": {"builtinAdvisorName": o.advisor,
                                                  "classArgs": _algorithm(o.advisor, o.advisor_args, mode, multi)}}
        if o.tuner is not None:  # the validator says they cannot go together
            algorithms["tuner"] = {"builtinTunerName": o.tuner, "classArgs": dict(class_args or {})}
    else:
        t = o.tuner or DEFAULT_TUNER
        algorithms = {"tuner": {"builtinTunerName": t, "classArgs": _algorithm(t, class_args, mode, multi)}}
    if o.assessor is not None:
        algorithms["assessor"] = {"builtinAssessorName": o.assessor, "classArgs": dict(o.assessor_args or {})}
    container: dict[str, Any] = {"name": "trial", "command": trial_command(ref, python, argv), "workingDir": workdir}
    if o.env:
        container["env"] = [{"name": k, "value": v} for k, v in o.env.items()]
    spec: dict[str, Any] = {
        "searchSpace": search_space if isinstance(search_space, str) else _json_space(search_space),
        **o.spec_fields(),
        **algorithms,
        "trainingConfig": {"type": "pytorch", "tasks": [
            {"type": "master", "replicas": 1, "template": {"spec": {"containers": [container]}}}]},
        **extra,
    }
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": o.name if o.name is not None else default_name(ref)},
        "spec": spec,
    }


def _json_space(space: Mapping[str, Any]) -> Any:
    """The search space as the manifest's JSON text (what a file holds), or the object
    itself when it cannot be JSON, so that the validator names what is wrong."""
    try:
        return json.dumps(space)
    except (TypeError, ValueError):
        return dict(space) if isinstance(space, Mapping) else space


def explain(problems: Sequence[str]) -> list[str]:
    """Each validator line with the keyword argument that set its field in front."""
    out = []
    for line in problems:
        arg = next((a for prefix, a in _ARGUMENT_OF if line.startswith(prefix) and line[len(prefix):len(prefix) + 1] in ".:[ "),
                   None)
        block = next((b for b in ("tuner", "advisor", "assessor") if line.startswith(f"spec.{b}:")), None)
        if block is not None and "classArgs" in line:  # "spec.tuner: classArgs.optimize_mode must be ..."
            arg = _ARGS_OF[block]
        if arg is None and line.startswith("spec."):
            field = re.split(r"[.:\[ ]", line[len("spec."):], maxsplit=1)[0]
            arg = f"extra_spec['{field}']"
        out.append(f"{arg}: {line}" if arg else line)
    return out
