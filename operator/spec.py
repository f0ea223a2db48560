"""The AutoTuneExperiment manifest (tensorstack.dev/v1beta1) as pydantic models.

Accepts the T9k manual's example unchanged. :func:`load_experiment` does every check
that can be done before anything starts and raises :class:`SpecError` whose lines each
name the field (``spec.maxTrialNum``) or search-space parameter and what is wrong.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from autotune_operator.log_metrics import MAX_NAME_CHARS as MAX_METRIC_NAME_CHARS
from autotune_operator.log_metrics import MAX_NAMES as MAX_METRIC_NAMES
from autotune_operator.log_metrics import DEFAULT_NAME, FormatError, compile_formats
from tuner_server.advisors import advisor_classes, advisor_names, create_advisor, is_advisor
from tuner_server.assessors import assessor_names, create_assessor
from tuner_server.history import OptimizeMode
from tuner_server.objectives import MetricStrategy, Objective, duplicate_names
from tuner_server.searchspace import NestedOption, SearchSpace, SearchSpaceError, parse_search_space
from tuner_server.tuners import Tuner, TunerArgsError, create_tuner, tuner_classes

API_GROUP = "tensorstack.dev"
API_VERSION = "v1beta1"
KIND = "AutoTuneExperiment"

# Replica types each framework's training job knows (Kubeflow and T9k agree on these).
REPLICA_TYPES: dict[str, frozenset[str]] = {
    "tensorflow": frozenset({"chief", "ps", "worker", "evaluator", "master"}),
    "pytorch": frozenset({"master", "worker"}),
    "xgboost": frozenset({"master", "worker"}),
}
# Any parameter name: a search space may name one in Chinese or with a space ('.' nests).
PLACEHOLDER = re.compile(r"\$\{parameters\.([^}]+)\}")
# What is left of a mistyped one: ${parameter.x}, $(parameters.x), ${params.x}, ${ parameters.x }.
NEAR_PLACEHOLDER = re.compile(r"\$\s*[{(]\s*param(eter)?s?\s*[.:]", re.IGNORECASE)
# RFC 1123 subdomain, as Kubernetes requires of metadata.name.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# A trial's Job (and its pods' job-name label) is <name>-<n> or <name>-final-<n>, which
# Kubernetes limits to 63 characters: 47 leaves room for "-final-" and 9 digits. With 63,
# a 62-character name was valid and every trial's Job was refused on a cluster.
MAX_NAME_CHARS = 47

Number = int | float


class SpecError(ValueError):
    """An invalid experiment. ``problems`` are lines like 'spec.maxTrialNum: must be >= 1'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid AutoTuneExperiment:\n" + "\n".join(f"  - {p}" for p in problems))


class FieldError(ValueError):
    """Raised by a validator about a field below the one it validates: ``path`` is relative
    to it (``spec.containers[0].name`` inside a task's ``template``), so the problem line
    names the exact field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _DuplicateKey(ValueError):
    """A JSON object names one key twice; json.loads alone would silently keep the last."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"names '{k}' twice in one object (JSON would keep only the last)")
        out[k] = v
    return out


class _TooDeep(ValueError):
    """JSON nested deeper than Python's parser recurses (it raised RecursionError)."""


def _json_loads(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_object)
    except RecursionError:
        raise _TooDeep("is nested too deeply to read (thousands of levels of [ or {)") from None


def _class_args(v: Any) -> dict[str, Any]:
    """classArgs is a JSON string in the manual (``|-`` block); a YAML mapping is accepted too."""
    if v is None or v == "":
        return {}
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, str):
        try:
            parsed = _json_loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
        return parsed
    raise ValueError("must be a JSON object (as a string) or a mapping")


# classArgs in any block: a JSON string (the manual's form) or a mapping, always a dict after.
ClassArgs = Annotated[dict[str, Any], BeforeValidator(_class_args)]


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):  # pydantic would read true as 1: 'maxExecSeconds: true' ended the run after 1 s
        raise ValueError("must be an integer, not a boolean")
    if isinstance(v, str):  # pydantic would read '4' as 4, which the CRD (type: integer) refuses
        raise ValueError("must be a valid integer, not a string (write the number unquoted)")
    return v


# An integer field (the CRD's 'type: integer': int64, no true/false).
Int = Annotated[int, BeforeValidator(_not_bool), Field(le=2**63 - 1)]


def _plain_number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):  # '0.98' or true is a typo, not a goal
        raise ValueError("must be a number")
    return v


# A number field (the CRD's 'type: number'): finite, no true/false, no quoted numbers.
FiniteNumber = Annotated[float, BeforeValidator(_plain_number), Field(allow_inf_nan=False)]


class TunerSpec(_Model):
    builtinTunerName: str = Field(min_length=1)
    classArgs: ClassArgs = Field(default_factory=dict)


class AssessorSpec(_Model):
    builtinAssessorName: str = Field(min_length=1)
    classArgs: ClassArgs = Field(default_factory=dict)


class AdvisorSpec(_Model):
    builtinAdvisorName: str = Field(min_length=1)
    classArgs: ClassArgs = Field(default_factory=dict)


