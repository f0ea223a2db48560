"""Metrics read from a trial's output: Katib's StdOut metrics collector, as a pure parser.

A Katib user's training code prints ``epoch=3 accuracy=0.9512 loss=0.2``; Katib's default
collector reads the main container's output with a regular expression whose group 1 is a
metric's name and group 2 its value. This module does the same, with no I/O: the controller
feeds it the complete lines an executor read (``Executor.read_log``) and sends what it
returns to the tuner server, where the values take MLflow's path (tuner_server/mlflow_runs.py).

- Every match of every format in every line counts (``re.finditer``), in line order, then
  format order, then position in the line.
- A name outside ``names`` (the objective(s) and spec.metricsCollector.additionalMetricNames)
  is ignored, as Katib does: ``epoch=3`` is not a metric unless named.
- A value that ``float()`` cannot read (the default format also matches ``lr=`` with an
  empty value), or that is not finite, is skipped and does not take a step.
- Terminal escape sequences (ANSI colours: ``\x1b[32maccuracy=0.9\x1b[0m`` from a coloured
  logger) are removed before matching: the default format's name group reads ``32maccuracy``
  otherwise, and the value is silently lost.
- The N-th value of a name (from 0, since the start of the log) is its step N. Steps count
  from the start of the log so that a restarted controller, re-reading a log from its
  start, gives every value the step it had before: the tuner server skips what it has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

# Katib's default StdOut format (pkg/metricscollector: the name, '=', a decimal number).
DEFAULT_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
# The default format is matched by default_matches, with the same matches in linear time.
# Python's re (unlike Katib's Go RE2) backtracks: tried at every position of a long run of
# name characters with no '=' (a base64 blob, a hex dump), the format rescans the rest of the
# run each time, so a 40 KB word took 9 s and a 4 MB one hours, the controller stuck there.
_NAME_START = re.compile(r"(?<![\w|-])([\w|-]++)\s*+=\s*+([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
_AT = re.compile(r"([\w|-]++)\s*+=\s*+([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
# What a metric's name can be under the default format (its group 1).
DEFAULT_NAME = re.compile(r"[\w|-]+")
MAX_FORMATS = 16
MAX_FORMAT_CHARS = 1000
MAX_NAMES = 64
MAX_NAME_CHARS = 250  # MLflow's limit on a metric key, which these become
MAX_OTHERS = 8  # uncollected names remembered for a failure message
LAST_LINE_CHARS = 200
# ECMA-48 control sequences (CSI: colours, cursor moves) and OSC ones (a terminal title,
# hyperlinks), as coloured loggers and progress bars print them.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


class FormatError(ValueError):
    """A metricsFormat entry that cannot be used; ``index`` is its position in the list
    (-1: the list as a whole)."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


def compile_format(text: str, index: int = 0) -> re.Pattern[str]:
    """One format: a regex compiling with at least 2 groups (name, value)."""
    if len(text) > MAX_FORMAT_CHARS:
        raise FormatError(index, f"is {len(text)} characters, more than {MAX_FORMAT_CHARS}")
    try:
        pattern = re.compile(text)
    except re.error as e:
        raise FormatError(index, f"is not a valid regular expression: {e}") from None
    if pattern.groups < 2:
        raise FormatError(index, f"has {pattern.groups} group(s); it needs 2: group 1 the metric's name, "
                                 "group 2 its value, e.g. (\\w+)=([-.\\d]+)")
    return pattern


def compile_formats(formats: Sequence[str] | None) -> tuple[re.Pattern[str], ...]:
    """The formats to read with (Katib's default when none is given)."""
    if not formats:
        return (re.compile(DEFAULT_FORMAT),)
    if len(formats) > MAX_FORMATS:
        raise FormatError(-1, f"{len(formats)} formats given, at most {MAX_FORMATS}")
    return tuple(compile_format(f, i) for i, f in enumerate(formats))


