"""Chaos rounds for "an experiment never loses a trial or a metric when a process is killed".

Usage: python bench/chaos_local.py [--rounds 3] [--seed 0] [--only NAME,...] [--keep DIR]

Each round runs every scenario once: a real `autotune run` (trials are real processes
training SGDClassifier on digits, tests/integration/trials/ledger_sgd.py) is SIGKILLed at
a point drawn from a seeded generator, then the same command runs again until the
experiment is DONE, and kill_harness.check_experiment compares the trials' ledgers (what
the server acknowledged), autotune.db, trials.csv and status.json. Prints a table of
scenario x check (ok / FAIL) and writes it with every failure's details to
bench/results/chaos_local-<seed>.json. A failing round is replayed with the same --seed
and --only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from tests.integration import kill_harness as kh  # noqa: E402
from tests.integration.conftest import ADMIN, ServerProcess, free_port  # noqa: E402

Scenario = Callable[[kh.Ctx, random.Random], Any]


def _acks_at_least(ctx: kh.Ctx, n: int) -> Callable[[], bool]:
    return lambda: ctx.acks() >= n


def s_before_first_trial(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    registered = lambda: bool(kh.db_query(ctx.db, "SELECT id FROM experiments"))  # noqa: E731
    kh.wait_for(registered, proc, what="registered")
    time.sleep(rng.uniform(0, 0.3))  # somewhere around the first suggestion and launch
    ctx.remember()
    kh.kill_controller(proc, "ctl", ctx.out)
    ctx.log.append(f"killed just after registering; trials {sorted(ctx.seen)}")
    return None


def _mid_reports(how: str) -> Scenario:
    def run(ctx: kh.Ctx, rng: random.Random) -> Any:
        proc = ctx.start()
        n = rng.randint(1, ctx.max_trials * 4 - 2)
        kh.kill_when(ctx, proc, _acks_at_least(ctx, n), f"{n} acked reports", how)
        return None
    return run


def s_between_final_and_exit(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    n = rng.randint(1, ctx.max_trials - 1)
    kh.kill_when(ctx, proc, lambda: kh.count_events(ctx.out, "ack_final") >= n, f"{n} final reports acked")
    return None


def s_assessor_stop(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    n = rng.randint(1, 2)
    kh.kill_when(ctx, proc, lambda: len(ctx.trial_rows("stop_requested = 1")) >= n, f"{n} stop requests")
    return None


def s_promotion(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    n = rng.randint(1, 3)
    kh.kill_when(ctx, proc, lambda: len(ctx.trial_rows("info LIKE '%\"resume\": \"%' AND started IS NOT NULL")) >= n,
                 f"{n} promoted trials started")
    return None


def s_final_training(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    n = rng.randint(0, 3)

    def final_acks() -> bool:
        rows = ctx.trial_rows("kind = 'final'")
        if not rows:
            return False
        evs = kh.ledgers(ctx.out).get(rows[0][0], [])
        return bool(evs) and sum(e["ev"] == "ack" for e in evs) >= n
    kh.kill_when(ctx, proc, final_acks, f"final training with {n} acked reports")
    return None


def s_after_last_trial(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    kh.kill_when(ctx, proc, lambda: kh.count_events(ctx.out, "exit") >= ctx.max_trials, "the last trial exited")
    return None


def s_repeated(ctx: kh.Ctx, rng: random.Random) -> Any:
    for i in range(3):
        proc = ctx.start()
        n = ctx.acks() + rng.randint(1, 5)
        if not kh.kill_when(ctx, proc, _acks_at_least(ctx, n), f"kill {i + 1}: {n} acked reports", rng.choice(["ctl", "all"])):
            return proc
    return None


def s_trial_sigkill(ctx: kh.Ctx, rng: random.Random) -> Any:
    proc = ctx.start()
    kh.kill_trial_when(ctx, proc, rng.randint(1, 3))
    return proc


def _server_kill(also_client: bool) -> Scenario:
    def run(ctx: kh.Ctx, rng: random.Random) -> Any:
        ctx.server = ServerProcess(ctx.tmp / "tuner.db", free_port())
        ctx.server_token = ADMIN
        ctx.server.start()
        proc = ctx.start()
        n = rng.randint(1, ctx.max_trials * 4 - 2)
        kh.wait_for(_acks_at_least(ctx, n), proc, what=f"{n} acked reports")
        ctx.remember()
        ctx.server.kill()
        if also_client:
            kh.kill_controller(proc, "ctl", ctx.out)
            proc = None
        ctx.log.append(f"server killed after {n} acks{' with the client' if also_client else ''}")
        time.sleep(rng.uniform(0.2, 3.0))  # down for a while: the SDK and client retry
        ctx.server.start()
        return proc
    return run


# A tuner server (`python -m tuner_server`) that dies as if SIGKILLed just before the
# transaction holding its n-th curve point commits: SQLite's statement trace (installed on
# every connection here, in the benchmark only) exits the process at that COMMIT. A random
# kill from outside almost never lands between two commits a millisecond apart; this lands
# there every time. For MLflow and printed metrics the value's event went in a commit of its
# own before the point's, and a server killed between them lost the point for ever.
_DYING_SERVER = """
import os, runpy, sqlite3, sys
nth = int(sys.argv.pop(1))
points = 0
def hook(sql):
    global points
    if sql.startswith("INSERT OR REPLACE INTO intermediate"):
        points += 1
    elif sql == "COMMIT" and points == nth:
        os._exit(137)
