"""The parser a trial's collected lines go through, by spec.metricsCollector's kind and format.

- StdOut, and File with format TEXT: ``name=value`` lines matched with metricsFormat
  (operator/log_metrics.py);
- File with format JSON: one JSON object a line (operator/json_metrics.py);
- TensorFlowEvent: the scalar lines operator/metric_files.py makes of event files
  (operator/tfevent_metrics.py).

Every parser is pure and keeps what it saw, so a trial with no objective value gets a message
saying what it did write (:func:`why_no_objective`).
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

from autotune_operator.json_metrics import JsonLineParser
from autotune_operator.log_metrics import Collected, LogParser
from autotune_operator.spec import MetricsCollectorSpec
from autotune_operator.tfevent_metrics import EventLineParser


class MetricParser(Protocol):
    # Values read so far of each name (the objective has some: the trial has a result).
    counts: dict[str, int]

    def feed(self, lines: Iterable[str]) -> list[Collected]: ...

    def why_no_objective(self, objectives: Sequence[str]) -> str: ...


def parser_for(mc: MetricsCollectorSpec, names: Sequence[str]) -> MetricParser:
    """A new parser for one trial; ``names``: the objective name(s), then additionalMetricNames."""
    if mc.kind == "TensorFlowEvent":
        return EventLineParser(tuple(dict.fromkeys(names)), mc.path or ".")
    source = f"the metrics file {mc.path}" if mc.kind == "File" else "its output"
    if mc.kind == "File" and mc.format == "JSON":
        return JsonLineParser(frozenset(names), source)
    return LogParser.of(mc.metricsFormat, names, source)


def why_no_objective(parser: MetricParser, objectives: Sequence[str]) -> str:
    """Why an ended trial has no objective value, with what it did write or print, so the
    spec or the script can be fixed from the message alone."""
    return parser.why_no_objective(objectives)