class FinalTrainingSpec(_Model):
    """AutoTune extension (seed 000's "fullytrain"): after a search that ended DONE, rerun
    the best configuration (each of the Pareto front with spec.objectives) once more."""

    enabled: bool = Field(default=True, strict=True)  # strict: pydantic read 'false' or 0 as False; the CRD refuses both
    # Epochs for the rerun (AUTOTUNE_BUDGET); default: the advisor's largest budget, or
    # none with a plain tuner (the script trains its own full epochs).
    budget: Int | None = Field(default=None, ge=1)


class TaskSpec(_Model):
    type: str = Field(min_length=1)
    replicas: Int = Field(default=1, ge=1)
    template: dict[str, Any]
    restartPolicy: Literal["Never", "OnFailure", "Always", "ExitCode"] | None = None  # the CRD's enum

    @field_validator("template")
    @classmethod
    def _template(cls, v: dict[str, Any]) -> dict[str, Any]:
        spec = v.get("spec")
        if not isinstance(spec, Mapping):
            raise FieldError("spec", "is required (the pod spec of the trial)")
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise FieldError("spec.containers", "must be a non-empty list")
        for i, c in enumerate(containers):
            if not isinstance(c, Mapping):
                raise FieldError(f"spec.containers[{i}]", "must be a mapping")
            if not isinstance(c.get("name"), str) or not c.get("name"):
                raise FieldError(f"spec.containers[{i}].name", "is required")
            for key in ("command", "args"):
                if key in c and not (isinstance(c[key], list) and all(isinstance(a, str) for a in c[key])):
                    raise FieldError(f"spec.containers[{i}].{key}", "must be a list of strings")
            _check_env(f"spec.containers[{i}].env", c.get("env"))
        return v


def _check_env(where: str, env: Any) -> None:
    """A pod's env, as Kubernetes reads it: a list of {name, value | valueFrom}, values strings.
    A mapping here was silently ignored by local mode and broke the operator's pod builder."""
    if env is None:
        return
    if not isinstance(env, list):
        raise FieldError(where, "must be a list of {name: ..., value: ...} entries")
    for j, e in enumerate(env):
        if not isinstance(e, Mapping):
            raise FieldError(f"{where}[{j}]", "must be a mapping {name: ..., value: ...}")
        if not isinstance(e.get("name"), str) or not e["name"]:
            raise FieldError(f"{where}[{j}].name", "is required")
        if "value" in e and not isinstance(e["value"], str):
            raise FieldError(f"{where}[{j}].value", f"must be a string (quote it: \"{e['value']}\")")


