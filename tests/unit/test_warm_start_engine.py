"""Warm start in the engine: which trials fit the new search space, objective checks,
imported trials feeding the tuner without being the experiment's trials, durability and
idempotence across a restart, and the algorithms that refuse imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner_server.engine import Engine, ExperimentConfig, InvalidConfig
from tuner_server.history import OptimizeMode
from tuner_server.objectives import Objective
from tuner_server.searchspace import parse_search_space
from tuner_server.store import Store
from tuner_server.warm_start import ImportRequest, misfit, objective_mismatch

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "y": {"_type": "uniform", "_value": [0, 1]}}


def config(space: dict[str, Any] = SPACE, tuner: str = "TPE", mode: str = "minimize", **kw: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"searchSpace": json.dumps(space), "tuner": {"name": tuner, "classArgs": {"optimize_mode": mode}},
                                            "optimizeMode": mode, **kw})


def loss(p: dict[str, float]) -> float:
    return (p["x"] - 0.2) ** 2 + (p["y"] - 0.7) ** 2


def source_trials(n: int, seed: int = 1) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = {"x": float(rng.uniform()), "y": float(rng.uniform())}
        out.append({"id": f"old-{i}", "parameters": p, "metric": loss(p), "ended": 1000.0 + i})
    return out


def request(trials: list[dict[str, Any]], name: str = "old", mode: str = "minimize", **kw: Any) -> ImportRequest:
    return ImportRequest.model_validate({"sources": [{"name": name, "optimizeMode": mode, "trials": trials}], **kw})


# ----- misfit: the fit/skip rules -----
NESTED = {
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}},
        {"_name": "adam"},
    ]},
    "layers": {"_type": "randint", "_value": [1, 4]},
    "act": {"_type": "choice", "_value": ["relu", "tanh", 1]},
}


@pytest.mark.parametrize("params, reason", [
    ({"opt": {"_name": "sgd", "lr": 0.01}, "layers": 2, "act": "relu"}, None),
    ({"opt": {"_name": "adam"}, "layers": 3.0, "act": 1}, None),
    ({"opt": {"_name": "adam"}, "layers": 2}, "parameter 'act' is missing"),
    ({"opt": {"_name": "adam"}, "layers": 2, "act": "relu", "dropout": 0.1}, "parameter(s) ['dropout'] are not in the search space"),
    ({"opt": {"_name": "sgd", "lr": 0.5}, "layers": 2, "act": "relu"}, "parameter 'opt/sgd/lr' = 0.5 is outside"),
    ({"opt": {"_name": "sgd"}, "layers": 2, "act": "relu"}, "parameter 'opt/sgd/lr' is missing"),
    ({"opt": {"_name": "rmsprop"}, "layers": 2, "act": "relu"}, "is not one of its choices"),
    ({"opt": {"_name": "adam"}, "layers": 4, "act": "relu"}, "is not an integer in [1, 4)"),
    ({"opt": {"_name": "adam"}, "layers": 1.5, "act": "relu"}, "is not an integer in [1, 4)"),
    ({"opt": {"_name": "adam"}, "layers": 2, "act": True}, "is not one of its choices"),
    ({"opt": {"_name": "adam"}, "layers": "2", "act": "relu"}, "is not a finite number"),
    ({"opt": {"_name": "adam", "lr": 0.01}, "layers": 2, "act": "relu"}, "['lr'] (under 'opt') are not in the search space"),
    ([1, 2], "parameters must be an object"),
])
def test_misfit_names_the_first_reason(params: Any, reason: str | None) -> None:
    space = parse_search_space(NESTED)
    got = misfit(space, params)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got, got


def test_objective_mismatch() -> None:
    acc_size = [Objective(name="acc", optimizeMode=OptimizeMode.MAXIMIZE), Objective(name="size", optimizeMode=OptimizeMode.MINIMIZE)]
    mx, mn = OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE
    assert objective_mismatch(mx, None, mx, None) is None
    assert "one objective (minimize)" in (objective_mismatch(mx, None, mn, None) or "")
    assert objective_mismatch(mx, acc_size, mn, acc_size) is None  # the objectives decide, not the first's copy
    assert "objectives acc maximize, size minimize" in (objective_mismatch(mx, None, mx, acc_size) or "")
    swapped = [acc_size[1], acc_size[0]]
    assert objective_mismatch(mx, acc_size, mx, swapped) is not None


# ----- the engine -----
@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(Store(tmp_path / "db.sqlite"))
    e.register("new", "new", config())
    return e


def test_imported_trials_are_observations_not_trials(engine: Engine) -> None:
    trials = source_trials(30)
    r = engine.import_trials("new", request(trials))
    assert r["imported"] == 30 and r["total"] == 30 and r["sources"][0]["imported"] == 30
    s = engine.summary("new")
    assert s["trials"]["total"] == 0 and s["bestTrial"] is None
    assert s["imported"] == {"total": 30, "sources": {"old": 30}}
    h = engine.get("new")
    hist = h.history()
    assert [t.sequence for t in hist] == list(range(30))
    assert all(t.kind == "imported" and t.state.value == "SUCCEEDED" for t in hist)
    # Oldest first, as they ended in the source.
    assert [t.trial_id for t in hist][:2] == ["imported:old:old-0", "imported:old:old-1"]
    a = engine.suggest("new")
    assert a is not None and a.trial_id == "new-0" and a.sequence == 0  # the experiment's own numbering
    engine.started("new", a.trial_id)
    engine.report_final("new", a.trial_id, 5.0)  # worse than every import: still the experiment's best
    engine.end("new", a.trial_id, 0)
    s = engine.summary("new")
    assert s["trials"]["total"] == 1 and s["bestTrial"]["name"] == "new-0"
    hist = engine.get("new").history()
    assert hist[-1].trial_id == "new-0" and hist[-1].sequence == 30  # shifted after the imports
    assert engine.get("new").trials[0].record.sequence == 0  # the stored trial itself is untouched


def test_tpe_models_the_imports_from_its_first_suggestion(tmp_path: Path) -> None:
    """TPE starts with 10 random trials on this space; with 30 imported results its first
    suggestions already come from the model, near the optimum (0.2, 0.7)."""

    def first_suggestions(warm: bool) -> float:
        e = Engine(Store(tmp_path / f"{warm}.sqlite"))
        e.register("n", "n", config(seed=3))
        if warm:
            e.import_trials("n", request(source_trials(30)))
        dist = []
        for _ in range(5):
            a = e.suggest("n")
            dist.append(loss(a.parameters) ** 0.5)
            e.started("n", a.trial_id)
            e.report_final("n", a.trial_id, loss(a.parameters))
            e.end("n", a.trial_id, 0)
        return sum(dist) / len(dist)

    cold, warm = first_suggestions(False), first_suggestions(True)
    assert warm < 0.2 < cold, (warm, cold)


def test_skips_what_does_not_fit_and_counts_it(engine: Engine) -> None:
    trials = source_trials(5)
    trials[1]["parameters"] = {"x": 0.5}  # y missing
    trials[2]["parameters"] = {"x": 0.5, "y": 2.0}  # out of range
    trials[3]["metric"] = {"loss": 1.0}  # no 'default'
    r = engine.import_trials("new", request(trials))
    src = r["sources"][0]
    assert (r["imported"], src["skipped"]) == (2, 3)
    assert src["firstSkipReason"] == "old-1: parameter 'y' is missing"
    assert "metric" not in src["firstSkipReason"]


def test_import_is_idempotent_and_durable(tmp_path: Path, engine: Engine) -> None:
    trials = source_trials(12)
    engine.import_trials("new", request(trials[:8]))
    r = engine.import_trials("new", request(trials))  # a restarted operator imports again
    assert (r["imported"], r["sources"][0]["alreadyImported"], r["total"]) == (4, 8, 12)
    again = Engine(Store(tmp_path / "db.sqlite"))  # the tuner server restarts
    h = again.get("new")
    assert [t.trial_id for t in h.history()] == [t.trial_id for t in engine.get("new").history()]
    assert again.import_trials("new", request(trials))["imported"] == 0
    assert again.summary("new")["imported"]["total"] == 12
    # Deleting the experiment removes its imports too.
    again.delete("new")
    again.register("new", "new", config())
    assert "imported" not in again.summary("new")
    assert "imported" not in Engine(Store(tmp_path / "db.sqlite")).summary("new")  # gone from the store, not only memory


def test_max_trials_caps_the_total_in_the_order_given(engine: Engine) -> None:
    trials = source_trials(10)
    newest_first = list(reversed(trials))
    r = engine.import_trials("new", request(newest_first, maxTrials=4))
    assert r["imported"] == 4 and r["sources"][0]["overLimit"] == 6
    assert sorted(t.trial_id for t in engine.get("new").history()) == [f"imported:old:old-{i}" for i in (6, 7, 8, 9)]
    assert engine.import_trials("new", request(newest_first, maxTrials=4))["imported"] == 0  # restart: no more


def test_objective_mismatch_is_refused_before_importing(engine: Engine) -> None:
    with pytest.raises(InvalidConfig, match="warm start from 'old': it optimizes one objective \\(maximize\\)"):
        engine.import_trials("new", request(source_trials(3), mode="maximize"))
    assert engine.get("new").imported == []


@pytest.mark.parametrize("tuner, space", [
    ("GridSearch", SPACE),
    ("Batch", {"p": {"_type": "choice", "_value": [{"x": 0.1, "y": 0.2}]}}),
    ("PBTTuner", SPACE),
])
def test_algorithms_that_refuse_imports(tmp_path: Path, tuner: str, space: dict[str, Any]) -> None:
    e = Engine(Store(tmp_path / "db.sqlite"))
    mode = "maximize" if tuner == "PBTTuner" else "minimize"
    args = {"optimize_mode": mode} if tuner != "Batch" else {}
    cfg = ExperimentConfig.model_validate({"searchSpace": json.dumps(space), "tuner": {"name": tuner, "classArgs": args}, "optimizeMode": mode})
    e.register("g", "g", cfg)
    with pytest.raises(InvalidConfig, match=f"{tuner} takes no imported trials"):
        e.import_trials("g", request(source_trials(2), mode=mode))


def test_advisor_refuses_imports(tmp_path: Path) -> None:
    e = Engine(Store(tmp_path / "db.sqlite"))
    e.register("h", "h", config(tuner="Hyperband", mode="minimize") .model_copy(
        update={"tuner": config().tuner.model_copy(update={"name": "Hyperband", "classArgs": {"R": 9, "eta": 3, "optimize_mode": "minimize"}})}))
    with pytest.raises(InvalidConfig, match="advisors schedule brackets"):
        e.import_trials("h", request(source_trials(2)))


def test_multi_objective_imports(tmp_path: Path) -> None:
    objs = [{"name": "acc", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    e = Engine(Store(tmp_path / "db.sqlite"))
    e.register("m", "m", ExperimentConfig.model_validate(
        {"searchSpace": json.dumps(SPACE), "tuner": {"name": "MOTPE"}, "objectives": objs}))
    trials = [{"id": "a", "parameters": {"x": 0.1, "y": 0.1}, "metric": {"acc": 0.9, "size": 10}},
              {"id": "b", "parameters": {"x": 0.2, "y": 0.1}, "metric": {"acc": 0.8}}]
    req = ImportRequest.model_validate({"sources": [{"name": "mo", "objectives": objs, "trials": trials}]})
    r = e.import_trials("m", req)
    assert r["imported"] == 1 and "misses objective(s) ['size']" in r["sources"][0]["firstSkipReason"]
    rec = e.get("m").history()[0]
    assert rec.values == (0.9, 10.0)
    assert e.summary("m")["paretoFront"] == []  # imports are never this experiment's front
    assert Engine(Store(tmp_path / "db.sqlite")).get("m").history()[0].values == (0.9, 10.0)


def test_a_finite_space_the_sources_used_up_has_nothing_new(tmp_path: Path) -> None:
    """Imported configurations count as tried: TPE does not repeat them, so a finite space
    the earlier experiments covered ends the new one at once (documented in the README)."""
    e = Engine(Store(tmp_path / "db.sqlite"))
    e.register("f", "f", config({"k": {"_type": "choice", "_value": [1, 2, 3]}}))
    trials = [{"id": f"t{k}", "parameters": {"k": k}, "metric": float(k)} for k in (1, 2)]
    e.import_trials("f", request(trials))
    a = e.suggest("f")
    assert a is not None and a.parameters == {"k": 3}  # the one configuration not tried
    e.register("g", "g", config({"k": {"_type": "choice", "_value": [1, 2]}}))
    e.import_trials("g", request(trials))
    assert e.suggest("g") is None and e.summary("g")["trials"]["total"] == 0
