"""SIGKILL `autotune run`, its trials or everything at once, then run the same command
again: no trial lost or run twice, every acknowledged metric kept exactly once, the
result files agreeing with the history (kill_harness.check_experiment checks all of it).

Kill points are conditions on what the experiment durably did (ledger lines written
after the server acknowledged a report, rows in autotune.db), never delays.
bench/chaos_local.py runs the same scenarios with seeded random kill points.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from typing import Iterator

import pytest

from tests.integration import kill_harness as kh
from tests.integration.conftest import ADMIN, ServerProcess, exit_code_for, free_port


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    """A test that fails midway leaves `autotune run` or orphaned trials behind: end the
    process groups of every process whose command line names this test's folder (runs,
    trial supervisors; each trial shares its supervisor's group)."""
    yield
    kh.kill_groups_naming(tmp_path)


def ctx_for(tmp: Path, name: str, **kw: object) -> kh.Ctx:
    return kh.Ctx(tmp, name, kh.ledger_manifest(name, **kw))  # type: ignore[arg-type]


def assert_clean(ctx: kh.Ctx) -> kh.Outcome:
    o = ctx.check()
    assert o.ok, (o.failed(), ctx.log, o.notes)
    return o


def running_at_kill(ctx: kh.Ctx) -> set[str]:
    """Trials with a live process right now (their last ledger run has no exit line)."""
    return {tid for tid, evs in kh.ledgers(ctx.out).items()
            if not any(e["ev"] == "exit" for e in kh.runs_of(evs)[-1]) and kh.alive(kh.runs_of(evs)[-1][0]["pid"])}


def test_orphans_of_a_killed_run_are_adopted_not_run_again(tmp_path: Path) -> None:
    """Only `autotune run` dies: its trials keep training and reporting (to the next run's
    server, on the same port when it is still free) and that run watches them to their end
    instead of restarting them."""
    ctx = ctx_for(tmp_path, "adopt", max_trials=4, concurrency=2, epochs=4, sleep=0.4)
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: ctx.acks() >= 3, "3 acked reports")
    url = (ctx.out / "server.url").read_text()
    orphans = running_at_kill(ctx)
    assert orphans, "trials should be running at the kill"
    assert ctx.finish(None) == 0, ctx.log
    # The same URL: clients that cannot read server.url (MLflow's) still reach the new run.
    assert (ctx.out / "server.url").read_text() == url
    assert_clean(ctx)
    led = kh.ledgers(ctx.out)
    for tid in orphans:
        runs = kh.runs_of(led[tid])
        assert len(runs) == 1, f"{tid} was started again"
        assert runs[0][-1]["ev"] == "exit"
    rows = {r[0]: r for r in kh.db_query(ctx.db, "SELECT trial_id, state FROM trials")}
    assert all(rows[t][1] == "SUCCEEDED" for t in orphans)


def test_a_trial_that_finished_while_nobody_watched_keeps_its_result(tmp_path: Path) -> None:
    """Killed between a trial's final report and its exit; the trial exits 0 while no
    `autotune run` exists. The next run takes its recorded exit code: SUCCEEDED, run once."""
    ctx = ctx_for(tmp_path, "unseen", max_trials=3, concurrency=1, epochs=2, linger=0.5)
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: kh.count_events(ctx.out, "ack_final") >= 1, "first final report acked")
    tid = next(t for t, evs in kh.ledgers(ctx.out).items() if any(e["ev"] == "ack_final" for e in evs))
    record = ctx.out / "trials" / tid / "process.json"
    kh.wait_for(lambda: "exit" in json.loads(record.read_text()), None, timeout=30, what=f"{tid} exited")
    assert kh.db_query(ctx.db, "SELECT state FROM trials WHERE trial_id = ?", (tid,)) == [("RUNNING",)]
    assert ctx.finish(None) == 0, ctx.log
    assert_clean(ctx)
    assert len(kh.runs_of(kh.ledgers(ctx.out)[tid])) == 1
    assert kh.db_query(ctx.db, "SELECT state, exit_code FROM trials WHERE trial_id = ?", (tid,)) == [("SUCCEEDED", 0)]


def test_killed_with_its_trials_they_end_stopped_with_their_metrics(tmp_path: Path) -> None:
    """`autotune run` and every trial process killed at once (a container or cgroup kill):
    no exit code exists, so the trials end STOPPED saying so, keep every acknowledged
    metric, and the experiment runs new trials up to maxTrialNum."""
    ctx = ctx_for(tmp_path, "all", max_trials=4, concurrency=2, epochs=4, sleep=0.3)
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: ctx.acks() >= 3, "3 acked reports", how="all")
    victims = {tid for tid, evs in kh.ledgers(ctx.out).items() if not any(e["ev"] == "exit" for e in evs)}
    assert victims
    assert ctx.finish(None) == 0, ctx.log
    assert_clean(ctx)
    rows = {r[0]: r for r in kh.db_query(ctx.db, "SELECT trial_id, state, message FROM trials")}
    for tid in victims:
        assert rows[tid][1] == "STOPPED" and "no exit code was recorded" in rows[tid][2]


