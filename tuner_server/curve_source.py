"""Which channel makes a trial's curve (its first objective's intermediate values, what the
assessor judges) when more than one sends it (pure).

A trial may report with the SDK and also print the same metric for a metrics collector
(Katib's StdOut is on whenever spec.metricsCollector is set). Interleaved, the two made one
curve of mixed values, and the SDK's later reports found their steps taken by printed values
and were dropped as retries. So a curve comes from one source: a value reported explicitly
(the SDK, or MLflow's log_metric) wins over one read from the output, whichever arrived
first. Collected values keep their other uses (the run's latest metrics, the final result
when no explicit one is given).
"""

from __future__ import annotations

from enum import Enum

COLLECTED = "collected"  # read from the trial's output by spec.metricsCollector
SDK = "sdk"  # autotune.report_intermediate_result
MLFLOW = "mlflow"  # mlflow.log_metric through the tuner server's MLflow endpoint

SAID = {SDK: "its SDK reports", MLFLOW: "its MLflow-logged values", COLLECTED: "the values read from its output"}


class Action(Enum):
    ADD = "add"  # the value extends the curve
    IGNORE = "ignore"  # a collected value: the curve is another source's
    REPLACE = "replace"  # an explicit value: the collected points so far are dropped first


def decide(current: str | None, incoming: str, points: int) -> Action:
    """What a value from ``incoming`` does to a curve of ``points`` points from ``current``
    (None: not known, a point stored before sources were recorded: as before, it extends)."""
    if current is None or points == 0 or current == incoming:
        return Action.ADD
    if incoming == COLLECTED:
        return Action.IGNORE
    if current == COLLECTED:
        return Action.REPLACE
    return Action.ADD  # the SDK and MLflow: both explicit, the trial's own choice


def both_note(metric: str, used: str, dropped: int) -> str:
    """The one line saying which source made the curve of a trial that used both."""
    out = (f"the curve of {metric!r} is {SAID.get(used, used)}; {SAID[COLLECTED]} (spec.metricsCollector) "
           f"are not part of it")
    if dropped:
        out += f" (its first {dropped} point(s), read from the output before the first report, were dropped)"
    return out
