"""The 10-parameter search space (and a cheap objective) the speed benchmarks share.

One definition for bench/tuner_speed.py and bench/server_latency.py, so that their
figures are about the same space. The mix is what real HPO specs contain: log-uniform
learning rates, integer layer counts, categorical choices, quantized and normal types.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

SPACE: dict[str, dict[str, Any]] = {
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

# The same ten parameters without the normal types, for tuners that model bounded
# spaces only (GPTuner, MetisTuner): the speed of the model, not of validation, is measured.
BOUNDED_SPACE: dict[str, dict[str, Any]] = {
    **{k: v for k, v in SPACE.items() if k not in ("weight_decay", "warmup", "scale")},
    "weight_decay": {"_type": "loguniform", "_value": [1e-6, 1e-2]},
    "warmup": {"_type": "quniform", "_value": [0, 1000, 10]},
    "scale": {"_type": "uniform", "_value": [0.1, 2.0]},
}


# Metis models only choice/randint/uniform/quniform (as NNI's): the same ten without log types.
METIS_SPACE: dict[str, dict[str, Any]] = {
    **BOUNDED_SPACE,
    "lr": {"_type": "uniform", "_value": [1e-5, 1e-1]},
    "hidden": {"_type": "quniform", "_value": [16, 1024, 16]},
    "weight_decay": {"_type": "uniform", "_value": [1e-6, 1e-2]},
}


def loss(p: Mapping[str, Any]) -> float:
    """Lower is better; optimum 0 near lr=1e-3, momentum=0.9, 4 layers, no dropout, adamw."""
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (p["momentum"] - 0.9) ** 2
        + (p["layers"] - 4) ** 2 * 0.1
        + p["dropout"]
        + (p["optimizer"] != "adamw") * 0.5
        + abs(p["scale"] - 1)
    )
