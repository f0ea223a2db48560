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
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TRIALS, manifest, run_autotune, write_manifest


@pytest.mark.parametrize("order", ["sdk-first", "print-first"])
def test_the_curve_is_the_sdk_reports_when_the_trial_also_prints_them(tmp_path: Path, order: str) -> None:
    doc = manifest(name="two-sources", max_trials=1, concurrency=1,
                   command=[sys.executable, str(TRIALS / "two_sources.py"), "--order", order])
    doc["spec"].update({"primaryMetric": "accuracy", "metricsCollector": {"kind": "StdOut"}})
    out = tmp_path / "out"
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out)], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "two-sources" / "trials.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["state"] == "SUCCEEDED", row
    assert json.loads(row["intermediate"]) == [0.5, 0.6, 0.7], row
    assert float(row["value"]) == 0.7
    # Which source made the curve is said once.
    said = [line for line in r.stderr.splitlines() if "the curve of 'accuracy' is its SDK reports" in line]
    assert len(said) == 1, r.stderr[-3000:]
