"""MOTPE (and Random) on multi-objective histories."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pytest

from tuner_server.history import OptimizeMode, TrialRecord, TrialState
from tuner_server.pareto import hypervolume
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import NoMoreTrials, TunerArgsError, create_tuner
from tuner_server.tuners.motpe import motpe_order

MIN, MAX = OptimizeMode.MINIMIZE, OptimizeMode.MAXIMIZE
SPACE = {f"x{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(4)}


def zdt1(p: Mapping[str, Any]) -> tuple[float, float]:
    """ZDT1 with 4 variables (both minimized): the front is x1..x3 = 0, f2 = 1 - sqrt(f1)."""
    f1 = p["x0"]
    g = 1 + 9 * sum(p[f"x{i}"] for i in range(1, 4)) / 3
    return f1, g * (1 - math.sqrt(f1 / g))


def rec(i: int, params: Mapping[str, Any], values: tuple[float, ...] | None, state: TrialState = TrialState.SUCCEEDED) -> TrialRecord:
    return TrialRecord(i, f"t-{i}", params, state, value=values[0] if values else None, values=values)


def run(name: str, n: int, seed: int, directions=(MIN, MIN), f=zdt1, space=SPACE) -> list[TrialRecord]:
    tuner = create_tuner(name, parse_search_space(space), {}, seed, objectives=directions)
    hist: list[TrialRecord] = []
    for i in range(n):
        p = tuner.suggest(hist, np.random.default_rng([seed, i]))
        hist.append(rec(i, p, f(p)))
    return hist


def hv(hist: list[TrialRecord]) -> float:
    return hypervolume([h.values for h in hist if h.values], (1.1, 10.0))


def test_motpe_order_front_first_then_contribution():
    losses = [(5, 5), (1, 3), (2, 2), (3, 1), (4, 4), (2.9, 1.05)]
    # Front: (1,3), (2,2), (3,1), (2.9,1.05); (2.9,1.05) adds little next to (3,1).
    pos = motpe_order(losses, n_good=2)
    order = list(np.argsort(pos))
    assert set(order[:2]) == {1, 3}  # each objective's best first, as NSGA-II keeps a front's ends
    assert set(order[:4]) == {1, 2, 3, 5}
    assert order[-2:] == [4, 0]  # rank 1 then rank 2
    assert pos[5] == 3  # the least contributing front point comes last of the front


def test_motpe_beats_random_on_zdt1():
    seeds = range(3)
    motpe = np.mean([hv(run("MOTPE", 60, s)) for s in seeds])
    rand = np.mean([hv(run("Random", 60, s)) for s in seeds])
    assert motpe > rand, (motpe, rand)


def test_motpe_handles_mixed_directions():
    """Maximize the negated f1: the same problem, so MOTPE must still find small x1..x3."""
    hist = run("MOTPE", 50, 0, directions=(MAX, MIN), f=lambda p: (-zdt1(p)[0], zdt1(p)[1]))
    late = np.mean([sum(h.parameters[f"x{i}"] for i in range(1, 4)) for h in hist[-15:]])
    early = np.mean([sum(h.parameters[f"x{i}"] for i in range(1, 4)) for h in hist[:10]])
    assert late < early / 2, (early, late)


def test_motpe_is_a_function_of_history_and_rng():
    hist = run("MOTPE", 20, 1)
    t1 = create_tuner("MOTPE", parse_search_space(SPACE), {}, 1, objectives=(MIN, MIN))
    t2 = create_tuner("MOTPE", parse_search_space(SPACE), {}, 1, objectives=(MIN, MIN))
    assert t1.suggest(hist, np.random.default_rng(7)) == t2.suggest(hist, np.random.default_rng(7))


def test_pending_and_failed_trials_are_used_without_values():
    hist = run("MOTPE", 15, 2)
    hist.append(rec(15, {"x0": 0.5, "x1": 0, "x2": 0, "x3": 0}, None, TrialState.RUNNING))
    hist.append(rec(16, {"x0": 0.6, "x1": 0, "x2": 0, "x3": 0}, None, TrialState.FAILED))
    tuner = create_tuner("MOTPE", parse_search_space(SPACE), {}, 2, objectives=(MIN, MIN))
    p = tuner.suggest(hist, np.random.default_rng(3))
    assert canonical(p) not in {canonical(h.parameters) for h in hist}


def test_finite_space_never_repeats_then_ends():
    space = {"a": {"_type": "choice", "_value": [1, 2, 3]}, "b": {"_type": "randint", "_value": [0, 4]}}
    f = lambda p: (float(p["a"]), float(p["b"]))  # noqa: E731
    hist = run("MOTPE", 12, 0, f=f, space=space)
    assert len({canonical(h.parameters) for h in hist}) == 12
    tuner = create_tuner("MOTPE", parse_search_space(space), {}, 0, objectives=(MIN, MIN))
    with pytest.raises(NoMoreTrials):
        tuner.suggest(hist, np.random.default_rng(0))


def test_random_takes_objectives_and_single_objective_tuners_do_not():
    assert len(run("Random", 5, 0)) == 5
    with pytest.raises(TunerArgsError, match="optimizes a single objective"):
        create_tuner("TPE", parse_search_space(SPACE), {}, 0, objectives=(MIN, MIN))


def test_motpe_args():
    sp = parse_search_space(SPACE)
    t = create_tuner("MOTPE", sp, {"tpe_args": {"n_startup_jobs": 4, "gamma": 0.3}}, 0, objectives=(MIN, MIN))
    assert (t.n_startup, t.gamma) == (4, 0.3)
    with pytest.raises(TunerArgsError, match="constant_liar_type"):
        create_tuner("MOTPE", sp, {"constant_liar_type": "min"}, 0, objectives=(MIN, MIN))
    with pytest.raises(TunerArgsError, match="does not know"):
        create_tuner("MOTPE", sp, {"tpe_args": {"n_candidates": 3}}, 0, objectives=(MIN, MIN))
    with pytest.raises(TunerArgsError, match="tpe_args must be an object"):
        create_tuner("MOTPE", sp, {"tpe_args": []}, 0, objectives=(MIN, MIN))


def test_motpe_without_objectives_optimizes_the_single_value():
    sp = parse_search_space(SPACE)
    tuner = create_tuner("MOTPE", sp, {"optimize_mode": "minimize"}, 0)
    hist: list[TrialRecord] = []
    for i in range(40):
        p = tuner.suggest(hist, np.random.default_rng([0, i]))
        hist.append(TrialRecord(i, f"t-{i}", p, TrialState.SUCCEEDED, value=sum((v - 0.3) ** 2 for v in p.values())))
    assert min(h.value for h in hist[20:]) < min(h.value for h in hist[:10])
