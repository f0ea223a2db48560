"""Scores of the quality benchmark: normalized regret and ranks (pure functions of the runs).

normalized regret(method, problem, budget) = median over seeds of
    (best loss within the first `budget` trials - optimum) / (R - optimum)
where R is the median over seeds of random search's best loss at the same budget (but
R - optimum at least 0.1% of a random configuration's regret): random search scores 1,
finding the optimum scores 0. The average rank at a budget ranks the
methods on each problem by that score (ties share the mean rank) and averages over problems.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

# runs[method][problem] = array (seeds x trials) of losses; NaN pads a run that ended early
Runs = Mapping[str, Mapping[str, np.ndarray]]


def best_so_far(losses: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(losses), np.inf, losses)
    return np.minimum.accumulate(filled, axis=-1)


def normalized_regret(runs: Runs, optima: Mapping[str, float], baseline: str, n: int) -> dict[str, dict[str, np.ndarray]]:
    """score[method][problem] = normalized regret after 1..n trials (length-n array)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for problem, opt in optima.items():
        curve = best_so_far(runs[baseline][problem])[:, :n]
        base = np.median(curve, axis=0) - opt
        # When random search itself reaches the optimum (small tabular spaces) the ratio would
        # explode: the denominator is at least 0.1% of a random configuration's regret.
        floor = max(1e-3 * float(np.median(curve[:, 0]) - opt), 1e-12)
        denom = np.maximum(base, floor)
        for method, per in runs.items():
            if problem not in per:
                continue
            reg = best_so_far(per[problem])[:, :n] - opt
            out.setdefault(method, {})[problem] = np.median(np.maximum(reg, 0.0) / denom, axis=0)
    return out


def ranks(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Average rank (1 = best) over problems; a method is ranked only where it ran."""
    problems = sorted({p for per in scores.values() for p in per})
    total: dict[str, list[float]] = {m: [] for m in scores}
    for p in problems:
        ms = [m for m in scores if p in scores[m]]
        vals = np.array([scores[m][p] for m in ms])
        for m, v in zip(ms, vals):
            # mean rank of ties: 1 + (#strictly better) + (#equal - 1) / 2
            better = float((vals < v - 1e-12).sum())
            equal = float((np.abs(vals - v) <= 1e-12).sum())
            total[m].append(1.0 + better + (equal - 1.0) / 2.0)
    return {m: float(np.mean(r)) if r else float("nan") for m, r in total.items()}


def summary(score: Mapping[str, Mapping[str, np.ndarray]], budgets: Sequence[int]) -> list[dict[str, object]]:
    """One row per method: mean over problems of the score at each budget, rank at each budget."""
    rows: list[dict[str, object]] = []
    rank_at = {b: ranks({m: {p: float(a[b - 1]) for p, a in per.items()} for m, per in score.items()}) for b in budgets}
    for m, per in score.items():
        row: dict[str, object] = {"method": m, "problems": len(per)}
        for b in budgets:
            row[f"score@{b}"] = float(np.mean([a[b - 1] for a in per.values()]))
            row[f"rank@{b}"] = rank_at[b][m]
        rows.append(row)
    rows.sort(key=lambda r: (r[f"rank@{budgets[-1]}"], r[f"score@{budgets[-1]}"]))
    return rows
