"""Katib ``spec.trialTemplate`` -> AutoTune ``trainingConfig``.

A Katib trial is a batch Job or a Kubeflow TFJob / PyTorchJob / XGBoostJob whose spec
holds ``${trialParameters.NAME}`` placeholders; each trial parameter names a search-space
parameter (``reference``). AutoTune's ``trainingConfig`` holds the same pod templates as
tasks (one per replica type) with ``${parameters.KEY}`` placeholders, and the operator
annotation ``autotune.tensorstack.dev/workload-kind`` keeps the trial the same kind of
object (``job`` or ``kubeflow``).

AutoTune substitutes parameters in containers' ``command``, ``args`` and ``env`` values
only; a placeholder anywhere else (an image tag, a resource limit) is refused, naming it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from autotune_operator.convert.common import ConvertError, integer, mapping

KATIB_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
# Katib's trial metadata references (reference: ${trialSpec.Name}); only the name has an
# AutoTune counterpart, the trial id in $AUTOTUNE_TRIAL_ID.
METADATA_REF = re.compile(r"^\$\{trialSpec\.[A-Za-z]+(\[[^\]]*\])?\}$")
KUBEFLOW = {"TFJob": ("tensorflow", "tfReplicaSpecs"), "PyTorchJob": ("pytorch", "pytorchReplicaSpecs"),
            "XGBoostJob": ("xgboost", "xgbReplicaSpecs")}
JOB_DEFAULT_CONDITIONS = ('status.conditions.#(type=="Complete")#|#(status=="True")#',
                          'status.conditions.#(type=="Failed")#|#(status=="True")#')
KUBEFLOW_DEFAULT_CONDITIONS = ('status.conditions.#(type=="Succeeded")#|#(status=="True")#',
                               'status.conditions.#(type=="Failed")#|#(status=="True")#')
KUBEFLOW_PRIMARY_LABELS = {"training.kubeflow.org/job-role": "master"}
# Local mode runs the first task: the one that reports (master/chief) goes first.
ROLE_ORDER = ("master", "chief", "worker", "ps", "evaluator")


@dataclass
class Trial:
    training_config: dict[str, Any]
    workload_kind: str  # "job" | "kubeflow"
    max_trial_seconds: int | None = None
    notes: list[str] = field(default_factory=list)


def _placeholders(obj: Any, path: str) -> list[tuple[str, str]]:
    """Every (path, placeholder name) in a parsed document."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _placeholders(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _placeholders(v, f"{path}[{i}]")
    elif isinstance(obj, str):
        out += [(path, m) for m in KATIB_PLACEHOLDER.findall(obj)]
    return out


def _substitutable(path: str) -> bool:
    """Inside a pod template's (init)container: command[i], args[i] or env[i].value."""
    return bool(re.search(r"\.(containers|initContainers)\[\d+\]\.(command\[\d+\]|args\[\d+\]|env\[\d+\]\.value)$", path))


def _trial_parameters(tt: dict[str, Any], names: dict[str, str], resource: str | None,
                      notes: list[str]) -> dict[str, str]:
    """Trial parameter name -> what replaces ${trialParameters.NAME}."""
    raw = tt.get("trialParameters") or []
    if not isinstance(raw, list):
        raise ConvertError("spec.trialTemplate.trialParameters", "must be a list of {name, reference}")
    out: dict[str, str] = {}
    described = False
    for i, tp in enumerate(raw):
        where = f"spec.trialTemplate.trialParameters[{i}]"
        tp = mapping(tp, where, required=True)
        name, ref = tp.get("name"), tp.get("reference")
        if not isinstance(name, str) or not name:
            raise ConvertError(f"{where}.name", "is required")
        if name in out:
            raise ConvertError(f"{where}.name", f"'{name}' appears twice")
        if not isinstance(ref, str) or not ref:
            raise ConvertError(f"{where}.reference", "is required (the search-space parameter it takes)")
        described = described or "description" in tp
        unknown = sorted(set(tp) - {"name", "reference", "description"})
        if unknown:
            notes.append(f"{where}: unknown Katib field(s) {unknown}; dropped")
        if ref == resource:
            out[name] = "$(EPOCHS)"
        elif ref in names:
            out[name] = f"${{parameters.{names[ref]}}}"
        elif ref == "${trialSpec.Name}":
            out[name] = "$(AUTOTUNE_TRIAL_ID)"
            notes.append(f"{where}.reference: ${{trialSpec.Name}} -> $(AUTOTUNE_TRIAL_ID), the trial's id, which "
                         f"Kubernetes (and local mode) expand in command/args")
        elif METADATA_REF.match(ref):
            raise ConvertError(f"{where}.reference", f"{ref} (trial metadata) has no AutoTune equivalent; only "
                               "${trialSpec.Name} does ($AUTOTUNE_TRIAL_ID)")
        else:
            raise ConvertError(f"{where}.reference", f"'{ref}' is not a parameter in spec.parameters "
                               f"(have {sorted(names)})")
    if described:
        notes.append("spec.trialTemplate.trialParameters[*].description: AutoTune has no field for a parameter's "
                     "description; dropped")
    return out


