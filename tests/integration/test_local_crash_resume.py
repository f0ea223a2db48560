"""`autotune run` killed outright (SIGKILL, power loss, a reboot), then started again:
the time nothing could run is not counted against maxExecSeconds. Real `autotune run` processes and real trial
processes (tests/integration/trials/ledger_sgd.py, an SGD classifier on digits).

A long outage is made without waiting for it: after the kill the test moves the whole
dead run back in time by an hour (the experiment's registration time in autotune.db, the
run's heartbeat file, the mtime of its trials' process records), exactly what a run that
died an hour ago leaves on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import exit_code_for
from tests.integration import kill_harness as kh

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    kh.kill_groups_naming(tmp_path)


def backdate(ctx: kh.Ctx, seconds: float) -> None:
    """Everything the dead run left that says when it lived, ``seconds`` earlier."""
    with sqlite3.connect(ctx.db) as c:
        c.execute("UPDATE experiments SET created = created - ? WHERE id = ?", (seconds, ctx.exp_id))
        c.execute("UPDATE trials SET created = created - ?, started = started - ? WHERE exp_id = ?",
                  (seconds, seconds, ctx.exp_id))
    beat = ctx.out / "heartbeat"
    beat.write_text(f"{float(beat.read_text()) - seconds:.3f}\n")
    for rec in (ctx.out / "trials").glob("*/process.json"):
        st = rec.stat()
        os.utime(rec, (st.st_atime - seconds, st.st_mtime - seconds))


def rerun(ctx: kh.Ctx) -> tuple[int, str]:
    proc = ctx.start()
    code = proc.wait(timeout=180)
    return code, (ctx.tmp / "autotune.log").read_text()


def test_a_run_killed_with_its_trials_does_not_time_out_from_the_outage(tmp_path: Path) -> None:
    """A reboot an hour later: the run and its trials were killed together, so nothing ran
    meanwhile. maxExecSeconds is 300; without the rule the experiment would have "run" for
    an hour and end TIMEOUT at once with nothing run."""
    ctx = kh.Ctx(tmp_path, "reboot", kh.ledger_manifest("reboot", max_trials=4, concurrency=2, epochs=4, sleep=0.3))
    ctx.doc["spec"]["maxExecSeconds"] = 300
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: ctx.acks() >= 2 and (ctx.out / "heartbeat").exists(), "2 acks", how="all")
    assert not kh.trial_pids(ctx.out)
    backdate(ctx, HOUR)
    code, log = rerun(ctx)
    status = json.loads((ctx.out / "status.json").read_text())
    assert (code, status["phase"]) == (0, "DONE"), (status["message"], log)
    assert status["trials"]["succeeded"] >= 2 and status["trials"]["total"] == 4
    assert status["pausedSeconds"] >= HOUR - 5  # the outage, persisted for a later resume
    assert "no trial of it still runs" in log and "do not count toward maxExecSeconds" in log, log


def test_with_a_trial_still_running_the_outage_counts(tmp_path: Path) -> None:
    """Only `autotune run` died; its trials kept training, so the experiment progressed and
    the hour counts: the resumed run adopts them and ends TIMEOUT."""
    ctx = kh.Ctx(tmp_path, "survive", kh.ledger_manifest("survive", max_trials=4, concurrency=2, epochs=200, sleep=0.1))
    ctx.doc["spec"]["maxExecSeconds"] = 300
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: ctx.acks() >= 2 and (ctx.out / "heartbeat").exists(), "2 acks")
    assert kh.trial_pids(ctx.out)
    backdate(ctx, HOUR)
    code, log = rerun(ctx)
    status = json.loads((ctx.out / "status.json").read_text())
    assert (code, status["phase"]) == (exit_code_for(ctx.out), "TIMEOUT"), (status["message"], log)
    assert "still run" in log and "count toward maxExecSeconds" in log, log
    assert not status.get("pausedSeconds")
