"""Metrics in JSON lines: Katib's File metrics collector with ``format: JSON``, as a pure parser.

The trial writes one JSON object a line, e.g. ``{"epoch": 3, "accuracy": 0.95, "timestamp": ...}``.

- A key that is an objective or additional metric name holds a value: a number, or a string
  ``float()`` reads (Katib's own collector reads only strings; numbers are what ``json.dumps``
  writes, so both count). Booleans, other types and non-finite numbers are skipped.
- Other keys (``timestamp``, ``global_step``, ``epoch``, ...) are ignored, as in Katib.
- A line that is not a JSON object is skipped and counted: the failure message says so
  (Katib's collector instead fails the whole file on one bad line).
- The N-th value of a name (from 0, since the start of the file) is its step N, as for StdOut.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from autotune_operator.log_metrics import LAST_LINE_CHARS, MAX_OTHERS, Collected, parse_value

# Katib's reserved key for a line's time (pkg/metricscollector common.TimeStampJsonKey).
TIMESTAMP_KEY = "timestamp"


def json_value(v: Any) -> float | None:
    """A metric's value as JSON gives it: a finite number, or a string float() reads."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:  # an integer of hundreds of digits: raised, its line was read again for ever
            return None
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        return parse_value(v)
    return None


@dataclass
class JsonLineParser:
    """One trial's parser of JSON lines: the names that count, how many values of each it has
    seen, and what it saw otherwise (for the failure message)."""

    names: frozenset[str]
    source: str  # where the lines come from, for the message ("the metrics file /x")
    counts: dict[str, int] = field(default_factory=dict)
    others: dict[str, None] = field(default_factory=dict)  # uncollected numeric keys (a few)
    bad_lines: int = 0  # lines that are not JSON objects
    first_bad: str = ""
    last_line: str = ""

    def feed(self, lines: Iterable[str]) -> list[Collected]:
        out: list[Collected] = []
        for line in lines:
            text = line.strip()
            if not text:
                continue
            self.last_line = text[:LAST_LINE_CHARS]
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                obj = None
            if not isinstance(obj, dict):
                self.bad_lines += 1
                self.first_bad = self.first_bad or text[:LAST_LINE_CHARS]
                continue
            for key, raw in obj.items():
                value = json_value(raw)
                if key not in self.names:
                    if value is not None and key != TIMESTAMP_KEY and len(self.others) < MAX_OTHERS:
                        self.others[key] = None
                    continue
                if value is None:
                    continue
                step = self.counts.get(key, 0)
                self.counts[key] = step + 1
                out.append(Collected(key, value, step))
        return out

    def why_no_objective(self, objectives: Sequence[str]) -> str:
        wanted = ", ".join(repr(n) for n in objectives)
        out = (f"no value of {wanted} was read from {self.source} (spec.metricsCollector format JSON reads one "
               f"object a line, such as {{\"{objectives[0]}\": 0.97}})")
        if self.others:
            out += (f"; its objects hold {', '.join(repr(n) for n in self.others)}, which "
                    f"spec.primaryMetric/objectives and additionalMetricNames do not name")
        if self.bad_lines:
            out += f"; {self.bad_lines} line(s) were not JSON objects, the first: {self.first_bad!r}"
        if not self.others and not self.bad_lines:
            out += f"; its last line: {self.last_line!r}" if self.last_line else "; it wrote nothing there"
        return out
