"""A Katib Experiment (``kubeflow.org/v1beta1``) -> an AutoTuneExperiment.

``convert_katib(doc)`` returns the manifest and a note for everything not carried over
exactly; ``ConvertError`` when the document is not a Katib hyperparameter Experiment.
Field facts: Katib's experiment_types.go, experiment_defaults.go (parallelTrialCount
defaults to 3) and status_util.go (the experiment fails when failed trials exceed
maxFailedTrialCount; maxTrialCount counts every ended trial, as AutoTune's maxTrialNum).
"""

from __future__ import annotations

from typing import Any

from autotune_operator.convert.common import (WORKLOAD_KIND_ANNOTATION, Conversion, ConvertError, integer, manifest,
                                              mapping, number, valid_name)
from autotune_operator.convert.katib_algorithms import convert_algorithm, convert_early_stopping, settings
from autotune_operator.convert.katib_metrics import convert_collector, convert_strategies
from autotune_operator.convert.katib_space import convert_parameters
from autotune_operator.convert.katib_trial import convert_trial
from autotune_operator.spec import MAX_NAME_CHARS

GROUP = "kubeflow.org"
DEFAULT_PARALLEL = 3  # Katib's DefaultTrialParallelCount
SPEC_FIELDS = {"parameters", "objective", "algorithm", "trialTemplate", "parallelTrialCount", "maxTrialCount",
               "maxFailedTrialCount", "metricsCollectorSpec", "nasConfig", "resumePolicy", "earlyStopping"}
# Set by the API server (a `kubectl get -o yaml` of a live Experiment): not the user's.
SERVER_METADATA = {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                   "finalizers", "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds"}


