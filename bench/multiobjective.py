"""Multi-objective search quality: hypervolume after N trials, AutoTune against Optuna.

Usage: scripts/bench bench/multiobjective.py [--trials 100] [--seeds 10] [--rf-seeds 5] [--problems zdt1,zdt2,zdt3,rf_digits]
                                             [--methods autotune-random,autotune-motpe,optuna-nsga2,optuna-tpe]

Problems (every one minimizes two objectives after the directions are applied):

- ``zdt1``/``zdt2``/``zdt3``: pymoo's definitions with ``--zdt-vars`` (default 8) variables
  in [0, 1]. Reference point (1.1, 10): f1 is in [0, 1] and f2 of a random point is a few
  units, so early fronts count (the classic (1.1, 1.1) would score most 100-trial runs 0).
- ``rf_digits``: a scikit-learn random forest on the bundled digits data; maximize
  validation accuracy, minimize the forest's total node count (model size). Hypervolume
  is measured on (1 - accuracy, log10(nodes)) with reference point (1, 5): a forest of
  10^5 nodes is the largest this space can build.

Every method gets the same search space and the same number of sequential trials; each
(problem, method, seed) is one run. Printed: a table of mean +- std hypervolume over
seeds, and the winner per problem. Written: bench/results/multiobjective.json and
bench/results/multiobjective.png (each method's front of seed 0 per problem).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tuner_server.history import OptimizeMode, TrialRecord, TrialState  # noqa: E402
from tuner_server.pareto import hypervolume, pareto_front  # noqa: E402
from tuner_server.searchspace import parse_search_space  # noqa: E402
from tuner_server.tuners import create_tuner  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MIN, MAX = OptimizeMode.MINIMIZE, OptimizeMode.MAXIMIZE


@dataclass
class Problem:
    name: str
    space: dict[str, Any]  # NNI search space
    directions: tuple[OptimizeMode, ...]
    evaluate: Callable[[dict[str, Any]], tuple[float, ...]]
    to_hv: Callable[[tuple[float, ...]], tuple[float, ...]]  # reported values -> HV coordinates (minimized)
    ref: tuple[float, float]
    true_front: np.ndarray | None = None  # in HV coordinates, for the plot


def zdt(name: str, n_var: int) -> Problem:
    from pymoo.problems import get_problem

    prob = get_problem(name, n_var=n_var)
    keys = [f"x{i}" for i in range(n_var)]

    def evaluate(p: dict[str, Any]) -> tuple[float, ...]:
        f = prob.evaluate(np.array([[p[k] for k in keys]], dtype=float))
        return tuple(float(v) for v in np.asarray(f).reshape(-1))

    return Problem(
        name,
        {k: {"_type": "uniform", "_value": [0.0, 1.0]} for k in keys},
        (MIN, MIN),
        evaluate,
        lambda v: v,
        (1.1, 10.0),
        np.asarray(prob.pareto_front()),
    )


def rf_digits() -> Problem:
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)

    def evaluate(p: dict[str, Any]) -> tuple[float, ...]:
        model = RandomForestClassifier(
            n_estimators=int(p["n_estimators"]),
            max_depth=int(p["max_depth"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            max_features=float(p["max_features"]),
            random_state=0,
            n_jobs=1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(xt, yt)
        nodes = sum(e.tree_.node_count for e in model.estimators_)
        return float(model.score(xv, yv)), float(nodes)

    space = {
        "n_estimators": {"_type": "qloguniform", "_value": [1, 64, 1]},
        "max_depth": {"_type": "randint", "_value": [1, 21]},
        "min_samples_leaf": {"_type": "qloguniform", "_value": [1, 32, 1]},
        "max_features": {"_type": "uniform", "_value": [0.05, 1.0]},
    }
    return Problem("rf_digits", space, (MAX, MIN), evaluate, lambda v: (1.0 - v[0], math.log10(max(v[1], 1.0))), (1.0, 5.0))


# ----------------------------------------------------------------------------- methods


def run_autotune(tuner_name: str, prob: Problem, n: int, seed: int) -> list[tuple[float, ...]]:
    space = parse_search_space(json.dumps(prob.space))
    tuner = create_tuner(tuner_name, space, {}, seed=seed, objectives=prob.directions)
    history: list[TrialRecord] = []
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])  # as the tuner server derives it
        params = tuner.suggest(history, rng)
        values = prob.evaluate(params)
        history.append(
            TrialRecord(i, f"t{i}", params, TrialState.SUCCEEDED, value=values[0], values=values)
        )
        out.append(values)
    return out


def _optuna_params(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {}
    for k, d in space.items():
        t, v = d["_type"], d["_value"]
        if t == "uniform":
            p[k] = trial.suggest_float(k, v[0], v[1])
        elif t == "loguniform":
            p[k] = trial.suggest_float(k, v[0], v[1], log=True)
        elif t == "randint":
            p[k] = trial.suggest_int(k, v[0], v[1] - 1)
        elif t == "qloguniform" and v[2] == 1:
            p[k] = trial.suggest_int(k, int(v[0]), int(v[1]), log=True)
        else:
            raise ValueError(f"no Optuna mapping for {t}")
    return p


def run_optuna(sampler_name: str, prob: Problem, n: int, seed: int) -> list[tuple[float, ...]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler_name == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(directions=[d.value for d in prob.directions], sampler=sampler)
    out: list[tuple[float, ...]] = []

    def objective(trial: Any) -> tuple[float, ...]:
        values = prob.evaluate(_optuna_params(trial, prob.space))
        out.append(values)
        return values

    study.optimize(objective, n_trials=n)
    return out


METHODS: dict[str, Callable[[Problem, int, int], list[tuple[float, ...]]]] = {
    "autotune-random": lambda p, n, s: run_autotune("Random", p, n, s),
    "autotune-motpe": lambda p, n, s: run_autotune("MOTPE", p, n, s),
    "optuna-nsga2": lambda p, n, s: run_optuna("nsga2", p, n, s),
    "optuna-tpe": lambda p, n, s: run_optuna("tpe", p, n, s),
}


def front_of(prob: Problem, values: list[tuple[float, ...]]) -> np.ndarray:
    pts = [prob.to_hv(v) for v in values]
    return np.asarray([pts[i] for i in pareto_front(pts)])


def plot(problems: list[Problem], fronts: dict[str, dict[str, np.ndarray]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems), figsize=(4.5 * len(problems), 4.2), squeeze=False)
    for ax, prob in zip(axes[0], problems):
        if prob.true_front is not None:
            tf = prob.true_front[np.argsort(prob.true_front[:, 0])]
            ax.plot(tf[:, 0], tf[:, 1], ".", ms=1.5, color="black", label="true front")
        for method, f in fronts[prob.name].items():
            if len(f):
                f = f[np.argsort(f[:, 0])]
                ax.step(f[:, 0], f[:, 1], where="post", marker="o", ms=3.5, lw=1, label=method)
        ax.set_title(prob.name)
        if prob.name == "rf_digits":
            ax.set_xlabel("1 - accuracy")
            ax.set_ylabel("log10(tree nodes)")
        else:
            ax.set_xlabel("f1")
            ax.set_ylabel("f2")
            ax.set_ylim(-1 if prob.name == "zdt3" else 0, 5)
        ax.legend(fontsize=7)
    fig.suptitle("Pareto fronts after the run (seed 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rf-seeds", type=int, default=5, help="seeds for rf_digits (each trial trains a forest)")
    ap.add_argument("--zdt-vars", type=int, default=8)
    ap.add_argument("--problems", default="zdt1,zdt2,zdt3,rf_digits")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    problems = [rf_digits() if p == "rf_digits" else zdt(p, args.zdt_vars) for p in args.problems.split(",") if p]

    results: dict[str, Any] = {"trials": args.trials, "zdt_vars": args.zdt_vars, "problems": {}}
    fronts: dict[str, dict[str, np.ndarray]] = {}
    for prob in problems:
        seeds = args.rf_seeds if prob.name == "rf_digits" else args.seeds
        entry: dict[str, Any] = {"reference_point": list(prob.ref), "seeds": seeds, "methods": {}}
        fronts[prob.name] = {}
        for m in methods:
            hvs, secs = [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                values = METHODS[m](prob, args.trials, seed)
                secs.append(time.perf_counter() - t0)
                hvs.append(hypervolume([prob.to_hv(v) for v in values], prob.ref))
                if seed == 0:
                    fronts[prob.name][m] = front_of(prob, values)
            entry["methods"][m] = {"hypervolume": hvs, "mean": float(np.mean(hvs)), "std": float(np.std(hvs)),
                                   "seconds": float(np.mean(secs))}
            print(f"  {prob.name:<10} {m:<16} HV {np.mean(hvs):.4f} +- {np.std(hvs):.4f}  ({np.mean(secs):.1f} s/run)",
                  file=sys.stderr, flush=True)
        results["problems"][prob.name] = entry

    print(f"\nHypervolume after {args.trials} trials (mean +- std over seeds; higher is better)")
    header = f"{'problem':<11}{'ref':<12}" + "".join(f"{m:>22}" for m in methods)
    print(header)
    print("-" * len(header))
    for name, entry in results["problems"].items():
        ms = entry["methods"]
        best = max(ms, key=lambda m: ms[m]["mean"])
        cells = "".join(
            f"{('*' if m == best else '') + '%.4f +- %.4f' % (ms[m]['mean'], ms[m]['std']):>22}" for m in methods
        )
        print(f"{name:<11}{str(tuple(entry['reference_point'])):<12}{cells}")
    print("(* best mean; seeds: ZDT %d, rf_digits %d)" % (args.seeds, args.rf_seeds))

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "multiobjective.json"), "w") as f:
        json.dump(results, f, indent=2)
    png = os.path.join(RESULTS, "multiobjective.png")
    plot(problems, fronts, png)
    print(f"wrote {os.path.join(RESULTS, 'multiobjective.json')} and {png}")


if __name__ == "__main__":
    main()
