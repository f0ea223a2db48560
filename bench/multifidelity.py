"""Multi-fidelity benchmark: epochs spent to find a good configuration, on real learning curves.

Run:  nice -n 10 python bench/multifidelity.py --space wide --seeds 60 --ref 200   (inside .venv or scripts/bench)
      (the first run trains and caches the learning curves: about 7 minutes on 2 busy cores)
      nice -n 10 python bench/multifidelity.py --space mlpwide --R 81 --seeds 60 --ref 200
      (MLP curves, computed by --jobs 2 processes: mlp about 1.2 / 3.5 minutes for R = 27 / 81,
      mlpwide 2.5 / 7.5 minutes; --folds 3 averages three folds: three times as long)

Workload: SGDClassifier (hinge loss) trained epoch by epoch with ``partial_fit`` on
scikit-learn's digits (70/30 split, standardised), validation accuracy after each epoch.
The search space is a grid so that every curve can be computed once and cached
(bench/results/mf-curves-<space>-R<R>.json). ``--space wide`` (default): ``loss`` in {hinge,
log_loss, modified_huber, perceptron}, ``alpha`` = 1e-7 * 10^(a/2) and ``eta0`` = 1e-5 * 10^(e/2.4)
with a, e in randint[0, 12), ``learning_rate`` in {constant, invscaling, adaptive}: 1728
configurations, few of them near the best. ``--space small``: hinge loss only, alpha =
1e-6 * 10^(a/2), eta0 = 1e-4 * 10^(e/3): 432 configurations, a fifth of them within 0.005 of
the best (an easy problem, where full-budget random search is hard to beat).
``--space coarse``: the wide space with alpha = 1e-7 * 10^a, a in randint[0, 6): 864
configurations, cheap enough to train for ``--R 81`` epochs (about 10 minutes).
``--space mlp``: MLPClassifier with one hidden layer of {16, 32, 64} units, solver in {adam,
sgd (momentum 0.9)}, batch_size in {32, 128}, learning_rate_init = 1e-4 * 10^(l/3) with l in
randint[0, 10), alpha = 1e-6 * 10^a with a in randint[0, 6): 720 configurations; one
``partial_fit`` call is one epoch. ``--space mlpwide``: the same model over the ranges a
user unsure of the scale would give, learning_rate_init = 1e-5 * 10^(l/3) with l in
randint[0, 16) (1e-5..1) and alpha = 1e-6 * 10^a with a in randint[0, 8) (1e-6..10): 1536
configurations, a smaller fraction of them near the best. ``--folds K`` (MLP spaces) averages
the validation accuracy over K stratified folds instead of one 70/30 split. Each
configuration is trained once for R epochs (deterministic), so every method sees exactly
the same curves.

Methods (the tuner server's own algorithm code, driven in-process, one trial at a time):
Random at full budget R; SuccessiveHalving, Hyperband, ASHA, BOHB, BOSS (min budget 1, max R,
eta 3; promotions resume, the default: cost = new budget - old budget); BOHB (restart) (the
same with ``promotion: restart``: cost = the whole budget, as in the BOHB paper); Random +
Medianstop and Random + Curvefitting (each trial runs epoch by epoch and stops when the
assessor says so).

Measures, per seed:
* target = (best final accuracy of a full-budget random search of --ref configs) - 0.005;
  the reference random search uses seed 10_000 + s, independent of the methods' runs;
* epochs to target = epochs trained until a trial trained to the full budget R reports an
  accuracy >= target (a method has "found" a configuration when it trained it fully);
* for the assessors, over --n-assess trials of Random with the same configurations:
  epochs saved versus no assessor, and the drop in the best full-budget accuracy.
Also prints the Spearman rank correlation of the accuracy after 1, 3, 9 epochs with the final one
(how well the low rungs rank configurations). Prints tables and writes bench/results/multifidelity-<space>[-cv<K>]-R<R>.json.

Uncertainty: a median over a few dozen seeds can land on either side of a line by luck, so each
method's ratio (its median epochs to target / Random's) comes with a 95% paired seed-bootstrap
percentile interval (2000 resamples of the seeds with replacement, RNG seed 0; one resampled seed
set for the method and for Random, since seed s gives both the same target), and with the share
of seeds in which the method spent at most a third of Random's epochs on that seed (JSON keys
``ratio_ci95`` and ``share_le_third``). ``--from-results FILE`` recomputes these from a results
file's per-seed runs without re-simulating, and adds them to that file.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner_server.advisors import Advisor, create_advisor  # noqa: E402
from tuner_server.assessors import create_assessor  # noqa: E402
from tuner_server.history import TrialRecord, TrialState  # noqa: E402
from tuner_server.searchspace import parse_search_space  # noqa: E402
from tuner_server.tuners import NoMoreTrials, TryLater, create_tuner  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LRS = ("constant", "invscaling", "adaptive")
LOSSES = ("hinge", "log_loss", "modified_huber", "perceptron")
SPACE = {
    "a": {"_type": "randint", "_value": [0, 12]},
    "e": {"_type": "randint", "_value": [0, 12]},
    "learning_rate": {"_type": "choice", "_value": list(LRS)},
}
# --space wide adds the loss: 1728 configurations, few of them near the best.
WIDE = {**SPACE, "loss": {"_type": "choice", "_value": list(LOSSES)}}
# --space coarse: wide with alpha in steps of 10x (864 configurations), cheap enough for R = 81.
COARSE = {**WIDE, "a": {"_type": "randint", "_value": [0, 6]}}
# --space mlp: a one-hidden-layer MLPClassifier (720 configurations): hidden units, solver, batch
# size, learning_rate_init = 1e-4 * 10^(l/3) (1e-4..0.1) and alpha = 1e-6 * 10^a (1e-6..1).
MLP = {
    "hidden": {"_type": "choice", "_value": [16, 32, 64]},
    "l": {"_type": "randint", "_value": [0, 10]},
    "a": {"_type": "randint", "_value": [0, 6]},
    "batch_size": {"_type": "choice", "_value": [32, 128]},
    "solver": {"_type": "choice", "_value": ["adam", "sgd"]},
}
# --space mlpwide: the ranges a user unsure of the scale would give (1536 configurations):
# learning_rate_init = 1e-5 * 10^(l/3) (1e-5..1), alpha = 1e-6 * 10^a (1e-6..10).
MLPWIDE = {**MLP, "l": {"_type": "randint", "_value": [0, 16]}, "a": {"_type": "randint", "_value": [0, 8]}}
# learning_rate_init = LR_BASE[space] * 10^(l/3)
LR_BASE = {"mlp": 1e-4, "mlpwide": 1e-5}
MLP_SPACES = {"mlp": MLP, "mlpwide": MLPWIDE}

def key(p: dict[str, Any]) -> str:
    if "hidden" in p:
        return f"mlp/{int(p['hidden'])}/{int(p['l'])}/{int(p['a'])}/{int(p['batch_size'])}/{p['solver']}"
    return f"{int(p['a'])}/{int(p['e'])}/{p['learning_rate']}/{p.get('loss', 'hinge')}"


def grid(space: dict[str, Any]) -> list[dict[str, Any]]:
    losses = LOSSES if "loss" in space else ("hinge",)
    n_a = space["a"]["_value"][1]
    return [{"a": a, "e": e, "learning_rate": lr, "loss": loss} for a in range(n_a) for e in range(12) for lr in LRS for loss in losses]


def mlp_grid(space: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"hidden": h, "l": l, "a": a, "batch_size": b, "solver": so}
            for h in space["hidden"]["_value"] for l in range(space["l"]["_value"][1])
            for a in range(space["a"]["_value"][1]) for b in space["batch_size"]["_value"] for so in space["solver"]["_value"]]


def mlp_curves(configs: list[dict[str, Any]], lr_base: float, R: int, X_tr: np.ndarray, y_tr: np.ndarray,
               X_va: np.ndarray, y_va: np.ndarray, label: str = "") -> dict[str, list[float]]:
    """One ``partial_fit`` call = one epoch (a shuffled pass in mini-batches); default momentum 0.9 for sgd."""
    from sklearn.neural_network import MLPClassifier

    warnings.simplefilter("ignore")  # diverging configurations warn; their curves are the point
    out: dict[str, list[float]] = {}
    t0 = time.time()
    for i, p in enumerate(configs):
        if label and i and i % max(1, len(configs) // 5) == 0:
            print(f"  {label}: {i}/{len(configs)} curves, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        m = MLPClassifier(hidden_layer_sizes=(p["hidden"],), solver=p["solver"], batch_size=p["batch_size"],
                          learning_rate_init=lr_base * 10 ** (p["l"] / 3), alpha=1e-6 * 10 ** p["a"], random_state=0)
        curve: list[float] = []
        for _ in range(R):
            try:
                m.partial_fit(X_tr, y_tr, classes=np.arange(10))
            except ValueError:  # weights went non-finite: the trial diverged; score it as chance from here on
                curve += [0.1] * (R - len(curve))
                break
            curve.append(round(float(m.score(X_va, y_va)), 6))
        out[key(p)] = curve
    return out


def mlp_split_curves(name: str, R: int, folds: int, fold: int, chunk: int, chunks: int) -> dict[str, list[float]]:
    """MLP curves of every ``chunks``-th configuration from ``chunk`` on one split of digits: the
    70/30 split for ``folds`` = 1, else fold ``fold`` of a stratified K-fold (scaled on its training part)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    if folds == 1:
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    else:
        tr, va = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y))[fold]
        X_tr, X_va, y_tr, y_va = X[tr], X[va], y[tr], y[va]
    sc = StandardScaler().fit(X_tr)
    configs = mlp_grid(MLP_SPACES[name])[chunk::chunks]
    return mlp_curves(configs, LR_BASE[name], R, sc.transform(X_tr), y_tr, sc.transform(X_va), y_va,
                      label=f"fold {fold + 1}/{folds} part {chunk + 1}/{chunks}")


