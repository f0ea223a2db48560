"""An NNI experiment config (v2/v3 YAML; the legacy v1 form too) -> an AutoTuneExperiment.

AutoTune uses NNI's search-space format and NNI's algorithm names and classArgs, so the
search space and the tuner/assessor/advisor carry over as they are. What changes is how
a trial runs: NNI runs ``trialCommand`` in bash in ``trialCodeDirectory``; AutoTune runs
a container's ``command`` in its ``workingDir`` (locally: the first task's first container,
README "Local mode"). Field facts: NNI's "Experiment Config Reference" (v2) and its v1
"ExperimentConfig" page.

``convert_nni(doc, search_space=..., code_base=...)`` is pure: the CLI reads
``searchSpaceFile`` and passes its contents, and says how the output file's folder
reaches the config's folder (``code_base``) so that ``trialCodeDirectory``, which NNI
reads relative to the config file, still names the same folder.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Mapping

from autotune_operator.convert.common import (WORKLOAD_KIND_ANNOTATION, Conversion, ConvertError, duration_seconds,
                                              integer, k8s_name, manifest, mapping)

V2_FIELDS = {"experimentName", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
             "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber", "maxTrialDuration",
             "nniManagerIp", "useAnnotation", "debug", "logLevel", "experimentWorkingDirectory", "tunerGpuIndices",
             "tuner", "assessor", "advisor", "trainingService", "sharedStorage", "experimentType"}
DROPPED = {"nniManagerIp": "AutoTune's trials reach its tuner server on their own",
           "debug": "no debug mode", "logLevel": "use `autotune run -v` or the operator's --log-level",
           "experimentWorkingDirectory": "results go to `autotune run --output` (default autotune-runs/<name>)",
           "tunerGpuIndices": "AutoTune's tuners run on the CPU",
           "sharedStorage": "mount shared storage in the trial's pod template instead"}
# NNI tuners AutoTune does not have, and the model-based tuner that stands in (noted).
SUBSTITUTES = {"smac": "TPE", "dngo": "TPE", "dngotuner": "TPE"}  # NNI registers DNGO as DNGOTuner
SHELL = set("$`|&;<>()*?[]{}~!#\n\\")
TRIAL_CODE_NOTE = ("trial code: NNI's nni.get_next_parameter(), nni.report_intermediate_result() and "
                   "nni.report_final_result() are AutoTune's SDK calls of the same names and arguments: write "
                   "`import autotune as nni` instead of `import nni` (README \"Your training script\")")


ALGORITHM_FIELDS = {"name", "classArgs", "className", "codeDirectory"}
SERVICE_FIELDS = {"platform", "gpuIndices", "useActiveGpu", "maxTrialNumberPerGpu", "operator", "master", "worker", "ps"}
ROLE_FIELDS = {"replicas", "command", "gpuNumber", "cpuNumber", "memorySize", "dockerImage"}


def _fold(key: str) -> str:
    """NNI's own key matching (config utils ``case_insensitive``): 'trial_command' is 'trialCommand'."""
    return key.lower().replace("_", "")


def _canonical(block: Any, known: set[str], where: str) -> Any:
    """``block`` with each key NNI would read as a known v2 field under that field's camelCase
    name; other keys and all values as they are (classArgs and the search space are user data)."""
    if not isinstance(block, Mapping):
        return block
    by_fold = {_fold(k): k for k in known}
    out: dict[Any, Any] = {}
    for k, v in block.items():
        name = by_fold.get(_fold(k), k) if isinstance(k, str) else k
        if name in out:
            raise ConvertError(f"{where}{name}", f"is given twice (as {name!r} and {k!r}); NNI reads keys without "
                               f"regard to case or '_'; keep one")
        out[name] = v
    return out


