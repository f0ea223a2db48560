"""Parameter importance: does it rank the parameters that matter on top? (not a test)

Usage: scripts/bench bench/importance.py [--seeds 20] [--sizes 50,100,200] [--no-fanova]

Seeds 100-119 by default: seeds 5-12 were used to choose AutoTune's 30%.

Five synthetic 8-parameter problems (minimize) where exactly two parameters matter, so
the right answer is known: a sphere, Branin and Rosenbrock (an interaction) on two of
eight unit-interval dimensions, two dimensions of unequal weight (one 8x weaker), and a
mixed space (loguniform learning rate and a 4-way choice matter; a randint, uniforms, a
second loguniform and two choices do not). Histories come from Optuna 5's RandomSampler
and TPESampler (seeded; the 50- and 100-trial histories are prefixes of the 200-trial run).
Every method scores the same trials:

- AutoTune: tuner_server.importance (PED-ANOVA, top 30% but at least 5 trials), and the
  same at the paper's and Optuna's 10% ("AutoTune at 10%");
- Optuna 5 PedAnovaImportanceEvaluator (defaults: target_quantile 0.1, region 1.0);
- Optuna 5 FanovaImportanceEvaluator (its default evaluator: a 64-tree random forest).

Reports precision@2 (the share of the two true parameters among each method's top two,
averaged over seeds and problems), the share of histories where both are the top two, and
the median time per call; then the time for 1,000 trials x 20 parameters. Prints the tables
and writes bench/results/importance.json and importance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

from tuner_server.history import OptimizeMode
from tuner_server.importance import Settings, from_trials
from tuner_server.searchspace import parse_search_space

RESULTS = Path(__file__).parent / "results"
UNIT8 = {f"x{i}": {"_type": "uniform", "_value": [0.0, 1.0]} for i in range(8)}


@dataclass(frozen=True)
class Problem:
    name: str
    space: dict[str, Any]
    loss: Callable[[Mapping[str, Any]], float]
    relevant: frozenset[str]


def _branin(a: float, b: float) -> float:
    x, y = 15 * a - 5, 15 * b
    return (y - 5.1 / (4 * math.pi ** 2) * x ** 2 + 5 / math.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


def _rosenbrock(a: float, b: float) -> float:
    x, y = 4 * a - 2, 4 * b - 2
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


MIXED = {
    "learning_rate": {"_type": "loguniform", "_value": [1e-5, 1.0]},
    "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop", "adagrad"]},
    "units": {"_type": "randint", "_value": [16, 512]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.5]},
    "weight_decay": {"_type": "loguniform", "_value": [1e-6, 1e-2]},
    "activation": {"_type": "choice", "_value": ["relu", "tanh", "gelu"]},
    "batch_size": {"_type": "choice", "_value": [32, 64, 128, 256]},
    "momentum": {"_type": "uniform", "_value": [0.5, 0.99]},
}
OPT_PENALTY = {"sgd": 0.8, "adam": 0.0, "rmsprop": 0.3, "adagrad": 0.6}

PROBLEMS = [
    Problem("sphere", UNIT8, lambda p: (p["x0"] - 0.3) ** 2 + (p["x3"] - 0.8) ** 2, frozenset({"x0", "x3"})),
    Problem("branin", UNIT8, lambda p: _branin(p["x2"], p["x6"]), frozenset({"x2", "x6"})),
    Problem("rosenbrock", UNIT8, lambda p: _rosenbrock(p["x1"], p["x5"]), frozenset({"x1", "x5"})),
    Problem("unequal", UNIT8, lambda p: 4 * (p["x0"] - 0.5) ** 2 + 0.5 * abs(p["x7"] - 0.2), frozenset({"x0", "x7"})),
    Problem("mixed", MIXED, lambda p: (math.log10(p["learning_rate"]) + 3) ** 2 / 4 + OPT_PENALTY[p["optimizer"]],
            frozenset({"learning_rate", "optimizer"})),
]


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """The NNI space in Optuna's terms (only the types these problems use)."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        t, v = spec["_type"], spec["_value"]
        if t == "uniform":
            out[name] = trial.suggest_float(name, v[0], v[1])
        elif t == "loguniform":
            out[name] = trial.suggest_float(name, v[0], v[1], log=True)
        elif t == "randint":
            out[name] = trial.suggest_int(name, v[0], v[1] - 1)
        elif t == "choice":
            out[name] = trial.suggest_categorical(name, v)
        else:
            raise ValueError(t)
    return out


def history(problem: Problem, sampler: str, seed: int, n: int) -> optuna.Study:
    s = optuna.samplers.TPESampler(seed=seed) if sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=s)
    study.optimize(lambda t: problem.loss(suggest(t, problem.space)), n_trials=n)
    return study


def prefix(study: optuna.Study, n: int) -> optuna.Study:
    s = optuna.create_study(direction="minimize")
    s.add_trials(study.trials[:n])
    return s


def views_of(study: optuna.Study) -> list[dict[str, Any]]:
    """The trials as AutoTune's API shows them (built outside the timed call)."""
    return [{"state": "SUCCEEDED", "parameters": t.params, "value": t.value} for t in study.get_trials(deepcopy=False)]


def autotune_ranking(views: list[dict[str, Any]], space: dict[str, Any], settings: Settings = Settings()) -> list[str]:
    (r,) = from_trials(parse_search_space(space), views, OptimizeMode.MINIMIZE, settings=settings)
    return [k for k, _ in r.importances]


