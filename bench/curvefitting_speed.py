"""Time Curvefitting's prediction per call on synthetic learning curves (run: python bench/curvefitting_speed.py).

Prints ms/call (mean, median, max) over curves of 6..19 points: saturating, noisy,
decreasing (loss, minimize), linear, constant. Target: < 50 ms per call.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner_server.assessors.curvefitting import predict_final  # noqa: E402
from tuner_server.history import OptimizeMode  # noqa: E402


def curves(rng: np.random.Generator):
    for n in range(6, 20):
        x = np.arange(1, n + 1, dtype=float)
        yield list(0.9 - 0.5 * np.exp(-x / 3)), OptimizeMode.MAXIMIZE
        yield list(0.95 - 0.8 * x**-0.8 + rng.normal(0, 0.02, n)), OptimizeMode.MAXIMIZE
        yield list(2.0 * np.exp(-x / 4) + 0.3 + rng.normal(0, 0.05, n)), OptimizeMode.MINIMIZE
        yield list(0.01 * x + 0.2), OptimizeMode.MAXIMIZE
        yield [0.5] * n, OptimizeMode.MAXIMIZE
        yield list(1e4 * (1 - np.exp(-x / 5))), OptimizeMode.MAXIMIZE


def main() -> None:
    warnings.simplefilter("error")
    rng = np.random.default_rng(0)
    times = []
    for curve, mode in curves(rng):
        t0 = time.perf_counter()
        predict_final(curve, 20, mode)
        times.append((time.perf_counter() - t0) * 1000)
    print(
        f"curvefitting: {len(times)} calls, mean {statistics.mean(times):.1f} ms, "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms per call"
    )


if __name__ == "__main__":
    main()