def is_katib(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(f"{GROUP}/")


def _count(spec: dict[str, Any], key: str, low: int) -> int | None:
    if spec.get(key) is None:
        return None
    v = integer(spec[key], f"spec.{key}")
    if v < low:
        raise ConvertError(f"spec.{key}", f"must be >= {low}, got {v}")
    return v


def _objective(spec: dict[str, Any]) -> tuple[dict[str, Any], str, float | None, str, list[str]]:
    obj = mapping(spec.get("objective"), "spec.objective", required=True)
    mode = obj.get("type")
    if mode not in ("maximize", "minimize"):
        raise ConvertError("spec.objective.type", f"must be maximize or minimize, got {mode!r}")
    metric = obj.get("objectiveMetricName")
    if not isinstance(metric, str) or not metric:
        raise ConvertError("spec.objective.objectiveMetricName", "is required")
    goal = None if obj.get("goal") is None else float(number(obj["goal"], "spec.objective.goal"))
    extra = obj.get("additionalMetricNames") or []
    if not isinstance(extra, list) or not all(isinstance(n, str) and n for n in extra):
        raise ConvertError("spec.objective.additionalMetricNames", f"must be a list of metric names, got {extra!r}")
    return obj, mode, goal, metric, [n for n in extra if n != metric]


def _metrics(spec: dict[str, Any], obj: dict[str, Any], mode: str, metric: str, extra: list[str],
             notes: list[str]) -> dict[str, Any]:
    """The spec fields saying how the trial's metrics are read and which value counts."""
    out: dict[str, Any] = {"primaryMetric": metric}
    collector = convert_collector(spec, extra, notes)
    if collector is not None:
        out["metricsCollector"] = collector
    else:
        notes.append(f"spec.objective.objectiveMetricName '{metric}': without a metrics collector the trial reports it "
                     f"with autotune.report_final_result(value) or mlflow.log_metric('{metric}', value) "
                     f"(spec.primaryMetric is set to it) - see README \"Your training script\"")
        if extra:
            notes.append(f"spec.objective.additionalMetricNames {extra}: AutoTune keeps every metric of a dict report "
                         f"or every MLflow metric as extra metrics without declaring them; dropped")
    strategies = convert_strategies(obj, metric, extra, mode)
    if strategies:
        out["metricStrategies"] = strategies
    for k in sorted(set(obj) - {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"}):
        notes.append(f"spec.objective.{k}: unknown Katib field; dropped")
    return out


def convert_katib(doc: Any) -> Conversion:
    doc = mapping(doc, "", required=True)
    kind = doc.get("kind")
    if kind != "Experiment":
        raise ConvertError("kind", f"'{kind}' is not a Katib Experiment; convert the Experiment itself "
                           "(apiVersion kubeflow.org/v1beta1, kind Experiment)")
    if doc.get("apiVersion") != f"{GROUP}/v1beta1":
        raise ConvertError("apiVersion", f"'{doc.get('apiVersion')}' is not supported; convert a kubeflow.org/v1beta1 "
                           "Experiment")
    notes: list[str] = []
    meta = mapping(doc.get("metadata"), "metadata", required=True)
    name = meta.get("name")
    if not isinstance(name, str) or not valid_name(name):
        raise ConvertError("metadata.name", f"must be a lowercase RFC 1123 name of at most {MAX_NAME_CHARS} characters "
                           f"(AutoTune names each trial's Job <name>-<n>), got {name!r}")
    server = sorted(set(meta) & SERVER_METADATA)
    if server:
        notes.append(f"metadata {server}: set by the API server for the Katib object; dropped")
    for k in sorted(set(meta) - SERVER_METADATA - {"name", "namespace", "labels", "annotations"}):
        notes.append(f"metadata.{k}: dropped")
    if doc.get("status"):
        notes.append("status: the Katib experiment's results are not imported; dropped")
    for k in sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"}):
        notes.append(f"{k}: unknown top-level field; dropped")
    spec = mapping(doc.get("spec"), "spec", required=True)
    if spec.get("nasConfig"):
        raise ConvertError("spec.nasConfig", "neural architecture search experiments cannot be converted; AutoTune "
                           "converts hyperparameter experiments")
    obj, mode, goal, metric, extra = _objective(spec)
    algo_doc = mapping(spec.get("algorithm"), "spec.algorithm", required=True)
    resource = None
    if str(algo_doc.get("algorithmName", "")).lower() == "hyperband":
        resource = settings(algo_doc.get("algorithmSettings"), "spec.algorithm.algorithmSettings").get("resource_name")
    space = convert_parameters(spec.get("parameters"), skip=resource)
    if resource is not None and resource not in space.names:
        raise ConvertError("spec.algorithm.algorithmSettings[resource_name]", f"'{resource}' is not in spec.parameters")
    types = {e["_type"] for e in space.space.values()}
    algo = convert_algorithm(algo_doc, mode, types)
    assessor, es_notes = convert_early_stopping(spec.get("earlyStopping"), mode)
    trial = convert_trial(spec.get("trialTemplate"), space.names, algo.resource)
    notes += space.notes + algo.notes + es_notes + trial.notes

    out: dict[str, Any] = {}
    max_trials = _count(spec, "maxTrialCount", 1)
    if max_trials is not None:
        out["maxTrialNum"] = max_trials
    max_failed = _count(spec, "maxFailedTrialCount", 0)
    if max_failed is not None:
        # Katib fails when failed trials exceed the count; AutoTune when they reach its limit.
        out["maxFailedTrialNum"] = max_failed + 1
    if trial.max_trial_seconds is not None:
        out["maxTrialSeconds"] = trial.max_trial_seconds
    if goal is not None:
        out["objectiveGoal"] = goal
    parallel = _count(spec, "parallelTrialCount", 1)
    out["trialConcurrency"] = DEFAULT_PARALLEL if parallel is None else parallel
    if algo.seed is not None:
        out["seed"] = algo.seed
    out.update(_metrics(spec, obj, mode, metric, extra, notes))
    out["searchSpace"] = space.space
    out["trainingConfig"] = trial.training_config
    out[algo.block] = {"builtinTunerName" if algo.block == "tuner" else "builtinAdvisorName": algo.name,
                       "classArgs": algo.class_args}
    if assessor is not None:
        out["assessor"] = assessor

    policy = spec.get("resumePolicy")
    if policy and policy != "Never":
        notes.append(f"spec.resumePolicy {policy!r}: an AutoTune experiment that ended DONE or TIMEOUT resumes when "
                     f"its limits are raised, with no policy to set (README \"Resuming an ended experiment\"); dropped")
    for k in sorted(set(spec) - SPEC_FIELDS):
        notes.append(f"spec.{k}: unknown Katib field; dropped")
    annotations = dict(meta.get("annotations") or {})
    annotations[WORKLOAD_KIND_ANNOTATION] = trial.workload_kind
    return Conversion(manifest(name, out, meta.get("namespace"), meta.get("labels"), annotations), notes, "katib")
