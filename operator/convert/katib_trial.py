"""Katib ``spec.trialTemplate`` -> AutoTune ``trainingConfig``.

A Katib trial is a batch Job or a Kubeflow TFJob / PyTorchJob / XGBoostJob whose spec
holds ``${trialParameters.NAME}`` placeholders; each trial parameter names a search-space
parameter (``reference``). AutoTune's ``trainingConfig`` holds the same pod templates as
tasks (one per replica type) with ``${parameters.KEY}`` placeholders, and the operator
annotation ``autotune.tensorstack.dev/workload-kind`` keeps the trial the same kind of
object (``job`` or ``kubeflow``).

AutoTune substitutes parameters in containers' ``command``, ``args`` and ``env`` values
only; a placeholder anywhere else (an image tag, a resource limit) is refused, naming it.

Katib's trial metadata references (``reference: ${trialSpec.X}``, pkg/controller.v1beta1/
experiment/manifest): ``Name`` and ``Namespace`` differ per trial and become variables a
trial pod has (``$(AUTOTUNE_TRIAL_ID)``; ``$(AUTOTUNE_TRIAL_NAMESPACE)``, which the converted
containers set from the Downward API), so they too go in command, args and env values only.
``Kind``, ``APIVersion``, ``Labels[key]`` and ``Annotations[key]`` are read by Katib from the
trial template itself (its kind, apiVersion and ``metadata``), so they are the same for every
trial: the converter writes their values in, wherever they appear, as Katib does.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from autotune_operator.convert.common import ConvertError, integer, mapping

KATIB_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")
# Katib's trial metadata references (reference: ${trialSpec.Name}, ${trialSpec.Labels[key]}).
METADATA_REF = re.compile(r"^\$\{trialSpec\.([A-Za-z]+)(?:\[(.*)\])?\}$")
# The variable that carries ${trialSpec.Namespace}: set in each container that uses it from
# the Downward API (the pod's namespace: the experiment's, where Katib's trials run too).
NAMESPACE_VAR = "AUTOTUNE_TRIAL_NAMESPACE"
NAMESPACE_ENV = {"name": NAMESPACE_VAR, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
KUBEFLOW = {"TFJob": ("tensorflow", "tfReplicaSpecs"), "PyTorchJob": ("pytorch", "pytorchReplicaSpecs"),
            "XGBoostJob": ("xgboost", "xgbReplicaSpecs")}
JOB_DEFAULT_CONDITIONS = ('status.conditions.#(type=="Complete")#|#(status=="True")#',
                          'status.conditions.#(type=="Failed")#|#(status=="True")#')
KUBEFLOW_DEFAULT_CONDITIONS = ('status.conditions.#(type=="Succeeded")#|#(status=="True")#',
                               'status.conditions.#(type=="Failed")#|#(status=="True")#')
KUBEFLOW_PRIMARY_LABELS = {"training.kubeflow.org/job-role": "master"}
# Local mode runs the first task: the one that reports (master/chief) goes first.
ROLE_ORDER = ("master", "chief", "worker", "ps", "evaluator")


@dataclass(frozen=True)
class Ref:
    """What replaces one ``${trialParameters.NAME}``: ``text``, substituted by AutoTune per
    trial (only in a container's command, args and env values) unless ``fixed`` (the same for
    every trial, written in by the converter wherever it appears)."""

    text: str
    fixed: bool = False


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


def _metadata_ref(ref: str, trial_spec: dict[str, Any], where: str, notes: list[str]) -> Ref | None:
    """What a Katib trial metadata reference becomes (None: ``ref`` is not one)."""
    m = METADATA_REF.match(ref)
    if m is None:
        return None
    field, key = m.group(1), m.group(2)
    if field in ("Labels", "Annotations"):
        if not key:
            raise ConvertError(where, f"{ref} needs a key: ${{trialSpec.{field}[KEY]}}")
        meta = trial_spec.get("metadata") if isinstance(trial_spec.get("metadata"), dict) else {}
        kept = meta.get(field.lower()) if isinstance(meta.get(field.lower()), dict) else {}
        if key not in kept:
            # Katib fails every trial so ("failed to fetch Label"); a converted experiment must not.
            raise ConvertError(where, f"{ref}: spec.trialTemplate.trialSpec.metadata.{field.lower()} has no key "
                               f"'{key}' (have {sorted(kept)}); Katib reads the value there")
        value = str(kept[key])
        notes.append(f"{where}: {ref} -> {value!r}, from spec.trialTemplate.trialSpec.metadata.{field.lower()} "
                     f"(the same for every trial, as in Katib)")
        return Ref(value, fixed=True)
    if key is not None:
        raise ConvertError(where, f"{ref}: only ${{trialSpec.Labels[KEY]}} and ${{trialSpec.Annotations[KEY]}} take a key")
    if field == "Name":
        notes.append(f"{where}: ${{trialSpec.Name}} -> $(AUTOTUNE_TRIAL_ID), the trial's id (also its workload's "
                     f"name), which Kubernetes (and local mode) expand in command, args and env values")
        return Ref("$(AUTOTUNE_TRIAL_ID)")
    if field == "Namespace":
        notes.append(f"{where}: ${{trialSpec.Namespace}} -> $({NAMESPACE_VAR}), set in each container that uses it "
                     f"from the Downward API (fieldRef metadata.namespace: the experiment's namespace, where the "
                     f"trials run); local mode sets it to the manifest's metadata.namespace, else 'default'")
        return Ref(f"$({NAMESPACE_VAR})")
    if field in ("Kind", "APIVersion"):
        value = trial_spec.get("kind" if field == "Kind" else "apiVersion")
        if not isinstance(value, str) or not value:
            raise ConvertError(where, f"{ref}: spec.trialTemplate.trialSpec.{'kind' if field == 'Kind' else 'apiVersion'} "
                               "is not set")
        notes.append(f"{where}: {ref} -> {value!r} (AutoTune runs each trial as the same kind of object)")
        return Ref(value, fixed=True)
    raise ConvertError(where, f"{ref} is not trial metadata Katib knows (Name, Namespace, Kind, APIVersion, "
                       "Labels[KEY], Annotations[KEY])")


def _trial_parameters(tt: dict[str, Any], names: dict[str, str], resource: str | None,
                      trial_spec: dict[str, Any], notes: list[str]) -> dict[str, Ref]:
    """Trial parameter name -> what replaces ${trialParameters.NAME}."""
    raw = tt.get("trialParameters") or []
    if not isinstance(raw, list):
        raise ConvertError("spec.trialTemplate.trialParameters", "must be a list of {name, reference}")
    out: dict[str, Ref] = {}
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
            out[name] = Ref("$(EPOCHS)")
        elif ref in names:
            out[name] = Ref(f"${{parameters.{names[ref]}}}")
        elif (meta := _metadata_ref(ref, trial_spec, f"{where}.reference", notes)) is not None:
            out[name] = meta
        else:
            raise ConvertError(f"{where}.reference", f"'{ref}' is not a parameter in spec.parameters "
                               f"(have {sorted(names)})")
    if described:
        notes.append("spec.trialTemplate.trialParameters[*].description: AutoTune has no field for a parameter's "
                     "description; dropped")
    return out


def _substitute(spec: Any, table: dict[str, Ref]) -> Any:
    if isinstance(spec, dict):
        return {k: _substitute(v, table) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_substitute(v, table) for v in spec]
    if isinstance(spec, str):
        return KATIB_PLACEHOLDER.sub(lambda m: table[m.group(1)].text, spec)
    return spec


def _containers(obj: Any) -> list[dict[str, Any]]:
    """Every (init)container of every pod template in a trial spec."""
    out: list[dict[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                out += [c for c in v if isinstance(c, dict)]
            else:
                out += _containers(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _containers(v)
    return out


def _check_pods(obj: Any, path: str) -> None:
    """The shapes the conversion reads: a pod template's spec is a mapping, its (init)containers
    a list of mappings whose command, args and env are lists (else a traceback, not the field)."""
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_pods(v, f"{path}[{i}]")
    if not isinstance(obj, dict):
        return
    for k, v in obj.items():
        where = f"{path}.{k}"
        if k == "template" and isinstance(v, dict) and v.get("spec") is not None and not isinstance(v["spec"], dict):
            raise ConvertError(f"{where}.spec", f"must be a mapping (a pod spec), got {type(v['spec']).__name__}")
        if k in ("containers", "initContainers") and v is not None:
            if not isinstance(v, list) or not all(isinstance(c, dict) for c in v):
                raise ConvertError(where, "must be a list of containers (mappings)")
            for i, c in enumerate(v):
                for key in ("command", "args", "env"):
                    if c.get(key) is not None and not isinstance(c[key], list):
                        raise ConvertError(f"{where}[{i}].{key}", f"must be a list, got {type(c[key]).__name__}")
        else:
            _check_pods(v, where)


def _set_namespace_var(trial_spec: dict[str, Any]) -> None:
    """Give each container that uses $(AUTOTUNE_TRIAL_NAMESPACE) the variable, first in its env:
    Kubernetes expands $(VAR) in an env value only from the variables listed before it."""
    for c in _containers(trial_spec):
        used = [*(c.get("command") or []), *(c.get("args") or []),
                *(e.get("value") for e in c.get("env") or [] if isinstance(e, dict))]
        if any(isinstance(u, str) and f"$({NAMESPACE_VAR})" in u for u in used):
            c["env"] = [dict(NAMESPACE_ENV)] + [e for e in c.get("env") or [] if not (
                isinstance(e, dict) and e.get("name") == NAMESPACE_VAR)]


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
    if not replicas:
        raise ConvertError(f"spec.trialTemplate.trialSpec.spec.{replica_field}", "lists no replica type (e.g. Master)")
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
    if not isinstance(kind, str) or (kind != "Job" and kind not in KUBEFLOW):  # first: placeholders would not matter
        raise ConvertError("spec.trialTemplate.trialSpec.kind", f"'{kind}' is not a trial kind AutoTune runs "
                           "(Job, TFJob, PyTorchJob, XGBoostJob)")
    table = _trial_parameters(tt, names, resource, trial_spec, notes)
    for path, name in _placeholders(trial_spec, "spec.trialTemplate.trialSpec"):
        if name not in table:
            raise ConvertError(path, f"${{trialParameters.{name}}} names no entry of spec.trialTemplate.trialParameters "
                               f"(have {sorted(table)})")
        if not table[name].fixed and not _substitutable(path):
            raise ConvertError(path, f"${{trialParameters.{name}}} here cannot be carried over: AutoTune puts "
                               "parameters (and a trial's name and namespace) only in a container's command, args "
                               "and env values")
    _check_pods(trial_spec, "spec.trialTemplate.trialSpec")
    trial_spec = _substitute(trial_spec, table)
    _set_namespace_var(trial_spec)
    primary = tt.get("primaryContainerName")
    deadline = None
    if kind == "Job":
        config, deadline = _job(trial_spec, primary, notes)
        workload, defaults, labels = "job", JOB_DEFAULT_CONDITIONS, None
    else:
        config = _kubeflow(kind, trial_spec, primary, notes)
        workload, defaults, labels = "kubeflow", KUBEFLOW_DEFAULT_CONDITIONS, KUBEFLOW_PRIMARY_LABELS
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
