"""Problems of the search-quality benchmark: each one an NNI search space, a loss to
minimize and its known optimum, defined once here and translated to every peer's API
by bench/quality_peers.py.

Synthetic problems are the usual global-optimisation test functions (optima from
Surjanovic & Bingham's library) plus two spaces with the types real specs use:
choice / randint / loguniform / quniform, and a conditional (nested choice) space.

The "real" problems are scikit-learn models cross-validated on bundled datasets. To be
cheap and to have a known optimum they are *tabular*: their spaces are finite (quniform,
randint, choice), every configuration is evaluated once (3-fold CV) into a table cached
under bench/results/, and a trial is a lookup. The optimum is the table's minimum.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

Loss = Callable[[Mapping[str, Any]], float]


@dataclass
class Problem:
    name: str
    space: dict[str, Any]
    loss: Loss
    optimum: float
    kind: str = "synthetic"  # or "real"
    #: for tabular problems: builds the table (config key -> loss) on first use
    table_builder: Callable[[], dict[str, float]] | None = field(default=None, repr=False)


def _box(names: list[str], lo: float, hi: float) -> dict[str, Any]:
    return {n: {"_type": "uniform", "_value": [lo, hi]} for n in names}


def _vec(p: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([float(p[f"x{i}"]) for i in range(d)])


# ----------------------------------------------------------------------------- synthetic


def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x0"]), float(p["x1"])
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: Mapping[str, Any]) -> float:
    x = _vec(p, 6)
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(1))).sum())


def rosenbrock(p: Mapping[str, Any]) -> float:
    x = _vec(p, 4)
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


def ackley(p: Mapping[str, Any]) -> float:
    x = _vec(p, 5)
    d = len(x)
    return float(-20 * math.exp(-0.2 * math.sqrt((x * x).sum() / d)) - math.exp(np.cos(2 * math.pi * x).sum() / d) + 20 + math.e)


def levy(p: Mapping[str, Any]) -> float:
    x = _vec(p, 5)
    w = 1 + (x - 1) / 4
    mid = ((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)).sum()
    return float(math.sin(math.pi * w[0]) ** 2 + mid + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2))


def styblinski_tang(p: Mapping[str, Any]) -> float:
    x = _vec(p, 5)
    return float(0.5 * (x**4 - 16 * x * x + 5 * x).sum())


MIXED_SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-5, 1.0]},
    "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128, 256, 512]},
    "layers": {"_type": "randint", "_value": [1, 9]},
    "dropout": {"_type": "quniform", "_value": [0.0, 0.8, 0.05]},
    "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]},
    "weight_decay": {"_type": "loguniform", "_value": [1e-7, 1e-1]},
}
# Each optimizer has its own best learning rate (an interaction a per-parameter model
# cannot see), the batch size and the learning rate interact linearly in log space.
_MIXED_LR = {"sgd": -1.5, "adam": -3.0, "rmsprop": -3.5}
_MIXED_OFFSET = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.15}


def mixed(p: Mapping[str, Any]) -> float:
    opt = p["optimizer"]
    best_lr = _MIXED_LR[opt] + 0.5 * (math.log2(p["batch_size"]) - 6) / 3  # bigger batch, bigger lr
    return (
        (math.log10(p["lr"]) - best_lr) ** 2
        + 0.05 * (p["layers"] - 5) ** 2
        + 4 * (p["dropout"] - 0.2) ** 2
        + 0.1 * (math.log10(p["weight_decay"]) + 4) ** 2
        + _MIXED_OFFSET[opt]
    )  # optimum 0: adam, batch 64, lr 1e-3, 5 layers, dropout 0.2, wd 1e-4


CONDITIONAL_SPACE: dict[str, Any] = {
    "model": {
        "_type": "choice",
        "_value": [
            {"_name": "svm", "C": {"_type": "loguniform", "_value": [1e-3, 1e3]},
             "gamma": {"_type": "loguniform", "_value": [1e-4, 1e1]}},
            {"_name": "tree", "depth": {"_type": "randint", "_value": [1, 16]},
             "min_leaf": {"_type": "qloguniform", "_value": [1, 64, 1]},
             "features": {"_type": "uniform", "_value": [0.1, 1.0]}},
            {"_name": "linear", "alpha": {"_type": "loguniform", "_value": [1e-6, 1e2]},
             "l1_ratio": {"_type": "uniform", "_value": [0.0, 1.0]}},
        ],
    },
    "scale": {"_type": "choice", "_value": ["none", "standard", "minmax"]},
}


def conditional(p: Mapping[str, Any]) -> float:
    m = p["model"]
    scale_pen = {"none": 0.3, "standard": 0.0, "minmax": 0.05}[p["scale"]]
    if m["_name"] == "svm":  # the best branch, but a narrow valley in (C, gamma)
        a, b = math.log10(m["C"]) - 1.5, math.log10(m["gamma"]) + 2.0
        val = 0.6 * (a - b) ** 2 + 0.05 * (a + b) ** 2
    elif m["_name"] == "tree":
        val = 0.2 + 0.01 * (m["depth"] - 7) ** 2 + 0.05 * (math.log2(m["min_leaf"]) - 2) ** 2 + 0.5 * (m["features"] - 0.6) ** 2
    else:
        val = 0.4 + 0.05 * (math.log10(m["alpha"]) + 2) ** 2 + 0.3 * (m["l1_ratio"] - 0.3) ** 2
    return val + scale_pen  # optimum 0: svm, C=10**1.5, gamma=1e-2, standard


# ----------------------------------------------------------------------------- tabular (real)


def _results_dir() -> str:
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(d, exist_ok=True)
    return d


def table_key(p: Mapping[str, Any], names: list[str]) -> str:
    return json.dumps([round(float(p[n]), 6) if not isinstance(p[n], str) else p[n] for n in names])


SVC_SPACE: dict[str, Any] = {
    "log2_C": {"_type": "quniform", "_value": [-5, 15, 1]},
    "log2_gamma": {"_type": "quniform", "_value": [-15, 3, 1]},
    "kernel": {"_type": "choice", "_value": ["rbf", "sigmoid"]},
}
GB_SPACE: dict[str, Any] = {
    "n_estimators": {"_type": "quniform", "_value": [10, 50, 10]},
    "log10_lr": {"_type": "quniform", "_value": [-2, 0, 0.25]},
    "max_depth": {"_type": "randint", "_value": [1, 5]},
    "subsample": {"_type": "choice", "_value": [0.5, 0.75, 1.0]},
}


def _svc_eval(p: Mapping[str, Any]) -> float:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]  # a third of digits: the table builds in about a minute
    clf = SVC(C=2.0 ** p["log2_C"], gamma=2.0 ** p["log2_gamma"], kernel=p["kernel"])
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return 1.0 - float(cross_val_score(clf, X, y, cv=cv).mean())


def _gb_eval(p: Mapping[str, Any]) -> float:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = load_breast_cancer(return_X_y=True)
    clf = GradientBoostingClassifier(
        n_estimators=int(p["n_estimators"]), learning_rate=10.0 ** p["log10_lr"], max_depth=int(p["max_depth"]),
        subsample=float(p["subsample"]), random_state=0,
    )
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return 1.0 - float(cross_val_score(clf, X, y, cv=cv).mean())


TABLE_VERSION = 1


def build_table(name: str, space: dict[str, Any], evaluate: Loss, pool: Any = None) -> dict[str, float]:
    """Every configuration of a finite space -> its loss, cached in bench/results/."""
    from tuner_server.searchspace import parse_search_space
    from tuner_server.tuners.tpe import enumerate_flats

    path = os.path.join(_results_dir(), f"table-{name}-v{TABLE_VERSION}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    ss = parse_search_space(space)
    names = list(space)
    configs = [ss.to_parameters(f) for f in enumerate_flats(ss)]
    values = list(pool.map(evaluate, configs, chunksize=8)) if pool is not None else [evaluate(c) for c in configs]
    table = {table_key(c, names): v for c, v in zip(configs, values)}
    with open(path + ".tmp", "w") as f:
        json.dump(table, f)
    os.replace(path + ".tmp", path)
    return table


class Tabular:
    """A loss that looks the configuration up in a precomputed table."""

    def __init__(self, names: list[str], table: dict[str, float]) -> None:
        self.names, self.table = names, table

    def __call__(self, p: Mapping[str, Any]) -> float:
        return self.table[table_key(p, self.names)]


def problems(tables: Mapping[str, dict[str, float]] | None = None) -> list[Problem]:
    """All problems; the tabular ones only when their tables are given."""
    st_opt = -39.16616570377142 * 5
    out = [
        Problem("branin", {"x0": {"_type": "uniform", "_value": [-5, 10]}, "x1": {"_type": "uniform", "_value": [0, 15]}},
                branin, 0.39788735772973816),
        Problem("hartmann6", _box([f"x{i}" for i in range(6)], 0.0, 1.0), hartmann6, -3.322368011415515),
        Problem("rosenbrock4", _box([f"x{i}" for i in range(4)], -2.0, 2.0), rosenbrock, 0.0),
        Problem("ackley5", _box([f"x{i}" for i in range(5)], -32.768, 32.768), ackley, 0.0),
        Problem("levy5", _box([f"x{i}" for i in range(5)], -10.0, 10.0), levy, 0.0),
        Problem("styblinski5", _box([f"x{i}" for i in range(5)], -5.0, 5.0), styblinski_tang, st_opt),
        Problem("mixed", MIXED_SPACE, mixed, 0.0),
        Problem("conditional", CONDITIONAL_SPACE, conditional, 0.0),
    ]
    for name, space in (("svc_digits", SVC_SPACE), ("gb_cancer", GB_SPACE)):
        if tables is not None and name in tables:
            t = tables[name]
            out.append(Problem(name, space, Tabular(list(space), t), min(t.values(), default=math.nan), kind="real"))
    return out


REAL_EVALUATORS: dict[str, tuple[dict[str, Any], Loss]] = {"svc_digits": (SVC_SPACE, _svc_eval), "gb_cancer": (GB_SPACE, _gb_eval)}
