"""Ctrl-C on `autotune run`, then the same command again: the trials the interrupt stopped
are not results (nor failures) of their configurations. They wait (WAITING, saying they were
interrupted), count toward neither maxTrialNum nor maxFailedTrialNum, and run again under the
same name with the same parameters; their dropped attempt's reports are never counted twice.
Real `autotune run` processes, real trials (trials/ledger_sgd.py: SGD on digits).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration import kill_harness as kh
from tests.integration.conftest import ADMIN, ServerProcess, free_port


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    kh.kill_groups_naming(tmp_path)


def test_ctrl_c_trials_run_again_on_resume_and_maxtrialnum_trials_finish(tmp_path: Path) -> None:
    doc = kh.ledger_manifest("cut", max_trials=4, concurrency=2, epochs=4, sleep=0.4, vary=True)
    doc["spec"]["maxFailedTrialNum"] = 1  # an interrupted trial counted as failed would end the run ERROR
    ctx = kh.Ctx(tmp_path, "cut", doc)
    proc = ctx.start()
    # Both running trials acknowledged a report: the interrupt cuts each in its curve.
    assert kh.wait_for(lambda: len({t for t, evs in kh.ledgers(ctx.out).items() if any(e["ev"] == "ack" for e in evs)}) >= 2,
                       proc, what="two trials with a report")
    cut = {t for t, evs in kh.ledgers(ctx.out).items() if not any(e["ev"] == "exit" for e in evs)}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, ctx.log
    status = json.loads((ctx.out / "status.json").read_text())
    assert status["phase"] == "ERROR" and "interrupted" in status["message"]
    t = status["trials"]
    assert (t["running"], t["stopped"], t["failed"]) == (0, 0, 0) and t["waiting"] >= len(cut) >= 1
    rows = kh.db_query(ctx.db, "SELECT trial_id, state, message, parameters FROM trials WHERE exp_id = ?", (ctx.exp_id,))
    params = {r[0]: json.loads(r[3]) for r in rows}
    for tid, state, message, _ in rows:
        if tid in cut:
            assert state == "WAITING" and message.startswith("interrupted by the user"), (tid, state, message)
    # None of a dropped attempt's curve is the trial's any more.
    assert not kh.db_query(ctx.db, f"SELECT 1 FROM intermediate WHERE exp_id = ? AND trial_id IN ({','.join('?' * len(cut))})",
                           (ctx.exp_id, *sorted(cut)))
    assert ctx.finish(None) == 0, ctx.log
    final = json.loads((ctx.out / "status.json").read_text())
    assert final["phase"] == "DONE" and final["trials"]["total"] == 4 and final["trials"]["succeeded"] == 4, final
    after = {r[0]: (r[1], json.loads(r[2])) for r in kh.db_query(
        ctx.db, "SELECT trial_id, state, parameters FROM trials WHERE exp_id = ?", (ctx.exp_id,))}
    for tid in cut:
        assert after[tid] == ("SUCCEEDED", params[tid])  # the same name, the same configuration
        aside = ctx.out / "trials" / tid / "interrupted" / "1"
        assert json.loads((aside / "kill.json").read_text())["cause"] == "user"
        assert (aside / "ledger.jsonl").exists()
    # The check every kill test makes: every acknowledged report stored exactly once, one
    # reporting process per trial (the rerun's; the dropped attempt's ledger is set aside),
    # the result files agreeing with the history, exactly maxTrialNum trials.
    o = ctx.check()
    assert o.ok, (o.failed(), ctx.log, o.notes)


INTERRUPTIBLE = kh.TRIALS / "interruptible_sgd.py"


def interruptible(name: str, max_trials: int, concurrency: int) -> dict:
    doc = kh.ledger_manifest(name, max_trials=max_trials, concurrency=concurrency)
    container = doc["spec"]["trainingConfig"]["tasks"][0]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, str(INTERRUPTIBLE), "--epochs", "4", "--sleep", "0.3"]
    doc["spec"]["maxFailedTrialNum"] = 1
    return doc


def attempts(out: Path) -> dict[str, list[dict]]:
    """Every trial's attempt lines (its current attempt's and those set aside), in order."""
    got: dict[str, list[dict]] = {}
    for tdir in sorted((out / "trials").glob("*")):
        aside = sorted(tdir.glob("interrupted/*/attempts.jsonl"), key=lambda p: int(p.parent.name))
        for p in [*aside, tdir / "attempts.jsonl"]:
            if p.exists():
                got.setdefault(tdir.name, []).extend(json.loads(ln) for ln in p.read_text().splitlines() if ln.strip())
    return got


def reporting(out: Path) -> list[int]:
    """Pids of live trial processes that have made a report (their process groups' leaders
    are their supervisors, which share the group)."""
    return [e["pid"] for evs in attempts(out).values() for e in evs
            if e["ev"] == "report" and kh.alive(e["pid"]) and not any(x["ev"] in ("exit", "interrupted") and x["pid"] == e["pid"] for x in evs)]


def test_a_ctrl_c_reaching_a_trial_is_not_a_failure_and_it_runs_again(tmp_path: Path) -> None:
    """SIGINT to one trial's processes (a Ctrl-C that reached them) while `autotune run` goes
    on: the trial exits 1 (KeyboardInterrupt, as launchers do). It is interrupted, not failed
    (maxFailedTrialNum is 1: a failure would end the run ERROR), and runs again at once under
    the same name; the experiment finishes maxTrialNum trials, all succeeded."""
    ctx = kh.Ctx(tmp_path, "hit", interruptible("hit", max_trials=3, concurrency=1))
    proc = ctx.start()
    assert kh.wait_for(lambda: bool(reporting(ctx.out)), proc, what="a trial with a report")
    [pid] = reporting(ctx.out)[:1]
    hit = next(t for t, evs in attempts(ctx.out).items() if any(e["pid"] == pid for e in evs))
    os.killpg(os.getpgid(pid), signal.SIGINT)
    assert proc.wait(timeout=240) == 0, ctx.log
    status = json.loads((ctx.out / "status.json").read_text())
    assert status["phase"] == "DONE" and status["trials"] == {**status["trials"], "total": 3, "succeeded": 3, "failed": 0}
    evs = attempts(ctx.out)[hit]
    assert [e["ev"] for e in evs if e["ev"] in ("start", "interrupted", "exit")] == ["start", "interrupted", "start", "exit"]
    # The rerun's curve alone is the trial's: 4 epochs, equal to what its new process reported.
    rerun = [e["value"] for e in evs if e["ev"] == "report" and e["pid"] == evs[-1]["pid"]]
    [(curve,)] = kh.db_query(ctx.db, "SELECT COUNT(*) FROM intermediate WHERE exp_id = ? AND trial_id = ?", (ctx.exp_id, hit))
    assert curve == len(rerun) == 4


def test_a_ctrl_c_reaching_run_and_trials_at_once_requeues_them(tmp_path: Path) -> None:
    """A Ctrl-C that reaches `autotune run` and its trials together (a terminal whose
    foreground group held them all, a shutdown signalling every process): the trials end as
    interrupted whichever sees it first, none FAILED; the same command then finishes them."""
    ctx = kh.Ctx(tmp_path, "all", interruptible("all", max_trials=4, concurrency=2))
    proc = ctx.start()
    assert kh.wait_for(lambda: len(reporting(ctx.out)) >= 2, proc, what="two trials with a report")
    groups = {os.getpgid(p) for p in reporting(ctx.out)}
    for g in [proc.pid, *groups]:
        os.killpg(g, signal.SIGINT)
    assert proc.wait(timeout=60) == 130, ctx.log
    t = json.loads((ctx.out / "status.json").read_text())["trials"]
    assert (t["failed"], t["stopped"], t["running"]) == (0, 0, 0) and t["waiting"] >= 2, t
    assert ctx.finish(None) == 0, ctx.log
    final = json.loads((ctx.out / "status.json").read_text())
    assert final["phase"] == "DONE" and final["trials"]["succeeded"] == 4 and final["trials"]["total"] == 4, final


def test_ctrl_c_with_a_separate_tuner_server_requeues_over_http(tmp_path: Path) -> None:
    """`autotune run --server URL`: the requeue goes over HTTP (POST .../requeue, admin only);
    the trials wait on the server, and the same command finishes them."""
    doc = kh.ledger_manifest("srv", max_trials=3, concurrency=2, epochs=4, sleep=0.4)
    ctx = kh.Ctx(tmp_path, "srv", doc)
    ctx.server = ServerProcess(tmp_path / "tuner.db", free_port())
    ctx.server_token = ADMIN
    ctx.server.start()
    try:
        proc = ctx.start()
        assert kh.wait_for(lambda: ctx.acks() >= 2, proc, what="two reports")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, ctx.log
        trials = ctx.server.get(f"/api/v1/experiments/{ctx.exp_id}/trials").json()
        waiting = [t for t in trials if t["state"] == "WAITING"]
        assert waiting and all(t["message"].startswith("interrupted by the user") for t in waiting), trials
        assert not [t for t in trials if t["state"] in ("STOPPED", "FAILED")], trials
        with ctx.server.client("not-the-admin-token") as c:
            r = c.post(f"/api/v1/experiments/{ctx.exp_id}/trials/{waiting[0]['name']}/requeue", json={"message": "x"})
            assert r.status_code in (401, 403)
        with ctx.server.client() as c:
            r = c.post(f"/api/v1/experiments/{ctx.exp_id}/trials/{waiting[0]['name']}/requeue", json={"message": ""})
            assert r.status_code == 422  # a requeue says why
        assert ctx.finish(None) == 0, ctx.log
        final = json.loads((ctx.out / "status.json").read_text())
        assert final["phase"] == "DONE" and final["trials"]["succeeded"] == 3 and final["trials"]["total"] == 3, final
        o = ctx.check()
        assert o.ok, (o.failed(), ctx.log, o.notes)
    finally:
        ctx.server.stop()
