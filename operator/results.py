"""Local mode's result files: status.json (the resource's .status) and trials.csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from autotune_operator.status import ExperimentStatus

TRIAL_COLUMNS = ["id", "sequence", "state", "value", "parameters", "metrics", "intermediate", "duration_s", "exit_code", "message"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_status(directory: Path, status: ExperimentStatus) -> None:
    _atomic_write(directory / "status.json", status.model_dump_json(indent=2) + "\n")


def write_trials_csv(directory: Path, trials: list[dict[str, Any]]) -> None:
    tmp = directory / "trials.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TRIAL_COLUMNS)
        for t in trials:
            duration = None
            if t.get("started") is not None and t.get("ended") is not None:
                duration = round(t["ended"] - t["started"], 3)
            w.writerow(
                [
                    t["name"],
                    t["sequence"],
                    t["state"],
                    "" if t["value"] is None else t["value"],
                    json.dumps(t["parameters"], sort_keys=True),
                    "" if t["metrics"] is None else json.dumps(t["metrics"], sort_keys=True),
                    json.dumps(t["intermediate"]),
                    "" if duration is None else duration,
                    "" if t["exitCode"] is None else t["exitCode"],
                    t["message"] or "",
                ]
            )
    os.replace(tmp, directory / "trials.csv")