def optuna_ranking(study: optuna.Study, evaluator: Any) -> list[str]:
    imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return list(imp)  # sorted, most important first


def timed(f: Callable[[], list[str]]) -> tuple[list[str], float]:
    t = time.perf_counter()
    out = f()
    return out, (time.perf_counter() - t) * 1000


def precision_at_2(ranking: list[str], relevant: frozenset[str]) -> float:
    return len(set(ranking[:2]) & relevant) / 2


def speed(repeats: int) -> dict[str, float]:
    """1,000 random trials x 20 parameters (10 uniform, 5 loguniform, 5 six-way choices)."""
    space: dict[str, Any] = {f"u{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(10)}
    space.update({f"l{i}": {"_type": "loguniform", "_value": [1e-4, 1]} for i in range(5)})
    space.update({f"c{i}": {"_type": "choice", "_value": list(range(6))} for i in range(5)})
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (lambda p: (p["u0"] - 0.5) ** 2 + 0.1 * p["c0"])(suggest(t, space)), n_trials=1000)
    views = views_of(study)
    ours = [timed(lambda: autotune_ranking(views, space))[1] for _ in range(repeats)]
    ped = [timed(lambda: optuna_ranking(study, PedAnovaImportanceEvaluator()))[1] for _ in range(repeats)]
    return {"autotune_ms": statistics.median(ours), "optuna_ped_anova_ms": statistics.median(ped)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=100,
                    help="seeds 5-12 chose AutoTune's top-set size; the table uses others")
    ap.add_argument("--sizes", default="50,100,200")
    ap.add_argument("--no-fanova", action="store_true", help="leave out Optuna's fANOVA (the slow one)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    sizes = [int(s) for s in args.sizes.split(",")]
    methods: dict[str, Callable[[optuna.Study, list[dict[str, Any]], Problem], list[str]]] = {
        "AutoTune": lambda s, v, p: autotune_ranking(v, p.space),
        "AutoTune at 10%": lambda s, v, p: autotune_ranking(v, p.space, Settings(target_quantile=0.1)),
        "Optuna PED-ANOVA": lambda s, v, p: optuna_ranking(s, PedAnovaImportanceEvaluator()),
    }
    if not args.no_fanova:
        methods["Optuna fANOVA"] = lambda s, v, p: optuna_ranking(s, FanovaImportanceEvaluator(seed=0))
    rows: list[dict[str, Any]] = []
    started = time.time()
    for problem in PROBLEMS:
        for sampler in ("random", "tpe"):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                full = history(problem, sampler, seed, max(sizes))
                for n in sizes:
                    study = prefix(full, n)
                    views = views_of(study)
                    for m, f in methods.items():
                        ranking, ms = timed(lambda: f(study, views, problem))
                        rows.append({"problem": problem.name, "sampler": sampler, "trials": n, "seed": seed, "method": m,
                                     "p_at_2": precision_at_2(ranking, problem.relevant),
                                     "both": ranking[:2] and set(ranking[:2]) == problem.relevant, "ms": ms,
                                     "top2": ranking[:2]})
            print(f"  {problem.name}/{sampler}: done ({time.time() - started:.0f} s)", flush=True)

    def cell(sel: list[dict[str, Any]]) -> tuple[float, float, float]:
        return (statistics.mean(r["p_at_2"] for r in sel), statistics.mean(1.0 if r["both"] else 0.0 for r in sel),
                statistics.median(r["ms"] for r in sel))

    names = list(methods)
    lines = [f"Precision@2 (both true parameters on top: share of histories) and median ms per call; "
             f"5 problems x {args.seeds} seeds per cell.", "",
             "| history | trials | " + " | ".join(names) + " | " + " | ".join(f"{m} ms" for m in names) + " |",
             "|---|---:|" + "---:|" * (2 * len(names))]
    table: list[dict[str, Any]] = []
    for sampler in ("random", "tpe"):
        for n in sizes:
            cells = {m: cell([r for r in rows if r["sampler"] == sampler and r["trials"] == n and r["method"] == m]) for m in names}
            table.append({"sampler": sampler, "trials": n, **{m: {"p_at_2": c[0], "both": c[1], "ms": c[2]} for m, c in cells.items()}})
            lines.append(f"| {sampler} | {n} | " + " | ".join(f"{cells[m][0]:.2f} ({cells[m][1]:.2f})" for m in names)
                         + " | " + " | ".join(f"{cells[m][2]:.1f}" for m in names) + " |")
    lines += ["", "Per problem (precision@2 over both samplers and all sizes):", "",
              "| problem | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for problem in PROBLEMS:
        lines.append(f"| {problem.name} | " + " | ".join(
            f"{statistics.mean(r['p_at_2'] for r in rows if r['problem'] == problem.name and r['method'] == m):.2f}" for m in names) + " |")
    sp = speed(5)
    lines += ["", f"1,000 trials x 20 parameters: AutoTune {sp['autotune_ms']:.0f} ms, "
                  f"Optuna PED-ANOVA {sp['optuna_ped_anova_ms']:.0f} ms per call (median of 5)."]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "importance.md").write_text(text + "\n")
    (RESULTS / "importance.json").write_text(json.dumps({"table": table, "speed": sp, "rows": rows,
                                                         "seeds": args.seeds, "sizes": sizes}, indent=1, default=str))
    print(f"wrote {RESULTS / 'importance.md'} and importance.json ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
