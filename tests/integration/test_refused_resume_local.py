"""`autotune run` again on a folder whose run ended, with limits that still end it: the CLI
says it stays as it was ('... the experiment stays TIMEOUT ...'), and what the folder holds
must agree: the same phase, message, end time and trials, and the exit code of that phase.
The controller used to run anyway and rewrite the result (a TIMEOUT became DONE).
Real `autotune run` processes; the trials train scikit-learn MLPs on digits."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import TRIALS, manifest, read_status, run_autotune, write_manifest

REPO = Path(__file__).resolve().parents[2]
NAME = "digits-refused"
STORED = ("status.json", "trials.csv", "experiment.json")


def digits(max_trials: int, *, epochs: int = 2, units: list[int] | None = None, **spec: Any) -> dict[str, Any]:
    # held.py runs digits_mlp.py after $TRIAL_HOLD seconds (none unless a test sets it).
    doc = manifest(name=NAME, tuner="Random", max_trials=max_trials, concurrency=2,
                   space={"hidden_units": {"_type": "choice", "_value": units or [16, 32]},
                          "learning_rate": {"_type": "loguniform", "_value": [0.001, 0.1]}},
                   command=[sys.executable, str(TRIALS / "held.py"), str(REPO / "examples" / "digits_mlp.py"),
                            "--epochs", str(epochs)],
                   class_args={"optimize_mode": "maximize"})
    doc["spec"].update(spec)
    return doc


def snapshot(out: Path) -> dict[str, Any]:
    """What a user reads of the run: its files, and every trial and metric in its history."""
    folder = out / NAME
    files = {f: (folder / f).read_bytes() for f in STORED}
    db = sqlite3.connect(f"file:{folder / 'autotune.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: sorted(map(repr, db.execute(f'SELECT * FROM "{t}"'))) for t in tables
                if t in ("trials", "intermediate", "experiments", "events")}
    finally:
        db.close()
    return {"files": files, "rows": rows}


def rerun_is_refused(path: Path, out: Path, phase: str, code: int, says: str) -> None:
    before = snapshot(out)
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"autotune: {NAME} has already ended with ") and f"the experiment stays {phase}" in first, r.stderr
    assert says in first, first
    # README: 0 for an experiment that ended with a result, 1 for ERROR or no trial succeeded.
    assert r.returncode == code, r.stderr
    after = snapshot(out)
    assert read_status(out, NAME)["phase"] == phase
    for f in STORED:
        assert after["files"][f] == before["files"][f], f"{f} changed:\n{before['files'][f]!r}\n{after['files'][f]!r}"
    assert after["rows"] == before["rows"] and after["rows"].get("trials")


def test_a_timed_out_run_rerun_without_more_time_stays_timeout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The trials wait 600 s before training, so none ends in 3 s however fast the machine:
    # TIMEOUT, trials stopped. (1000 epochs with no wait took ~5 s a trial on an idle 2-core
    # machine, too close to 3 s; with 30 epochs an idle machine finished one.)
    path = write_manifest(tmp_path / "e.yaml", digits(4, epochs=1000, maxExecSeconds=3))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env={"TRIAL_HOLD": "600"}, timeout=120)
    s = read_status(out, NAME)
    assert s["phase"] == "TIMEOUT", s
    # No trial succeeded: exit 1 (README), and the refused rerun exits as its run did.
    code = 1
    assert not s["bestTrial"] and r.returncode == code and "no trial succeeded" in r.stderr, (s, r.stderr)
    rerun_is_refused(path, out, "TIMEOUT", code, "raise maxExecSeconds above that or remove it to resume")
    # A limit changed that still ends it (trialConcurrency): refused the same way, and the
    # spec kept is still the last run's, so a later resume names what changed since that run.
    write_manifest(path, digits(4, epochs=1000, maxExecSeconds=3, trialConcurrency=1))
    rerun_is_refused(path, out, "TIMEOUT", code, "stays TIMEOUT")


def test_a_done_run_rerun_unchanged_stays_done(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(2))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert read_status(out, NAME)["phase"] == "DONE"
    rerun_is_refused(path, out, "DONE", 0, "raise maxTrialNum above 2 to resume")


def test_a_run_ended_by_max_failed_trial_num_rerun_unchanged_stays_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # hidden_units 0: scikit-learn refuses the MLP, every trial fails; the first failure ends it.
    path = write_manifest(tmp_path / "e.yaml", digits(4, units=[0], maxFailedTrialNum=1))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 1, r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "ERROR" and "maxFailedTrialNum" in s["message"], s
    rerun_is_refused(path, out, "ERROR", 1, "stays ERROR")
