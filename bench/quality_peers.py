"""Translations of an NNI search space into each peer's API, and one runner per peer.

Every runner has the same shape: ``run(space_raw, loss, seed, n) -> list of n losses`` in
trial order. Whatever a peer returns is passed through :func:`normalize` (NNI's rounding
and clipping, via AutoTune's own search-space code), so every method is scored on the
configurations the NNI search space actually allows.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any, Callable, Mapping

import numpy as np

from tuner_server.searchspace import Dimension, NestedOption, SearchSpace, parse_search_space

Loss = Callable[[Mapping[str, Any]], float]
Runner = Callable[[dict[str, Any], Loss, int, int], list[float]]


class Unsupported(Exception):
    """The method cannot express this search space (e.g. a conditional one)."""


def normalize(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """A peer's sample -> the parameters NNI semantics produce (rounded, clipped, typed)."""
    flat = space.to_flat(params)
    for k, v in list(flat.items()):
        d = space[k]
        if not d.is_categorical:
            flat[k] = d.quantize(float(v))
    return space.to_parameters(flat)


def _integral(*xs: float) -> bool:
    return all(float(x).is_integer() for x in xs)


# ----------------------------------------------------------------------------- hyperopt


def hyperopt_space(space: SearchSpace, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    from hyperopt import hp

    out: dict[str, Any] = {}
    for k in space.top if keys is None else keys:
        d = space[k]
        t, a = d.type, d.args
        if t == "choice":
            opts = [{"_name": o.name, **hyperopt_space(space, o.children)} if isinstance(o, NestedOption) else o
                    for o in d.options]
            e = hp.choice(k, opts)
        elif t == "uniform":
            e = hp.uniform(k, a[0], a[1])
        elif t == "quniform":
            e = hp.quniform(k, a[0], a[1], a[2])
        elif t == "loguniform":
            e = hp.loguniform(k, math.log(a[0]), math.log(a[1]))
        elif t == "qloguniform":
            e = hp.qloguniform(k, math.log(a[0]), math.log(a[1]), a[2])
        elif t == "randint":
            e = hp.randint(k, int(a[0]), int(a[1]))
        elif t == "normal":
            e = hp.normal(k, a[0], a[1])
        elif t == "qnormal":
            e = hp.qnormal(k, a[0], a[1], a[2])
        elif t == "lognormal":
            e = hp.lognormal(k, a[0], a[1])
        elif t == "qlognormal":
            e = hp.qlognormal(k, a[0], a[1], a[2])
        else:
            raise Unsupported(f"hyperopt: {t}")
        out[d.name] = e
    return out


def hyperopt_runner(algo_name: str) -> Runner:
    def run(raw: dict[str, Any], loss: Loss, seed: int, n: int) -> list[float]:
        from hyperopt import STATUS_OK, Trials, anneal, fmin, rand, tpe

        algo = {"tpe": tpe.suggest, "anneal": anneal.suggest, "rand": rand.suggest}[algo_name]
        space = parse_search_space(raw)
        out: list[float] = []

        def fn(p: dict[str, Any]) -> dict[str, Any]:
            v = loss(normalize(space, p))
            out.append(v)
            return {"loss": v, "status": STATUS_OK}

        fmin(fn, hyperopt_space(space), algo=algo, max_evals=n, trials=Trials(), rstate=np.random.default_rng(seed),
             show_progressbar=False)
        return out

    return run


# ----------------------------------------------------------------------------- Optuna


def optuna_distribution(d: Dimension) -> Any:
    """The Optuna distribution standing for one NNI dimension (normal types: mu +/- 4 sigma)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    t, a = d.type, d.args
    if t == "choice":
        return CategoricalDistribution([o.name if isinstance(o, NestedOption) else o for o in d.options])
    if t == "randint":
        return IntDistribution(int(a[0]), int(a[1]) - 1)
    if t == "uniform":
        return FloatDistribution(a[0], a[1])
    if t == "loguniform":
        return FloatDistribution(a[0], a[1], log=True)
    if t == "quniform":
        lo, hi, q = (float(x) for x in a)
        if _integral(lo / q, hi / q):  # NNI's grid is exactly lo, lo+q, ..., hi
            if _integral(lo, hi, q):
                return IntDistribution(int(lo), int(hi), step=int(q))
            return FloatDistribution(lo, hi, step=q)
        return FloatDistribution(lo, hi)
    if t == "qloguniform":
        if _integral(a[0], a[1]) and float(a[2]) == 1.0:
            return IntDistribution(int(a[0]), int(a[1]), log=True)
        return FloatDistribution(a[0], a[1], log=True)
    if t in ("normal", "qnormal"):
        return FloatDistribution(a[0] - 4 * a[1], a[0] + 4 * a[1])
    if t in ("lognormal", "qlognormal"):
        return FloatDistribution(math.exp(a[0] - 4 * a[1]), math.exp(a[0] + 4 * a[1]), log=True)
    raise Unsupported(f"optuna: {t}")


def optuna_suggest(trial: Any, space: SearchSpace, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Define-by-run sampling of the NNI space (nested choices become conditional params)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for k in space.top if keys is None else keys:
        d = space[k]
        dist = optuna_distribution(d)
        if isinstance(dist, CategoricalDistribution):
            v = trial.suggest_categorical(k, dist.choices)
            if d.is_nested_choice:
                opt = next(o for o in d.options if isinstance(o, NestedOption) and o.name == v)
                v = {"_name": v, **optuna_suggest(trial, space, opt.children)}
        elif isinstance(dist, FloatDistribution):
            v = trial.suggest_float(k, dist.low, dist.high, log=dist.log, step=dist.step)
        else:
            v = trial.suggest_int(k, dist.low, dist.high, log=dist.log, step=dist.step)
        out[d.name] = v
    return out


def optuna_sampler(kind: str, seed: int) -> Any:
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "tpe-mv":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, warn_independent_sampling=False)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(kind)


def optuna_runner(kind: str) -> Runner:
    def run(raw: dict[str, Any], loss: Loss, seed: int, n: int) -> list[float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        space = parse_search_space(raw)
        study = optuna.create_study(sampler=optuna_sampler(kind, seed), direction="minimize")
        out: list[float] = []

        def fn(trial: Any) -> float:
            v = loss(normalize(space, optuna_suggest(trial, space)))
            out.append(v)
            return v

        study.optimize(fn, n_trials=n)
        return out

    return run


def optuna_gp_available() -> str | None:
    """None when Optuna's GPSampler can run here, else why not."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return f"GPSampler needs torch ({e})"
    return None


# ----------------------------------------------------------------------------- scikit-optimize


def skopt_dimensions(space: SearchSpace) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    dims: list[Any] = []
    for d in space.dims:
        t, a = d.type, d.args
        if d.is_nested_choice:
            raise Unsupported("scikit-optimize has no conditional parameters")
        if t == "choice":
            dims.append(Categorical(list(d.options), name=d.key))
        elif t == "randint":
            dims.append(Integer(int(a[0]), int(a[1]) - 1, name=d.key))
        elif t == "quniform" and _integral(a[0], a[1], a[2]) and float(a[2]) == 1.0:
            dims.append(Integer(int(a[0]), int(a[1]), name=d.key))
        elif t in ("uniform", "quniform"):
            dims.append(Real(a[0], a[1], name=d.key))
        elif t in ("loguniform", "qloguniform"):
            dims.append(Real(a[0], a[1], prior="log-uniform", name=d.key))
        elif t in ("normal", "qnormal"):
            dims.append(Real(a[0] - 4 * a[1], a[0] + 4 * a[1], name=d.key))
        else:
            raise Unsupported(f"scikit-optimize runner: {t}")
    return dims


def skopt_runner(raw: dict[str, Any], loss: Loss, seed: int, n: int) -> list[float]:
    from skopt import gp_minimize

    space = parse_search_space(raw)
    dims = skopt_dimensions(space)
    out: list[float] = []

    def fn(x: list[Any]) -> float:
        flat = {d.key: (d.options.index(v) if d.type == "choice" else v) for d, v in zip(space.dims, x)}
        v = loss(normalize(space, space.to_parameters(flat)))
        out.append(v)
        return v

    gp_minimize(fn, dims, n_calls=n, n_initial_points=10, random_state=seed)
    return out


# ----------------------------------------------------------------------------- NNI 3.0 (optional)

NNI_PYTHON = os.environ.get("NNI_PYTHON", "/tmp/nni/bin/python")
NNI_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quality_nni_child.py")


def nni_available() -> str | None:
    """None when the NNI 3.0 environment answers, else why not."""
    if not os.path.exists(NNI_PYTHON):
        return f"no NNI environment at {NNI_PYTHON}"
    r = subprocess.run([NNI_PYTHON, "-c", "import nni; print(nni.__version__)"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"NNI does not import: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    return None


def nni_runner(tuner: str) -> Runner:
    """NNI's own tuner, in NNI's environment, driven over a pipe: the loss stays here."""

    def run(raw: dict[str, Any], loss: Loss, seed: int, n: int) -> list[float]:
        space = parse_search_space(raw)
        if tuner in ("GPTuner", "MetisTuner") and space.is_nested:
            raise Unsupported(f"NNI {tuner} has no conditional parameters")
        proc = subprocess.Popen([NNI_PYTHON, NNI_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        out: list[float] = []
        try:
            proc.stdin.write(json.dumps({"tuner": tuner, "space": raw, "seed": seed}) + "\n")
            proc.stdin.flush()
            for _ in range(n):
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"NNI {tuner} child ended early")
                msg = json.loads(line)
                if "error" in msg:
                    raise RuntimeError(f"NNI {tuner}: {msg['error']}")
                v = loss(normalize(space, msg["params"]))
                out.append(v)
                proc.stdin.write(json.dumps({"loss": v}) + "\n")
                proc.stdin.flush()
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
        return out

    return run


if __name__ == "__main__":  # pragma: no cover
    sys.exit("import this module; run bench/quality.py")
