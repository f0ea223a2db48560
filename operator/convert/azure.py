"""An Azure ML sweep job (CLI v2 YAML, ``type: sweep``) -> an AutoTuneExperiment.

Azure runs ``trial.command`` in ``trial.code`` on a compute cluster, in an Azure ML
environment, once per sampled configuration, with ``${{search_space.X}}``,
``${{inputs.X}}`` and ``${{outputs.X}}`` filled in; the script logs its metrics with
MLflow, which AutoTune reads as they are (``spec.primaryMetric``). So the trial becomes
the first container's command in its ``workingDir`` (README "Local mode"), the search
space NNI's format (azure_space.py), the limits AutoTune's.

``convert_azure(doc, code_base=...)`` is pure: ``code_base`` says how the output file's
folder reaches the YAML's folder, against which Azure reads ``trial.code`` and local
input paths.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any, Mapping

from autotune_operator.convert import azure_space
from autotune_operator.convert.common import (PARAM_NAME, Conversion, ConvertError, integer, k8s_name, manifest,
                                              mapping, valid_name)

# ${{search_space.lr}}, ${{ inputs.data }}: Azure's expressions in trial.command.
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
REFERENCE = re.compile(r"^(search_space|inputs|outputs)\.([A-Za-z0-9_.\-]+)$")
SHELL = set("$`|&;<>()*?[]{}~!#\n\\")
# A path Azure reads from the cloud (or a registered asset), which a local trial cannot.
REMOTE = re.compile(r"^(azureml:|https?://|wasbs?://|abfss?://|adl://|gs://|s3://)", re.IGNORECASE)
OUTPUT_DIR = "outputs/$(AUTOTUNE_TRIAL_ID)"  # each trial's own folder, as Azure gives each its own
TRIAL_FIELDS = {"command", "code", "environment", "environment_variables", "resources", "distribution"}
DROPPED = {"compute": "AutoTune runs trials on this machine (autotune run) or on the Kubernetes cluster",
           "description": "no AutoTune equivalent", "tags": "no AutoTune equivalent",
           "identity": "data access is the trial's own", "services": "no AutoTune equivalent",
           "queue_settings": "no AutoTune equivalent", "resources": "set resources in the trial's pod template",
           "properties": "no AutoTune equivalent"}
KNOWN = {"$schema", "type", "name", "display_name", "experiment_name", "sampling_algorithm", "search_space",
         "objective", "early_termination", "limits", "trial", "inputs", "outputs", *DROPPED}


def is_azure(doc: Mapping[str, Any]) -> bool:
    """``$schema`` naming Azure's sweepJob schema, or ``type: sweep`` with a search space or a trial."""
    schema = doc.get("$schema")
    if isinstance(schema, str) and "sweepjob" in schema.lower():
        return True
    return doc.get("type") == "sweep" and ("search_space" in doc or "trial" in doc)


def _objective(doc: dict[str, Any]) -> tuple[str, str]:
    obj = mapping(doc.get("objective"), "objective", required=True)
    goal, metric = obj.get("goal"), obj.get("primary_metric")
    if not isinstance(goal, str) or goal.lower() not in ("maximize", "minimize"):
        raise ConvertError("objective.goal", f"must be maximize or minimize, got {goal!r}")
    if not isinstance(metric, str) or not metric.strip():
        raise ConvertError("objective.primary_metric", "is required: the metric each trial logs with "
                           "mlflow.log_metric()")
    return goal.lower(), metric


def _limits(doc: dict[str, Any], spec: dict[str, Any], notes: list[str]) -> None:
    lim = mapping(doc.get("limits"), "limits")
    extra = sorted(set(lim) - {"max_total_trials", "max_concurrent_trials", "timeout", "trial_timeout"}, key=str)
    if extra:
        raise ConvertError(f"limits.{extra[0]}", "is not a sweep limit (max_total_trials, max_concurrent_trials, "
                           "timeout, trial_timeout)")

    def positive(key: str) -> int | None:
        if lim.get(key) is None:
            return None
        v = integer(lim[key], f"limits.{key}")
        if v < 1:
            raise ConvertError(f"limits.{key}", f"must be >= 1, got {v}")
        return v

    total = positive("max_total_trials")
    if total is None:
        total = 1000
        notes.append("limits.max_total_trials: not given; Azure's default 1000 -> spec.maxTrialNum 1000")
    spec["maxTrialNum"] = total
    concurrent = positive("max_concurrent_trials")
    if concurrent is None:
        concurrent = total
        notes.append(f"limits.max_concurrent_trials: not given; Azure starts up to max_total_trials at once (as its "
                     f"compute cluster allows): spec.trialConcurrency {total}; lower it for a run on one machine")
    spec["trialConcurrency"] = concurrent
    if (timeout := positive("timeout")) is not None:
        spec["maxExecSeconds"] = timeout
    if (trial_timeout := positive("trial_timeout")) is not None:
        spec["maxTrialSeconds"] = trial_timeout