def default_matches(line: str) -> Iterator[re.Match[str]]:
    """``re.finditer(DEFAULT_FORMAT, line)``'s matches, in linear time. A match can start
    where a run of name characters starts, or where the previous match ended (finditer goes
    on from there, inside a run: 'e=20_=1' holds '_=1'); one starting further inside a run
    would end where that run's start does, and fail the same way, so those are not tried.
    The name and blanks are taken whole (possessive): a shorter name is followed by a name
    character, never by a blank or '='."""
    pos, after_match = 0, False
    while pos <= len(line):
        m = (_AT.match(line, pos) if after_match else None) or _NAME_START.search(line, pos)
        if m is None:
            return
        yield m
        pos, after_match = m.end(), True


def matches(pattern: re.Pattern[str], line: str) -> Iterator[re.Match[str]]:
    """A format's matches in ``line`` (Katib's default, given or not, in linear time)."""
    return default_matches(line) if pattern.pattern == DEFAULT_FORMAT else pattern.finditer(line)


@dataclass(frozen=True)
class Collected:
    """One value read from the log: the ``step``-th value of ``key``."""

    key: str
    value: float
    step: int


def parse_value(text: str) -> float | None:
    """The number a match's value group holds, or None (not a number, or not finite)."""
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


@dataclass
class LogParser:
    """One trial's parser: the formats, the names that count, and how many values of each
    name it has seen (the next step of each)."""

    formats: tuple[re.Pattern[str], ...]
    names: frozenset[str]
    counts: dict[str, int] = field(default_factory=dict)
    # What a trial that printed no objective did print, for its failure message (Katib's
    # users get a bare "MetricsUnavailable" and are left guessing at their regex): the
    # names matched but not collected (a few), and the last non-blank line.
    others: dict[str, None] = field(default_factory=dict)
    last_line: str = ""
    # Where the lines come from, for that message: the trial's output (StdOut) or the file
    # it writes (spec.metricsCollector kind File, format TEXT).
    source: str = "its output"

    @classmethod
    def of(cls, formats: Sequence[str] | None, names: Iterable[str], source: str = "its output") -> "LogParser":
        return cls(compile_formats(formats), frozenset(names), source=source)

    def why_no_objective(self, objectives: Sequence[str]) -> str:
        return why_no_objective(self, objectives)

    def feed(self, lines: Iterable[str]) -> list[Collected]:
        """The metrics in ``lines`` (complete lines, in order), each with its step."""
        out: list[Collected] = []
        for line in lines:
            if "\x1b" in line:
                line = ESCAPES.sub("", line)
            if line.strip():
                self.last_line = line.strip()[:LAST_LINE_CHARS]
            for pattern in self.formats:
                for m in matches(pattern, line):
                    name, raw = m.group(1), m.group(2)
                    if name is None or raw is None:
                        continue  # an optional group that did not take part
                    name = name.strip()
                    if name not in self.names:
                        if len(self.others) < MAX_OTHERS and name and parse_value(raw) is not None:
                            self.others[name] = None
                        continue
                    value = parse_value(raw)
                    if value is None:
                        continue
                    step = self.counts.get(name, 0)
                    self.counts[name] = step + 1
                    out.append(Collected(name, value, step))
        return out


def why_no_objective(parser: LogParser, objectives: Sequence[str]) -> str:
    """Why an ended trial has no objective value from its output, with what it did print,
    so the format or the names can be fixed from the message alone."""
    wanted = ", ".join(repr(n) for n in objectives)
    out = (f"no value of {wanted} was read from {parser.source} (spec.metricsCollector reads lines such as "
           f"'{objectives[0]}=0.97')")
    if parser.others:
        verb = "printed" if parser.source == "its output" else "wrote"
        out += (f"; it {verb} {', '.join(repr(n) for n in parser.others)}, which spec.primaryMetric/objectives "
                f"and additionalMetricNames do not name")
    elif parser.last_line:
        out += f"; its last line: {parser.last_line!r}"
    else:
        out += "; it printed nothing" if parser.source == "its output" else "; it wrote nothing there"
    return out
