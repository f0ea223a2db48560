"""Time per suggest() of every built-in tuner, and of Optuna's TPE, on the same histories.

Usage: scripts/bench bench/tuner_speed.py [--calls 30] [--sizes 100,1000] [--gp-sizes 100,500] [--tuners ...]
(plain `python bench/tuner_speed.py` works too; Optuna's rows are then left out)

The search space is bench/speed_space.py's 10 parameters of mixed types. GPTuner and
MetisTuner (bounded types only) get its bounded variant, and are timed at --gp-sizes
(a GP's cost grows as n^2..n^3); PPOTuner gets a 10-parameter all-choice variant and
Batch one choice of 2,000 parameter sets. The history holds N completed trials plus 8
pending ones (PBT: N completed trials of its own generations), and each call is given
the whole history as fresh records, as the tuner server does. Optuna's TPESampler
(univariate and multivariate) is given the same N completed trials through
study.add_trials, and one suggestion is study.ask() plus sampling all 10 parameters.
Prints median and p99 milliseconds per suggestion, and writes bench/results/tuner_speed.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as in the tuner server's pod
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from speed_space import BOUNDED_SPACE, METIS_SPACE, SPACE, loss  # noqa: E402

from tuner_server.history import TrialRecord, TrialState  # noqa: E402
from tuner_server.searchspace import parse_search_space  # noqa: E402
from tuner_server.tuners import NoMoreTrials, TryLater, create_tuner, tuner_names  # noqa: E402

CHOICE_SPACE = {f"op{i}": {"_type": "choice", "_value": ["conv3", "conv5", "pool", "skip", "sep3"]} for i in range(10)}
BATCH_SPACE = {"set": {"_type": "choice", "_value": [{"lr": 10 ** (-k / 500), "i": k} for k in range(2000)]}}
GP_LIKE = ("GPTuner", "MetisTuner")


def space_for(name: str) -> dict[str, Any]:
    if name == "MetisTuner":
        return METIS_SPACE
    if name == "GPTuner":
        return BOUNDED_SPACE
    if name == "PPOTuner":
        return CHOICE_SPACE
    if name == "Batch":
        return BATCH_SPACE
    return SPACE


def value_of(params: dict[str, Any]) -> float:
    if "lr" in params and "momentum" in params:
        return loss(params)
    return float(np.random.default_rng(abs(hash(repr(sorted(params.items())))) % 2**32).random())


def make_history(name: str, n: int, pending: int = 8) -> list[TrialRecord]:
    space = parse_search_space(space_for(name))
    rng = np.random.default_rng(12345)
    hist: list[TrialRecord] = []
    if name == "PBTTuner":  # its trials carry generation/checkpoint structure: let it make them
        t = create_tuner(name, space, {"all_checkpoint_dir": "/tmp/autotune-bench-pbt", "optimize_mode": "minimize"}, 1)
        for i in range(n):
            p = t.suggest(hist, np.random.default_rng([7, i]))
            hist.append(TrialRecord(i, f"trial-{i}", p, TrialState.SUCCEEDED, value_of(p)))
        return hist
    for i in range(n + pending):
        p = space.to_parameters(space.sample_flat(rng))
        done = i < n
        hist.append(TrialRecord(i, f"trial-{i}", p, TrialState.SUCCEEDED if done else TrialState.RUNNING,
                                value_of(p) if done else None))
    return hist


def time_calls(call: Callable[[int], None], calls: int) -> tuple[float, float]:
    times = []
    for c in range(calls + 1):
        t0 = time.perf_counter()
        call(c)
        if c:  # the first call fills memos (a cold server start)
            times.append(time.perf_counter() - t0)
    ts = np.array(times) * 1e3
    return float(np.median(ts)), float(np.percentile(ts, 99))


def bench_ours(name: str, n: int, calls: int) -> tuple[float, float]:
    space = parse_search_space(space_for(name))
    args: dict[str, Any] = {} if name in ("GridSearch", "Batch") else {"optimize_mode": "minimize"}
    if name == "PBTTuner":
        args["all_checkpoint_dir"] = "/tmp/autotune-bench-pbt"
    if name == "Batch":
        n = min(n, 1999)
    tuner = create_tuner(name, space, args, 1)
    hist = make_history(name, n)

    def call(c: int) -> None:
        # fresh, equal records each call: no identity-based cache is flattered
        fresh = [TrialRecord(t.sequence, t.trial_id, dict(t.parameters), t.state, t.value) for t in hist]
        try:
            tuner.suggest(fresh, np.random.default_rng([1, len(hist), c]))
        except (NoMoreTrials, TryLater):
            pass

    return time_calls(call, calls)


def bench_optuna(multivariate: bool, n: int, calls: int) -> tuple[float, float]:
    import optuna
    from optuna.trial import create_trial

    from quality_peers import optuna_distribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = parse_search_space(SPACE)
    dists = {d.key: optuna_distribution(d) for d in space.dims}
    trials = []
    for t in make_history("TPE", n, pending=0):
        params = {}
        for d in space.dims:
            v = t.parameters[d.name]
            dist = dists[d.key]
            if hasattr(dist, "low"):  # normal types: clipped into Optuna's mu +/- 4 sigma range
                v = min(max(v, dist.low), dist.high)
            params[d.key] = v
        trials.append(create_trial(params=params, distributions=dists, value=t.value))
    sampler = optuna.samplers.TPESampler(seed=1, multivariate=multivariate)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.add_trials(trials)

    def call(c: int) -> None:
        trial = study.ask(dists)  # samples every parameter (relative + independent)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # not a result: history stays at n

    return time_calls(call, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--gp-sizes", default="100,500")
    ap.add_argument("--tuners", default=",".join(tuner_names()))
    ap.add_argument("--no-optuna", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    gp_sizes = [int(s) for s in a.gp_sizes.split(",")]
    rows: list[tuple[str, int, float, float]] = []
    print(f"{'tuner':<26}{'trials':>8}{'median ms':>12}{'p99 ms':>10}   (10 parameters, {a.calls} calls)")

    def emit(name: str, n: int, med: float, p99: float) -> None:
        rows.append((name, n, med, p99))
        print(f"{name:<26}{n:>8}{med:>12.2f}{p99:>10.2f}", flush=True)

    for name in a.tuners.split(","):
        for n in gp_sizes if name in GP_LIKE else sizes:
            emit(name, n, *bench_ours(name, n, a.calls))
        if name == "TPE":
            for n in sizes:
                emit("TPE (multivariate=false)", n, *bench_tpe_univariate(n, a.calls))
    if not a.no_optuna:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("# Optuna is not installed here: run through scripts/bench for its rows", file=sys.stderr)
        else:
            for mv, label in ((False, "Optuna TPE"), (True, "Optuna TPE multivariate")):
                for n in sizes:
                    emit(label, n, *bench_optuna(mv, n, a.calls))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "tuner_speed.md"), "w") as f:
        f.write(f"ms per suggestion, 10 parameters, median and p99 of {a.calls} calls\n\n| tuner | trials | median ms | p99 ms |\n|---|---|---|---|\n")
        for name, n, med, p99 in rows:
            f.write(f"| {name} | {n} | {med:.2f} | {p99:.2f} |\n")


def bench_tpe_univariate(n: int, calls: int) -> tuple[float, float]:
    space = parse_search_space(SPACE)
    tuner = create_tuner("TPE", space, {"optimize_mode": "minimize", "tpe_args": {"multivariate": False}}, 1)
    hist = make_history("TPE", n)

    def call(c: int) -> None:
        fresh = [TrialRecord(t.sequence, t.trial_id, dict(t.parameters), t.state, t.value) for t in hist]
        tuner.suggest(fresh, np.random.default_rng([1, len(hist), c]))

    return time_calls(call, calls)


if __name__ == "__main__":
    main()
