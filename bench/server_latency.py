"""Tuner-server latency over real HTTP at 1,000 trials of TPE history (not a test).

Usage: python bench/server_latency.py [--history 1000] [--calls 200]

Starts `python -m tuner_server` on loopback with a fresh SQLite database, registers a
TPE experiment with the 10 parameters of bench/speed_space.py, fills 1,000 trials of history through the API
(suggest, intermediate reports, final report, end), then times each kind of call over
the next --calls trials. Every call includes the durable SQLite write (synchronous=FULL).
Prints p50/p99 milliseconds per call kind.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from speed_space import SPACE, loss  # noqa: E402  (the space tuner_speed.py times too)

ADMIN = "bench-admin-token-0123456789"


def objective(p: dict) -> float:
    return -loss(p)  # the experiment maximizes


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--steps", type=int, default=2, help="intermediate reports per trial")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp()
    env = {**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN}
    proc = subprocess.Popen([sys.executable, "-m", "tuner_server", "--db", f"{tmp}/bench.db", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        config = {"searchSpace": json.dumps(SPACE), "tuner": {"name": "TPE", "classArgs": {}}, "optimizeMode": "maximize", "seed": 1}
        token = admin.put("/api/v1/experiments/bench", json={"name": "bench", "config": config}).json()["token"]
        trial = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        times: dict[str, list[float]] = {"suggest": [], "intermediate": [], "final": [], "end": []}
        t_fill = time.perf_counter()
        for i in range(args.history + args.calls):
            measure = i >= args.history
            t0 = time.perf_counter()
            r = admin.post("/api/v1/experiments/bench/trials", json={"sequence": i}).json()
            t1 = time.perf_counter()
            tid, value = r["trialId"], objective(r["parameters"])
            base = f"/api/v1/experiments/bench/trials/{tid}"
            for step in range(args.steps):
                t2 = time.perf_counter()
                trial.post(base + "/intermediate", json={"metric": value - 0.1 * (args.steps - step), "step": step}).raise_for_status()
                if measure:
                    times["intermediate"].append(time.perf_counter() - t2)
            t3 = time.perf_counter()
            trial.post(base + "/final", json={"metric": value}).raise_for_status()
            t4 = time.perf_counter()
            admin.post(base + "/end", json={"exitCode": 0}).raise_for_status()
            t5 = time.perf_counter()
            if measure:
                times["suggest"].append(t1 - t0)
                times["final"].append(t4 - t3)
                times["end"].append(t5 - t4)
            if i == args.history - 1:
                fill = time.perf_counter() - t_fill
        print(f"tuner server over HTTP, TPE, 10 parameters, history {args.history} -> {args.history + args.calls} trials "
              f"(filling the history took {fill:.1f} s)")
        print(f"{'call':<14}{'p50 ms':>10}{'p99 ms':>10}{'n':>6}")
        for k, xs in times.items():
            print(f"{k:<14}{pct(xs, 50):>10.2f}{pct(xs, 99):>10.2f}{len(xs):>6}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
