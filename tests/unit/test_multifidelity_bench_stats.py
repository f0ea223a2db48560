"""The seed-bootstrap statistics of bench/multifidelity.py on hand-made inputs whose answer is known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "multifidelity.py"


@pytest.fixture(scope="module")
def mf() -> ModuleType:
    # bench/ is not a package: load the script by path (registered in sys.modules so its dataclass resolves).
    spec = importlib.util.spec_from_file_location("bench_multifidelity_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_paired_resampling_keeps_a_constant_per_seed_ratio_exact(mf: ModuleType) -> None:
    # Seeds differ wildly in difficulty, but the method always spends a quarter of Random's epochs on
    # the same seed. Resampling both with one index set gives exactly 0.25 every time; resampling them
    # independently would give a wide interval reaching above 1/3.
    base = [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120] * 3
    method = [b / 4 for b in base]
    lo, hi = mf.paired_bootstrap_ratio_ci(method, base)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)
    assert hi < 1 / 3


def test_interval_spans_both_sides_when_the_median_is_a_coin_flip(mf: ModuleType) -> None:
    # Half the seeds cost 1 epoch, half 100, against a constant 10: a resample's median is 1, 50.5 or
    # 100, so the ratio is 0.1, 5.05 or 10 and the 95% interval must run from 0.1 to 10 (it includes 1/3
    # and 1), although the point ratio median(method) / median(base) = 5.05 alone says "clearly worse".
    method = [1] * 10 + [100] * 10
    base = [10] * 20
    lo, hi = mf.paired_bootstrap_ratio_ci(method, base)
    assert lo == pytest.approx(0.1)
    assert hi == pytest.approx(10.0)
    assert lo < 1 / 3 < hi


def test_interval_is_reproducible_and_depends_on_the_rng_seed_only(mf: ModuleType) -> None:
    method = [3, 7, 12, 5, 9, 30, 2, 8, 15, 4, 6, 11]
    base = [20, 25, 30, 18, 40, 35, 22, 27, 50, 19, 24, 33]
    assert mf.paired_bootstrap_ratio_ci(method, base) == mf.paired_bootstrap_ratio_ci(method, base)
    lo, hi = mf.paired_bootstrap_ratio_ci(method, base)
    point = (sorted(method)[5] + sorted(method)[6]) / 2 / ((sorted(base)[5] + sorted(base)[6]) / 2)
    assert lo <= point <= hi
    assert lo < hi  # varied data: a degenerate interval would mean the resampling did nothing


@pytest.mark.parametrize(
    ("method", "base", "message"),
    [([1, 2], [1], "one value per seed"), ([], [], "no seeds"), ([1, 2], [0, 3], "positive")],
)
def test_bad_input_names_the_problem(mf: ModuleType, method: list[float], base: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mf.paired_bootstrap_ratio_ci(method, base)


def test_share_within_a_third_counts_per_seed_including_the_boundary(mf: ModuleType) -> None:
    # seed 0: 3 * 1 = 3 <= 3 (boundary counts); seed 1: 12 > 9; seed 2: 9 <= 10
    assert mf.share_within_fraction([1, 4, 3], [3, 9, 10]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one value per seed"):
        mf.share_within_fraction([1], [1, 2])
