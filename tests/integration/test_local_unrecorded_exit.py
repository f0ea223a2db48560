"""A local trial whose supervisor cannot write its exit record (a full disk; here the record
path made unwritable by the trial itself, a directory, since file modes do not stop root):
the trial that exited 0 still SUCCEEDS with its metrics, and its message names the I/O error,
rather than FAILED with a bare "exited with code 1". Real `autotune run`, real trials
training a scikit-learn model on iris."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.conftest import manifest, read_status, run_autotune, write_manifest
from tests.integration.kill_harness import db_query

TRIAL = '''
import os
import autotune
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

p = autotune.get_next_parameter()
X, y = load_iris(return_X_y=True)
acc = cross_val_score(LogisticRegression(C=10 ** p["log_c"], max_iter=300), X, y, cv=3).mean()
autotune.report_intermediate_result(float(acc))
autotune.report_final_result(float(acc))
record = os.path.join(os.environ["AUTOTUNE_TRIAL_DIR"], "process.json")
os.remove(record)
os.mkdir(record)  # where the supervisor writes the exit code: the write fails (EISDIR)
'''


def test_a_trial_whose_exit_cannot_be_recorded_keeps_its_success_and_says_why(tmp_path: Path) -> None:
    script = tmp_path / "trial.py"
    script.write_text(TRIAL)
    out = tmp_path / "out"
    doc = manifest(name="unrecorded", space={"log_c": {"_type": "uniform", "_value": [-2, 2]}},
                   command=[sys.executable, str(script)], max_trials=2, concurrency=1)
    path = write_manifest(tmp_path / "e.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=180)
    assert r.returncode == 0, r.stderr
    st = read_status(out, "unrecorded")
    assert st["trials"]["succeeded"] == 2, st
    rows = db_query(out / "unrecorded" / "autotune.db", "SELECT trial_id, state, value, exit_code, message FROM trials")
    assert len(rows) == 2
    for tid, state, value, code, message in rows:
        assert (state, code) == ("SUCCEEDED", 0) and value is not None and value > 0.5, rows
        assert "its exit code (0) could not be recorded" in message and "Is a directory" in message, message
        log = (out / "unrecorded" / "trials" / tid / "trial.log").read_text()
        assert "Traceback" not in log, log
