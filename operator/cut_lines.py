"""What becomes of a trial's last output line that has no newline: a pure policy.

A line is data once its newline is written; readers take only such lines while the trial
runs. When the trial's output has ended, a last line without a newline is either:

- the whole line, when the trial exited by itself (an exit flushes what the process
  wrote; ``print("accuracy=0.97", end="")`` as its last act counts), or
- possibly half a line, when the trial was killed (by the experiment: an assessor,
  maxTrialSeconds, the experiment's end; or by a signal: the OOM killer), since a process
  killed between two writes of one line leaves ``accuracy=0.9`` of ``accuracy=0.9734``.
  Such a line is dropped, not read as metrics, and the trial's message says so when it
  held a value.

Katib's collectors read the last line either way; for a killed trial that can record a
value the trial never printed, which is worse than its previous one.
"""

from __future__ import annotations

import copy

from autotune_operator.metric_parsers import MetricParser

SHOWN_CHARS = 80
# Shells and Kubernetes report a process ended by signal N as exit code 128 + N; Linux's
# signals are 1..64 (SIGRTMAX), so 193..255 are codes a script chose (`exit 255`, sys.exit(-1)).
SIGNAL_EXIT_BASE = 128
LAST_SIGNAL = 64


def killed_mid_write(exit_code: int | None, killed: bool) -> bool:
    """Whether a trial that ended so may have been stopped in the middle of a line: killed by
    the experiment, ended by a signal (a negative code from a local process, 128+N from a
    shell or a container), or gone without an exit code (a workload deleted)."""
    return (killed or exit_code is None or exit_code < 0
            or SIGNAL_EXIT_BASE < exit_code <= SIGNAL_EXIT_BASE + LAST_SIGNAL)


def dropped_line_note(parser: MetricParser, line: str) -> str | None:
    """The trial message's note for a dropped unterminated last line, or None when the line
    held no value the parser would take (a progress bar cut by the kill is nothing to report).
    The parser itself is left as it was: the line is not data."""
    if not copy.deepcopy(parser).feed([line]):
        return None
    shown = line.strip()
    shown = shown if len(shown) <= SHOWN_CHARS else "..." + shown[-SHOWN_CHARS:]
    return (f"its last line {shown!r} had no newline when it was killed (possibly cut mid-write), "
            "so it was not read as metrics")
