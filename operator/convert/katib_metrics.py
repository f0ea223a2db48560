"""How a Katib trial's metrics reach the experiment -> ``spec.metricsCollector`` and
``spec.metricStrategies``.

Field facts (Katib's common_types.go and experiment_defaults.go): a missing
``metricsCollectorSpec`` means the StdOut collector, which parses the main container's output
with ``source.filter.metricsFormat`` (default ``name=value``) and keeps only the objective and
additional metric names. The File collector reads ``source.fileSystemPath.path`` (default
/var/log/katib/metrics.log, kind File) in ``format`` TEXT (default; lines matched with the
filter) or JSON; the TensorFlowEvent collector reads the event files under the directory
``source.fileSystemPath.path`` (default /var/log/katib/tfevent/, kind Directory). Both become
``spec.metricsCollector`` with that ``path`` (and ``format``). A metric's value is chosen by ``objective.metricStrategies``;
unset, the objective metric takes the best value its trial reported (``max`` when
maximizing, ``min`` when minimizing), and so does every additional metric: Katib's
setDefaultObjective gives them the objective type's extreme too (its comment says latest,
its code does not). AutoTune's own default is the latest value, so these defaults are
written out: a converted experiment ranks its trials, and shows their extra metrics, as
Katib did.
"""

from __future__ import annotations

from typing import Any

from autotune_operator.convert.common import ConvertError, mapping
from autotune_operator.log_metrics import FormatError, compile_format

STRATEGIES = ("min", "max", "latest")
# Collectors whose trials report by themselves (Katib's SDK, report_metrics): the AutoTune
# equivalent is the trial SDK or MLflow, nothing to collect.
SELF_REPORTING = {"None", "Push"}


def _formats(source: dict[str, Any], where: str) -> list[str]:
    flt = mapping(source.get("filter"), f"{where}.filter")
    raw = flt.get("metricsFormat")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConvertError(f"{where}.filter.metricsFormat", f"must be a list of regular expressions, got {raw!r}")
    for i, fmt in enumerate(raw):
        field = f"{where}.filter.metricsFormat[{i}]"
        if not isinstance(fmt, str):
            raise ConvertError(field, f"must be a regular expression, got {fmt!r}")
        try:  # the check spec.metricsCollector makes, named by the Katib field
            compile_format(fmt, i)
        except FormatError as e:
            raise ConvertError(field, str(e)) from None
    return list(raw)


def convert_collector(spec: dict[str, Any], additional: list[str], notes: list[str]) -> dict[str, Any] | None:
    """``spec.metricsCollectorSpec`` -> AutoTune's ``metricsCollector``, or None (with a note)
    when the trial must report through the SDK or MLflow instead."""
    mcs = mapping(spec.get("metricsCollectorSpec"), "spec.metricsCollectorSpec")
    collector = mapping(mcs.get("collector"), "spec.metricsCollectorSpec.collector")
    kind = collector.get("kind", "StdOut")
    if not isinstance(kind, str):
        raise ConvertError("spec.metricsCollectorSpec.collector.kind", f"must be a string, got {type(kind).__name__}")
    source = mapping(mcs.get("source"), "spec.metricsCollectorSpec.source")
    if kind in SELF_REPORTING:
        notes.append(f"spec.metricsCollectorSpec.collector.kind {kind}: the trial reports its metrics itself; with "
                     f"AutoTune it calls autotune.report_final_result(value) or mlflow.log_metric(name, value) "
                     f"instead of Katib's SDK - see README \"Your training script\"")
        return None
    if kind not in FILE_DEFAULTS and kind != "StdOut":
        notes.append(f"spec.metricsCollectorSpec.collector.kind {kind}: AutoTune reads metrics from the trial's "
                     f"output (StdOut), a file (File), TensorFlow event files (TensorFlowEvent) or its SDK/MLflow "
                     f"calls, not from Prometheus or a custom collector; the trial must print 'name=value' lines or "
                     f"report with the SDK; dropped")
        return None
    out: dict[str, Any] = {"kind": kind}
    where = "spec.metricsCollectorSpec.source"
    if kind == "StdOut":
        if source.get("fileSystemPath") or source.get("httpGet"):
            notes.append("spec.metricsCollectorSpec.source.fileSystemPath/httpGet: not read by the StdOut collector "
                         "(in Katib either); dropped")
        formats = _formats(source, where)
    else:
        out.update(_file_source(kind, source, where))
        if out.get("format") == "JSON" or kind == "TensorFlowEvent":
            formats = []
            if mapping(source.get("filter"), f"{where}.filter").get("metricsFormat") is not None:
                raise ConvertError(f"{where}.filter.metricsFormat", f"applies to StdOut and File TEXT lines, not to "
                                   f"{'JSON lines' if kind == 'File' else 'TensorFlow event files'} (Katib refuses it "
                                   f"too); leave it out")
        else:
            formats = _formats(source, where)
        if source.get("httpGet"):
            notes.append(f"{where}.httpGet: not read by the {kind} collector (in Katib either); dropped")
    if formats:
        out["metricsFormat"] = formats
    if additional:
        out["additionalMetricNames"] = list(additional)
    for k in sorted(set(collector) - {"kind"}):
        notes.append(f"spec.metricsCollectorSpec.collector.{k}: dropped")
    return out