def _name(doc: dict[str, Any], default_name: str, notes: list[str]) -> str:
    for key in ("name", "display_name", "experiment_name"):
        raw = doc.get(key)
        if isinstance(raw, str) and raw.strip():
            name = k8s_name(raw)
            if name != raw or not valid_name(raw):
                notes.append(f"{key} {raw!r}: metadata.name must be a lowercase RFC 1123 name; '{name}'")
            return name
    name = k8s_name(default_name)
    notes.append(f"name: not given (nor display_name, experiment_name); metadata.name '{name}' from the file name")
    return name


def _input_text(name: str, raw: Any, code: str, notes: list[str]) -> str:
    """What ``${{inputs.<name>}}`` stands for in a local trial's command."""
    where = f"inputs.{name}"
    if isinstance(raw, bool):
        notes.append(f"{where}: the boolean {raw} is written into the command as {raw!s}")
        return str(raw)
    if isinstance(raw, (int, float, str)):
        return str(raw)
    spec = mapping(raw, where)
    if "value" in spec and isinstance(spec["value"], (int, float, str)):  # a literal input given as {type, value}
        return str(spec["value"])
    path = spec.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConvertError(f"{where}.path", "is required: the command uses this input, and a local trial needs a "
                           "literal value or a local path")
    if REMOTE.match(path.strip()):
        raise ConvertError(f"{where}.path", f"{path!r} is a cloud URI or a registered data asset, which "
                           f"`autotune convert` cannot fetch: download it and give its local path "
                           f"({where}.path: ./data/...), then convert again")
    path = os.path.expanduser(path.strip())
    if os.path.isabs(path):
        return path
    # Azure reads a local path against the YAML's folder; the trial runs in trial.code.
    return os.path.relpath(os.path.normpath(path), os.path.normpath(code))


def _command(doc: dict[str, Any], trial: dict[str, Any], space: Mapping[str, Any], code: str,
             notes: list[str]) -> list[str]:
    raw = trial.get("command")
    if not isinstance(raw, str) or not raw.strip():
        raise ConvertError("trial.command", "is required (the command that runs one trial)")
    inputs = mapping(doc.get("inputs"), "inputs")
    outputs = mapping(doc.get("outputs"), "outputs")
    made: list[str] = []

    def literal(m: re.Match[str]) -> str:
        ref = REFERENCE.match(m.group(1))
        if ref is None:
            raise ConvertError("trial.command", f"{m.group(0)} is not a search_space, inputs or outputs reference "
                               f"that AutoTune can fill in")
        kind, name = ref.groups()
        if kind == "search_space":
            return m.group(0)  # filled in per trial, below
        if kind == "inputs":
            if name in space:  # a swept input (the Python SDK's command_job(lr=Uniform(...))): the sample wins
                return "${{search_space." + name + "}}"
            if name not in inputs:
                raise ConvertError("trial.command", f"{m.group(0)}: inputs has no '{name}'")
            return _input_text(name, inputs[name], code, notes)
        if name not in outputs:
            raise ConvertError("trial.command", f"{m.group(0)}: outputs has no '{name}'")
        folder = f"{OUTPUT_DIR}/{name}"
        if folder not in made:
            made.append(folder)
        return folder

    text = EXPRESSION.sub(literal, raw.strip())
    params: list[str] = []

    def parameter(m: re.Match[str]) -> str:
        name = REFERENCE.match(m.group(1)).group(2)  # type: ignore[union-attr]  # literal() checked it
        if name not in space:
            raise ConvertError("trial.command", f"{m.group(0)}: search_space has no '{name}'")
        if not PARAM_NAME.match(name):
            raise ConvertError(f"search_space.{name}", "must be a name of letters, digits, '_' and '-' to be used in "
                               "the command (AutoTune's ${parameters.NAME})")
        params.append(name)
        return f"\0{len(params) - 1}\0"  # a token shlex leaves alone

    marked = EXPRESSION.sub(parameter, text)

    def filled(s: str) -> str:
        return re.sub(r"\0(\d+)\0", lambda m: "${parameters." + params[int(m.group(1))] + "}", s)

    for name in sorted(set(space) - set(params)):
        notes.append(f"search_space.{name}: not used in trial.command; the trial reads it from $AZUREML_SWEEP_{name} "
                     f"or $AUTOTUNE_PARAMETERS")
    if made:  # Azure creates each output folder before the command runs
        marked = f"mkdir -p {' '.join(made)} && {marked}"
        notes.append(f"outputs: each trial writes ${{{{outputs.NAME}}}} to its own folder {OUTPUT_DIR}/NAME under "
                     f"trial.code (made before the command runs), where Azure uploaded it to the workspace")
    if SHELL & set(marked):  # Azure runs the command in a shell
        return ["bash", "-c", filled(marked)]
    return [filled(t) for t in shlex.split(marked)]


