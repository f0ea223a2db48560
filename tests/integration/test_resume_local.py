"""`autotune run` again on a folder whose run ended: it resumes the same experiment (same
history, same autotune.db) once the file raises a limit, and refuses any other change.
Real `autotune run` processes; the trials train scikit-learn MLPs on digits."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, manifest, read_status, run_autotune, write_manifest

REPO = Path(__file__).resolve().parents[2]
NAME = "digits-resume"


def digits(max_trials: int, *, epochs: int = 3, tuner: str = "TPE", **spec: Any) -> dict[str, Any]:
    # held.py runs digits_mlp.py after $TRIAL_HOLD seconds (none unless a test sets it).
    doc = manifest(name=NAME, tuner=tuner, max_trials=max_trials, concurrency=2,
                   space={"hidden_units": {"_type": "choice", "_value": [16, 32, 64]},
                          "learning_rate": {"_type": "loguniform", "_value": [0.0001, 0.1]}},
                   command=[sys.executable, str(TRIALS / "held.py"), str(REPO / "examples" / "digits_mlp.py"),
                            "--epochs", str(epochs)],
                   class_args={"optimize_mode": "maximize", "tpe_args": {"n_startup_jobs": 4}} if tuner == "TPE"
                   else {"optimize_mode": "maximize"})
    doc["spec"].update(spec)
    return doc


def trials_csv(out: Path) -> list[dict[str, str]]:
    with open(out / NAME / "trials.csv") as f:
        return list(csv.DictReader(f))


def old_columns(row: dict[str, str]) -> tuple[str, ...]:
    return row["id"], row["state"], row["value"], row["parameters"]


def test_a_done_run_resumes_with_a_raised_max_trial_num_and_keeps_its_history(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(4))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming" not in r.stderr  # a new experiment says nothing of the kind
    before = trials_csv(out)
    assert read_status(out, NAME)["phase"] == "DONE" and len(before) == 4
    db = out / NAME / "autotune.db"
    inode = os.stat(db).st_ino

    write_manifest(path, digits(7))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == \
        f"autotune: resuming {NAME}: 4 trials so far, maxTrialNum 4 -> 7 (it ended DONE: all 4 trials ended)", r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["message"] == "all 7 trials ended" and s["completionTime"]
    assert s["trials"]["total"] == 7 and s["trials"]["succeeded"] == 7, s
    after = trials_csv(out)
    assert [old_columns(t) for t in after[:4]] == [old_columns(t) for t in before]  # the old trials, unchanged
    assert [t["id"] for t in after] == [f"{NAME}-{i}" for i in range(7)]
    assert os.stat(db).st_ino == inode  # one history: the same database, not a new one
    assert s["bestTrial"]["value"] == max(float(t["value"]) for t in after)

    # The same file again: nothing to run, and it says what would resume it.
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == (f"autotune: {NAME} has already ended with 7 trials: the experiment stays DONE "
                                        f"(all 7 trials ended); raise maxTrialNum above 7 to resume"), r.stderr
    assert read_status(out, NAME)["trials"]["total"] == 7

    # Anything but the limits: refused, naming the field, and nothing runs or is written.
    write_manifest(path, digits(9, epochs=4))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=60)
    assert r.returncode == 2, r.stderr
    assert "spec.trainingConfig changed since the run in" in r.stderr and "maxTrialNum" in r.stderr, r.stderr
    assert read_status(out, NAME)["trials"]["total"] == 7 and len(trials_csv(out)) == 7
    assert json.loads((out / NAME / "experiment.json").read_text())["maxTrialNum"] == 7


def test_a_timed_out_run_resumes_with_more_time(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The trials wait 600 s before training, so none ends in 3 s however fast the machine:
    # TIMEOUT, trials stopped. (Trials of 20 epochs, with no wait, once all ended in 3 s on CI.)
    path = write_manifest(tmp_path / "e.yaml", digits(4, epochs=20, tuner="Random", maxExecSeconds=3))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env={"TRIAL_HOLD": "600"}, timeout=120)
    s = read_status(out, NAME)
    assert r.returncode == 1 and not s["bestTrial"], r.stderr  # 1: no trial succeeded (README)
    assert s["phase"] == "TIMEOUT" and 1 <= s["trials"]["stopped"] == s["trials"]["total"] <= 4, s
    ended = s["trials"]["total"]

    write_manifest(path, digits(6, epochs=3, tuner="Random", maxExecSeconds=300))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 2 and "spec.trainingConfig changed" in r.stderr  # (the epochs are the search's)

    write_manifest(path, digits(6, epochs=20, tuner="Random", maxExecSeconds=300))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"autotune: resuming {NAME}: {ended} trials so far, maxTrialNum 4 -> 6, "
                            f"maxExecSeconds 3 -> 300 (it ended TIMEOUT: maxExecSeconds (3s) reached"), first
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["trials"]["total"] == 6 and s["trials"]["succeeded"] == 6 - s["trials"]["stopped"], s


def test_final_training_after_a_resume_trains_only_a_new_best(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(3, epochs=2, finalTraining={"enabled": True}))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    s = read_status(out, NAME)
    (first,) = s["finalTraining"]
    assert first["name"] == f"{NAME}-final-3" and first["parameters"] == s["bestTrial"]["parameters"]

    write_manifest(path, digits(6, epochs=2, finalTraining={"enabled": True}))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["trials"]["total"] - len(s["finalTraining"]) == 6, s
    names = [t["id"] for t in trials_csv(out)]
    assert names[:4] == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2", f"{NAME}-final-3"]
    assert names[4:7] == [f"{NAME}-4", f"{NAME}-5", f"{NAME}-6"]  # the resumed search's trials come after
    finals = s["finalTraining"]
    assert finals[0] == first  # the first final trial is kept as it was
    if s["bestTrial"]["parameters"] == first["parameters"]:  # the best did not change
        assert len(finals) == 1 and s["message"].endswith("; final training ended"), s  # nothing trained twice
    else:  # a new best: it alone is final-trained, under a new name
        assert len(finals) == 2 and finals[1]["name"] == f"{NAME}-final-7", finals
        assert finals[1]["parameters"] == s["bestTrial"]["parameters"] and finals[1]["state"] == "SUCCEEDED"


def test_a_used_up_grid_ends_done_again_saying_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = digits(2, epochs=2, tuner="GridSearch")
    doc["spec"]["searchSpace"] = json.dumps({"hidden_units": {"_type": "choice", "_value": [16, 32]}})
    path = write_manifest(tmp_path / "e.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 0 and read_status(out, NAME)["trials"]["total"] == 2, r.stderr
    doc["spec"]["maxTrialNum"] = 5
    write_manifest(path, doc)
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0].startswith(f"autotune: resuming {NAME}: 2 trials so far, maxTrialNum 2 -> 5"), r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["trials"]["total"] == 2, s
    assert s["message"] == "the tuner has no new configurations after 2 trial(s)", s
