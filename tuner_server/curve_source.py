"""Which channel makes a trial's curve (its first objective's intermediate values, what the
assessor judges) when more than one sends it (pure).

A trial may report with the SDK and also print the same metric for a metrics collector
(Katib's StdOut is on whenever spec.metricsCollector is set), or log it with MLflow beside
the SDK. Interleaved, the channels made one curve of mixed values, and the SDK's later
reports found their steps taken by another channel's values and were dropped as retries. So
a curve comes from one channel, the highest ranked that sent it, whichever arrived first (an
order-free rule: MLflow's async logging and the collector's reads arrive when they do): the
SDK (AutoTune's own channel), then MLflow's log_metric (an explicit report too), then values
read from the output. The other channels' values keep their other uses (the run's latest
metrics; a metric's final value when no channel above sent it: mlflow_runs.final_metric).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Mapping

COLLECTED = "collected"  # read from the trial's output by spec.metricsCollector
SDK = "sdk"  # autotune.report_intermediate_result
MLFLOW = "mlflow"  # mlflow.log_metric through the tuner server's MLflow endpoint

RANK = {COLLECTED: 0, MLFLOW: 1, SDK: 2}
SAID = {SDK: "its SDK reports", MLFLOW: "its MLflow-logged values", COLLECTED: "the values read from its output"}
HOW = {SDK: "reported", MLFLOW: "logged", COLLECTED: "read from the output"}


class Action(Enum):
    ADD = "add"  # the value extends the curve
    IGNORE = "ignore"  # the curve is a higher ranked channel's
    REPLACE = "replace"  # the curve so far (a lower ranked channel's) is dropped first


def decide(current: str | None, incoming: str, points: int) -> Action:
    """What a value from ``incoming`` does to a curve of ``points`` points from ``current``
    (None: not known, a point stored before channels were recorded: as before, it extends)."""
    if current is None or points == 0 or current == incoming:
        return Action.ADD
    return Action.REPLACE if RANK[incoming] > RANK[current] else Action.IGNORE


def both_note(metric: str, used: str, ignored: str, dropped: int) -> str:
    """The one line saying which channel made the curve of a trial that used two, ``ignored``
    being the other (``dropped``: its points so far, replaced)."""
    out = f"the curve of {metric!r} is {SAID[used]}; {SAID[ignored]}"
    out += " (spec.metricsCollector)" if ignored == COLLECTED else ""
    out += " are not part of it"
    if dropped:
        out += f" (its first {dropped} point(s), {HOW[ignored]} before the first report, were dropped)"
    return out


def replace_note(used: str, ignored: str, points: int) -> str:
    """Why the first report of ``used`` must be step 0: it starts the curve anew, replacing the
    ``points`` of ``ignored``."""
    return f"{SAID[used]} replace the curve's {points} point(s) {HOW[ignored]} and start it anew from step 0"


def no_final_note(metric: str) -> str:
    """Why a trial whose curve is its SDK reports has no result on exit 0, said after another
    message (the collector's or MLflow's: what its output lacked, true but beside the fix):
    its objective came by the SDK alone, whose curve is not taken as the result
    (mlflow_runs.final_metric), so the result must come by report_final_result."""
    return (f"the cause: its curve of {metric!r} is its SDK reports (autotune.report_intermediate_result) and it "
            f"never called autotune.report_final_result, which gives the result of a trial whose objective only "
            f"the SDK sends: call it before the trial exits")


def same_note(payload: Mapping[str, Any], created: float, ignored: str) -> bool:
    """Whether a stored 'curve_source' event said the use of ``ignored`` in the attempt
    created at ``created``. Events written before they carried these keys were about
    printed values, and are taken as the current attempt's (no second warning on upgrade)."""
    return payload.get("ignored", COLLECTED) == ignored and payload.get("created", created) == created
