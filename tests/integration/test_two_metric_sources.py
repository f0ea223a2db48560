"""A trial that reports its objective with the SDK and also prints it (Katib's default
collector, StdOut) gets its curve from the SDK alone: the printed values neither extend it nor
take its steps, whichever of the two reaches the tuner server first (the SDK is the explicit
channel). Before, the two were interleaved into one curve ([0.5, 0.1, 0.2, 0.3]: the SDK's
later reports found their steps taken and were dropped as retries), which the assessor judged.

Real parts: `autotune run` with its embedded tuner server, a real trial process
(trials/two_sources.py) using the SDK and printing, read by the StdOut collector.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TRIALS, manifest, run_autotune, write_manifest


def run_one_trial(tmp_path: Path, doc: dict) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """`autotune run` of the one-trial experiment; its trial must succeed with the SDK's curve
    (0.5, 0.6, 0.7). Returns the run and the trial's trials.csv row."""
    out = tmp_path / "out"
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out)], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "two-sources" / "trials.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["state"] == "SUCCEEDED", row
    assert json.loads(row["intermediate"]) == [0.5, 0.6, 0.7], row
    return r, row


@pytest.mark.parametrize("order", ["sdk-first", "print-first"])
def test_the_curve_is_the_sdk_reports_when_the_trial_also_prints_them(tmp_path: Path, order: str) -> None:
    doc = manifest(name="two-sources", max_trials=1, concurrency=1,
                   command=[sys.executable, str(TRIALS / "two_sources.py"), "--order", order])
    doc["spec"].update({"primaryMetric": "accuracy", "metricsCollector": {"kind": "StdOut"}})
    r, row = run_one_trial(tmp_path, doc)
    assert float(row["value"]) == 0.7
    # Which source made the curve is said once.
    said = [line for line in r.stderr.splitlines() if "the curve of 'accuracy' is its SDK reports" in line]
    assert len(said) == 1, r.stderr[-3000:]


@pytest.mark.parametrize("order", ["sdk-first", "print-first"])
def test_without_a_final_report_the_result_is_the_curves_last_value_not_a_printed_one(tmp_path: Path, order: str) -> None:
    """No autotune.report_final_result: on exit 0 the result is taken from the last values, and
    the objective's from the channel that made the curve (the SDK's 0.7), not from the values
    printed beside it that the curve ignores. Before, the run's last printed accuracy (0.3)
    became the result of a trial whose curve was [0.5, 0.6, 0.7]."""
    doc = manifest(name="two-sources", max_trials=1, concurrency=1,
                   command=[sys.executable, str(TRIALS / "two_sources.py"), "--order", order, "--no-final"])
    doc["spec"].update({"primaryMetric": "accuracy", "metricsCollector": {"kind": "StdOut"}})
    _, row = run_one_trial(tmp_path, doc)
    assert float(row["value"]) == 0.7, row
    assert json.loads(row["metrics"])["accuracy"] == 0.7, row


@pytest.mark.parametrize("order", ["sdk-first", "print-first"])
def test_a_trial_reporting_with_the_sdk_and_mlflow_gets_the_sdks_curve_and_result(tmp_path: Path, order: str) -> None:
    """The SDK and mlflow.log_metric both send the objective (0.5, 0.6, 0.7 and 0.1, 0.2, 0.3),
    either first in each epoch: the SDK (AutoTune's own channel) makes the curve, MLflow's
    values make no point, and with no final report the result is the curve's last value.
    Before, the two interleaved into one curve (the SDK's later steps dropped as retries, or
    refused as out of order) and MLflow's last value (0.3) became the result."""
    pytest.importorskip("mlflow", reason="the MLflow client is a test extra (pip install -e '.[test]')")
    doc = manifest(name="two-sources", max_trials=1, concurrency=1,
                   command=[sys.executable, str(TRIALS / "two_sources.py"), "--order", order, "--other", "mlflow",
                            "--no-final"])
    doc["spec"]["primaryMetric"] = "accuracy"  # no metricsCollector: AutoTune sets the MLflow variables
    r, row = run_one_trial(tmp_path, doc)
    assert float(row["value"]) == 0.7, row
    said = [line for line in r.stderr.splitlines()
            if "the curve of 'accuracy' is its SDK reports; its MLflow-logged values are not part of it" in line]
    assert len(said) == 1, r.stderr[-3000:]