def test_a_sigkilled_trial_fails_saying_so_and_keeps_its_metrics(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, "trialkill", max_trials=3, concurrency=1, epochs=4, sleep=0.3)
    proc = ctx.start()
    tid = kh.kill_trial_when(ctx, proc, 2)
    assert tid is not None
    assert ctx.finish(proc) == 0, ctx.log
    assert_clean(ctx)  # FAILED with "killed by signal 9", its two acked metrics stored
    assert len(kh.db_query(ctx.db, "SELECT step FROM intermediate WHERE trial_id = ?", (tid,))) >= 2


def test_killing_the_pid_in_the_pid_file_fails_the_trial_and_leaves_no_process(tmp_path: Path) -> None:
    """The pid file names the trial's supervisor: killing it ends the trial too (FAILED,
    killed by signal 9), not a training process nobody watches any more."""
    ctx = ctx_for(tmp_path, "supkill", max_trials=2, concurrency=1, epochs=4, sleep=0.3)
    proc = ctx.start()
    kh.wait_for(lambda: ctx.acks() >= 1, proc, what="a report")
    tid = next(iter(kh.ledgers(ctx.out)))
    trial_pid = kh.ledgers(ctx.out)[tid][0]["pid"]
    os.kill(int((ctx.out / "trials" / tid / "pid").read_text()), signal.SIGKILL)
    assert ctx.finish(proc) == 0, ctx.log
    kh.wait_for(lambda: not kh.alive(trial_pid), None, timeout=10, what="the training process gone")
    row = kh.db_query(ctx.db, "SELECT state, message FROM trials WHERE trial_id = ?", (tid,))[0]
    assert row == ("FAILED", "killed by signal 9")


def test_promotion_and_final_training_survive_kills(tmp_path: Path) -> None:
    """Killed while a promoted trial resumes from its checkpoint, then again during final training."""
    ctx = ctx_for(tmp_path, "sh", max_trials=3, concurrency=1, epochs=4, sleep=0.3, final=True,
                  advisor={"name": "SuccessiveHalving", "args": {"optimize_mode": "maximize", "min_budget": 1,
                                                                  "max_budget": 2, "eta": 2, "n": 2}})
    proc = ctx.start()
    promoted = lambda: ctx.trial_rows("info LIKE '%\"resume\": \"%' AND started IS NOT NULL")  # noqa: E731
    assert kh.kill_when(ctx, proc, lambda: any(kh.ledgers(ctx.out).get(r[0]) for r in promoted()), "a promotion running")
    proc = ctx.start()
    ctx.reruns += 1

    def final_reporting() -> bool:
        rows = ctx.trial_rows("kind = 'final'")
        return bool(rows) and any(e["ev"] == "ack" for e in kh.ledgers(ctx.out).get(rows[0][0], []))
    assert kh.kill_when(ctx, proc, final_reporting, "final training reporting")
    assert ctx.finish(None) == 0, ctx.log
    assert_clean(ctx)
    assert len(ctx.trial_rows("kind = 'final'")) == 1


def test_an_assessors_stop_survives_a_kill(tmp_path: Path) -> None:
    """Killed right after the assessor asked a trial to stop: the next run stops the
    adopted process, and it ends EARLY_STOPPED with the metrics it reported."""
    ctx = ctx_for(tmp_path, "stopme", max_trials=6, concurrency=2, epochs=6, sleep=0.2, vary=False,
                  assessor={"name": "Medianstop", "args": {"optimize_mode": "maximize", "start_step": 2}})
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: bool(ctx.trial_rows("stop_requested = 1")), "a stop request"), ctx.log
    stopped = ctx.trial_rows("stop_requested = 1")[0][0]
    assert ctx.finish(None) == 0, ctx.log
    assert_clean(ctx)
    assert kh.db_query(ctx.db, "SELECT state FROM trials WHERE trial_id = ?", (stopped,)) == [("EARLY_STOPPED",)]
    assert len(kh.runs_of(kh.ledgers(ctx.out)[stopped])) == 1


def test_a_fresh_history_in_an_old_folder_ignores_old_process_records(tmp_path: Path) -> None:
    """autotune.db deleted (trials/ left) after a killed run whose trials still run: the
    new experiment's trials have the old names, but the old records and processes are
    another history's. They must neither end the new trials nor keep running beside them."""
    ctx = ctx_for(tmp_path, "again", max_trials=2, concurrency=2, epochs=4, sleep=0.5)
    proc = ctx.start()
    assert kh.kill_when(ctx, proc, lambda: ctx.acks() >= 1, "a report")
    old = kh.trial_pids(ctx.out)
    assert old
    for p in ctx.out.glob("autotune.db*"):
        p.unlink()
    for p in (ctx.out / "trials").glob("*/ledger.jsonl"):
        p.unlink()
    ctx.seen.clear()
    assert ctx.finish(None) == 0
    assert not any(kh.alive(p) for p in old)
    assert_clean(ctx)
    for evs in kh.ledgers(ctx.out).values():  # an old process may have noted a send before it was killed
        new = [run for run in kh.runs_of(evs) if run[0]["pid"] not in old]
        assert len(new) == 1 and new[0][-1]["ev"] == "exit"