def _environment(trial: dict[str, Any], image: str | None, notes: list[str]) -> str | None:
    env = trial.get("environment")
    if image:
        return image
    if isinstance(env, Mapping) and isinstance(env.get("image"), str):
        if env.get("conda_file"):
            notes.append(f"trial.environment.conda_file: install its packages into {env['image']} (or on this "
                         f"machine for a local run); the image is used as it is")
        return env["image"]
    what = f"{env!r} is an Azure ML environment" if isinstance(env, str) else "gives no image"
    notes.append(f"trial.environment: {what}; spec.trainingConfig.tasks[0].template.spec.containers[0].image: none: "
                 f"local mode needs none (the command runs on this machine, which needs the environment's packages), "
                 f"a cluster does: pass --image IMAGE or add it")
    return None


def _container(doc: dict[str, Any], space: Mapping[str, Any], code_base: str, image: str | None,
               notes: list[str]) -> dict[str, Any]:
    if isinstance(doc.get("trial"), str):  # a pipeline's sweep node may name a component file
        raise ConvertError("trial", f"{doc['trial']!r} refers to a component; write its command, code and "
                           f"environment into trial")
    trial = mapping(doc.get("trial"), "trial", required=True)
    code = trial.get("code") or "."
    if not isinstance(code, str):
        raise ConvertError("trial.code", f"must be a path (a string), got {type(code).__name__}")
    if REMOTE.match(code):
        raise ConvertError("trial.code", f"{code!r} is not a local folder; give the folder that holds the trial's code")
    code = os.path.expanduser(code)
    c: dict[str, Any] = {"name": "trial"}
    img = _environment(trial, image, notes)
    if img:
        c["image"] = img
    c["command"] = _command(doc, trial, space, code, notes)
    c["workingDir"] = code if os.path.isabs(code) else os.path.normpath(os.path.join(code_base, code))
    env = [{"name": f"AZUREML_SWEEP_{n}", "value": "${parameters." + n + "}"} for n in space if PARAM_NAME.match(n)]
    user_env = mapping(trial.get("environment_variables"), "trial.environment_variables")
    env += [{"name": str(k), "value": str(v)} for k, v in user_env.items()]
    c["env"] = env
    res = mapping(trial.get("resources"), "trial.resources")
    count = integer(res.get("instance_count", 1), "trial.resources.instance_count")
    if count != 1 or trial.get("distribution") is not None:
        notes.append(f"trial.distribution / resources.instance_count {count}: AutoTune runs each trial as one process "
                     f"here (on a cluster, make the trial a PyTorchJob or TFJob with one task per role); dropped")
    for k in sorted(set(res) - {"instance_count"}, key=str):
        notes.append(f"trial.resources.{k}: set resources in the trial's pod template; dropped")
    for k in sorted(set(trial) - TRIAL_FIELDS, key=str):
        notes.append(f"trial.{k}: no AutoTune equivalent; dropped")
    return c


def convert_azure(doc: Any, *, code_base: str = ".", default_name: str = "experiment",
                  image: str | None = None) -> Conversion:
    doc = mapping(doc, "", required=True)
    if not is_azure(doc):
        raise ConvertError("type", "is not sweep: not an Azure ML sweep job")
    if doc.get("type") not in (None, "sweep"):
        raise ConvertError("type", f"is {doc['type']!r}; `autotune convert` takes Azure ML sweep jobs (type: sweep)")
    notes: list[str] = []
    goal, metric = _objective(doc)
    space = azure_space.search_space(doc.get("search_space"), notes)
    name = _name(doc, default_name, notes)
    spec: dict[str, Any] = {"primaryMetric": metric}
    _limits(doc, spec, notes)
    spec["searchSpace"] = space
    spec["tuner"], seed = azure_space.tuner(doc.get("sampling_algorithm"), space, goal, notes)
    if seed is not None:
        spec["seed"] = seed
    if (assessor := azure_space.assessor(doc.get("early_termination"), goal, notes)) is not None:
        spec["assessor"] = assessor
    container = _container(doc, space, code_base, image, notes)
    spec["trainingConfig"] = {"type": "pytorch", "tasks": [
        {"type": "master", "replicas": 1, "template": {"spec": {"containers": [container]}}}]}
    for k, why in DROPPED.items():
        if doc.get(k) not in (None, "", {}, []):
            notes.append(f"{k}: {why}; dropped")
    for k in sorted(set(doc) - KNOWN, key=str):
        notes.append(f"{k}: not a sweep job field AutoTune knows; dropped")
    return Conversion(manifest(name, spec), notes, "azure")