def _substitute(spec: Any, table: dict[str, str]) -> Any:
    if isinstance(spec, dict):
        return {k: _substitute(v, table) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_substitute(v, table) for v in spec]
    if isinstance(spec, str):
        return KATIB_PLACEHOLDER.sub(lambda m: table[m.group(1)], spec)
    return spec


def _primary_first(template: dict[str, Any], primary: Any, where: str, notes: list[str]) -> dict[str, Any]:
    containers = ((template.get("spec") or {}).get("containers")) or []
    names = [c.get("name") for c in containers if isinstance(c, dict)]
    if primary is None:
        return template
    if primary not in names:
        notes.append(f"spec.trialTemplate.primaryContainerName: '{primary}' is not a container of {where} "
                     f"(have {names}); dropped")
        return template
    i = names.index(primary)
    if i == 0:
        return template
    t = copy.deepcopy(template)
    cs = t["spec"]["containers"]
    cs.insert(0, cs.pop(i))
    notes.append(f"spec.trialTemplate.primaryContainerName: '{primary}' moved to the first container of {where} "
                 f"(local mode runs the first one; on a cluster the order does not matter)")
    return t


def _job(trial_spec: dict[str, Any], primary: Any, notes: list[str]) -> tuple[dict[str, Any], int | None]:
    spec = mapping(trial_spec.get("spec"), "spec.trialTemplate.trialSpec.spec", required=True)
    template = mapping(spec.get("template"), "spec.trialTemplate.trialSpec.spec.template", required=True)
    deadline: int | None = None
    for k in sorted(set(spec) - {"template"}):
        where = f"spec.trialTemplate.trialSpec.spec.{k}"
        if k == "activeDeadlineSeconds":
            deadline = integer(spec[k], where)
            notes.append(f"{where} = {deadline}: spec.maxTrialSeconds (AutoTune counts from the trial's start, "
                         f"not from the Job's, so time waiting for a node is not counted)")
        elif k == "backoffLimit" and integer(spec[k], where) == 0:
            continue  # AutoTune's trial Jobs never retry either
        else:
            notes.append(f"{where}: AutoTune builds the trial Job itself (backoffLimit 0, one pod); dropped")
    t = _primary_first(template, primary, "the Job's pod template", notes)
    return {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": t}]}, deadline


def _kubeflow(kind: str, trial_spec: dict[str, Any], primary: Any, notes: list[str]) -> dict[str, Any]:
    framework, replica_field = KUBEFLOW[kind]
    spec = mapping(trial_spec.get("spec"), "spec.trialTemplate.trialSpec.spec", required=True)
    replicas = mapping(spec.get(replica_field), f"spec.trialTemplate.trialSpec.spec.{replica_field}", required=True)
    for k in sorted(set(spec) - {replica_field}):
        notes.append(f"spec.trialTemplate.trialSpec.spec.{k}: AutoTune sets the {kind}'s run policy itself "
                     f"(backoffLimit 0, cleanPodPolicy Running); dropped")
    tasks = []
    for role, rs in replicas.items():
        where = f"spec.trialTemplate.trialSpec.spec.{replica_field}.{role}"
        rs = mapping(rs, where, required=True)
        template = mapping(rs.get("template"), f"{where}.template", required=True)
        task: dict[str, Any] = {"type": str(role).lower(), "replicas": integer(rs.get("replicas", 1), f"{where}.replicas")}
        if rs.get("restartPolicy"):
            task["restartPolicy"] = rs["restartPolicy"]
        for k in sorted(set(rs) - {"template", "replicas", "restartPolicy"}):
            notes.append(f"{where}.{k}: no AutoTune task field; dropped")
        task["template"] = template
        tasks.append(task)
    tasks.sort(key=lambda t: ROLE_ORDER.index(t["type"]) if t["type"] in ROLE_ORDER else len(ROLE_ORDER))
    tasks[0]["template"] = _primary_first(tasks[0]["template"], primary, f"the {tasks[0]['type']} pod template", notes)
    return {"type": framework, "tasks": tasks}


def convert_trial(doc: Any, names: dict[str, str], resource: str | None) -> Trial:
    tt = mapping(doc, "spec.trialTemplate", required=True)
    notes: list[str] = []
    if "configMap" in tt:
        raise ConvertError("spec.trialTemplate.configMap", "a trial template in a ConfigMap cannot be converted: "
                           "inline it as spec.trialTemplate.trialSpec and convert again")
    trial_spec = mapping(tt.get("trialSpec"), "spec.trialTemplate.trialSpec", required=True)
    kind = trial_spec.get("kind")
    table = _trial_parameters(tt, names, resource, notes)
    for path, name in _placeholders(trial_spec, "spec.trialTemplate.trialSpec"):
        if name not in table:
            raise ConvertError(path, f"${{trialParameters.{name}}} names no entry of spec.trialTemplate.trialParameters "
                               f"(have {sorted(table)})")
        if not _substitutable(path):
            raise ConvertError(path, f"${{trialParameters.{name}}} here cannot be carried over: AutoTune puts "
                               "parameters only in a container's command, args and env values")
    trial_spec = _substitute(trial_spec, table)
    primary = tt.get("primaryContainerName")
    deadline = None
    if kind == "Job":
        config, deadline = _job(trial_spec, primary, notes)
        workload, defaults, labels = "job", JOB_DEFAULT_CONDITIONS, None
    elif kind in KUBEFLOW:
        config = _kubeflow(kind, trial_spec, primary, notes)
        workload, defaults, labels = "kubeflow", KUBEFLOW_DEFAULT_CONDITIONS, KUBEFLOW_PRIMARY_LABELS
    else:
        raise ConvertError("spec.trialTemplate.trialSpec.kind", f"'{kind}' is not a trial kind AutoTune runs "
                           "(Job, TFJob, PyTorchJob, XGBoostJob)")
    meta = trial_spec.get("metadata")
    if meta:
        notes.append("spec.trialTemplate.trialSpec.metadata: AutoTune names and labels each trial's object itself; "
                     "dropped (the pod template's metadata is kept)")
    for i, (key, default) in enumerate((("successCondition", defaults[0]), ("failureCondition", defaults[1]))):
        v = tt.get(key)
        if v and v != default:
            notes.append(f"spec.trialTemplate.{key}: AutoTune reads the {kind}'s own "
                         f"{'success' if i == 0 else 'failure'} condition; {v!r} dropped")
    pl = tt.get("primaryPodLabels")
    if pl and pl != labels:
        notes.append(f"spec.trialTemplate.primaryPodLabels {pl}: AutoTune waits for the whole {kind}; dropped")
    if tt.get("retain"):
        notes.append("spec.trialTemplate.retain: AutoTune keeps or deletes trial objects by its own rules; dropped")
    known = {"trialSpec", "trialParameters", "primaryContainerName", "successCondition", "failureCondition",
             "primaryPodLabels", "retain"}
    for k in sorted(set(tt) - known):
        notes.append(f"spec.trialTemplate.{k}: unknown Katib field; dropped")
    return Trial(config, workload, deadline, notes)
