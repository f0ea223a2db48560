"""A local run that died unended (SIGKILL, power loss, a reboot), started again: which time
counts toward maxExecSeconds (resume.paused_after_crash, heartbeat.py, local_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from autotune_operator.executors.local import surviving_trials
from autotune_operator.heartbeat import HEARTBEAT_FILE, Heartbeat, last_sign_of_life
from autotune_operator.local_resume import check_output, save_spec
from autotune_operator.resume import paused_after_crash
from autotune_operator.spec import load_experiment_text

T0 = 1_700_000_000.0
DAY = 86_400.0

MANIFEST = """
apiVersion: tensorstack.dev/v1beta1
kind: AutoTuneExperiment
metadata: {name: e}
spec:
  maxTrialNum: 16
  maxExecSeconds: 600
  trialConcurrency: 2
  searchSpace: '{"x": {"_type": "choice", "_value": [1, 2, 3]}}'
  trainingConfig:
    type: pytorch
    tasks: [{type: master, replicas: 1, template: {spec: {containers: [{name: pytorch, image: i, command: [python3, t.py]}]}}}]
  tuner: {builtinTunerName: Random, classArgs: '{"optimize_mode": "maximize"}'}
"""


def test_the_gap_is_not_counted_only_when_nothing_could_run() -> None:
    # Nothing survived: from the last sign of life to now nothing ran.
    assert paused_after_crash(T0, T0 + DAY, 0, 30.0) == 30.0 + DAY
    # A trial still running: the experiment progressed, the time counts.
    assert paused_after_crash(T0, T0 + DAY, 1, 30.0) == 30.0
    # No heartbeat (a folder of an older version): unknown, so it counts, as before.
    assert paused_after_crash(None, T0 + DAY, 0, 30.0) == 30.0
    # A clock set back since: never a negative pause.
    assert paused_after_crash(T0, T0 - 100, 0, 30.0) == 30.0


def test_heartbeat_writes_at_most_every_few_seconds(tmp_path: Path) -> None:
    hb = Heartbeat(tmp_path, every=5.0)
    hb.beat(T0)
    hb.beat(T0 + 4.9)  # too soon: not written
    assert last_sign_of_life(tmp_path) == T0
    hb.beat(T0 + 5.0)
    assert last_sign_of_life(tmp_path) == T0 + 5.0
    (tmp_path / HEARTBEAT_FILE).write_text("garbage")
    assert last_sign_of_life(tmp_path) is None  # unreadable: unknown, not "long ago"


def test_a_trial_record_written_after_the_last_beat_is_a_later_sign_of_life(tmp_path: Path) -> None:
    """A trial that ran on after the run died and recorded its exit: the experiment
    progressed until then."""
    Heartbeat(tmp_path).beat(T0)
    rec = tmp_path / "trials" / "e-1" / "process.json"
    rec.parent.mkdir(parents=True)
    rec.write_text(json.dumps({"pid": 1, "key": "k", "exit": 0}))
    os.utime(rec, (T0 + 600, T0 + 600))
    assert last_sign_of_life(tmp_path) == T0 + 600
    os.utime(rec, (T0 - 600, T0 - 600))  # older records (trials that ended before) change nothing
    assert last_sign_of_life(tmp_path) == T0


def killed_run(tmp_path: Path, paused: int | None = None) -> None:
    exp = load_experiment_text(MANIFEST)
    save_spec(tmp_path, exp)
    st = {"phase": "RUNNING", "message": "", "startTime": "2023-11-14T22:13:20Z",
          "trials": {"total": 4, "succeeded": 2, "failed": 0}}
    if paused:
        st["pausedSeconds"] = paused
    (tmp_path / "status.json").write_text(json.dumps(st))


def test_the_resume_line_says_whether_the_outage_counts(tmp_path: Path) -> None:
    killed_run(tmp_path, paused=40)
    exp = load_experiment_text(MANIFEST)
    r = check_output(tmp_path, exp, T0 + DAY, T0, ())
    assert r.paused_seconds == 40 + DAY
    assert r.line == ("resuming e: 4 trials so far (the last run stopped before it ended; no trial of it still runs, "
                      "so the 86400s since it was last alive do not count toward maxExecSeconds)")
    r = check_output(tmp_path, exp, T0 + DAY, T0, ("e-3", "e-4"))
    assert r.paused_seconds == 40
    assert r.line is not None and "2 of its trials still run (e-3, e-4) and are adopted, so the 86400s" in r.line
    r = check_output(tmp_path, exp, T0 + DAY, None, ())
    assert r.paused_seconds == 40 and r.line is not None and "left no heartbeat" in r.line


def test_surviving_trials_are_the_live_supervisors_of_this_folder(tmp_path: Path) -> None:
    """A record without an exit whose pid runs as this trial's supervisor survives; a
    finished one, a dead pid, and a live pid that is someone else do not."""
    tdir = tmp_path / "trials" / "e-1"
    tdir.mkdir(parents=True)
    env = {**os.environ, "AUTOTUNE_TRIAL_ID": "e-1", "AUTOTUNE_TRIAL_DIR": str(tdir)}
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tdir / "process.json").write_text(json.dumps({"pid": p.pid, "key": "k"}))
        deadline = time.monotonic() + 10
        while not surviving_trials(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)  # its environment is readable once exec is done
        assert surviving_trials(tmp_path) == ["e-1"]
        (tdir / "process.json").write_text(json.dumps({"pid": p.pid, "key": "k", "exit": 0}))
        assert surviving_trials(tmp_path) == []
        (tdir / "process.json").write_text(json.dumps({"pid": other.pid, "key": "k"}))  # a reused pid
        assert surviving_trials(tmp_path) == []
    finally:
        p.kill()
        other.kill()
        p.wait()
        other.wait()
    (tdir / "process.json").write_text(json.dumps({"pid": p.pid, "key": "k"}))
    assert surviving_trials(tmp_path) == []

