"""A trial whose own code signals its process group (bash's `trap 'kill 0' EXIT`,
os.killpg(0, SIGTERM) in a cleanup) and dies of it looks like a stop signal from outside
AutoTune, which is an interruption: requeued and run again at once. Every attempt did the
same, so it ran again for ever (465 attempts in 40 s), counting toward neither maxTrialNum
nor maxFailedTrialNum, and only maxExecSeconds ended the run. After a few such attempts in a
row it now ends FAILED, saying why. Real `autotune run`, real trial processes."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.conftest import manifest, read_status, run_autotune, write_manifest
from tests.integration.kill_harness import db_query

TRIAL = '''
import os, signal
print("attempt", flush=True)
os.killpg(0, signal.SIGTERM)  # its own process group: the supervisor gets it too
'''


def test_a_trial_that_signals_its_own_group_fails_instead_of_running_for_ever(tmp_path: Path) -> None:
    script = tmp_path / "trial.py"
    script.write_text(TRIAL)
    out = tmp_path / "out"
    doc = manifest(name="selfsig", space={"x": {"_type": "uniform", "_value": [0, 1]}},
                   command=[sys.executable, str(script)], max_trials=2, concurrency=1, max_seconds=60)
    doc["spec"]["maxFailedTrialNum"] = 2
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(out), "--quiet"],
                     timeout=240)
    st = read_status(out, "selfsig")
    # maxFailedTrialNum ended it, not maxExecSeconds' TIMEOUT
    assert (st["phase"], st["reason"]) == ("ERROR", "MaxFailedTrialsReached"), (st, r.stderr[-2000:])
    rows = db_query(out / "selfsig" / "autotune.db", "SELECT trial_id, state, message FROM trials")
    assert [s for _, s, _ in rows] == ["FAILED", "FAILED"], rows
    for tid, _, message in rows:
        assert "from outside AutoTune" in message and "times in a row" in message, message
        attempts = len(list((out / "selfsig" / "trials" / tid / "interrupted").iterdir()))
        assert attempts <= 3, attempts  # a few, not hundreds
