"""Time per suggest() of the built-in tuners on synthetic histories (not a test).

Usage: python bench/tuner_speed.py [--calls 50] [--sizes 100,1000] [--tuners TPE,Anneal,Random,GridSearch]

The search space has 10 parameters of mixed types (the kinds seen in real HPO specs:
log-uniform learning rates, integer layer counts, categorical choices, ...). The history
holds N completed trials plus a few pending ones; each call is given the whole history,
as the tuner server does. Prints median and p99 milliseconds per call.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tuner_server.history import TrialRecord, TrialState  # noqa: E402
from tuner_server.searchspace import parse_search_space  # noqa: E402
from tuner_server.tuners import NoMoreTrials, create_tuner  # noqa: E402

SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
    "momentum": {"_type": "uniform", "_value": [0.0, 0.99]},
    "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128, 256]},
    "layers": {"_type": "randint", "_value": [1, 9]},
    "hidden": {"_type": "qloguniform", "_value": [16, 1024, 16]},
    "dropout": {"_type": "quniform", "_value": [0.0, 0.7, 0.05]},
    "weight_decay": {"_type": "lognormal", "_value": [-9.0, 2.0]},
    "warmup": {"_type": "qnormal", "_value": [500, 150, 10]},
    "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "adamw", "rmsprop"]},
    "scale": {"_type": "normal", "_value": [1.0, 0.3]},
}


def objective(p: dict) -> float:
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (p["momentum"] - 0.9) ** 2
        + (p["layers"] - 4) ** 2 * 0.1
        + p["dropout"]
        + (p["optimizer"] != "adamw") * 0.5
        + abs(p["scale"] - 1)
    )


def make_history(tuner_name: str, n: int, pending: int = 8) -> list[TrialRecord]:
    space = parse_search_space(SPACE)
    rng = np.random.default_rng(12345)
    hist: list[TrialRecord] = []
    for i in range(n + pending):
        p = space.to_parameters(space.sample_flat(rng))
        done = i < n
        hist.append(
            TrialRecord(i, f"trial-{i}", p, TrialState.SUCCEEDED if done else TrialState.RUNNING,
                        objective(p) if done else None)
        )
    return hist


def bench(tuner_name: str, n: int, calls: int) -> tuple[float, float]:
    space = parse_search_space(SPACE)
    tuner = create_tuner(tuner_name, space, {"optimize_mode": "minimize"} if tuner_name != "GridSearch" else {}, 1)
    hist = make_history(tuner_name, n)
    # The server hands fresh records each call; copy them so no identity-based cache is
    # flattered (the memo must still hit on equal parameters).
    times = []
    for c in range(calls + 1):
        fresh = [TrialRecord(t.sequence, t.trial_id, dict(t.parameters), t.state, t.value) for t in hist]
        rng = np.random.default_rng([1, len(hist), c])
        t0 = time.perf_counter()
        try:
            tuner.suggest(fresh, rng)
        except NoMoreTrials:
            pass
        dt = time.perf_counter() - t0
        if c:  # the first call fills the memo (a cold server start)
            times.append(dt)
    ts = np.array(times) * 1e3
    return float(np.median(ts)), float(np.percentile(ts, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--tuners", default="TPE,Anneal,Random,GridSearch")
    a = ap.parse_args()
    print(f"{'tuner':<12}{'trials':>8}{'median ms':>12}{'p99 ms':>10}   (10 parameters, {a.calls} calls)")
    for name in a.tuners.split(","):
        for n in (int(s) for s in a.sizes.split(",")):
            med, p99 = bench(name, n, a.calls)
            print(f"{name:<12}{n:>8}{med:>12.2f}{p99:>10.2f}")


if __name__ == "__main__":
    main()
