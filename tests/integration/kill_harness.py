"""Kill `autotune run`, its trials or the tuner server at chosen moments, then check that the
experiment lost nothing. Used by tests/integration/test_kill_*.py (deterministic kill
points) and bench/chaos_local.py (seeded random ones).

A kill point is a condition on what the experiment has durably done (rows in autotune.db,
lines in the trials' ledgers written by trials/ledger_sgd.py), never a delay. The checks
compare three records that must agree after the experiment ends: what each trial says
the server acknowledged (its ledger), the database, and the result files.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TRIALS = Path(__file__).parent / "trials"
LEDGER_TRIAL = TRIALS / "ledger_sgd.py"
SPACE = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]}, "eta0": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}
CHECKS = ("lost", "once", "metrics", "files", "maxTrialNum", "states", "history", "procs")


def autotune_cmd() -> list[str]:
    return [sys.executable, "-m", "autotune_operator.cli"]


def ledger_manifest(name: str, max_trials: int, concurrency: int, *, epochs: int = 4, sleep: float = 0.0,
                    linger: float = 0.0, vary: bool = True, term_grace: float = 0.0, term_until_resent: bool = False,
                    tuner: dict[str, Any] | None = None, advisor: dict[str, Any] | None = None,
                    assessor: dict[str, Any] | None = None, final: bool = False, report: str = "sdk") -> dict[str, Any]:
    """``report``: how the trial reports each epoch (ledger_sgd.py --report: sdk, mlflow, print).
    ``term_until_resent``: a SIGTERM's grace ends at the next SIGTERM (ledger_sgd.py --term-until-resent)."""
    command = [sys.executable, str(LEDGER_TRIAL), "--epochs", str(epochs), "--sleep", str(sleep), "--linger", str(linger),
               "--term-grace", str(term_grace)] + (["--term-until-resent"] if term_until_resent else []) + (
               ["--vary"] if vary else []) + (["--report", report] if report != "sdk" else [])
    container = {"name": "trainer", "image": "python:3.11", "command": command}
    spec: dict[str, Any] = {
        "maxTrialNum": max_trials,
        "trialConcurrency": concurrency,
        "searchSpace": json.dumps(SPACE),
        "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1,
                                                        "template": {"spec": {"containers": [container]}}}]},
    }
    if advisor is not None:
        spec["advisor"] = {"builtinAdvisorName": advisor["name"], "classArgs": json.dumps(advisor["args"])}
    else:
        t = tuner or {"name": "TPE", "args": {"optimize_mode": "maximize"}}
        spec["tuner"] = {"builtinTunerName": t["name"], "classArgs": json.dumps(t["args"])}
    if assessor is not None:
        spec["assessor"] = {"builtinAssessorName": assessor["name"], "classArgs": json.dumps(assessor["args"])}
    if final:
        spec["finalTraining"] = {"enabled": True}
    if report != "sdk":
        spec["primaryMetric"] = "accuracy"
    if report == "print":
        spec["metricsCollector"] = {"kind": "StdOut"}
    return {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": name}, "spec": spec}


# ----- observing a running experiment -----
def db_query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the live database ([] while it does not exist yet)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


def ledgers(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every trial's ledger lines (trial id -> events in order); a torn last line is skipped."""
    found: dict[str, list[dict[str, Any]]] = {}
    for p in sorted((out / "trials").glob("*/ledger.jsonl")):
        lines = []
        for raw in p.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pass
        if lines:  # a ledger whose first line is still being written is not there yet
            found[p.parent.name] = lines
    return found


def count_events(out: Path, ev: str) -> int:
    return sum(1 for evs in ledgers(out).values() for e in evs if e["ev"] == ev)


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[Any] | None, timeout: float = 120.0, what: str = "") -> bool:
    """Poll ``cond`` until true; False if ``proc`` ended first or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc is not None and proc.poll() is not None:
            return cond()
        time.sleep(0.01)
    raise TimeoutError(f"kill point never reached: {what}")


def start_run(manifest: Path, output: Path, server: str | None = None, env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen[bytes]:
    """`autotune run` in its own session, so killing its process group reaches only it."""
    args = autotune_cmd() + ["run", str(manifest), "--output", str(output), "--quiet"]
    if server:
        args += ["--server", server]
    sink = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=sink, stderr=sink, start_new_session=True)
    finally:
        if log:
            sink.close()  # type: ignore[union-attr]


def trial_pids(out: Path) -> list[int]:
    """Pids of the trial scripts (from their ledgers) that are still alive."""
    return [pid for pid in {e["pid"] for evs in ledgers(out).values() for e in evs} if alive(pid)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def kill_controller(proc: subprocess.Popen[Any], how: str, out: Path) -> set[str]:
    """SIGKILL `autotune run`: ``ctl`` only its process (its process group is the same here:
    trials run in their own sessions), ``all`` it and every trial process group too (a
    container or cgroup killed as a whole). Returns the trials whose processes ``all`` killed."""
    groups = set()
    victims = set()
    if how == "all":
        victims = {tid for tid, evs in ledgers(out).items() if alive(runs_of(evs)[-1][0]["pid"])}
        for pid in trial_pids(out):
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
        for p in (out / "trials").glob("*/pid"):
            try:
                groups.add(os.getpgid(int(p.read_text())))
            except (ProcessLookupError, ValueError, OSError):
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for g in groups:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    if how == "all":
        # "Killed with the run" means gone. A loaded machine may take a while to run killed
        # processes to their exit, and a trial whose supervisor was forking at the kill (its
        # own session, not yet in a pid file or ledger) starts after it: kill those too,
        # until none has been seen for a moment.
        deadline, quiet_since = time.monotonic() + 10, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
            late = set(trial_pids(out))
            for p in (out / "trials").glob("*/pid"):
                try:
                    late.add(int(p.read_text()))
                except (ValueError, OSError):
                    pass
            late = {pid for pid in late if alive(pid)}
            for pid in late:
                try:
                    if os.getpgid(pid) != os.getpgid(0):  # never the test's own group (a reused pid)
                        os.killpg(os.getpgid(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if late:
                quiet_since = time.monotonic()
            time.sleep(0.02)
    return victims


def kill_groups_naming(folder: Path) -> None:
    """SIGKILL the process group of every process whose command line mentions ``folder``."""
    me = os.getpgid(0)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if str(folder).encode() in (d / "cmdline").read_bytes():
                g = os.getpgid(int(d.name))
                if g != me:
                    os.killpg(g, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def seen_trials(db: Path, exp_id: str) -> set[str]:
    return {r[0] for r in db_query(db, "SELECT trial_id FROM trials WHERE exp_id = ?", (exp_id,))}


# ----- the checks -----
@dataclass
class Outcome:
    problems: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    notes: list[str] = field(default_factory=list)

    def add(self, check: str, msg: str) -> None:
        self.problems[check].append(msg)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def failed(self) -> list[str]:
        return [f"{c}: {'; '.join(m[:3])}" for c, m in self.problems.items() if m]


def runs_of(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A trial's ledger split per process (a trial launched twice has two runs)."""
    order: list[int] = []
    per: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if e["pid"] not in per:
            order.append(e["pid"])
            per[e["pid"]] = []
        per[e["pid"]].append(e)
    return [per[p] for p in order]


def check_experiment(out: Path, db: Path, exp_id: str, max_trials: int, seen: set[str],
                     killed_trials: set[str] = frozenset(), final_training: bool = False,  # type: ignore[assignment]
                     killed_with_run: set[str] = frozenset()) -> Outcome:  # type: ignore[assignment]
    """Everything that must hold once the experiment has ended (see the module docstring).

    ``seen``: trial ids that existed at some kill. ``killed_trials``: trials whose own
    process the test killed (they must be FAILED, saying so). ``killed_with_run``: trials
    whose processes were killed with `autotune run` (they may end STOPPED, saying so, even
    if their ledger got to its last line: no exit code exists).
    """
    o = Outcome()
    trows = db_query(db, "SELECT trial_id, sequence, state, value, metrics, message, kind, budget, info, exit_code "
                         "FROM trials WHERE exp_id = ? ORDER BY sequence", (exp_id,))
    trials = {r[0]: r for r in trows}
    inter: dict[str, dict[int, float]] = {}
    for tid, step, value in db_query(db, "SELECT trial_id, step, value FROM intermediate WHERE exp_id = ?", (exp_id,)):
        inter.setdefault(tid, {})[step] = value
    led = ledgers(out)
    # lost: a trial that existed at a kill is still there
    for tid in sorted(seen - set(trials)):
        o.add("lost", f"{tid} existed before a kill and is gone")
    for tid in sorted(set(led) - set(trials)):
        o.add("lost", f"{tid} ran (has a ledger) but is not in the database")
    # once: one process per trial that reported anything (a rerun mixes two runs' curves)
    seqs = [r[1] for r in trows]
    if seqs != list(range(len(seqs))):
        o.add("once", f"sequences are not 0..n-1: {seqs}")
    for tid, evs in led.items():
        reporting = [r for r in runs_of(evs) if any(e["ev"] in ("ack", "ack_final") for e in r)]
        launched = runs_of(evs)
        if len(reporting) > 1:
            o.add("once", f"{tid} reported from {len(reporting)} processes")
        elif len(launched) > 1:
            o.notes.append(f"{tid} launched {len(launched)} times (only one reported)")
    # metrics: every acknowledged report is stored with its value; nothing stored was not sent
    for tid, evs in led.items():
        got = inter.get(tid, {})
        sent = {(e["step"], e["value"]) for e in evs if e["ev"] == "send"}
        for e in evs:
            if e["ev"] == "ack" and got.get(e["step"]) != e["value"]:
                o.add("metrics", f"{tid} step {e['step']}={e['value']} was acknowledged, stored: {got.get(e['step'])}")
        for step, value in got.items():
            if (step, value) not in sent:
                o.add("metrics", f"{tid} step {step}={value} stored but never sent")
        finals = [e["value"] for e in evs if e["ev"] == "ack_final"]
        if finals and tid in trials and trials[tid][3] != finals[-1]:
            o.add("metrics", f"{tid} final {finals[-1]} acknowledged, stored value {trials[tid][3]}")
    events = db_query(db, "SELECT trial_id, kind, payload FROM events WHERE exp_id = ? ORDER BY id", (exp_id,))
    per_step: Counter[tuple[str, int]] = Counter()
    for t, k, p in events:
        if k == "trial_requeued":  # Ctrl-C dropped the attempt: its points are not the trial's any more
            for key in [key for key in per_step if key[0] == t]:
                del per_step[key]
        elif k == "intermediate_metric":
            per_step[(t, json.loads(p)["step"])] += 1
    for (tid, step), n in per_step.items():
        if n != 1:
            o.add("metrics", f"{tid} step {step} recorded {n} times in the event log")
    # files: trials.csv and status.json say what the database says
    try:
        with open(out / "trials.csv") as f:
            rows = list(csv.DictReader(f))
        status = json.loads((out / "status.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        o.add("files", f"result files unreadable: {e}")
        rows, status = [], {}
    if rows:
        if [r["id"] for r in rows] != [r[0] for r in trows]:
            o.add("files", "trials.csv rows differ from the database's trials")
        for r in rows:
            t = trials.get(r["id"])
            if t is None:
                continue
            if r["state"] != t[2]:
                o.add("files", f"{r['id']}: trials.csv says {r['state']}, the database {t[2]}")
            curve = [inter.get(r["id"], {})[s] for s in sorted(inter.get(r["id"], {}))]
            if json.loads(r["intermediate"]) != curve:
                o.add("files", f"{r['id']}: trials.csv curve differs from the database")
            if r["metrics"] and not isinstance(json.loads(r["metrics"]), dict):
                o.add("files", f"{r['id']}: trials.csv metrics {r['metrics']} (a plain number shows only as the value)")
            if (r["value"] or None) is not None and t[3] is not None and float(r["value"]) != t[3]:
                o.add("files", f"{r['id']}: trials.csv value {r['value']} != {t[3]}")
        states = Counter(r["state"] for r in rows)
        want = {"total": len(rows), "succeeded": states["SUCCEEDED"], "failed": states["FAILED"],
                "earlyStopped": states["EARLY_STOPPED"], "stopped": states["STOPPED"], "running": states["RUNNING"],
                "waiting": states["WAITING"]}
        if status.get("trials") != want:
            o.add("files", f"status.json counts {status.get('trials')} != trials.csv {want}")
    if status.get("phase") != "DONE":
        o.add("files", f"phase {status.get('phase')}: {status.get('message')}")
    # maxTrialNum: exactly that many search trials, final training apart
    search = [r for r in trows if r[6] == "search"]
    if len(search) != max_trials:
        o.add("maxTrialNum", f"{len(search)} search trials, maxTrialNum {max_trials}")
    finals_db = [r for r in trows if r[6] == "final"]
    if final_training and len(finals_db) != 1:
        o.add("maxTrialNum", f"{len(finals_db)} final-training trials, expected 1")
    # states: each trial's state agrees with what its (last) process did
    for tid, r in trials.items():
        state, message, code = r[2], r[5], r[9]
        evs = led.get(tid, [])
        last = runs_of(evs)[-1] if evs else []
        clean = any(e["ev"] == "exit" for e in last)
        if state in ("WAITING", "RUNNING"):
            o.add("states", f"{tid} still {state}")
        elif tid in killed_trials:
            if state != "FAILED" or not message or "signal 9" not in message:
                o.add("states", f"{tid} was SIGKILLed: {state} ({message})")
        elif tid in killed_with_run and state == "STOPPED" and message and "no exit code" in message:
            pass
        elif clean and state not in ("SUCCEEDED", "EARLY_STOPPED"):
            o.add("states", f"{tid} exited cleanly after its final report but is {state} ({message})")
        elif not clean and state == "SUCCEEDED":
            o.add("states", f"{tid} SUCCEEDED but its process never finished")
        elif state == "SUCCEEDED" and code != 0:
            o.add("states", f"{tid} SUCCEEDED with exit code {code}")
        elif state in ("FAILED", "STOPPED") and not message:
            o.add("states", f"{tid} {state} with no reason")
        if state == "FAILED" and tid not in killed_trials:
            o.notes.append(f"{tid} FAILED: {message}")
        if state == "STOPPED":
            o.notes.append(f"{tid} STOPPED: {message}")
    # history: the event log replays to the same trials; promotions point at real trials
    issued = Counter(t for t, k, _ in events if k == "trial_issued")
    ended = Counter(t for t, k, _ in events if k == "trial_ended")
    for tid in trials:
        if issued[tid] != 1 or ended[tid] != 1:
            o.add("history", f"{tid}: issued {issued[tid]}x, ended {ended[tid]}x in the event log")
    for tid, r in trials.items():
        info = json.loads(r[8]) if r[8] else {}
        src = info.get("resume")
        if src and (src not in trials or (trials[src][7] or 0) >= (r[7] or 0)):
            o.add("history", f"{tid} resumes from {src}, which is not a smaller-budget trial")
    # procs: nothing left running
    left = trial_pids(out)
    if left:
        o.add("procs", f"trial processes still alive: {left}")
    return o


# ----- scenarios: run, kill at a point, run the same command again until it ends -----
@dataclass
class Ctx:
    """One scenario's experiment: where it runs and what the kills saw."""

    tmp: Path
    name: str
    doc: dict[str, Any]
    server: Any = None  # a conftest.ServerProcess for --server scenarios
    server_token: str = ""
    seen: set[str] = field(default_factory=set)
    killed_trials: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    reruns: int = 0
    bad_ends: list[str] = field(default_factory=list)  # runs that ended before DONE on their own
    killed_with_run: set[str] = field(default_factory=set)  # trial processes an ``all`` kill ended
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # every `autotune run` started

    @property
    def manifest(self) -> Path:
        import yaml

        p = self.tmp / f"{self.name}.yaml"
        if not p.exists():
            p.write_text(yaml.safe_dump(self.doc, sort_keys=False))
        return p

    @property
    def output(self) -> Path:
        return self.tmp / "out"

    @property
    def out(self) -> Path:
        return self.output / self.name

    @property
    def db(self) -> Path:
        return self.server.db if self.server is not None else self.out / "autotune.db"

    @property
    def exp_id(self) -> str:
        return f"local.{self.name}"

    @property
    def max_trials(self) -> int:
        return int(self.doc["spec"]["maxTrialNum"])

    def start(self) -> subprocess.Popen[bytes]:
        env = {"AUTOTUNE_ADMIN_TOKEN": self.server_token} if self.server is not None else {}
        proc = start_run(self.manifest, self.output, self.server.url if self.server is not None else None, env,
                         log=self.tmp / "autotune.log")
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        """Stop whatever a scenario that failed midway left running (Ctrl-C: trials too)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()

    def remember(self) -> None:
        self.seen |= seen_trials(self.db, self.exp_id)

    def acks(self) -> int:
        return count_events(self.out, "ack")

    def trial_rows(self, where: str) -> list[tuple[Any, ...]]:
        return db_query(self.db, f"SELECT trial_id, kind, info, stop_requested FROM trials WHERE exp_id = ? AND {where}",
                        (self.exp_id,))

    def finish(self, proc: subprocess.Popen[bytes] | None, attempts: int = 4, timeout: float = 240) -> int:
        """Let ``proc`` end (or start the command again) until the experiment ends; its exit code."""
        code = -1
        for _ in range(attempts):
            if proc is None:
                self.reruns += 1
                proc = self.start()
            code = proc.wait(timeout=timeout)
            proc = None
            phase = json.loads((self.out / "status.json").read_text()).get("phase") if (self.out / "status.json").exists() else None
            if code == 0 and phase == "DONE":
                return code
            self.log.append(f"run ended {code} ({phase})")
            self.bad_ends.append(f"a run ended {code} ({phase}) without being killed")
        return code

    def check(self) -> Outcome:
        final = bool((self.doc["spec"].get("finalTraining") or {}).get("enabled"))
        o = check_experiment(self.out, self.db, self.exp_id, self.max_trials, self.seen, self.killed_trials, final,
                             self.killed_with_run)
        for msg in self.bad_ends:
            o.add("files", msg)
        return o


def kill_when(ctx: Ctx, proc: subprocess.Popen[bytes], cond: Callable[[], bool], what: str, how: str = "ctl") -> bool:
    """SIGKILL `autotune run` (``how``: ctl | all) once ``cond`` holds; False if it ended first."""
    reached = wait_for(cond, proc, what=what)
    if proc.poll() is not None:
        ctx.log.append(f"ended before the kill point ({what})")
        return False
    ctx.remember()
    ctx.killed_with_run |= kill_controller(proc, how, ctx.out)
    ctx.log.append(f"killed ({how}) at {what}; trials {sorted(ctx.seen)}")
    return reached


def kill_run_in_term_grace(ctx: Ctx, proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL `autotune run` once a trial noted the SIGTERM of a stop (ledger_sgd.py
    --term-grace: it is taking its time to exit); that trial's id."""
    assert kill_when(ctx, proc, lambda: count_events(ctx.out, "sigterm") >= 1, "a trial got SIGTERM")
    return next(t for t, evs in ledgers(ctx.out).items() if any(e["ev"] == "sigterm" for e in evs))


def end_term_grace(ctx: Ctx, tid: str) -> None:
    """SIGTERM the trial script itself again: with --term-until-resent it exits (143) now."""
    os.kill(runs_of(ledgers(ctx.out)[tid])[-1][0]["pid"], signal.SIGTERM)


def kill_trial_when(ctx: Ctx, proc: subprocess.Popen[bytes], acks: int) -> str | None:
    """SIGKILL one trial script (its own pid, from its ledger) once it has ``acks`` acknowledged reports."""
    def target() -> str | None:
        for tid, evs in ledgers(ctx.out).items():
            last = runs_of(evs)[-1]
            if sum(e["ev"] == "ack" for e in last) >= acks and not any(e["ev"] == "send_final" for e in last):
                return tid
        return None

    wait_for(lambda: target() is not None, proc, what=f"a trial with {acks} acks")
    tid = target()
    if tid is None:
        return None
    pid = runs_of(ledgers(ctx.out)[tid])[-1][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    ctx.killed_trials.add(tid)
    ctx.log.append(f"SIGKILLed trial {tid} (pid {pid})")
    return tid