def test_sighup_stops_the_trials_like_ctrl_c(tmp_path: Path) -> None:
    """A closed terminal sends SIGHUP: the trials are stopped and recorded, not orphaned."""
    ctx = ctx_for(tmp_path, "hup", max_trials=4, concurrency=2, epochs=4, sleep=0.4)
    proc = ctx.start()
    kh.wait_for(lambda: ctx.acks() >= 2, proc, what="2 reports")
    pids = kh.trial_pids(ctx.out)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 130
    assert not any(kh.alive(p) for p in pids)
    status = json.loads((ctx.out / "status.json").read_text())
    # The interrupted trials wait to run again (a dropped attempt is not a result).
    assert status["trials"]["running"] == 0 and status["trials"]["stopped"] == 0 and status["trials"]["waiting"] >= 1
    assert ctx.finish(None) == 0
    assert_clean(ctx)


def test_server_and_client_killed_together_lose_nothing(tmp_path: Path) -> None:
    """`autotune run --server`: the tuner server and the client SIGKILLed at once, the
    server restarted on its database, the command run again: trials that kept running
    are adopted, reports they made while the server was down arrive after it is back."""
    ctx = ctx_for(tmp_path, "srv", max_trials=4, concurrency=2, epochs=4, sleep=0.3)
    ctx.server = ServerProcess(tmp_path / "tuner.db", free_port())
    ctx.server_token = ADMIN
    ctx.server.start()
    try:
        proc = ctx.start()
        kh.wait_for(lambda: ctx.acks() >= 3, proc, what="3 acked reports")
        ctx.remember()
        ctx.server.kill()
        kh.kill_controller(proc, "ctl", ctx.out)
        # A trial now blocks in a report: its send is written, its ack is not.
        kh.wait_for(lambda: kh.count_events(ctx.out, "send") > ctx.acks(), None, timeout=30, what="a report pending")
        ctx.server.start()
        assert ctx.finish(None) == 0, ctx.log
        assert_clean(ctx)
    finally:
        ctx.server.stop()


def test_store_is_durable_before_it_acknowledges(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: a committed report survives the process (SIGKILL)."""
    from tuner_server.store import Store

    s = Store(tmp_path / "x.db")
    mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = s._db.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)
    s.close()
    code = ("import os, signal; from tuner_server.store import Store, StoredExperiment; s = Store(%r); "
            "s.add_experiment(StoredExperiment('e', 'e', {}, 't', 0.0)); os.kill(os.getpid(), signal.SIGKILL)")
    p = subprocess.run([sys.executable, "-c", code % str(tmp_path / "y.db")], timeout=60)
    assert p.returncode == -signal.SIGKILL  # no close, no checkpoint: only what add_experiment committed
    assert [e.id for e in Store(tmp_path / "y.db").experiments()] == ["e"]


def test_a_stop_in_progress_when_the_run_dies_is_still_a_stop(tmp_path: Path) -> None:
    """maxExecSeconds passed: the trial got SIGTERM and takes its time to exit (saving a
    checkpoint); `autotune run` is killed meanwhile and the trial exits (143) while no run
    watches. The next run knows it stopped the trial: STOPPED for the timeout, not FAILED
    for the exit code the stop caused (which would count toward maxFailedTrialNum)."""
    # The trial never ends by itself (0.1 s a report): only the stop ends it. The limit leaves
    # the run time to start it and the trial time to install its SIGTERM handler however loaded
    # the machine (with 4 s, a trial starting 5 s late died of the SIGTERM before its handler, and
    # the test never saw the stop it waits for).
    ctx = ctx_for(tmp_path, "grace", max_trials=2, concurrency=1, epochs=100000, sleep=0.1, term_grace=120.0,
                  term_until_resent=True)
    ctx.doc["spec"]["maxExecSeconds"] = 15
    ctx.doc["spec"]["maxFailedTrialNum"] = 1
    tid = kh.kill_run_in_term_grace(ctx, ctx.start())
    kh.end_term_grace(ctx, tid)  # (an event, not a fixed grace the kill had to beat): no run watches its exit
    record = ctx.out / "trials" / tid / "process.json"
    kh.wait_for(lambda: "exit" in json.loads(record.read_text()), None, timeout=30, what=f"{tid} exited")
    rerun = ctx.start()
    assert rerun.wait(timeout=120) == exit_code_for(ctx.out)
    status = json.loads((ctx.out / "status.json").read_text())
    assert status["phase"] == "TIMEOUT", status["message"]
    state, message, code = kh.db_query(ctx.db, "SELECT state, message, exit_code FROM trials WHERE trial_id = ?", (tid,))[0]
    assert (state, code) == ("STOPPED", 143) and "maxExecSeconds" in message
    assert len(kh.runs_of(kh.ledgers(ctx.out)[tid])) == 1