_connect = sqlite3.connect
def connect(*a, **k):
    db = _connect(*a, **k)
    db.set_trace_callback(hook)
    return db
sqlite3.connect = connect
runpy.run_module("tuner_server", run_name="__main__", alter_sys=True)
"""


def _start_dying(server: ServerProcess, nth: int) -> None:
    env = {**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN}
    server.proc = subprocess.Popen([sys.executable, "-c", _DYING_SERVER, str(nth), "--db", str(server.db),
                                    "--port", str(server.port)], env=env)
    kh.wait_for(lambda: _healthy(server), server.proc, timeout=20, what="the dying server's start")


def _healthy(server: ServerProcess) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _server_dies_mid_point(report: str) -> Scenario:
    """Trials log through MLflow (report=mlflow) or print (report=print, read by the
    controller); the server dies before the n-th curve point's commit, then restarts."""
    def run(ctx: kh.Ctx, rng: random.Random) -> Any:
        ctx.server = ServerProcess(ctx.tmp / "tuner.db", free_port())
        ctx.server_token = ADMIN
        n = rng.randint(1, ctx.max_trials * 4 - 2)  # 4 epochs a trial, each a curve point
        _start_dying(ctx.server, n)
        proc = ctx.start()
        server = ctx.server.proc
        assert server is not None
        kh.wait_for(lambda: server.poll() is not None, proc, what=f"the server's death at curve point {n}")
        ctx.remember()
        ctx.log.append(f"server died before curve point {n}'s commit (exit {server.poll()})")
        time.sleep(rng.uniform(0.2, 3.0))  # down for a while: the MLflow client and the controller retry
        ctx.server.start()
        return proc
    return run


