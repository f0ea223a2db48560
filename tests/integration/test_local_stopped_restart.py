"""A restarted `autotune run` that finds a trial stopped by the experiment's rules
(TrialLaunch.stopped: here maxExecSeconds reached) and no process of it left does not start
it again only to stop it on its next pass: it ends STOPPED with the experiment's reason, as
a cluster's workload that is gone is not created again. Real runs and trials
(trials/ledger_sgd.py: SGD on digits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.integration.conftest import exit_code_for
from tests.integration import kill_harness as kh


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    kh.kill_groups_naming(tmp_path)


def test_a_trial_stopped_at_the_restart_with_no_process_record_is_not_started(tmp_path: Path) -> None:
    ctx = kh.Ctx(tmp_path, "gone", kh.ledger_manifest("gone", max_trials=4, concurrency=2, epochs=6, sleep=0.5))
    proc = ctx.start()
    # Two reports of one trial: the run has lived more than the 1 s of maxExecSeconds below
    # (each epoch sleeps 0.5 s before its report).
    assert kh.wait_for(lambda: any(sum(e["ev"] == "ack" for e in evs) >= 2 for evs in kh.ledgers(ctx.out).values()),
                       proc, what="two reports of a trial")
    kh.kill_controller(proc, "all", ctx.out)  # the run and its trials, killed outright
    # One trial as if its run had died before its supervisor recorded its process (the
    # window between the tuner server issuing it and the record): no process.json, no pid.
    rows = kh.db_query(ctx.db, "SELECT trial_id FROM trials WHERE exp_id = ? AND state IN ('WAITING', 'RUNNING') "
                               "ORDER BY sequence", (ctx.exp_id,))
    victim = rows[0][0]
    for name in ("process.json", "pid"):
        (ctx.out / "trials" / victim / name).unlink(missing_ok=True)
    # No heartbeat: the time since the kill counts toward maxExecSeconds (a folder of an older
    # version), so the restarted run finds the experiment over before its first pass.
    (ctx.out / "heartbeat").unlink()
    runs_before = len(kh.runs_of(kh.ledgers(ctx.out).get(victim, [])))
    # Resumed with maxExecSeconds lowered below the time it has run: the experiment is over.
    doc = yaml.safe_load(ctx.manifest.read_text())
    doc["spec"]["maxExecSeconds"] = 1
    ctx.manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    code = ctx.start().wait(timeout=120)
    assert code == exit_code_for(ctx.out), ctx.log  # TIMEOUT
    status = json.loads((ctx.out / "status.json").read_text())
    assert status["phase"] == "TIMEOUT", status
    [(state, message)] = kh.db_query(ctx.db, "SELECT state, message FROM trials WHERE exp_id = ? AND trial_id = ?",
                                     (ctx.exp_id, victim))
    assert state == "STOPPED" and message.startswith("maxExecSeconds (1s) reached"), (state, message)
    assert len(kh.runs_of(kh.ledgers(ctx.out).get(victim, []))) == runs_before  # no process of it started again
    assert not (ctx.out / "trials" / victim / "pid").exists()
