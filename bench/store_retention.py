"""Purging deleted experiments' events from the tuner server's SQLite store (not a test).

Usage: nice -n 10 python bench/store_retention.py [--deleted 50] [--events 20000] [--live 5]
       [--batches 500,1000,2000] [--writes 1500]

For each purge batch size, a fresh store (a new database: auto_vacuum=INCREMENTAL) holds
--deleted deleted experiments and --live live ones, each with one trial and --events MLflow
metric events (bulk-inserted for speed; the registrations, trials and deletions go through
the engine as the server writes them). Then:

- without purge: a writer thread makes --writes intermediate reports to a live trial before
  the purge and --writes again after it (Engine.report_intermediate: one fsynced transaction
  each, as a trial's report over HTTP costs minus the HTTP); their p99 latency;
- during purge: the same writer runs while purge.sweep purges every deleted experiment (the
  server's code path, its pauses included) and gives the space back; the writes' p99 then, and
  the ratio of the two p99s (both measured in this run, on this machine);
- the database size (file + WAL) before and after, the longest single write-lock hold of the
  purge (each batch, vacuum step and the final checkpoint), and the purge's duration.

Prints a markdown table and writes it to bench/results/store_retention.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.purge import PurgeSettings, sweep
from tuner_server.store import Store

CONFIG = ExperimentConfig.model_validate({"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}),
                                          "tuner": {"name": "Random"}})
RESULTS = Path(__file__).resolve().parent / "results" / "store_retention.md"


def size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def fill(engine: Engine, db: Path, exp_id: str, events: int) -> str:
    """An experiment with one running trial that logged ``events`` MLflow metric values."""
    engine.register(exp_id, exp_id, CONFIG)
    a = engine.suggest(exp_id)
    tid = a.trial_id  # type: ignore[union-attr]
    engine.started(exp_id, tid)
    created = engine.trial(exp_id, tid).created
    now = time.time()
    rows = ((exp_id, tid, "mlflow_metrics", json.dumps({"metrics": [{"key": "loss", "value": 1.0 / (i + 1),
                                                                      "timestamp": int(now * 1000) + i, "step": i}],
                                                        "created": created}), now) for i in range(events))
    with sqlite3.connect(db) as con:  # one transaction: the setup is not what is measured
        con.executemany("INSERT INTO events (exp_id, trial_id, kind, payload, ts) VALUES (?, ?, ?, ?, ?)", rows)
    return tid


class Writer(threading.Thread):
    """Intermediate reports to a live trial, each timed, until told to stop or ``limit`` is reached."""

    def __init__(self, engine: Engine, exp_id: str, trial_id: str, limit: int | None) -> None:
        super().__init__(daemon=True)
        self.engine, self.exp_id, self.trial_id, self.limit = engine, exp_id, trial_id, limit
        self.latencies: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and (self.limit is None or len(self.latencies) < self.limit):
            t0 = time.perf_counter()
            self.engine.report_intermediate(self.exp_id, self.trial_id, 0.5)
            self.latencies.append(time.perf_counter() - t0)


def p99_ms(xs: list[float]) -> float:
    return float(np.percentile(np.array(xs), 99) * 1000)


def one(batch: int, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    db = tmp / f"bench-{batch}.db"
    engine = Engine(Store(db))
    t0 = time.perf_counter()
    for i in range(args.deleted):
        fill(engine, db, f"gone-{i}", args.events)
    live = [(f"live-{i}", fill(engine, db, f"live-{i}", args.events)) for i in range(args.live)]
    for i in range(args.deleted):
        engine.delete(f"gone-{i}")
    engine.store.checkpoint()
    setup = time.perf_counter() - t0
    before = size(db)

    alone = Writer(engine, *live[0], limit=args.writes)
    alone.start()
    alone.join()

    during = Writer(engine, *live[0], limit=None)
    during.start()
    t0 = time.perf_counter()
    r = sweep(engine.store, PurgeSettings(retention=0.0, batch=batch, reclaim_pages=args.reclaim_pages), now=time.time())
    took = time.perf_counter() - t0
    during.done.set()
    during.join()
    after = size(db)
    # Timed again after the purge: the machine's noise (other processes' fsyncs) then weighs on
    # both sides of the ratio alike.
    again = Writer(engine, *live[0], limit=args.writes)
    again.start()
    again.join()
    assert r.events == args.deleted * (args.events + 4), r  # registered, trial issued, started, deleted
    with sqlite3.connect(db) as con:
        left = con.execute("SELECT COUNT(*) FROM events WHERE exp_id LIKE 'gone-%'").fetchone()[0]
        kept = con.execute("SELECT COUNT(*) FROM events WHERE exp_id LIKE 'live-%'").fetchone()[0]
    assert left == 0 and kept >= args.live * (args.events + 3), (left, kept)
    engine.store.close()
    db.unlink()
    return {"batch": batch, "setup_s": setup, "events": r.events, "before_mb": before / 2**20, "after_mb": after / 2**20,
            "purge_s": took, "steps": r.steps, "longest_ms": r.longest_hold * 1000,
            "batch_ms": r.longest_batch * 1000, "reclaim_ms": r.longest_reclaim * 1000, "p99_alone": p99_ms(alone.latencies + again.latencies),
            "p99_during": p99_ms(during.latencies), "writes_during": len(during.latencies), "free_pages": r.free_pages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deleted", type=int, default=50)
    ap.add_argument("--events", type=int, default=20000, help="events per experiment")
    ap.add_argument("--live", type=int, default=5)
    ap.add_argument("--batches", default="500,1000,2000", help="purge batch sizes to compare (1000: the server's)")
    ap.add_argument("--writes", type=int, default=1500, help="intermediate reports timed without purge, before it and again after it")
    ap.add_argument("--reclaim-pages", type=int, default=PurgeSettings(None).reclaim_pages,
                    help="pages given back per vacuum step (the server's default)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="store-retention-") as d:
        for b in (int(x) for x in args.batches.split(",")):
            row = one(b, args, Path(d))
            rows.append(row)
            print(f"batch {b}: {row}", flush=True)
    lines = [
        f"# Purging deleted experiments' events ({args.deleted} deleted x {args.events:,} events, "
        f"{args.live} live experiments alike)",
        "",
        f"`nice -n 10 python bench/store_retention.py --deleted {args.deleted} --events {args.events} --live {args.live} "
        f"--batches {args.batches} --writes {args.writes} --reclaim-pages {args.reclaim_pages}` ({os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}, "
        "WAL, synchronous=FULL)",
        "",
        "| batch | events purged | DB before (MiB) | DB after (MiB) | purge (s) | transactions | longest write-lock hold (ms): any / batch / vacuum+checkpoint "
        "| report p99 alone (ms) | report p99 during purge (ms) | ratio | reports during purge |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['batch']:,} | {r['events']:,} | {r['before_mb']:.1f} | {r['after_mb']:.1f} | {r['purge_s']:.1f} "
                     f"| {r['steps']:,} | {r['longest_ms']:.1f} / {r['batch_ms']:.1f} / {r['reclaim_ms']:.1f} | {r['p99_alone']:.2f} | {r['p99_during']:.2f} "
                     f"| {r['p99_during'] / r['p99_alone']:.2f} | {r['writes_during']:,} |")
    lines += ["", "DB size is the file plus its WAL. A report is one `Engine.report_intermediate` (one fsynced "
              "transaction) to a live trial, in-process, from a thread running alongside the purge; the ratio "
              "compares the two p99s of the same run. The server purges in batches of 1,000."]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
