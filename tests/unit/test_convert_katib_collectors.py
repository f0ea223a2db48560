"""`autotune convert` of Katib's File and TensorFlowEvent metrics collectors: they become
spec.metricsCollector with the same path and format (Katib's defaults written out), the
result is a manifest AutoTune accepts, and fields Katib would refuse name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autotune_operator.convert import ConvertError, convert_katib
from autotune_operator.executors.metrics_path import plan_path
from autotune_operator.spec import validate_manifest
from tests.unit.test_convert_katib import container, has_note, load


def with_collector(mcs: dict[str, Any], command: list[str] | None = None) -> dict[str, Any]:
    doc = load("random-job.yaml")
    doc["spec"]["metricsCollectorSpec"] = mcs
    if command is not None:
        c = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
        c["command"] = command
    return doc


def converted(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    conv = convert_katib(doc)
    validate_manifest(conv.manifest)  # AutoTune's own validator accepts it
    return conv.manifest, conv.notes


def test_a_file_collector_keeps_its_path_format_and_filter() -> None:
    fmt = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"
    m, notes = converted(with_collector({
        "collector": {"kind": "File"},
        "source": {"filter": {"metricsFormat": [fmt]},
                   "fileSystemPath": {"path": "/katib/mnist.log", "kind": "File", "format": "TEXT"}}}))
    assert m["spec"]["metricsCollector"] == {"kind": "File", "path": "/katib/mnist.log", "metricsFormat": [fmt],
                                             "additionalMetricNames": ["Train-accuracy"]}
    assert not has_note(notes, "metricsCollectorSpec")
    # The StdOut-only strategies note is not there either: the metrics are collected.
    assert not has_note(notes, "objectiveMetricName")


def test_a_json_file_collector_and_katibs_defaults() -> None:
    m, _ = converted(with_collector({"collector": {"kind": "File"},
                                     "source": {"fileSystemPath": {"path": "/katib/m.json", "format": "JSON"}}}))
    assert m["spec"]["metricsCollector"]["format"] == "JSON"
    assert m["spec"]["metricsCollector"]["path"] == "/katib/m.json"
    # Nothing but the kind: Katib's defaults (File, /var/log/katib/metrics.log, TEXT).
    m, _ = converted(with_collector({"collector": {"kind": "File"}}))
    assert m["spec"]["metricsCollector"] == {"kind": "File", "path": "/var/log/katib/metrics.log",
                                             "additionalMetricNames": ["Train-accuracy"]}
    m, _ = converted(with_collector({"collector": {"kind": "TensorFlowEvent"}}))
    assert m["spec"]["metricsCollector"] == {"kind": "TensorFlowEvent", "path": "/var/log/katib/tfevent/",
                                             "additionalMetricNames": ["Train-accuracy"]}


def test_katibs_tf_mnist_with_summaries_converts_and_runs_locally() -> None:
    """Katib's tf-mnist-with-summaries shape: the collector reads <log-path>/test while the
    trial is given <log-path>; names with '/' are fine for event files."""
    doc = with_collector({"collector": {"kind": "TensorFlowEvent"},
                          "source": {"fileSystemPath": {"path": "/mnist-with-summaries-logs/test", "kind": "Directory"}}},
                         ["python", "/opt/mnist.py", "--learning-rate=${trialParameters.learningRate}",
                          "--log-path=/mnist-with-summaries-logs"])
    doc["spec"]["objective"]["objectiveMetricName"] = "accuracy"
    doc["spec"]["objective"]["additionalMetricNames"] = ["train/loss"]
    m, notes = converted(doc)
    mc = m["spec"]["metricsCollector"]
    assert mc == {"kind": "TensorFlowEvent", "path": "/mnist-with-summaries-logs/test",
                  "additionalMetricNames": ["train/loss"]}
    # Local mode gives each trial its own copy of the directory the trial is given.
    plan = plan_path(mc["path"], container(m)["command"], {})
    assert plan is not None and (plan.given, plan.rest) == ("/mnist-with-summaries-logs", "test")
    assert plan.trial_path(Path("/o/t")) == Path("/o/t/metrics/mnist-with-summaries-logs/test")


@pytest.mark.parametrize("mcs, field", [
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/x", "kind": "Directory"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.kind"),
    ({"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "/x", "kind": "File"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.kind"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/x", "format": "CSV"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.format"),
    ({"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "/x", "format": "JSON"}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.format"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/x", "format": "JSON"},
                                                "filter": {"metricsFormat": ["(a)=(b)"]}}},
     "spec.metricsCollectorSpec.source.filter.metricsFormat"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/x"},
                                                "filter": {"metricsFormat": ["acc=(\\d+)"]}}},
     "spec.metricsCollectorSpec.source.filter.metricsFormat[0]"),
    ({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": 3}}},
     "spec.metricsCollectorSpec.source.fileSystemPath.path"),
])
def test_what_katib_would_refuse_names_the_field(mcs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConvertError) as e:
        convert_katib(with_collector(mcs))
    assert e.value.field == field


def test_prometheus_and_custom_stay_noted() -> None:
    for kind in ("PrometheusMetric", "Custom"):
        conv = convert_katib(with_collector({"collector": {"kind": kind}}))
        assert "metricsCollector" not in conv.manifest["spec"]
        assert has_note(conv.notes, f"collector.kind {kind}", "a file (File)", "TensorFlow event files")