# Katib's defaults (experiment_defaults.go setDefaultMetricsCollector, common_types.go): each
# file collector's fileSystemPath kind and path.
FILE_DEFAULTS = {"File": ("File", "/var/log/katib/metrics.log"),
                 "TensorFlowEvent": ("Directory", "/var/log/katib/tfevent/")}


def _file_source(kind: str, source: dict[str, Any], where: str) -> dict[str, Any]:
    """``source.fileSystemPath`` of a File or TensorFlowEvent collector -> path (and format)."""
    fsp = mapping(source.get("fileSystemPath"), f"{where}.fileSystemPath")
    want_kind, default_path = FILE_DEFAULTS[kind]
    fs_kind = fsp.get("kind", want_kind)
    if fs_kind != want_kind:
        raise ConvertError(f"{where}.fileSystemPath.kind", f"must be {want_kind} for the {kind} collector (as Katib "
                           f"requires), got {fs_kind!r}")
    path = fsp.get("path") or default_path
    if not isinstance(path, str):
        raise ConvertError(f"{where}.fileSystemPath.path", f"must be a path, got {path!r}")
    out: dict[str, Any] = {"path": path}
    fmt = fsp.get("format")
    if kind == "File" and fmt is not None:
        if fmt not in ("TEXT", "JSON"):
            raise ConvertError(f"{where}.fileSystemPath.format", f"must be TEXT or JSON, got {fmt!r}")
        if fmt == "JSON":
            out["format"] = "JSON"
    elif fmt is not None:
        raise ConvertError(f"{where}.fileSystemPath.format", "applies to the File collector only; leave it out")
    return out


def convert_strategies(obj: dict[str, Any], metric: str, additional: list[str], mode: str) -> list[dict[str, str]]:
    """``objective.metricStrategies`` with Katib's defaults made explicit for the objective
    and the additional metrics (AutoTune's default, ``latest``, needs no entry)."""
    raw = obj.get("metricStrategies") or []
    if not isinstance(raw, list):
        raise ConvertError("spec.objective.metricStrategies", f"must be a list of {{name, value}}, got {raw!r}")
    extreme = "max" if mode == "maximize" else "min"
    chosen = {name: extreme for name in [metric, *additional]}
    for i, s in enumerate(raw):
        where = f"spec.objective.metricStrategies[{i}]"
        s = mapping(s, where, required=True)
        name, value = s.get("name"), s.get("value")
        if name != metric and name not in additional:
            raise ConvertError(f"{where}.name", f"'{name}' is neither objectiveMetricName nor in additionalMetricNames")
        if value not in STRATEGIES:
            raise ConvertError(f"{where}.value", f"must be one of {', '.join(STRATEGIES)}, got {value!r}")
        chosen[name] = value
    return [{"name": n, "value": v} for n, v in chosen.items() if v != "latest"]