def mlp_space_curves(name: str, R: int, folds: int, jobs: int) -> dict[str, list[float]]:
    """Validation accuracy after each epoch, averaged over ``folds`` folds (cached).

    With one 70/30 split the validation set has 540 images, so one image is 0.0019 of accuracy
    and the 0.005 tolerance is under three images: which near-best configuration "wins" is
    partly the split's noise. ``--folds 3`` validates on all 1797 images."""
    from concurrent.futures import ProcessPoolExecutor

    cv = f"-cv{folds}" if folds > 1 else ""
    path = RESULTS / f"mf-curves-{name}{cv}-R{R}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    tasks = [(name, R, folds, f, c, jobs) for f in range(folds) for c in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(mlp_split_curves, *zip(*tasks)))
    per_fold: list[dict[str, list[float]]] = [{} for _ in range(folds)]
    for (_, _, _, f, _, _), part in zip(tasks, parts):
        per_fold[f].update(part)
    out = {k: [round(float(np.mean([pf[k][e] for pf in per_fold])), 6) for e in range(R)] for k in per_fold[0]}
    print(f"computed {len(out)} learning curves of {R} epochs ({folds} fold(s)) in {time.time() - t0:.0f} s", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def learning_curves(R: int, space: dict[str, Any] = SPACE, name: str = "sgd") -> dict[str, list[float]]:
    """Validation accuracy after each of R epochs for every configuration (cached)."""
    path = RESULTS / f"mf-curves-{name}-R{R}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        return {(k if k.count("/") == 3 else k + "/hinge"): v for k, v in cached.items()}
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    sc = StandardScaler().fit(X_tr)
    X_tr, X_va = sc.transform(X_tr), sc.transform(X_va)
    classes = np.arange(10)
    out: dict[str, list[float]] = {}
    t0 = time.time()
    wide = "loss" in space
    warnings.simplefilter("ignore")  # diverging configurations warn; their curves are the point
    for p in grid(space):
        a, e = p["a"], p["e"]
        # the wide grid reaches further (alpha 1e-7..3e-2, eta0 1e-5..0.5)
        alpha = 1e-7 * 10 ** (a / 2) if wide else 1e-6 * 10 ** (a / 2)
        if space is COARSE:
            alpha = 1e-7 * 10**a
        eta0 = 1e-5 * 10 ** (e / 2.4) if wide else 1e-4 * 10 ** (e / 3)
        m = SGDClassifier(loss=p["loss"], alpha=alpha, eta0=eta0, learning_rate=p["learning_rate"], random_state=0)
        rng = np.random.default_rng(0)
        curve = []
        for _ in range(R):
            order = rng.permutation(len(X_tr))
            m.partial_fit(X_tr[order], y_tr[order], classes=classes)
            curve.append(round(float(m.score(X_va, y_va)), 6))
        out[key(p)] = curve
    print(f"computed {len(out)} learning curves of {R} epochs in {time.time() - t0:.0f} s", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


@dataclass
class Outcome:
    epochs_to_target: int | None  # None: not reached within the cap
    epochs: int
    trials: int
    best_full: float  # best accuracy among trials trained to R


def run_advisor(adv: Advisor, curves: dict[str, list[float]], R: int, target: float, cap: int, seed: int) -> Outcome:
    h: list[TrialRecord] = []
    epochs, best, reached = 0, -math.inf, None
    trained: dict[str, int] = {}  # trial id -> epochs it reached (for resume costs)
    while epochs < cap:
        try:
            p = adv.propose(h, np.random.default_rng([seed, len(h)]))
        except (NoMoreTrials, TryLater):
            break  # one trial at a time: TryLater cannot happen with nothing running
        resume = p.info.get("resume")
        start = trained.get(resume, 0) if resume else 0
        epochs += p.budget - start
        acc = curves[key(p.parameters)][p.budget - 1]
        t = TrialRecord(len(h), f"t{len(h)}", p.parameters, state=TrialState.SUCCEEDED, value=acc, budget=p.budget, info=p.info)
        t.intermediate = curves[key(p.parameters)][start : p.budget]
        h.append(t)
        trained[t.trial_id] = p.budget
        if p.budget >= R:
            best = max(best, acc)
            if acc >= target:
                reached = epochs
                break
    return Outcome(reached, epochs, len(h), best)


def run_random(curves: dict[str, list[float]], R: int, target: float, cap: int, seed: int,
               assessor: Callable[[], Any] | None = None, n_trials: int | None = None,
               space_doc: dict[str, Any] = SPACE) -> Outcome:
    space = parse_search_space(space_doc)
    tuner = create_tuner("Random", space, {"optimize_mode": "maximize"}, seed=seed)
    judge = assessor() if assessor else None
    h: list[TrialRecord] = []
    epochs, best, reached = 0, -math.inf, None
    while epochs < cap and (n_trials is None or len(h) < n_trials):
        try:
            params = tuner.suggest(h, np.random.default_rng([seed, len(h)]))
        except NoMoreTrials:
            break
        curve = curves[key(params)]
        t = TrialRecord(len(h), f"t{len(h)}", params, state=TrialState.RUNNING)
        stopped = False
        for step in range(R):
            t.intermediate.append(curve[step])
            epochs += 1
            if judge is not None and judge.should_stop(t, h + [t]):
                stopped = step + 1 < R
                break
        t.state = TrialState.EARLY_STOPPED if stopped else TrialState.SUCCEEDED
        t.value = t.intermediate[-1]
        h.append(t)
        if not stopped:
            best = max(best, t.value)
            if t.value >= target:
                reached = epochs
                break
    return Outcome(reached, epochs, len(h), best)


def advisors(R: int, space_doc: dict[str, Any]) -> dict[str, Callable[[], Advisor]]:
    space = parse_search_space(space_doc)
    mm = {"optimize_mode": "maximize"}
    return {
        "SuccessiveHalving": lambda: create_advisor("SuccessiveHalving", space, {**mm, "min_budget": 1, "max_budget": R, "eta": 3}),
        "Hyperband": lambda: create_advisor("Hyperband", space, {**mm, "R": R, "eta": 3}),
        "ASHA": lambda: create_advisor("ASHA", space, {**mm, "min_budget": 1, "max_budget": R, "eta": 3}),
        "BOHB": lambda: create_advisor("BOHB", space, {**mm, "min_budget": 1, "max_budget": R, "eta": 3}),
        "BOHB (restart)": lambda: create_advisor("BOHB", space, {**mm, "min_budget": 1, "max_budget": R, "eta": 3,
                                                                 "promotion": "restart"}),
        "BOSS": lambda: create_advisor("BOSS", space, {**mm, "R": R, "eta": 3}),
    }


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def paired_bootstrap_ratio_ci(method: Sequence[float], base: Sequence[float], n_resamples: int = BOOTSTRAP_RESAMPLES,
                              seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of median(method) / median(base) when seeds are resampled with replacement.

    ``method[i]`` and ``base[i]`` belong to the same seed i (same reference target), so one resampled
    index set is applied to both: the pairing keeps a hard seed hard for both methods. Pure: the
    interval depends only on the inputs and ``seed``."""
    m, b = np.asarray(method, dtype=float), np.asarray(base, dtype=float)
    if m.ndim != 1 or m.shape != b.shape:
        raise ValueError(f"method and base need one value per seed each, got shapes {m.shape} and {b.shape}")
    if m.size == 0:
        raise ValueError("no seeds: method and base are empty")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if np.any(b <= 0):
        raise ValueError("base epochs must be positive (a ratio to a zero median is undefined)")
    idx = np.random.default_rng(seed).integers(0, m.size, size=(n_resamples, m.size))
    ratios = np.median(m[idx], axis=1) / np.median(b[idx], axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


def share_within_fraction(method: Sequence[float], base: Sequence[float], divisor: int = 3) -> float:
    """Share of seeds in which the method spent at most 1/``divisor`` of the base's epochs on that seed."""
    if len(method) != len(base) or not method:
        raise ValueError(f"method and base need one value per seed each, got {len(method)} and {len(base)}")
    return sum(m * divisor <= b for m, b in zip(method, base)) / len(method)


def summarise(rows: dict[str, list[dict[str, Any]]], cap: int) -> tuple[float, list[dict[str, Any]]]:
    """Per-method table rows from the per-seed runs (a seed that missed the target counts as ``cap``)."""
    rand = [r["epochs_to_target"] or cap for r in rows["Random (full budget)"]]
    base = statistics.median(rand)
    table = []
    for m, rs in rows.items():
        e = [r["epochs_to_target"] or cap for r in rs]
        med = statistics.median(e)
        hit = sum(r["epochs_to_target"] is not None for r in rs)
        lo, hi = paired_bootstrap_ratio_ci(e, rand)
        table.append({"method": m, "median": med, "mean": statistics.mean(e), "reached": hit, "ratio": med / base,
                      "ratio_ci95": [lo, hi], "share_le_third": share_within_fraction(e, rand),
                      "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "paired_by": "seed"}})
    return base, table


def print_table(table: list[dict[str, Any]], n_seeds: int) -> None:
    print(f"{'method':24} {'median':>8} {'mean':>8} {'reached':>8} {'vs random':>10} {'95% CI':>13} {'seeds <=1/3':>12}")
    for t in table:
        lo, hi = t["ratio_ci95"]
        print(f"{t['method']:24} {t['median']:8.0f} {t['mean']:8.0f} {t['reached']:5d}/{n_seeds:<2d} {t['ratio']:10.2f}"
              f"   [{lo:.2f}, {hi:.2f}] {t['share_le_third']:11.0%}")


def from_results(path: Path) -> None:
    """Recompute the table (with intervals) from a results file's per-seed runs; add the new keys to it."""
    out = json.loads(path.read_text())
    base, table = summarise(out["runs"], out["cap"])
    print(f"{path.name}: {out['space']}, folds {out.get('folds', 1)}, R = {out['R']}, {out['seeds']} seeds, ref {out['ref']}; "
          f"Random's median {base:.0f} epochs")
    print_table(table, out["seeds"])
    old = {t["method"]: t for t in out["table"]}
    for t in table:  # add keys only: existing ones keep their values
        old.setdefault(t["method"], {"method": t["method"]})
        for k, v in t.items():
            old[t["method"]].setdefault(k, v)
    out["table"] = list(old.values())
    path.write_text(json.dumps(out, indent=1))
    print(f"\nupdated {path}")


def early_rank_correlation(curves: dict[str, list[float]], R: int) -> dict[int, float]:
    """How well the low rungs rank configurations: Spearman correlation of epoch-k accuracy with epoch-R accuracy."""
    from scipy.stats import spearmanr

    final = [c[R - 1] for c in curves.values()]
    ks = [k for k in (1, 3, 9, 27) if k < R]
    return {k: float(spearmanr([c[k - 1] for c in curves.values()], final)[0]) for k in ks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--R", type=int, default=27, help="full budget in epochs")
    ap.add_argument("--ref", type=int, default=64, help="configs in the reference full-budget random search")
    ap.add_argument("--n-assess", type=int, default=64, help="trials per run in the assessor comparison")
    ap.add_argument("--cap", type=int, default=0, help="epoch cap per run (default 150 * R)")
    ap.add_argument("--space", choices=("wide", "small", "coarse", "mlp", "mlpwide"), default="wide",
                    help="wide: 1728 configs with the loss as a parameter; small: 432 hinge-loss configs; "
                         "coarse: wide with alpha in 10x steps (864 configs); mlp: MLPClassifier (720 configs); "
                         "mlpwide: MLPClassifier with learning rate 1e-5..1 and alpha 1e-6..10 (1536 configs)")
    ap.add_argument("--folds", type=int, default=1,
                    help="mlp only: average the validation accuracy over K stratified folds (default 1: one 70/30 split)")
    ap.add_argument("--jobs", type=int, default=2, help="processes computing --folds curves")
    ap.add_argument("--from-results", type=Path, metavar="FILE",
                    help="no simulation: recompute the table with bootstrap intervals from FILE's per-seed runs")
    args = ap.parse_args()
    if args.from_results:
        if not args.from_results.is_file():
            ap.error(f"--from-results: no such file: {args.from_results}")
        from_results(args.from_results)
        return
    R = args.R
    cap = args.cap or 150 * R
    space_doc = {"wide": WIDE, "small": SPACE, "coarse": COARSE, **MLP_SPACES}[args.space]
    if args.folds > 1 and args.space not in MLP_SPACES:
        ap.error("--folds applies to the MLP spaces only")
    if args.space in MLP_SPACES:
        curves = mlp_space_curves(args.space, R, args.folds, args.jobs)
    else:
        curves = learning_curves(R, space_doc, {"wide": "sgdwide", "small": "sgd", "coarse": "sgdcoarse", "mlp": "mlp"}[args.space])
    finals = sorted(c[-1] for c in curves.values())
    print(f"{len(curves)} configurations; full-budget accuracy: best {finals[-1]:.4f}, median {finals[len(finals) // 2]:.4f}")
    rank_corr = early_rank_correlation(curves, R)
    print("Spearman rank correlation of accuracy after k epochs with the final accuracy: "
          + ", ".join(f"k={k}: {r:.2f}" for k, r in rank_corr.items()))
    methods: dict[str, Callable[[float, int], Outcome]] = {
        "Random (full budget)": lambda tgt, s: run_random(curves, R, tgt, cap, s, space_doc=space_doc)}
    for name, make in advisors(R, space_doc).items():
        methods[name] = (lambda make: lambda tgt, s: run_advisor(make(), curves, R, tgt, cap, s))(make)
    assessors = {
        "Medianstop": lambda: create_assessor("Medianstop", {"optimize_mode": "maximize", "start_step": 3}),
        "Curvefitting": lambda: create_assessor("Curvefitting", {"optimize_mode": "maximize", "epoch_num": R, "start_step": 6,
                                                                 "threshold": 0.95}),
    }
    for name, make in assessors.items():
        methods[f"Random + {name}"] = (lambda make: lambda tgt, s: run_random(curves, R, tgt, cap, s, make, space_doc=space_doc))(make)

    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    targets = []
    for s in range(args.seeds):
        ref = run_random(curves, R, math.inf, args.ref * R, 10_000 + s, n_trials=args.ref, space_doc=space_doc)
        target = ref.best_full - 0.005
        targets.append(target)
        for m, fn in methods.items():
            o = fn(target, s)
            rows[m].append({"seed": s, "target": target, **o.__dict__})
    base, table = summarise(rows, cap)
    print(f"\nepochs to a configuration within 0.005 of the best of a {args.ref}-config full-budget random search "
          f"(R = {R}, {args.seeds} seeds, cap {cap}; targets {min(targets):.4f}..{max(targets):.4f})")
    print("(95% CI: paired seed-bootstrap percentile interval of the ratio; seeds <=1/3: share of seeds where the "
          "method spent at most a third of Random's epochs)")
    print_table(table, args.seeds)

    # Assessors: same Random configurations with and without early stopping, fixed trial count.
    print(f"\nearly stopping over {args.n_assess} Random trials of {R} epochs (same configurations per seed)")
    print(f"{'assessor':14} {'epochs saved':>13} {'best acc drop':>14}")
    assess = []
    for name, make in assessors.items():
        saved, drop = [], []
        for s in range(args.seeds):
            plain = run_random(curves, R, math.inf, 10**9, s, n_trials=args.n_assess, space_doc=space_doc)
            stop = run_random(curves, R, math.inf, 10**9, s, make, n_trials=args.n_assess, space_doc=space_doc)
            saved.append(1 - stop.epochs / plain.epochs)
            drop.append(plain.best_full - stop.best_full)
        assess.append({"assessor": name, "saved": statistics.mean(saved), "drop_mean": statistics.mean(drop), "drop_max": max(drop)})
        print(f"{name:14} {statistics.mean(saved):12.1%} {statistics.mean(drop):9.4f} (max {max(drop):.4f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"space": args.space, "folds": args.folds, "R": R, "seeds": args.seeds, "ref": args.ref, "cap": cap, "rank_corr": rank_corr, "table": table, "assessors": assess, "runs": rows}
    cv = f"-cv{args.folds}" if args.folds > 1 else ""
    dest = RESULTS / f"multifidelity-{args.space}{cv}-R{R}.json"
    dest.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {dest}")
    plot_ecdf(rows, cap, base, f"{args.space}{cv}, R = {R}, {args.seeds} seeds", dest.with_suffix(".png"))


def plot_ecdf(rows: dict[str, list[dict[str, Any]]], cap: int, base: float, title: str, dest: Path) -> None:
    """Share of seeds that reached the target against epochs spent, one line per method (when
    matplotlib is installed, as in scripts/bench): a median alone hides how a bracket-based
    method's seeds bunch at bracket ends."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no plot; scripts/bench has it)")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for m, rs in rows.items():
        e = sorted(r["epochs_to_target"] for r in rs if r["epochs_to_target"] is not None)
        xs = [0, *e, cap]
        ys = [0, *(np.arange(1, len(e) + 1) / len(rs)), len(e) / len(rs)]
        ax.step(xs, ys, where="post", label=m, linestyle="--" if m.startswith("Random") else "-")
    ax.axvline(base, color="grey", linewidth=0.8)
    ax.axvline(base / 3, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlim(left=max(1, min(r["epochs_to_target"] or cap for rs in rows.values() for r in rs) * 0.8), right=cap)
    ax.set_xlabel("epochs spent (log); grey: Random's median and a third of it")
    ax.set_ylabel("share of seeds that reached the target")
    ax.set_title(f"epochs to a near-best configuration ({title})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
