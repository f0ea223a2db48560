"""A maxTrialSeconds stop in progress when `autotune run` is killed outright: the run
started again ends the trial FAILED for maxTrialSeconds, as the dead run would have, not
STOPPED. Real `autotune run` processes and real trial processes
(tests/integration/trials/ledger_sgd.py, an SGD classifier on digits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import exit_code_for
from tests.integration import kill_harness as kh


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    kh.kill_groups_naming(tmp_path)


# A stopped trial's grace: ended by an event (a SIGTERM again) long before this; only a bound.
GRACE = 120.0


def rerun(ctx: kh.Ctx) -> tuple[int, str]:
    proc = ctx.start()
    code = proc.wait(timeout=180)
    return code, (ctx.tmp / "autotune.log").read_text()


def test_a_max_trial_seconds_stop_in_progress_when_the_run_dies_fails_the_trial(tmp_path: Path) -> None:
    """maxTrialSeconds passed: the trial got SIGTERM and takes its time to exit; `autotune
    run` is killed meanwhile and the trial exits (143) while no run watches. The next run
    ends it FAILED for maxTrialSeconds (as the dead run would have), not STOPPED."""
    ctx = kh.Ctx(tmp_path, "overdue", kh.ledger_manifest("overdue", max_trials=2, concurrency=1, epochs=200, sleep=0.1,
                                                        term_grace=GRACE, term_until_resent=True))
    ctx.doc["spec"]["maxTrialSeconds"] = 3
    tid = kh.kill_run_in_term_grace(ctx, ctx.start())
    # The trial ends its grace now (an event, not a fixed grace the kill had to beat): no run watches its exit.
    kh.end_term_grace(ctx, tid)
    record = ctx.out / "trials" / tid / "process.json"
    kh.wait_for(lambda: "exit" in json.loads(record.read_text()), None, timeout=30, what=f"{tid} exited")
    code, log = rerun(ctx)
    assert code == exit_code_for(ctx.out), log
    state, message, exit_code = kh.db_query(ctx.db, "SELECT state, message, exit_code FROM trials WHERE trial_id = ?",
                                            (tid,))[0]
    assert (state, exit_code) == ("FAILED", 143) and "maxTrialSeconds" in message, message
    assert len(kh.runs_of(kh.ledgers(ctx.out)[tid])) == 1


def test_a_max_trial_seconds_stop_of_an_adopted_trial_fails_it(tmp_path: Path) -> None:
    """The same, but the trial is still shutting down when the next run starts: that run
    adopts it, waits for its exit and ends it FAILED for maxTrialSeconds."""
    ctx = kh.Ctx(tmp_path, "overdue2", kh.ledger_manifest("overdue2", max_trials=2, concurrency=1, epochs=200, sleep=0.1,
                                                         term_grace=GRACE, term_until_resent=True))
    ctx.doc["spec"]["maxTrialSeconds"] = 3
    tid = kh.kill_run_in_term_grace(ctx, ctx.start())
    # Its grace lasts until the next SIGTERM, so it still runs however long the next run takes to start.
    assert "exit" not in json.loads((ctx.out / "trials" / tid / "process.json").read_text())
    code, log = rerun(ctx)
    assert code == exit_code_for(ctx.out), log
    state, message, exit_code = kh.db_query(ctx.db, "SELECT state, message, exit_code FROM trials WHERE trial_id = ?",
                                            (tid,))[0]
    assert (state, exit_code) == ("FAILED", 143) and "maxTrialSeconds" in message, (state, message, exit_code, log)
    evs = kh.ledgers(ctx.out)[tid]
    assert len(kh.runs_of(evs)) == 1
    # The second SIGTERM, which ended the grace, is the next run's stop of the trial it adopted.
    assert [e["ev"] for e in evs if e["ev"] in ("sigterm", "term_exit")] == ["sigterm", "sigterm", "term_exit"], evs

