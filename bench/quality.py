"""Search-quality benchmark: AutoTune's tuners against hyperopt, Optuna, scikit-optimize
(and NNI 3.0 when its environment exists) on the same problems, seeds and budgets.

Usage (peers live in .venv-bench):
    scripts/bench bench/quality.py --quick        # a few problems and seeds, for iteration
    scripts/bench bench/quality.py                # the full run: every problem, 10 seeds

Each run asks a method for 100 trials one at a time (each result is reported before the
next suggestion); budgets 25/50/100 are prefixes of it. Scores are normalized regret
(bench/quality_score.py: random search = 1, optimum = 0; median over seeds, mean over
problems) and the average rank per budget. Prints a markdown table and writes
bench/results/quality.md, quality.png (score against trials) and quality-runs.json.
Peers are deterministic given their seed, so their runs are cached in
bench/results/quality-peer-cache.json (--no-cache to redo them); AutoTune's are always run.

Outliers: ``--outliers 0.05 --methods GP,Metis`` makes ~5% of AutoTune's trials (seeded per
run and trial) report OUTLIER_LOSS to the tuner instead of their loss -- a diverged training
or a script's "worst" sentinel -- while the score still uses the true loss (the question is
how well the tuner searches despite them). Peers do not get outliers: compare AutoTune with
itself (``--tag`` the runs; use --methods so that no peer is run).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per worker
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any, Mapping  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import quality_peers as peers  # noqa: E402
import quality_problems as qp  # noqa: E402
import quality_score as qs  # noqa: E402

from tuner_server.history import TrialRecord, TrialState  # noqa: E402
from tuner_server.searchspace import parse_search_space  # noqa: E402
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner  # noqa: E402

RESULTS = os.path.join(HERE, "results")
BUDGETS = (25, 50, 100)
BASELINE = "AutoTune Random"
CACHE_VERSION = 1
#: what an outlying trial reports: the largest float a script can print as its "worst"
OUTLIER_LOSS = 1.7e308


def ours(name: str, class_args: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None,
         outliers: float = 0.0) -> peers.Runner:
    """``attrs``: tuner attributes set after construction (bench-only: trying a model
    component that has no classArg yet; each must already exist on the tuner).
    ``outliers``: the fraction of trials that report OUTLIER_LOSS to the tuner (the
    returned losses stay the true ones)."""

    def run(raw: dict[str, Any], loss: qp.Loss, seed: int, n: int) -> list[float]:
        space = parse_search_space(raw)
        try:
            tuner = create_tuner(name, space, {"optimize_mode": "minimize", **(class_args or {})}, seed)
        except TunerArgsError as e:
            raise peers.Unsupported(str(e)) from None
        for k, v in (attrs or {}).items():
            if not hasattr(tuner, k):
                raise AttributeError(f"{name} tuner has no attribute {k!r} to override")
            setattr(tuner, k, v)
        hist: list[TrialRecord] = []
        out: list[float] = []
        for i in range(n):
            try:
                p = tuner.suggest(hist, np.random.default_rng([seed, i]))
            except NoMoreTrials:
                break
            v = loss(p)
            out.append(v)
            bad = outliers > 0 and np.random.default_rng([seed, i, 7]).random() < outliers
            hist.append(TrialRecord(i, f"t{i}", p, TrialState.SUCCEEDED, OUTLIER_LOSS if bad else v))
        return out

    return run


def methods(with_nni: bool, with_optuna_gp: bool, tpe_variants: Mapping[str, Any] | None = None,
            outliers: float = 0.0) -> dict[str, peers.Runner]:
    """Every method by display name. ``tpe_variants``: extra "AutoTune TPE <name>" runs with
    those tpe_args (for tuning TPE's defaults with --tpe-variants); a variant's "_attrs" object
    sets tuner attributes instead (model components without a classArg)."""
    def at(name: str, class_args: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None) -> peers.Runner:
        return ours(name, class_args, attrs, outliers)

    m: dict[str, peers.Runner] = {
        "AutoTune Random": at("Random"),
        "AutoTune Random sobol": at("Random", {"rule": "sobol"}),
        "AutoTune TPE": at("TPE"),
        "AutoTune TPE univariate": at("TPE", {"tpe_args": {"multivariate": False}}),
        **{f"AutoTune TPE {k}": at("TPE", {"tpe_args": {a: b for a, b in v.items() if a != "_attrs"}}, v.get("_attrs"))
           for k, v in (tpe_variants or {}).items()},
        "AutoTune Anneal": at("Anneal"),
        "AutoTune Evolution": at("Evolution"),
        "AutoTune GP": at("GPTuner"),
        "AutoTune Metis": at("MetisTuner"),
        "AutoTune GridSearch": at("GridSearch"),
        "hyperopt tpe": peers.hyperopt_runner("tpe"),
        "hyperopt anneal": peers.hyperopt_runner("anneal"),
        "hyperopt rand": peers.hyperopt_runner("rand"),
        "Optuna TPE": peers.optuna_runner("tpe"),
        "Optuna TPE multivariate": peers.optuna_runner("tpe-mv"),
        "Optuna CMA-ES": peers.optuna_runner("cmaes"),
        "Optuna QMC": peers.optuna_runner("qmc"),
        "skopt gp_minimize": peers.skopt_runner,
    }
    if with_optuna_gp:
        m["Optuna GP"] = peers.optuna_runner("gp")
    if with_nni:
        # NNI 3.0's GPTuner and MetisTuner are left out: GPTuner fails in acq_max with any
        # SciPy >= 1.9 (TypeError: 'float' object is not subscriptable, on res.fun[0]); the
        # oldest SciPy with Python 3.11 wheels (1.10.1) still has it. MetisTuner took over
        # 100 s for 15 trials of Branin (stopped). See quality_nni_child.py to retry them.
        for t in ("TPE", "Evolution"):
            m[f"NNI 3.0 {t}"] = peers.nni_runner(t)
    return m


# --------------------------------------------------------------------------- workers

_STATE: dict[str, Any] = {}


def _init_worker(tables: dict[str, dict[str, float]], with_nni: bool, with_optuna_gp: bool,
                 tpe_variants: Mapping[str, Any] | None = None, outliers: float = 0.0) -> None:
    try:
        os.nice(10)  # also when started without nice: this benchmark yields to everything else
    except OSError:
        pass
    warnings.filterwarnings("ignore")
    _STATE["problems"] = {p.name: p for p in qp.problems(tables)}
    _STATE["methods"] = methods(with_nni, with_optuna_gp, tpe_variants, outliers)


def _run_one(task: tuple[str, str, int, int]) -> tuple[tuple[str, str, int, int], list[float] | str, float]:
    method, problem, seed, n = task
    p = _STATE["problems"][problem]
    t0 = time.perf_counter()
    try:
        out: list[float] | str = _STATE["methods"][method](p.space, p.loss, seed, n)
    except peers.Unsupported as e:
        out = f"unsupported: {e}"
    except Exception as e:  # a peer crashing is a finding, not a reason to lose the run
        out = f"error: {type(e).__name__}: {e}"
    return task, out, time.perf_counter() - t0


def _build_tables(names: list[str], pool: Any) -> dict[str, dict[str, float]]:
    tables = {}
    for name in names:
        space, ev = qp.REAL_EVALUATORS[name]
        t0 = time.perf_counter()
        tables[name] = qp.build_table(name, space, ev, pool)
        dt = time.perf_counter() - t0
        if dt > 1:
            print(f"# built the {name} table ({len(tables[name])} configurations) in {dt:.0f} s", file=sys.stderr)
    return tables


# --------------------------------------------------------------------------- output


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def markdown(rows: list[dict[str, object]], per_problem: dict[str, dict[str, np.ndarray]], problems: list[str],
             n_problems: int, seeds: int, secs: dict[str, float], budgets: list[int]) -> str:
    head = "| method | problems | " + " | ".join(f"score@{b}" for b in budgets) + " | " + \
        " | ".join(f"rank@{b}" for b in budgets) + " | s/run |"
    lines = [f"Normalized regret (0 = optimum, 1 = random search's median), median over {seeds} seeds, mean over "
             f"the problems a method supports (of {n_problems}); rank = average rank over problems.", "",
             head, "|" + "---|" * (3 + 2 * len(budgets))]
    for r in rows:
        m = str(r["method"])
        lines.append(f"| {m} | {r['problems']} | " + " | ".join(_fmt(float(r[f'score@{b}'])) for b in budgets) + " | "
                     + " | ".join(f"{float(r[f'rank@{b}']):.2f}" for b in budgets) + f" | {secs.get(m, float('nan')):.2f} |")
    lines += ["", f"Per problem, normalized regret at {len(next(iter(next(iter(per_problem.values())).values())))} trials:", "",
              "| method | " + " | ".join(problems) + " |", "|" + "---|" * (1 + len(problems))]
    for r in rows:
        m = str(r["method"])
        lines.append(f"| {m} | " + " | ".join(_fmt(float(per_problem[m][p][-1])) if p in per_problem[m] else "-"
                                           for p in problems) + " |")
    return "\n".join(lines) + "\n"


def plot(score: dict[str, dict[str, np.ndarray]], path: str, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    xs = np.arange(1, n + 1)
    for m, per in sorted(score.items()):
        y = np.mean(np.stack(list(per.values())), axis=0)
        ax.plot(xs, np.maximum(y, 1e-3), "-" if m.startswith("AutoTune") else "--", label=f"{m} ({len(per)})", lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("trials")
    ax.set_ylabel("normalized regret (mean over problems; random = 1)")
    ax.axvline(25, color="grey", lw=0.5)
    ax.axvline(50, color="grey", lw=0.5)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --------------------------------------------------------------------------- main


def rescore(path: str, tag: str) -> None:
    with open(path) as f:
        saved = json.load(f)
    runs = {m: {p: np.asarray(v, dtype=float) for p, v in per.items()} for m, per in saved["runs"].items()}
    optima = saved["optima"]
    n = next(iter(next(iter(runs.values())).values())).shape[1]
    probs = list(optima)
    seeds = max(a_.shape[0] for per in runs.values() for a_ in per.values())
    score = qs.normalized_regret(runs, optima, BASELINE, n)
    budgets = [b for b in BUDGETS if b <= n] or [n]
    secs = saved.get("secs", {})
    md = markdown(qs.summary(score, budgets), score, probs, len(probs), seeds, secs, budgets)
    md += f"\nRe-scored from {os.path.basename(path)} (runs as saved).\n"
    print(md)
    out = os.path.join(RESULTS, f"quality{('-' + tag) if tag else '-rescored'}")
    with open(out + ".md", "w") as f:
        f.write(md)
    plot(score, out + ".png", n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 problems, 3 seeds: for iterating on a tuner")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per (method, problem); default 10 (quick: 3)")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="first seed (seeds are offset .. offset+seeds-1): tune on one set, confirm on another")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--problems", default=None, help="comma-separated subset")
    ap.add_argument("--methods", default=None, help="comma-separated subset (substring match); the baseline always runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nni", choices=("auto", "yes", "no"), default="auto", help="NNI 3.0 runners (from $NNI_PYTHON)")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--tpe-variants", default="{}",
                    help='extra AutoTune TPE runs, JSON {"name": tpe_args}, e.g. {"g1": {"gamma": 1.0}}')
    ap.add_argument("--from-cache", default="", help="methods (substrings) taken only from the cache, however many seeds it has")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--outliers", type=float, default=0.0,
                    help="fraction of AutoTune's trials that report OUTLIER_LOSS to the tuner (scored on the true loss)")
    ap.add_argument("--rescore", default="", help="a quality*-runs.json to score again instead of running")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds; then stop and score the runs that finished (tasks go seed by seed, "
                         "so every method gets its first seeds first)")
    a = ap.parse_args()
    t_start = time.perf_counter()
    seeds = a.seeds or (3 if a.quick else 10)
    seed_ids = range(a.seed_offset, a.seed_offset + seeds)
    n = a.trials
    os.makedirs(RESULTS, exist_ok=True)

    nni_why = peers.nni_available() if a.nni != "no" else "disabled (--nni no)"
    if a.nni == "yes" and nni_why:
        sys.exit(f"--nni yes, but {nni_why}")
    gp_why = peers.optuna_gp_available()
    print(f"# NNI 3.0: {'available' if not nni_why else nni_why}; Optuna GPSampler: {'available' if not gp_why else gp_why}",
          file=sys.stderr)
    variants = json.loads(a.tpe_variants)
    all_methods = methods(not nni_why, not gp_why, variants)
    names = list(all_methods)
    if a.methods:
        want = [w.strip().lower() for w in a.methods.split(",")]
        names = [m for m in names if m == BASELINE or any(w in m.lower() for w in want)]
    probs = [p.name for p in qp.problems({k: {} for k in qp.REAL_EVALUATORS})]
    if a.problems:
        probs = [p for p in a.problems.split(",")]
    elif a.quick:
        probs = ["branin", "mixed", "conditional"]
    unknown = set(probs) - {p.name for p in qp.problems({k: {} for k in qp.REAL_EVALUATORS})}
    if unknown:
        sys.exit(f"unknown problem(s) {sorted(unknown)}")

    # Each invocation writes its own cache file (two may run at once, e.g. a slow peer in
    # the background); all of them are read.
    cache_path = os.path.join(RESULTS, f"quality-peer-cache{('-' + a.tag) if a.tag else ''}.json")
    cache: dict[str, Any] = {}
    mine: dict[str, Any] = {}
    if not a.no_cache:
        for fn in sorted(glob.glob(os.path.join(RESULTS, "quality-peer-cache*.json"))):
            with open(fn) as f:
                part = json.load(f)
            cache.update(part)
            if fn == cache_path:
                mine.update(part)
    cache_only = [w.strip().lower() for w in a.from_cache.split(",") if w.strip()]

    def cached_only(m: str) -> bool:
        return any(w in m.lower() for w in cache_only)

    def ckey(m: str, p: str, s: int) -> str:
        return f"v{CACHE_VERSION}|{qp.TABLE_VERSION}|{m}|{p}|{s}|{n}"

    if a.rescore:  # score saved runs again (e.g. after a change of the score), running nothing
        rescore(a.rescore, a.tag)
        return
    ctx = mp.get_context("fork")
    with ctx.Pool(a.workers, initializer=_init_worker, initargs=({}, False, False)) as pool:
        tables = _build_tables([p for p in probs if p in qp.REAL_EVALUATORS], pool)
    problems = {p.name: p for p in qp.problems(tables) if p.name in probs}

    tasks = [(m, p, s, n) for s in seed_ids for m in names for p in probs
             if m.startswith("AutoTune") or (ckey(m, p, s) not in cache and not cached_only(m))]
    # Seed by seed, the cheap methods first within a seed, the slowest peers after all the
    # others: a time budget then cuts the slowest methods' last seeds, never the baseline's. Without a budget: slowest first,
    # so that the two workers finish together.
    cost = {"skopt": 3, "Optuna GP": 3, "NNI": 2, "AutoTune GP": 2, "AutoTune Metis": 2}

    def cost_of(m: str) -> int:
        return max([v for k, v in cost.items() if m.startswith(k)] + [0])

    if a.time_budget or a.workers == 1:  # scikit-optimize (~40 s a run) only after everything else
        tasks.sort(key=lambda t: (cost_of(t[0]) >= 3, t[2], cost_of(t[0])))
    else:
        tasks.sort(key=lambda t: -cost_of(t[0]))
    results: dict[tuple[str, str, int], list[float] | str] = {}
    secs: dict[str, list[float]] = {}
    for m in names:
        for p in probs:
            for s in seed_ids:
                hit = cache.get(ckey(m, p, s))
                if hit is not None and not m.startswith("AutoTune"):
                    results[(m, p, s)] = hit["losses"]
                    secs.setdefault(m, []).append(hit["secs"])
    print(f"# {len(tasks)} runs to do ({len(names)} methods x {len(probs)} problems x {seeds} seeds, "
          f"{len(results)} peer runs from the cache), {a.workers} workers", file=sys.stderr)
    done = 0
    last_flush = time.perf_counter()
    out_of_time = False
    with ctx.Pool(a.workers, initializer=_init_worker, initargs=(tables, not nni_why, not gp_why, variants, a.outliers)) as pool:
        it = pool.imap_unordered(_run_one, tasks, chunksize=1)
        while True:
            left = (a.time_budget - (time.perf_counter() - t_start)) if a.time_budget else None
            try:
                (m, p, s, _), out, dt = it.next(timeout=left) if left is None or left > 0 else it.next(timeout=0)
            except StopIteration:
                break
            except mp.TimeoutError:
                out_of_time = True  # keep what finished; missing seeds are reported per method
                pool.terminate()
                break
            results[(m, p, s)] = out
            if isinstance(out, list):
                secs.setdefault(m, []).append(dt)
                if not m.startswith("AutoTune"):
                    cache[ckey(m, p, s)] = mine[ckey(m, p, s)] = {"losses": out, "secs": dt}
            done += 1
            if done % 50 == 0 or done == len(tasks) or time.perf_counter() - last_flush > 30:
                last_flush = time.perf_counter()
                print(f"# {done}/{len(tasks)} runs, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
                with open(cache_path + ".tmp", "w") as f:
                    json.dump(mine, f)
                os.replace(cache_path + ".tmp", cache_path)

    with open(cache_path + ".tmp", "w") as f:
        json.dump(mine, f)
    os.replace(cache_path + ".tmp", cache_path)

    runs: dict[str, dict[str, np.ndarray]] = {}
    notes: list[str] = []
    partial: dict[str, list[int]] = {}
    for m in names:
        for p in probs:
            outs = [results[(m, p, s)] for s in seed_ids if (m, p, s) in results]
            bad = [o for o in outs if isinstance(o, str)]
            if bad:
                notes.append(f"{m} on {p}: {bad[0]}")
                continue
            if len(outs) < seeds:
                partial.setdefault(m, []).append(len(outs))
            if not outs:
                continue
            arr = np.full((len(outs), n), np.nan)
            for s, o in enumerate(outs):
                arr[s, : len(o)] = o
            runs.setdefault(m, {})[p] = arr
    optima = {p: problems[p].optimum for p in probs}
    score = qs.normalized_regret(runs, optima, BASELINE, n)
    budgets = [b for b in BUDGETS if b <= n] or [n]
    rows = qs.summary(score, budgets)
    mean_secs = {m: float(np.mean(v)) for m, v in secs.items()}
    md = markdown(rows, score, probs, len(probs), seeds, mean_secs, budgets)
    wall = time.perf_counter() - t_start
    md += f"\nWall time {wall:.0f} s with {a.workers} workers; s/run = mean seconds per {n}-trial run " \
          f"(cached peer runs keep the time measured when they ran).\n"
    md += f"NNI 3.0: {'included' if not nni_why else nni_why}. Optuna GPSampler: {'included' if not gp_why else gp_why}.\n"
    md += f"Seeds {seed_ids.start}-{seed_ids.stop - 1}.\n"
    if a.outliers:
        md += f"Outliers: {a.outliers:.0%} of AutoTune's trials reported {OUTLIER_LOSS:g} to the tuner (scored on the true loss).\n"
    if out_of_time:
        md += f"Stopped by --time-budget {a.time_budget:.0f} s after {done} of {len(tasks)} runs.\n"
    for m, counts in partial.items():
        md += f"{m}: only {min(counts)}-{max(counts)} of {seeds} seeds per problem (the rest did not finish in the time budget).\n"
    if notes:
        md += "\nNot run:\n" + "".join(f"- {x}\n" for x in sorted(set(n_.split(':')[0] + ':' + n_.split(':', 2)[1] for n_ in notes)))
    print(md)
    tag = f"-{a.tag}" if a.tag else ("-quick" if a.quick else "")
    with open(os.path.join(RESULTS, f"quality{tag}.md"), "w") as f:
        f.write(md)
    with open(os.path.join(RESULTS, f"quality{tag}-runs.json"), "w") as f:
        json.dump({"optima": optima, "runs": {m: {p: a_.tolist() for p, a_ in per.items()} for m, per in runs.items()},
                   "notes": notes, "secs": mean_secs}, f)
    plot(score, os.path.join(RESULTS, f"quality{tag}.png"), n)
    print(f"# wrote {RESULTS}/quality{tag}.md, .png, -runs.json ({wall:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
