"""Warm start: how much an earlier experiment's trials help a new one (spec.warmStart).

For each synthetic problem of bench/quality_problems.py and each seed: a source experiment
runs ``--source`` trials; then a new experiment (another seed) runs ``--trials`` trials
cold, and again warm, after importing the source's trials through the engine's real import
path (Engine.import_trials, as the API and local mode do). The score is the regret of the
new experiment's own best trial (imports are never its best) after 5, 10 and 20 trials,
median over seeds. Prints a markdown table and writes bench/results/warm_start.md.

Usage: python bench/warm_start.py [--seeds 10] [--source 50] [--trials 20] [--tuners TPE,Anneal,Evolution]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import quality_problems as qp  # noqa: E402

from tuner_server.engine import Engine, ExperimentConfig  # noqa: E402
from tuner_server.store import Store  # noqa: E402
from tuner_server.warm_start import ImportRequest  # noqa: E402

RESULTS = os.path.join(HERE, "results")
CHECKPOINTS = (5, 10, 20)


def run(engine: Engine, exp: str, loss: qp.Loss, n: int) -> list[dict[str, Any]]:
    """``n`` trials one at a time; returns the trials as imports take them."""
    out = []
    for _ in range(n):
        a = engine.suggest(exp)
        if a is None:
            break
        engine.started(exp, a.trial_id)
        v = float(loss(a.parameters))
        engine.report_final(exp, a.trial_id, v)
        engine.end(exp, a.trial_id, 0)
        out.append({"id": a.trial_id, "parameters": a.parameters, "metric": v, "ended": float(a.sequence)})
    return out


def best_so_far(trials: list[dict[str, Any]]) -> list[float]:
    return list(np.minimum.accumulate([t["metric"] for t in trials]))


def one(problem: qp.Problem, tuner: str, seed: int, n_source: int, n_trials: int) -> tuple[list[float], list[float]]:
    def config(s: int) -> ExperimentConfig:
        return ExperimentConfig.model_validate({"searchSpace": json.dumps(problem.space), "optimizeMode": "minimize", "seed": s,
                                                "tuner": {"name": tuner, "classArgs": {"optimize_mode": "minimize"}}})

    e = Engine(Store(":memory:"))
    e.register("source", "source", config(seed))
    source = run(e, "source", problem.loss, n_source)
    e.register("cold", "cold", config(seed + 1000))
    cold = run(e, "cold", problem.loss, n_trials)
    e.register("warm", "warm", config(seed + 1000))
    req = ImportRequest.model_validate({"sources": [{"name": "source", "optimizeMode": "minimize", "trials": source}]})
    assert e.import_trials("warm", req)["imported"] == len(source)
    warm = run(e, "warm", problem.loss, n_trials)
    return best_so_far(cold), best_so_far(warm)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--source", type=int, default=50, help="trials of the earlier experiment")
    p.add_argument("--trials", type=int, default=20, help="trials of the new experiment")
    p.add_argument("--tuners", default="TPE,Anneal,Evolution")
    args = p.parse_args()
    probs = [q for q in qp.problems() if q.kind == "synthetic"]
    lines = [f"Warm start: regret (best - optimum) of the new experiment's own best trial, median of {args.seeds} seeds; "
             f"warm = after importing an earlier run's {args.source} trials.", "",
             "| problem | tuner | " + " | ".join(f"cold@{c} | warm@{c}" for c in CHECKPOINTS) + " |",
             "|---|---|" + "---|---|" * len(CHECKPOINTS)]
    wins = total = 0
    for tuner in args.tuners.split(","):
        for q in probs:
            cold_r, warm_r = [], []
            for s in range(args.seeds):
                c, w = one(q, tuner, s, args.source, args.trials)
                cold_r.append([c[min(k, len(c)) - 1] - q.optimum for k in CHECKPOINTS])
                warm_r.append([w[min(k, len(w)) - 1] - q.optimum for k in CHECKPOINTS])
            cm, wm = np.median(cold_r, axis=0), np.median(warm_r, axis=0)
            wins += int(np.sum(wm < cm))
            total += len(CHECKPOINTS)
            cells = " | ".join(f"{a:.3g} | {b:.3g}" for a, b in zip(cm, wm))
            lines.append(f"| {q.name} | {tuner} | {cells} |")
            print(lines[-1], flush=True)
    lines += ["", f"warm below cold in {wins} of {total} (problem, tuner, checkpoint) cells"]
    text = "\n".join(lines)
    print("\n" + text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "warm_start.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