SCENARIOS: dict[str, tuple[Scenario, dict[str, Any]]] = {
    "before-first-trial": (s_before_first_trial, dict(max_trials=4, concurrency=2)),
    "mid-reports/ctl": (_mid_reports("ctl"), dict(max_trials=6, concurrency=2, sleep=0.1)),
    "mid-reports/all": (_mid_reports("all"), dict(max_trials=6, concurrency=2, sleep=0.1)),
    "final-report-to-exit": (s_between_final_and_exit, dict(max_trials=4, concurrency=2, linger=1.0)),
    "assessor-stop": (s_assessor_stop, dict(max_trials=8, concurrency=2, epochs=6, sleep=0.1,
                                            assessor={"name": "Medianstop", "args": {"optimize_mode": "maximize", "start_step": 2}})),
    "promotion": (s_promotion, dict(max_trials=13, concurrency=2, sleep=0.05,
                                    advisor={"name": "Hyperband", "args": {"optimize_mode": "maximize", "R": 9, "eta": 3, "max_brackets": 1}})),
    "final-training": (s_final_training, dict(max_trials=4, concurrency=2, sleep=0.1, final=True,
                                              advisor={"name": "SuccessiveHalving", "args": {"optimize_mode": "maximize", "min_budget": 2, "max_budget": 4, "eta": 2, "n": 2}})),
    "after-last-trial": (s_after_last_trial, dict(max_trials=3, concurrency=3, linger=0.3)),
    "repeated-kills": (s_repeated, dict(max_trials=6, concurrency=2, sleep=0.1)),
    "trial-sigkill": (s_trial_sigkill, dict(max_trials=4, concurrency=2, sleep=0.2)),
    "server-kill": (_server_kill(False), dict(max_trials=6, concurrency=2, sleep=0.1)),
    "server+client-kill": (_server_kill(True), dict(max_trials=6, concurrency=2, sleep=0.1)),
    "server-dies-mid-point/mlflow": (_server_dies_mid_point("mlflow"), dict(max_trials=4, concurrency=2, sleep=0.1,
                                                                            report="mlflow")),
    "server-dies-mid-point/print": (_server_dies_mid_point("print"), dict(max_trials=4, concurrency=2, sleep=0.1,
                                                                          report="print")),
}


def run_one(name: str, seed: int, tmp: Path) -> dict[str, Any]:
    scenario, kw = SCENARIOS[name]
    rng = random.Random(f"{seed}:{name}")
    exp = name.replace("/", "-").replace("+", "-")
    ctx = kh.Ctx(tmp, exp, kh.ledger_manifest(exp, **kw))
    t0 = time.monotonic()
    error = None
    try:
        proc = scenario(ctx, rng)
        code = ctx.finish(proc)
        outcome = ctx.check()
        if code != 0:
            outcome.add("files", f"the last run exited {code}")
    except Exception as e:  # a scenario that cannot even finish is a failure of every check
        error = f"{type(e).__name__}: {e}"
        outcome = kh.Outcome()
        outcome.add("files", error)
    finally:
        ctx.cleanup()
        if ctx.server is not None:
            ctx.server.stop()
    return {"scenario": name, "seed": seed, "seconds": round(time.monotonic() - t0, 1), "reruns": ctx.reruns,
            "checks": {c: not m for c, m in outcome.problems.items()}, "failures": outcome.failed(),
            "notes": outcome.notes, "log": ctx.log}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", help="keep every scenario's folder under DIR")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    results = []
    for r in range(args.rounds):
        for name in names:
            seed = args.seed + r
            tmp = Path(tempfile.mkdtemp(prefix="chaos-", dir=args.keep))
            res = run_one(name, seed, tmp)
            results.append(res)
            flag = "ok" if not res["failures"] else "FAIL"
            print(f"[{flag}] round {r} {name} seed={seed} {res['seconds']}s reruns={res['reruns']}", flush=True)
            for f in res["failures"]:
                print(f"    {f}", flush=True)
            if not args.keep and not res["failures"]:
                shutil.rmtree(tmp, ignore_errors=True)
            elif res["failures"]:
                print(f"    kept {tmp}", flush=True)
    print()
    print("| scenario | " + " | ".join(kh.CHECKS) + " |")
    print("|---|" + "---|" * len(kh.CHECKS))
    for name in names:
        rs = [x for x in results if x["scenario"] == name]
        cells = []
        for c in kh.CHECKS:
            bad = sum(not x["checks"][c] for x in rs)
            cells.append("ok" if not bad else f"FAIL {bad}/{len(rs)}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"chaos_local-{args.seed}.json").write_text(json.dumps(results, indent=1))
    return 0 if all(not x["failures"] for x in results) else 1


if __name__ == "__main__":
    sys.exit(main())
