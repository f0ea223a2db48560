"""Metrics from TensorBoard event files: Katib's TensorFlowEvent collector, as a pure parser.

Its input is the lines operator/metric_files.py makes of the scalars in the event files under
spec.metricsCollector.path, one ``{"dir": ..., "tag": ..., "step": ..., "value": ...}`` each
(``dir``: the event file's directory relative to that path).

Which scalars a metric name reads is Katib's rule (pkg/metricscollector/v1beta1/
tfevent-metricscollector/tfevent_loader.py), followed as it is so a converted experiment
reads what it read under Katib:

- a name without '/' (``accuracy``) reads every scalar whose tag starts with it, in any file;
- a name with '/' (``train/accuracy``) reads the scalars whose tag starts with its last part
  (``accuracy``) in files whose directory path ends with the rest (``train``), as strings:
  Katib compares the paths with ``endswith``, so ``.../mytrain`` matches ``train`` too.

AutoTune adds one case Katib cannot read: a scalar whose whole tag is the name
(``tf.summary.scalar("train/accuracy", ...)`` read as ``train/accuracy``).

The step of a value is the event's own step (a negative one is skipped); the tuner server
keeps the first value of each (name, step), so a file read again adds nothing twice. One
exception: a value whose step is not above the previous value of its name in the same file
takes that step + 1. Scripts that log without a step (PyTorch's ``add_scalar(tag, value)``,
TF1's ``add_summary(summary)``) write every event at step 0, and their values would otherwise
all be dropped but the first; Katib takes them all too (and the latest by time). A step below
the file's previous one starts that numbering again from it: a file relayed again from its
start (a restarted sidecar) gets the steps of its first read, which the server skips; only
a file whose steps never grow cannot tell that from new values.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from autotune_operator.json_metrics import json_value
from autotune_operator.log_metrics import LAST_LINE_CHARS, MAX_OTHERS, Collected


def katib_matches(name: str, directory: str, tag: str) -> bool:
    """Whether metric ``name`` reads a scalar tagged ``tag`` in an event file of ``directory``
    (its path as the spec gives it, joined with the file's relative directory)."""
    if tag == name:
        return True
    parent, _, last = name.rpartition("/")
    if not tag.startswith(last):
        return False
    return not parent or directory.endswith(parent)


@dataclass
class EventLineParser:
    """One trial's parser of scalar lines: the names, the spec's path (Katib's rule compares
    directories as the trial sees them), the values seen of each name, and the scalars no
    name read (for the failure message)."""

    names: tuple[str, ...]
    root: str  # spec.metricsCollector.path
    counts: dict[str, int] = field(default_factory=dict)
    others: dict[str, None] = field(default_factory=dict)  # 'dir/tag' of scalars no name read (a few)
    # Each name's last value from each file: (name, dir, file) -> (its step in the file, the step given).
    last_steps: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    scalars: int = 0
    bad_lines: int = 0

    def feed(self, lines: Iterable[str]) -> list[Collected]:
        out: list[Collected] = []
        for line in lines:
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                obj = None
            if not isinstance(obj, dict) or not isinstance(obj.get("tag"), str) or not isinstance(obj.get("dir"), str):
                self.bad_lines += 1  # no line of metric_files.py: a sidecar of another version
                continue
            step, value = obj.get("step"), json_value(obj.get("value"))
            if isinstance(step, bool) or not isinstance(step, int) or step < 0 or value is None:
                continue
            self.scalars += 1
            tag, rel, file = obj["tag"], obj["dir"], str(obj.get("file", ""))
            directory = posixpath.normpath(posixpath.join(self.root, rel))
            hit = False
            for name in self.names:
                if katib_matches(name, directory, tag):
                    hit = True
                    self.counts[name] = self.counts.get(name, 0) + 1
                    where = (name, rel, file)
                    last = self.last_steps.get(where)
                    # A step below the file's previous one: the file read again from its start
                    # (a restarted sidecar), which numbers its values as the first read did.
                    at = step if last is None or step < last[0] or step > last[1] else last[1] + 1
                    self.last_steps[where] = (step, at)
                    out.append(Collected(name, value, at))
            if not hit and len(self.others) < MAX_OTHERS:
                self.others[posixpath.join(rel, tag)[:LAST_LINE_CHARS]] = None
        return out

    def why_no_objective(self, objectives: Sequence[str]) -> str:
        wanted = ", ".join(repr(n) for n in objectives)
        first = objectives[0]
        parent, _, last = first.rpartition("/")
        rule = (f"a scalar whose tag starts with '{last}' in an event file under a directory ending '{parent}'"
                if parent else f"a scalar whose tag starts with '{first}'")
        out = f"no value of {wanted} was read from the event files under {self.root} ({rule})"
        if self.others:
            out += (f"; it wrote the scalars {', '.join(repr(n) for n in self.others)} (directory/tag), which no "
                    f"name of spec.primaryMetric/objectives or additionalMetricNames reads")
        elif self.scalars == 0:
            out += "; no scalar was found there (event files named *tfevents*)"
        return out