class TrainingConfig(_Model):
    type: Literal["tensorflow", "pytorch", "xgboost"]
    tasks: list[TaskSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _replica_types(self) -> "TrainingConfig":
        allowed = REPLICA_TYPES[self.type]
        seen: set[str] = set()
        for i, t in enumerate(self.tasks):
            rt = t.type.lower()
            if rt not in allowed:
                raise FieldError(
                    f"tasks[{i}].type", f"'{t.type}' is not a {self.type} replica type; expected one of {sorted(allowed)}"
                )
            if rt in seen:
                raise FieldError(f"tasks[{i}].type", f"'{t.type}' appears twice; each replica type may be listed once")
            seen.add(rt)
        return self


class WarmStartSpec(_Model):
    """AutoTune extension: the tuner starts from the completed trials of earlier experiments
    (Katib issue 1067, Optuna's enqueue/add_trial, NNI's resume), as observations that are
    not this experiment's trials. ``experiments``: AutoTuneExperiments of the same namespace
    on a cluster; earlier local runs by name (``<output>/<name>``) or by folder locally."""

    # (blank, '' included, is refused by _distinct, in the words of the CRD's rule)
    experiments: list[Annotated[str, Field(max_length=1024)]] = Field(min_length=1, max_length=16)
    # At most this many imported trials in all: each source's most recent first, the
    # sources in the order listed. Absent: every completed trial that fits.
    maxTrials: Int | None = Field(default=None, ge=1)  # Int: 'maxTrials: true' is not 1

    @field_validator("experiments")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        for i, e in enumerate(v):
            if not e.strip():  # as the CRD's rule on spec.warmStart.experiments[]
                raise FieldError(f"[{i}]", "must name an earlier experiment, not be blank")
        dup = sorted({e for e in v if v.count(e) > 1})
        if dup:
            raise ValueError(f"{dup} listed more than once")
        return v


COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent")
MAX_COLLECTOR_PATH_CHARS = 1024


class MetricsCollectorSpec(_Model):
    """Katib's metrics collectors (AutoTune extension): the trial's metrics are read from its
    output (StdOut: lines like ``accuracy=0.97``, operator/log_metrics.py), from a file it
    writes (File: such lines, or JSON lines) or from TensorBoard event files (TensorFlowEvent,
    operator/tfevents.py), and take the path of MLflow-logged metrics: the objective's values
    are the curve, the last of each the final result. The objective names come from
    spec.primaryMetric or spec.objectives."""

    kind: str
    # File: the file the trial writes; TensorFlowEvent: the directory holding its event files.
    path: str | None = Field(default=None, min_length=1, max_length=MAX_COLLECTOR_PATH_CHARS)
    # File only: TEXT lines matched with metricsFormat (as StdOut), or JSON (an object a line).
    format: Literal["TEXT", "JSON"] | None = None
    # Regexes whose group 1 is a metric's name and group 2 its value; default Katib's.
    metricsFormat: list[str] | None = None
    # Metrics kept beside the objective(s); any other name printed is ignored (as in Katib).
    additionalMetricNames: list[str] | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in COLLECTOR_KINDS:
            raise ValueError("is not supported; the kinds are StdOut (metrics printed by the trial), File "
                             "(written to a file) and TensorFlowEvent (TensorBoard event files). A trial reporting "
                             "by itself needs no collector: it uses the SDK or MLflow")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "\0" in v or not v.strip():
            raise ValueError("must be a file or directory path")
        if v.strip("/") in ("", "."):
            raise ValueError("is no place for metrics files; name a file or directory of its own, "
                             "e.g. /var/log/katib/metrics.log")
        return v

    @model_validator(mode="after")
    def _fields_of_kind(self) -> "MetricsCollectorSpec":
        # Each field belongs to some kinds; one given to another kind would be silently
        # unused (a JSON file read with regexes, a path never read), so it is refused.
        if self.kind == "StdOut":
            if self.path is not None:
                raise FieldError("path", "is for kind File or TensorFlowEvent; StdOut reads the trial's output")
            if self.format is not None:
                raise FieldError("format", "is for kind File; StdOut reads lines matched with metricsFormat")
            return self
        if self.path is None:
            what = ("the file the trial writes its metrics to, e.g. /var/log/katib/metrics.log" if self.kind == "File"
                    else "the directory the trial writes its TensorBoard event files to, e.g. /var/log/katib/tfevent")
            raise FieldError("path", f"is required for kind {self.kind}: {what}")
        if self.kind == "File" and self.path.endswith("/"):
            raise FieldError("path", f"'{self.path}' ends with '/'; kind File reads one file: name the file")
        if self.kind == "TensorFlowEvent" and self.format is not None:
            raise FieldError("format", "is for kind File; TensorFlowEvent reads TensorBoard event files")
        if self.metricsFormat is not None and not uses_formats(self):
            raise FieldError("metricsFormat", f"is for kind StdOut and File with format TEXT; "
                             f"{'JSON lines name their metrics' if self.kind == 'File' else 'event files tag theirs'}: "
                             f"leave it out")
        return self

    @field_validator("metricsFormat")
    @classmethod
    def _formats(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("is empty; leave it out for Katib's default format (name=value)")
        try:
            compile_formats(v)
        except FormatError as e:
            if e.index < 0:
                raise ValueError(str(e)) from None
            raise FieldError(f"[{e.index}]", str(e)) from None
        return v

    @field_validator("additionalMetricNames")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(v) > MAX_METRIC_NAMES:
            raise ValueError(f"lists {len(v)} names, at most {MAX_METRIC_NAMES}")
        for i, n in enumerate(v):
            if not n.strip():
                raise FieldError(f"[{i}]", "must name a metric, not be blank")
            if len(n) > MAX_METRIC_NAME_CHARS:
                raise FieldError(f"[{i}]", f"is {len(n)} characters, more than {MAX_METRIC_NAME_CHARS}")
        return v


def reads_files(mc: MetricsCollectorSpec | None) -> bool:
    """The collector reads files the trial writes (File, TensorFlowEvent), not its output."""
    return mc is not None and mc.kind != "StdOut"


def uses_formats(mc: MetricsCollectorSpec) -> bool:
    """The collector matches lines with metricsFormat (StdOut, and File with format TEXT)."""
    return mc.kind == "StdOut" or (mc.kind == "File" and mc.format != "JSON")


class AIStoreSpec(_Model):
    folder: str = Field(min_length=1)
    secret: str = Field(min_length=1)


class StorageSpec(_Model):
    """Where the tuner server keeps this experiment's history (a PVC size / class)."""

    size: str | None = None
    storageClassName: str | None = None


class ExperimentSpec(_Model):
    maxExecSeconds: Int | None = Field(default=None, ge=1)
    maxTrialNum: Int | None = Field(default=None, ge=1)
    # Katib's maxFailedTrialCount (AutoTune extension): this many failed trials end the
    # experiment ERROR instead of spending the rest of maxTrialNum on a broken trial.
    maxFailedTrialNum: Int | None = Field(default=None, ge=1)
    # NNI's maxTrialDuration (AutoTune extension): a trial running this long is stopped and
    # counts as FAILED, so a hung trial cannot hold its slot (or GPU) for ever.
    maxTrialSeconds: Int | None = Field(default=None, ge=1)
    # Katib's objective.goal (AutoTune extension): the search ends DONE as soon as the best
    # trial's final value reaches it (>= when maximizing, <= when minimizing); trials still
    # running are stopped, as they can no longer matter.
    objectiveGoal: FiniteNumber | None = None
    trialConcurrency: Int = Field(default=1, ge=1)
    searchSpace: str | dict[str, Any]
    trainingConfig: TrainingConfig
    tuner: TunerSpec | None = None
    assessor: AssessorSpec | None = None
    advisor: AdvisorSpec | None = None
    aistore: AIStoreSpec | None = None
    storage: StorageSpec | str | None = None
    # AutoTune extension: the RNG seed, so a run can be repeated.
    seed: Int = Field(default=0, ge=0)
    # AutoTune extension: several objectives, each a key of the reported metric dict with
    # its own direction (then no optimize_mode anywhere). Absent: one objective, as in NNI.
    objectives: list[Objective] | None = Field(default=None, max_length=8)  # the CRD's maxItems
    # Azure ML's primary_metric (AutoTune extension): the metric a trial logs through MLflow
    # (mlflow.log_metric) that is the objective; README "Your training script".
    primaryMetric: str | None = Field(default=None, min_length=1, max_length=250)
    # Katib's objective.metricStrategies: which logged value of a metric (MLflow, or read from
    # the trial's output) is its final one; unlisted metrics take their latest.
    # One per metric a collector may read: the objective(s) and up to 64 additional names.
    metricStrategies: list[MetricStrategy] | None = Field(default=None, max_length=128)
    finalTraining: FinalTrainingSpec | None = None
    warmStart: WarmStartSpec | None = None
    # Katib's metrics collectors (AutoTune extension): metrics read from the trial's output
    # (StdOut), a file it writes (File) or its TensorBoard event files (TensorFlowEvent).
    metricsCollector: MetricsCollectorSpec | None = None

    # The CRD leaves these two schemaless (a string or a mapping) and its admission policy
    # (crds/autotuneexperiments-immutable.yaml) refuses other shapes with these same words;
    # pydantic's own two "should be a valid string/dictionary" lines said less.
    @field_validator("searchSpace", mode="before")
    @classmethod
    def _space_shape(cls, v: Any) -> Any:
        if not isinstance(v, (str, Mapping)):
            raise ValueError("must be the search space as a JSON string (a |- block) or a mapping "
                             '{"name": {"_type": ..., "_value": [...]}}, not a list, number or boolean')
        return v

    @field_validator("storage", mode="before")
    @classmethod
    def _storage_shape(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, (str, Mapping, StorageSpec)):
            raise ValueError("must be a string or a mapping {size, storageClassName}, not a list, number or boolean")
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[Objective] | None) -> list[Objective] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError(
                "needs at least 2 objectives; for one objective leave spec.objectives out and set optimize_mode in classArgs"
            )
        for i, o in enumerate(v):
            if not o.name.strip():  # the CRD's rule on spec.objectives[].name says the same
                raise FieldError(f"[{i}].name", "must name a metric, not be blank")
        dup = duplicate_names(v)
        if dup:
            raise ValueError(f"objective name(s) {dup} appear more than once; each objective needs its own metric")
        return v

    @model_validator(mode="after")
    def _tuner_or_advisor(self) -> "ExperimentSpec":
        if self.tuner is None and self.advisor is None:
            raise FieldError("tuner", "is required (or spec.advisor): the experiment needs an algorithm")
        if self.tuner is not None and self.advisor is not None:
            raise FieldError("advisor", "cannot be given together with spec.tuner (an advisor is a tuner); keep one")
        if self.objectiveGoal is not None and self.objectives is not None:
            raise FieldError("objectiveGoal", "applies to a single objective; with spec.objectives the search returns a "
                             "Pareto front, which no one value can end: leave objectiveGoal out")
        if self.primaryMetric is not None and self.objectives is not None:
            raise FieldError("primaryMetric", "names the one objective metric; with spec.objectives each objective's "
                             "name is already the MLflow metric it is read from: leave primaryMetric out")
        if self.primaryMetric is not None and not self.primaryMetric.strip():
            raise FieldError("primaryMetric", "must name a metric, not be blank")
        if self.metricsCollector is not None and self.primaryMetric is None and self.objectives is None:
            raise FieldError("metricsCollector", "needs spec.primaryMetric (or spec.objectives) to say which printed "
                             "metric is the objective, e.g. primaryMetric: accuracy")
        if (self.metricsCollector is not None and self.metricsCollector.metricsFormat is None
                and uses_formats(self.metricsCollector)):
            self._check_default_format_names(self.metricsCollector)
        if self.metricStrategies:
            self._check_strategies(self.metricStrategies)
        return self

    def _check_default_format_names(self, mc: MetricsCollectorSpec) -> None:
        """Katib's default format reads names of letters, digits, '_', '|' and '-' only: a
        metric named 'val/accuracy' would never be read and every trial would fail."""
        named = ([("primaryMetric", self.primaryMetric)] if self.primaryMetric else []) + [
            (f"objectives[{i}].name", o.name) for i, o in enumerate(self.objectives or [])] + [
            (f"metricsCollector.additionalMetricNames[{i}]", n) for i, n in enumerate(mc.additionalMetricNames or [])]
        for where, name in named:
            if not DEFAULT_NAME.fullmatch(name):
                raise FieldError(where, f"'{name}' can never be read with the default metricsFormat (a name there is "
                                 "letters, digits, '_', '|' and '-'); rename the metric or give "
                                 "spec.metricsCollector.metricsFormat")

    def _check_strategies(self, strategies: list[MetricStrategy]) -> None:
        if self.primaryMetric is None and self.objectives is None:
            raise FieldError("metricStrategies", "choose among logged values of the objective's metric: set "
                             "spec.primaryMetric (or spec.objectives) to say which metric that is")
        seen: set[str] = set()
        for i, st in enumerate(strategies):
            if not st.name.strip():  # as the CRD's rule on spec.metricStrategies[].name
                raise FieldError(f"metricStrategies[{i}].name", "must name a metric, not be blank")
            if st.name in seen:
                raise FieldError(f"metricStrategies[{i}].name", f"'{st.name}' is listed twice; give each metric one "
                                 "strategy")
            seen.add(st.name)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.'; at most {MAX_NAME_CHARS} characters)")
        if len(v) > MAX_NAME_CHARS:
            raise ValueError(f"is {len(v)} characters; at most {MAX_NAME_CHARS} characters: each trial's Job is named "
                             f"<name>-<n> or <name>-final-<n>, and Kubernetes allows 63")
        return v


class AutoTuneExperiment(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: ExperimentSpec
    status: dict[str, Any] | None = None

    @field_validator("apiVersion")
    @classmethod
    def _api(cls, v: str) -> str:
        if v != f"{API_GROUP}/{API_VERSION}":
            raise ValueError(f"must be {API_GROUP}/{API_VERSION}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v != KIND:
            raise ValueError(f"must be {KIND}")
        return v


@dataclass
class Experiment:
    """A validated experiment: the manifest plus what validation derived from it."""

    manifest: AutoTuneExperiment
    space: SearchSpace
    optimize_mode: OptimizeMode
    mode_source: str  # where optimize_mode came from, for the user
    algorithm: str  # builtinTunerName (or advisor name)
    class_args: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.metadata.name

    @property
    def spec(self) -> ExperimentSpec:
        return self.manifest.spec

    def tuner_config(self) -> dict[str, Any]:
        """What the tuner server needs to host this experiment's algorithms."""
        s = self.spec
        return {
            "searchSpace": s.searchSpace if isinstance(s.searchSpace, str) else json.dumps(s.searchSpace),
            "tuner": {"name": self.algorithm, "classArgs": self.class_args},
            "assessor": (
                {"name": s.assessor.builtinAssessorName, "classArgs": s.assessor.classArgs} if s.assessor else None
            ),
            "optimizeMode": self.optimize_mode.value,
            "seed": s.seed,
            **({"objectives": [o.model_dump(mode="json") for o in s.objectives]} if s.objectives else {}),
            **({"primaryMetric": s.primaryMetric} if s.primaryMetric else {}),
            **({"metricStrategies": [m.model_dump() for m in s.metricStrategies]} if s.metricStrategies else {}),
        }

    def template_env_names(self) -> frozenset[str]:
        """Every env variable name the trial template's containers set (a user's own
        MLFLOW_TRACKING_URI there keeps AutoTune's MLflow variables out: executors/base.py)."""
        return frozenset(e["name"] for t in self.spec.trainingConfig.tasks
                         for c in (t.template.get("spec") or {}).get("containers") or []
                         for e in c.get("env") or [] if isinstance(e, Mapping) and isinstance(e.get("name"), str))


# Parts of a pydantic error location that are not fields: the member of a union that was
# tried ("str", "dict[str,any]", "StorageSpec") or a validator ("function-after[...]").
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _is_tag(part: str) -> bool:
    return part.startswith("function-") or "[" in part or part in _TYPE_TAGS or part in _model_names()


def _model_names() -> frozenset[str]:
    return frozenset(c.__name__ for c in (*_Model.__subclasses__(), AutoTuneExperiment, Metadata))


def _loc(loc: tuple[Any, ...]) -> str:
    """('spec', 'trainingConfig', 'tasks', 0, 'replicas') -> 'spec.trainingConfig.tasks[0].replicas'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_tag(str(part)):
            out += ("." if out else "") + str(part)
    return out


def _join(where: str, sub: str) -> str:
    if not where:
        return sub
    return where + sub if sub.startswith("[") else f"{where}.{sub}"


def _shown(v: Any) -> str | None:
    """The offending value, when it is short enough to help on one line."""
    if isinstance(v, (dict, list)):
        return None
    text = repr(v)
    return None if "\n" in str(v) or len(text) > 60 else text


def _pydantic_problems(e: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in e.errors():
        where = _loc(err["loc"])
        msg = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            where, msg = _join(where, cause.path), str(cause)
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif err["type"] == "missing":
            msg = "is required"
        elif not isinstance(cause, FieldError) and (got := _shown(err.get("input"))) is not None:
            msg = f"{msg} (got {got})"
        line = f"{where}: {msg}" if where else msg
        if line not in problems:
            problems.append(line)
    return problems


def resolve_mode(spec: ExperimentSpec) -> tuple[OptimizeMode, str]:
    """The experiment's objective direction: tuner, then advisor, then assessor; else maximize."""
    for where, block in (("spec.tuner", spec.tuner), ("spec.advisor", spec.advisor), ("spec.assessor", spec.assessor)):
        if block is not None and block.classArgs.get("optimize_mode") in ("maximize", "minimize"):
            return OptimizeMode(block.classArgs["optimize_mode"]), f"{where}.classArgs.optimize_mode"
    return OptimizeMode.MAXIMIZE, "default (no optimize_mode given: maximize)"


def with_mode(algorithm: str, args: Mapping[str, Any], mode: OptimizeMode) -> dict[str, Any]:
    """classArgs with the experiment's direction filled in, so every algorithm agrees on it."""
    cls = tuner_classes().get(algorithm.lower()) or advisor_classes().get(algorithm.lower())
    out = dict(args)
    if cls is not None and "optimize_mode" not in cls.ignored_args:
        out.setdefault("optimize_mode", mode.value)
    return out


def validate_manifest(doc: Any) -> Experiment:
    """Validate a parsed manifest document; raises SpecError listing every problem found."""
    if not isinstance(doc, Mapping):
        raise SpecError([f"the manifest must be a YAML mapping, got {type(doc).__name__}"])
    try:
        m = AutoTuneExperiment.model_validate(doc)
    except ValidationError as e:
        raise SpecError(_pydantic_problems(e)) from None
    spec = m.spec
    problems: list[str] = []
    if isinstance(spec.searchSpace, str):
        try:
            _json_loads(spec.searchSpace)
        except (_DuplicateKey, _TooDeep) as e:
            raise SpecError([f"spec.searchSpace: {e}"]) from None
        except ValueError:
            pass  # not JSON at all: parse_search_space says where
    try:
        space = parse_search_space(spec.searchSpace)
    except SearchSpaceError as e:
        raise SpecError([f"spec.{e}"]) from None
    except RecursionError:  # a choice's values hundreds of lists deep: the parser walks them recursively
        raise SpecError(["spec.searchSpace: is nested too deeply to read (hundreds of levels of [ or {)"]) from None
    mode, source = resolve_mode(spec)
    warnings: list[str] = []
    objectives = [o.optimizeMode for o in spec.objectives or []]
    bad_modes = {} if spec.objectives else _mode_problems(spec)
    problems += bad_modes.values()
    if spec.objectives:
        problems += _multi_objective_problems(spec)
        mode, source = spec.objectives[0].optimizeMode, "spec.objectives[0]"
    if spec.tuner is not None:
        algorithm, args, where = spec.tuner.builtinTunerName, dict(spec.tuner.classArgs), "spec.tuner"
    else:
        assert spec.advisor is not None
        algorithm, args, where = spec.advisor.builtinAdvisorName, dict(spec.advisor.classArgs), "spec.advisor"
        if not is_advisor(algorithm):
            problems.append(f"spec.advisor.builtinAdvisorName: unknown advisor '{algorithm}'; known advisors: {advisor_names()}")
        elif objectives:
            problems.append("spec.advisor: advisors optimize one objective; remove spec.objectives or use a multi-objective tuner")
    tuner: Tuner | None = None
    if not problems:
        try:
            tuner_args = args if objectives else with_mode(algorithm, args, mode)
            if spec.advisor is not None:
                tuner = create_advisor(algorithm, space, tuner_args, seed=spec.seed)
            else:
                tuner = create_tuner(algorithm, space, tuner_args, seed=spec.seed, objectives=objectives)
            warnings += tuner.warnings
            warnings += _spelling_warning(f"{where}.{'builtinTunerName' if spec.tuner else 'builtinAdvisorName'}",
                                          algorithm, tuner.name)
        except TunerArgsError as e:
            problems.append(f"{where}: {e}")
    if spec.assessor is not None and not spec.objectives and "spec.assessor" not in bad_modes:
        a = spec.assessor
        try:
            assessor = create_assessor(a.builtinAssessorName, a.classArgs, default_mode=mode)
            warnings += _spelling_warning("spec.assessor.builtinAssessorName", a.builtinAssessorName, assessor.name)
            if assessor.mode is not mode:
                warnings.append(
                    f"spec.assessor.classArgs.optimize_mode is '{assessor.mode.value}' but the objective is "
                    f"'{mode.value}' ({source}); the assessor follows its own setting"
                )
        except ValueError as e:
            problems.append(f"spec.assessor: {e}")
    problems += _placeholder_problems(spec, space, tuner)
    problems += _warm_start_problems(spec, m.metadata.name, tuner)
    if problems:
        raise SpecError(problems)
    if source.startswith("default"):
        warnings.append("no optimize_mode given anywhere: the objective is maximized")
    if spec.maxTrialNum is None and spec.maxExecSeconds is None and space.cardinality() is None:
        warnings.append("neither spec.maxTrialNum nor spec.maxExecSeconds is set and the search space is "
                        "infinite: the experiment runs until it is stopped")
    return Experiment(m, space, mode, source, algorithm, args, warnings)


def _mode_problems(spec: ExperimentSpec) -> dict[str, str]:
    """An optimize_mode that is neither word, in any block. Tuners that ignore the direction
    (GridSearch, Batch) accepted 'minimise' and the experiment silently maximized."""
    out = {}
    for where, block in (("spec.tuner", spec.tuner), ("spec.advisor", spec.advisor), ("spec.assessor", spec.assessor)):
        v = block.classArgs.get("optimize_mode") if block is not None else None
        if v is not None and v not in ("maximize", "minimize"):
            out[where] = f"{where}: classArgs.optimize_mode must be 'maximize' or 'minimize', got {v!r}"
    return out


def _spelling_warning(field: str, given: str, name: str) -> list[str]:
    """Local mode finds algorithms by any case and by alias; the CRD's enum takes only the name."""
    if given == name:
        return []
    return [f"{field} '{given}' is read as '{name}' here, but a cluster accepts only '{name}'; write that"]


def _multi_objective_problems(spec: ExperimentSpec) -> list[str]:
    """spec.objectives gives every direction: nothing else may give one, and early stopping
    (which compares one curve across trials) has no single metric to compare."""
    problems = []
    for where, block in (("spec.tuner", spec.tuner), ("spec.advisor", spec.advisor), ("spec.assessor", spec.assessor)):
        if block is not None and "optimize_mode" in block.classArgs:
            problems.append(
                f"{where}.classArgs.optimize_mode: conflicts with spec.objectives, which gives each objective its "
                f"optimizeMode; remove it"
            )
    if spec.assessor is not None:
        problems.append(
            "spec.assessor: early stopping compares one metric across trials and is not available with "
            "spec.objectives; remove the assessor"
        )
    return problems


def _warm_start_problems(spec: ExperimentSpec, name: str, tuner: Tuner | None) -> list[str]:
    """What can be said of spec.warmStart without the earlier experiments: not itself, and an
    algorithm that can learn from imported trials."""
    ws = spec.warmStart
    if ws is None:
        return []
    problems = [f"spec.warmStart.experiments[{i}]: '{e}' is this experiment itself; name an earlier one"
                for i, e in enumerate(ws.experiments) if e == name]
    if tuner is not None and tuner.warm_start_refused:
        problems.append(f"spec.warmStart: {tuner.name} takes no imported trials ({tuner.warm_start_refused}); "
                        f"remove spec.warmStart or use a model-based tuner such as TPE")
    return problems


def _placeholder_problems(spec: ExperimentSpec, space: SearchSpace, tuner: Tuner | None) -> list[str]:
    """Placeholders in command, args and env values: each names a parameter (every trial
    failed to start otherwise), and a near miss such as ${parameter.lr} would have reached
    the trial as literal text."""
    batch = tuner is not None and tuner.name == "Batch"  # Batch parameter sets carry their own keys
    top_keys = {space[k].name: k for k in space.top}
    top_names = set(top_keys)
    problems = []
    for ti, task in enumerate(spec.trainingConfig.tasks):
        # initContainers too: a cluster's workload fills them in as well (workloads/common.py).
        inits = task.template["spec"].get("initContainers")
        pods = [("containers", ci, c) for ci, c in enumerate(task.template["spec"]["containers"])]
        pods += [("initContainers", ci, c) for ci, c in enumerate(inits if isinstance(inits, list) else [])
                 if isinstance(c, Mapping)]
        for kind, ci, c in pods:
            texts = [(f"{key}[{ai}]", a) for key in ("command", "args") for ai, a in enumerate(_list(c.get(key)))
                     if isinstance(a, str)]
            texts += [(f"env[{ei}].value", e["value"]) for ei, e in enumerate(_list(c.get("env")))
                      if isinstance(e, Mapping) and isinstance(e.get("value"), str)]
            for field, a in texts:
                where = f"spec.trainingConfig.tasks[{ti}].template.spec.{kind}[{ci}].{field}"
                for ref in PLACEHOLDER.findall(a):
                    if batch:
                        continue
                    parts = ref.split(".")
                    # A name may hold dots ('a.b'): every top-level name the placeholder starts with, longest first.
                    heads = [j for j in range(len(parts), 0, -1) if ".".join(parts[:j]) in top_names]
                    if not heads:
                        problems.append(
                            f"{where}: ${{parameters.{ref}}} names no search-space parameter (have {sorted(top_names)})"
                        )
                    elif not any(_reaches(space, top_keys[".".join(parts[:j])], parts[j:]) for j in heads):
                        first, rest = ".".join(parts[:heads[0]]), parts[heads[0]:]
                        problems.append(f"{where}: ${{parameters.{ref}}} is never a trial's value: "
                                        f"'{first}' has no '{'.'.join(rest)}' in any of its values")
                if NEAR_PLACEHOLDER.search(PLACEHOLDER.sub("", a)):
                    problems.append(f"{where}: {a!r} looks like a parameter placeholder; write ${{parameters.NAME}}")
        for where, a in _texts(task.template, f"spec.trainingConfig.tasks[{ti}].template"):
            if not FILLED_IN.search(where) and (ref := PLACEHOLDER.search(a)):
                problems.append(f"{where}: {ref.group(0)} is not filled in here (it would reach the trial as "
                                f"written); parameters are replaced in containers' command, args and env values only")
    return problems


# Where ${parameters.NAME} is replaced (executors/local.py, workloads/common.py).
FILLED_IN = re.compile(r"\.spec\.(containers|initContainers)\[\d+\]\.(command\[\d+\]|args\[\d+\]|env\[\d+\]\.value)$")


def _texts(obj: Any, path: str) -> list[tuple[str, str]]:
    """Every (path, string) in a parsed document."""
    if isinstance(obj, Mapping):
        return [t for k, v in obj.items() for t in _texts(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [t for i, v in enumerate(obj) for t in _texts(v, f"{path}[{i}]")]
    return [(path, obj)] if isinstance(obj, str) else []


def _list(v: Any) -> list[Any]:
    """A list field as given, else none (an initContainer's fields are not type-checked
    here: the API server refuses its wrong types)."""
    return v if isinstance(v, list) else []


NOT_FOUND = object()  # follow_dotted: no such value (a null value is one)


def follow_dotted(value: Any, path: list[str]) -> Any:
    """What ``path`` (a placeholder's name split at its dots) names in ``value``, or NOT_FOUND.

    Dots nest (``opt.lr``: a nested choice's sub-parameter), but a name may hold dots itself:
    the longest name that leads on is taken, so a parameter 'a.b' is ${parameters.a.b}
    (split at every dot it named nothing, and such a parameter could not be placed at all).
    """
    if not path:
        return value
    if not isinstance(value, Mapping):
        return NOT_FOUND
    for j in range(len(path), 0, -1):
        name = ".".join(path[:j])
        if name in value:
            found = follow_dotted(value[name], path[j:])
            if found is not NOT_FOUND:
                return found
    return NOT_FOUND


def _reaches(space: SearchSpace, key: str, path: list[str]) -> bool:
    """Some trial's value of parameter ``key`` has ``path`` (``_name``, a nested choice's
    sub-parameter, a key of a mapping option). A dotted placeholder no value has, such as
    ${parameters.lr.value} for a number, failed every trial at its start."""
    if not path:
        return True
    d = space[key]
    for opt in d.options if d.is_categorical else ():
        if isinstance(opt, NestedOption):
            # Names may hold dots, as at the top (substitute() takes the longest that leads on).
            if path == ["_name"] or any(space[c].name == ".".join(path[:j]) and _reaches(space, c, path[j:])
                                        for c in opt.children for j in range(1, len(path) + 1)):
                return True
        elif follow_dotted(opt, path) is not NOT_FOUND:  # a key holding null is there (filled in as `null`)
            return True
    return False


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (kubectl refuses it;
    PyYAML alone would silently keep the last one, e.g. the second of two ``tuner:``)."""

    def construct_document(self, node: yaml.Node) -> Any:
        data = super().construct_document(node)
        if _expanded_size(data, {}) > MAX_EXPANDED_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"found a document that expands to more than {MAX_EXPANDED_VALUES:,} values through "
                f"aliases (*name); write the values out", node.start_mark)
        return data


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # '<<: *anchor' merges; its keys may be overridden on purpose
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
        except TypeError:
            continue  # an unhashable key: construct_mapping says so
        if dup:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)

# Values a document may expand to through aliases (*name): nine nested lists of nine aliases
# are a few lines of YAML but 387 million values, and validating, saving or converting them
# never ended (kubectl refuses such "excessive aliasing" too). A real manifest has thousands.
MAX_EXPANDED_VALUES = 1_000_000


def _expanded_size(obj: Any, memo: dict[int, int]) -> int:
    """How many values ``obj`` is once every alias is expanded; shared nodes counted once each
    time they appear, computed once (so this is cheap however large the result)."""
    if not isinstance(obj, (dict, list)):
        return 1
    if id(obj) not in memo:
        items = list(obj.keys()) + list(obj.values()) if isinstance(obj, dict) else obj
        memo[id(obj)] = 1 + sum(_expanded_size(v, memo) for v in items)
    return memo[id(obj)]


def _yaml_problem(source: str, e: yaml.YAMLError) -> str:
    """One line with the file, line and column (PyYAML's own text spans several lines and
    names the input '<unicode string>')."""
    if isinstance(e, yaml.reader.ReaderError):  # a control character, e.g. UTF-16 without a byte-order mark
        return f"{source} is not valid YAML: character #x{e.character:04x} at offset {e.position} is not allowed"
    if not isinstance(e, yaml.MarkedYAMLError) or e.problem_mark is None:
        return f"{source} is not valid YAML: {e}"
    m = e.problem_mark
    where = f"{source} is not valid YAML: line {m.line + 1}, column {m.column + 1}: {e.problem}"
    if e.context and e.context_mark is not None and e.context_mark.line != m.line:
        where += f" ({e.context} at line {e.context_mark.line + 1})"
    return where


def load_experiment_text(text: str, source: str = "<input>") -> Experiment:
    try:
        docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        raise SpecError([_yaml_problem(source, e)]) from None
    except RecursionError:  # PyYAML's parser recurses once per level of [ or {
        raise SpecError([f"{source} is not valid YAML: nested too deeply to read (thousands of levels)"]) from None
    if not docs:
        raise SpecError([f"{source} is empty"])
    exps = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == KIND]
    if len(docs) > 1:
        if len(exps) != 1:
            raise SpecError([f"{source} holds {len(docs)} documents; exactly one must be an {KIND}"])
        return validate_manifest(exps[0])
    return validate_manifest(docs[0])


def load_experiment(path: str) -> Experiment:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        # UTF-16 with a byte-order mark (what PowerShell's '>' writes) is YAML too, as kubectl reads it.
        text = raw.decode("utf-16") if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else raw.decode("utf-8")
    except OSError as e:
        raise SpecError([f"cannot read {path}: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise SpecError([f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                         f"a manifest is a YAML text file"]) from None
    return load_experiment_text(text, source=path)