def canonical_keys(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 config with snake_case (or otherwise cased) keys under NNI's camelCase names, as
    NNI itself accepts them, so ``trial_command`` converts like ``trialCommand``."""
    out = _canonical(doc, V2_FIELDS, "")
    for role in ("tuner", "assessor", "advisor"):
        out[role] = _canonical(out.get(role), ALGORITHM_FIELDS, f"{role}.")
        if out[role] is None:
            del out[role]
    ts = out.get("trainingService")
    if isinstance(ts, Mapping):
        ts = _canonical(ts, SERVICE_FIELDS, "trainingService.")
        for r in ("master", "worker", "ps"):
            if isinstance(ts.get(r), Mapping):
                ts[r] = _canonical(ts[r], ROLE_FIELDS, f"trainingService.{r}.")
        out["trainingService"] = ts
    return out


def is_nni(doc: Mapping[str, Any]) -> bool:
    keys = {_fold(k) for k in ("trialCommand", "trainingServicePlatform", "searchSpacePath", "searchSpaceFile",
                               "trainingService")}
    return any(isinstance(k, str) and _fold(k) in keys for k in doc) or isinstance(doc.get("trial"), Mapping)


def _from_v1(doc: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The v1 form's fields under their v2 names (the notes name the v1 field)."""
    out: dict[str, Any] = {}
    rename = {"experimentName": "experimentName", "trialConcurrency": "trialConcurrency",
              "maxExecDuration": "maxExperimentDuration", "maxTrialNum": "maxTrialNumber",
              "maxTrialDuration": "maxTrialDuration", "searchSpacePath": "searchSpaceFile", "searchSpace": "searchSpace",
              "useAnnotation": "useAnnotation", "nniManagerIp": "nniManagerIp", "logLevel": "logLevel",
              "debug": "debug", "logDir": "experimentWorkingDirectory"}
    for k, v in doc.items():
        if k in rename:
            out[rename[k]] = v
    for k in ("tuner", "assessor", "advisor"):
        if k in doc:
            b = mapping(doc[k], k)
            name_key = {"tuner": "builtinTunerName", "assessor": "builtinAssessorName", "advisor": "builtinAdvisorName"}[k]
            nb: dict[str, Any] = {"name": b.get(name_key), "classArgs": b.get("classArgs") or {}}
            if b.get("className") or b.get("codeDir"):
                nb["className"] = b.get("className") or b.get("classFileName")
            for extra in sorted(set(b) - {name_key, "classArgs", "className", "codeDir", "classFileName"}):
                notes.append(f"{k}.{extra}: no AutoTune equivalent; dropped")
            out[k] = nb
    trial = mapping(doc.get("trial"), "trial")
    if "command" in trial:
        out["trialCommand"] = trial["command"]
    if "codeDir" in trial:
        out["trialCodeDirectory"] = trial["codeDir"]
    if "gpuNum" in trial:
        out["trialGpuNumber"] = trial["gpuNum"]
    platform = doc.get("trainingServicePlatform", "local")
    ts: dict[str, Any] = {"platform": platform}
    ts.update(mapping(doc.get("localConfig"), "localConfig"))
    if "machineList" in doc:
        ts["machineList"] = doc["machineList"]
    if platform == "kubeflow":
        ts.update(mapping(doc.get("kubeflowConfig"), "kubeflowConfig"))
        for role in ("worker", "ps", "master"):
            if role in trial:
                r = mapping(trial[role], f"trial.{role}")
                ts[role] = {"replicas": r.get("replicas", 1), "command": r.get("command"), "gpuNumber": r.get("gpuNum"),
                            "cpuNumber": r.get("cpuNum"), "memorySize": r.get("memoryMB") and f"{r['memoryMB']}Mi",
                            "dockerImage": r.get("image")}
        out.pop("trialCommand", None)
    out["trainingService"] = ts
    for k in sorted(set(trial) - {"command", "codeDir", "gpuNum", "worker", "ps", "master"}):
        notes.append(f"trial.{k}: no AutoTune equivalent; dropped")
    known = set(rename) | {"tuner", "assessor", "advisor", "trial", "trainingServicePlatform", "localConfig",
                           "machineList", "kubeflowConfig"}
    for k in sorted(set(doc) - known):
        notes.append(f"{k}: no AutoTune equivalent; dropped")
    return out


# The v1 names of v2 fields, so that a note about a v1 file names the field as written.
V1_NAMES = (("maxExperimentDuration", "maxExecDuration"), ("maxTrialNumber", "maxTrialNum"),
            ("searchSpaceFile", "searchSpacePath"), ("trialCommand", "trial.command"),
            ("trialCodeDirectory", "trial.codeDir"), ("trialGpuNumber", "trial.gpuNum"),
            ("trainingService.platform", "trainingServicePlatform"), ("tuner.name", "tuner.builtinTunerName"),
            ("advisor.name", "advisor.builtinAdvisorName"), ("assessor.name", "assessor.builtinAssessorName"),
            ("experimentWorkingDirectory", "logDir"))


def _v1_note(note: str) -> str:
    for v2, v1 in V1_NAMES:
        if note.startswith(v2):
            return v1 + note[len(v2):]
    if note.startswith("trainingService."):
        return "localConfig." + note[len("trainingService."):]
    return note


def _command(cmd: Any, where: str) -> list[str]:
    """NNI runs the command in bash: kept as one bash -c when it needs a shell, else split."""
    if cmd is not None and not isinstance(cmd, str):  # NNI's field is one bash command line
        raise ConvertError(where, f"must be a string (one command line, which NNI runs in bash), "
                                  f"got {type(cmd).__name__} {cmd!r}")
    if cmd is None or not cmd.strip():
        raise ConvertError(where, "is required (the command that runs one trial)")
    if SHELL & set(cmd):
        return ["bash", "-c", cmd]
    return shlex.split(cmd)


def _algorithm(role: str, raw: Any, notes: list[str]) -> tuple[str, str, dict[str, Any], int | None]:
    """(block, AutoTune name, classArgs, seed) of the tuner / assessor / advisor block."""
    from tuner_server.advisors import advisor_classes
    from tuner_server.assessors import AssessorArgsError, create_assessor
    from tuner_server.tuners import tuner_classes

    b = mapping(raw, role, required=True)
    if b.get("className") or b.get("codeDirectory"):
        raise ConvertError(f"{role}.className", "a custom algorithm (className/codeDirectory) cannot run in AutoTune; "
                           "use a built-in one")
    name = b.get("name")
    if not isinstance(name, str) or not name:
        raise ConvertError(f"{role}.name", "is required")
    args = dict(mapping(b.get("classArgs"), f"{role}.classArgs"))
    for k in sorted(set(b) - {"name", "classArgs", "className", "codeDirectory"}):
        notes.append(f"{role}.{k}: no AutoTune equivalent; dropped")
    seed = args.pop("seed", None)
    if seed is not None:
        seed = integer(seed, f"{role}.classArgs.seed")
    if role == "assessor":
        try:
            return "assessor", create_assessor(name, args).name, args, seed
        except AssessorArgsError:
            try:  # a valid name with bad args: validation names the arg later
                return "assessor", create_assessor(name, {}).name, args, seed
            except AssessorArgsError:
                raise ConvertError("assessor.name", f"unknown assessor '{name}'") from None
    low = name.lower()
    if low in tuner_classes():
        return "tuner", tuner_classes()[low].name, args, seed
    if low in advisor_classes():
        notes.append(f"{role}.name {name}: NNI gives the budget as parameters['TRIAL_BUDGET']; AutoTune gives it as "
                     f"autotune.get_budget() and $EPOCHS (README \"Advisors\")")
        return "advisor", advisor_classes()[low].name, args, seed
    if low in SUBSTITUTES:
        sub = SUBSTITUTES[low]
        kept = {k: v for k, v in args.items() if k == "optimize_mode"}
        dropped = sorted(set(args) - set(kept))
        notes.append(f"{role}.name: AutoTune has no {name}: using {sub}, also model-based"
                     + (f"; classArgs {dropped} dropped" if dropped else ""))
        return "tuner", sub, kept, seed
    if low == "networkmorphism":
        raise ConvertError(f"{role}.name", "NetworkMorphism is neural architecture search; AutoTune converts "
                           "hyperparameter experiments")
    raise ConvertError(f"{role}.name", f"unknown {role} '{name}' (AutoTune has {sorted(c.name for c in set(tuner_classes().values()))} "
                       f"and advisors {sorted(c.name for c in set(advisor_classes().values()))})")


def _role_container(role: str, r: dict[str, Any], framework: str, notes: list[str]) -> dict[str, Any]:
    where = f"trainingService.{role}"
    c: dict[str, Any] = {"name": framework, "command": _command(r.get("command"), f"{where}.command")}
    if r.get("dockerImage"):
        c["image"] = r["dockerImage"]
    limits: dict[str, Any] = {}
    if r.get("gpuNumber"):
        limits["nvidia.com/gpu"] = integer(r["gpuNumber"], f"{where}.gpuNumber")
        if limits["nvidia.com/gpu"] < 0:
            raise ConvertError(f"{where}.gpuNumber", f"must be >= 0, got {limits['nvidia.com/gpu']}")
    if r.get("cpuNumber"):
        limits["cpu"] = str(r["cpuNumber"])
    if r.get("memorySize"):
        limits["memory"] = str(r["memorySize"]).replace("gb", "Gi").replace("mb", "Mi").replace("GB", "Gi").replace("MB", "Mi")
    if limits:
        c["resources"] = {"limits": limits}
    for k in sorted(set(r) - {"replicas", "command", "gpuNumber", "cpuNumber", "memorySize", "dockerImage"}):
        if r.get(k) is not None:
            notes.append(f"{where}.{k}: no AutoTune equivalent (the image holds the code); dropped")
    return c


def _kubeflow(ts: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    operator = ts.get("operator", "tf-operator")
    framework = {"tf-operator": "tensorflow", "pytorch-operator": "pytorch"}.get(operator) if isinstance(operator, str) else None
    if framework is None:
        raise ConvertError("trainingService.operator", f"must be tf-operator or pytorch-operator, got {operator!r}")
    tasks = []
    for role in ("master", "worker", "ps"):
        if ts.get(role):
            r = mapping(ts[role], f"trainingService.{role}")
            tasks.append({"type": role, "replicas": integer(r.get("replicas", 1), f"trainingService.{role}.replicas"),
                          "template": {"spec": {"containers": [_role_container(role, r, framework, notes)]}}})
    if not tasks:
        raise ConvertError("trainingService.worker", "is required on the kubeflow platform")
    for k in sorted(set(ts) - {"platform", "operator", "master", "worker", "ps"}):
        notes.append(f"trainingService.{k}: Kubeflow settings of NNI's own (storage, apiVersion, reuse); AutoTune "
                     f"creates the {'TFJob' if framework == 'tensorflow' else 'PyTorchJob'}s itself; dropped")
    return {"type": framework, "tasks": tasks}


def _local_container(doc: dict[str, Any], code_base: str, image: str | None, notes: list[str]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "trial"}
    if image:
        c["image"] = image
    else:
        notes.append("spec.trainingConfig.tasks[0].template.spec.containers[0].image: none (NNI ran the command on "
                     "this machine); local mode needs none, a cluster does: pass --image IMAGE or add it")
    c["command"] = _command(doc.get("trialCommand"), "trialCommand")
    code = doc.get("trialCodeDirectory") or "."
    if not isinstance(code, str):
        raise ConvertError("trialCodeDirectory", f"must be a path (a string), got {type(code).__name__}")
    code = os.path.expanduser(code)
    wd = code if os.path.isabs(code) else os.path.normpath(os.path.join(code_base, code))
    c["workingDir"] = wd
    gpus = doc.get("trialGpuNumber")
    if gpus is not None:
        n = integer(gpus, "trialGpuNumber")
        if n < 0:
            raise ConvertError("trialGpuNumber", f"must be >= 0, got {n}")
        if n == 0:  # NNI hides every GPU from such trials
            c["env"] = [{"name": "CUDA_VISIBLE_DEVICES", "value": ""}]
        else:
            c["resources"] = {"limits": {"nvidia.com/gpu": n}}
            notes.append(f"trialGpuNumber {n}: a GPU limit of the trial's container on a cluster; locally pass "
                         f"`autotune run --devices 0,1,...` (one trial per device, CUDA_VISIBLE_DEVICES set)")
    return c


def _training_service(doc: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    ts_raw = doc.get("trainingService")
    if isinstance(ts_raw, list):  # hybrid: a list of services
        notes.append(f"trainingService: {len(ts_raw)} training services (hybrid); AutoTune runs every trial the same "
                     f"way (locally or on the cluster); the list is dropped")
        return {"platform": "local"}
    return mapping(ts_raw, "trainingService")


def convert_nni(doc: Any, *, search_space: Any = None, code_base: str = ".", default_name: str = "experiment",
                image: str | None = None) -> Conversion:
    doc = mapping(doc, "", required=True)
    if not is_nni(doc):
        raise ConvertError("trialCommand", "is missing: not an NNI experiment config")
    doc = canonical_keys(doc)
    if not any(k in doc for k in ("trainingServicePlatform", "trial", "searchSpacePath")):
        return _convert(doc, [], search_space, code_base, default_name, image)
    notes: list[str] = []
    v2 = _from_v1(doc, notes)
    first = len(notes)  # notes from here on name v2 fields: name them as the v1 file wrote them
    try:
        conv = _convert(v2, notes, search_space, code_base, default_name, image)
    except ConvertError as e:
        raise ConvertError(_v1_note(e.field), e.message) from None
    conv.notes[first:-1] = [_v1_note(n) for n in conv.notes[first:-1]]
    return conv


def _convert(doc: dict[str, Any], notes: list[str], search_space: Any, code_base: str, default_name: str,
             image: str | None) -> Conversion:
    if doc.get("useAnnotation"):
        raise ConvertError("useAnnotation", "NNI annotations put the search space in the trial code; write it as a "
                           "search-space file and convert again with --search-space FILE")
    if doc.get("experimentType") not in (None, "hpo"):
        raise ConvertError("experimentType", f"'{doc['experimentType']}' experiments cannot be converted; AutoTune "
                           "converts hyperparameter (hpo) experiments")
    space = search_space if search_space is not None else doc.get("searchSpace")
    if space is None:
        raise ConvertError("searchSpaceFile", "neither searchSpace nor searchSpaceFile gives a search space "
                           "(or pass --search-space FILE)")
    if not isinstance(space, Mapping) or not space:
        raise ConvertError("searchSpace", "must be a non-empty mapping of parameter -> {_type, _value}")

    raw_name = doc.get("experimentName")
    name = k8s_name(str(raw_name)) if raw_name else k8s_name(default_name)
    if raw_name and name != raw_name:
        notes.append(f"experimentName {raw_name!r}: metadata.name must be a lowercase RFC 1123 name; '{name}'")
    elif not raw_name:
        notes.append(f"experimentName: not given; metadata.name '{name}' from the file name")

    spec: dict[str, Any] = {}
    if doc.get("maxExperimentDuration") is not None:
        spec["maxExecSeconds"] = duration_seconds(doc["maxExperimentDuration"], "maxExperimentDuration")
        notes.append(f"maxExperimentDuration {doc['maxExperimentDuration']!r}: spec.maxExecSeconds "
                     f"{spec['maxExecSeconds']}; when it passes AutoTune also stops the running trials (TIMEOUT), "
                     f"where NNI let them finish")
    if doc.get("maxTrialNumber") is not None:
        spec["maxTrialNum"] = integer(doc["maxTrialNumber"], "maxTrialNumber")
        if spec["maxTrialNum"] < 1:
            raise ConvertError("maxTrialNumber", f"must be >= 1, got {spec['maxTrialNum']}")
    if doc.get("maxTrialDuration") is not None:
        spec["maxTrialSeconds"] = duration_seconds(doc["maxTrialDuration"], "maxTrialDuration")
    concurrency = integer(doc.get("trialConcurrency", 1), "trialConcurrency")
    if concurrency < 1:
        raise ConvertError("trialConcurrency", f"must be >= 1, got {concurrency}")
    spec["trialConcurrency"] = concurrency
    spec["searchSpace"] = dict(space)

    ts = _training_service(doc, notes)
    platform = ts.get("platform", "local")
    annotations: dict[str, str] = {}
    if platform == "kubeflow":
        spec["trainingConfig"] = _kubeflow(ts, notes)
        annotations[WORKLOAD_KIND_ANNOTATION] = "kubeflow"
        if doc.get("trialCommand"):
            notes.append("trialCommand: on the kubeflow platform each role's command runs; dropped")
    else:
        container = _local_container(doc, code_base, image, notes)
        spec["trainingConfig"] = {"type": "pytorch", "tasks": [
            {"type": "master", "replicas": 1, "template": {"spec": {"containers": [container]}}}]}
        if platform == "local":
            for k, why in (("gpuIndices", "pass `autotune run --devices ...` instead"),
                           ("useActiveGpu", "AutoTune does not check whether a device is busy"),
                           ("maxTrialNumberPerGpu", "one trial per device with --devices")):
                if k in ts:
                    notes.append(f"trainingService.{k}: {why}; dropped")
            for k in sorted(set(ts) - {"platform", "gpuIndices", "useActiveGpu", "maxTrialNumberPerGpu"}):
                notes.append(f"trainingService.{k}: no AutoTune equivalent; dropped")
        else:
            notes.append(f"trainingService.platform {platform!r}: AutoTune runs trials on this machine (autotune run) "
                         f"or on a Kubernetes cluster; the {platform} settings {sorted(set(ts) - {'platform'})} are "
                         f"dropped")
        annotations = {}

    seeds: list[int] = []
    blocks = [r for r in ("tuner", "advisor", "assessor") if doc.get(r) is not None]
    if not any(r in blocks for r in ("tuner", "advisor")):
        raise ConvertError("tuner", "is required (the algorithm that picks each trial's parameters)")
    for role in blocks:
        block, algo, args, seed = _algorithm(role, doc[role], notes)
        if seed is not None:
            seeds.append(seed)
        key = {"tuner": "builtinTunerName", "advisor": "builtinAdvisorName", "assessor": "builtinAssessorName"}[block]
        if block in spec:
            raise ConvertError(role, f"gives a second {block}")
        spec[block] = {key: algo, "classArgs": args}
    if "tuner" in spec and "advisor" in spec:
        raise ConvertError("advisor", "cannot be given together with a tuner; keep one")
    if seeds:
        spec["seed"] = seeds[0]
        if seeds[0] < 0:
            raise ConvertError("tuner.classArgs.seed", f"must be >= 0, got {seeds[0]}")
    for k, why in DROPPED.items():
        if doc.get(k) not in (None, False, ""):
            notes.append(f"{k}: {why}; dropped")
    for k in sorted(set(doc) - V2_FIELDS):
        notes.append(f"{k}: not an NNI v2 field AutoTune knows; dropped")
    notes.append(TRIAL_CODE_NOTE)
    return Conversion(manifest(name, spec, annotations=annotations or None), notes, "nni")
