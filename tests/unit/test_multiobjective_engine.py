"""The engine with spec.objectives: metric vectors, failures that say why, the Pareto front
in the summary and status, its survival across a restart, and local mode's result files."""

from __future__ import annotations

import json
import xml.dom.minidom
from pathlib import Path

import pytest

from autotune_operator.decide import Phase
from autotune_operator.progress import format_progress
from autotune_operator.results import format_pareto, write_pareto_plot, write_status
from autotune_operator.status import build_status
from tuner_server.engine import BadMetric, Engine, ExperimentConfig
from tuner_server.store import Store

SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})
OBJS = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]


def config(**kw) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}, "objectives": OBJS, **kw})


def finish(e: Engine, metric, exp: str = "e") -> str:
    a = e.suggest(exp)
    e.started(exp, a.trial_id)
    e.report_final(exp, a.trial_id, metric)
    assert e.end(exp, a.trial_id, 0).value == "SUCCEEDED"
    return a.trial_id


# accuracy (max) / size (min): t0 and t2 trade off, t1 is dominated by t0, t3 duplicates t2's values.
POINTS = [{"accuracy": 0.9, "size": 100}, {"accuracy": 0.8, "size": 200}, {"accuracy": 0.95, "size": 300},
          {"accuracy": 0.95, "size": 300, "extra": "kept"}]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(Store(tmp_path / "db.sqlite"))
    e.register("e", "mo", config())
    return e


def test_summary_has_front_and_best_per_objective(engine: Engine):
    ids = [finish(engine, m) for m in POINTS]
    s = engine.summary("e")
    assert s["bestTrial"] is None
    assert s["objectives"] == OBJS
    front = {p["name"]: p["values"] for p in s["paretoFront"]}
    assert front == {ids[0]: {"accuracy": 0.9, "size": 100.0}, ids[2]: {"accuracy": 0.95, "size": 300.0},
                     ids[3]: {"accuracy": 0.95, "size": 300.0}}
    best = {b["objective"]: b["name"] for b in s["bestTrials"]}
    assert best == {"accuracy": ids[2], "size": ids[0]}  # ties go to the earlier trial
    assert all("parameters" in p and "x" in p["parameters"] for p in s["paretoFront"])


def test_front_survives_a_restart(tmp_path: Path, engine: Engine):
    for m in POINTS:
        finish(engine, m)
    before = engine.summary("e")
    again = Engine(Store(tmp_path / "db.sqlite"))
    assert again.summary("e")["paretoFront"] == before["paretoFront"]
    assert [t.values for t in again.get("e").history()] == [t.values for t in engine.get("e").history()]


@pytest.mark.parametrize(
    "metric, why",
    [
        ({"accuracy": 0.9}, "misses objective(s) ['size']"),
        ({"accuracy": 0.9, "size": "big"}, "objective 'size' must be a number, got 'big'"),
        ({"accuracy": float("nan"), "size": 1}, "objective 'accuracy' must be finite"),
        (0.9, "the final metric must be a dict with keys ['accuracy', 'size']"),
    ],
)
def test_bad_final_metric_fails_the_trial_with_the_reason(engine: Engine, metric, why: str):
    a = engine.suggest("e")
    engine.started("e", a.trial_id)
    with pytest.raises(BadMetric, match=None) as err:
        engine.report_final("e", a.trial_id, metric)
    assert why in str(err.value)
    t = engine.trial("e", a.trial_id)
    assert t.record.state.value == "FAILED" and why in (t.message or "")
    assert engine.end("e", a.trial_id, 1).value == "FAILED"  # the process's exit keeps the reason
    assert why in (engine.trial("e", a.trial_id).message or "")


def test_intermediate_reports_in_a_multi_objective_experiment(engine: Engine):
    a = engine.suggest("e")
    engine.report_intermediate("e", a.trial_id, {"accuracy": 0.5})
    engine.report_intermediate("e", a.trial_id, 0.6)
    assert engine.trial("e", a.trial_id).record.intermediate == [0.5, 0.6]
    with pytest.raises(BadMetric, match="needs 'default' or 'accuracy'"):
        engine.report_intermediate("e", a.trial_id, {"size": 3})


def test_single_objective_still_needs_default(tmp_path: Path):
    e = Engine(Store(tmp_path / "so.sqlite"))
    e.register("s", "so", ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "TPE"}}))
    a = e.suggest("s")
    with pytest.raises(BadMetric, match="'default' key"):
        e.report_final("s", a.trial_id, {"accuracy": 0.9})
    e.report_final("s", a.trial_id, {"default": 0.9, "accuracy": 0.9})
    assert e.end("s", a.trial_id, 0).value == "SUCCEEDED"
    s = e.summary("s")
    assert s["bestTrial"]["value"] == 0.9 and "paretoFront" not in s


def test_status_files_and_plot(tmp_path: Path, engine: Engine):
    for m in POINTS:
        finish(engine, m)
    summary = engine.summary("e")
    st = build_status(summary, Phase.DONE, "all trials ended", 0.0, 1.0)
    write_status(tmp_path, st)
    data = json.loads((tmp_path / "status.json").read_text())
    assert len(data["paretoFront"]) == 3 and data["bestTrial"] is None
    assert [b["objective"] for b in data["bestTrials"]] == ["accuracy", "size"]
    svg = write_pareto_plot(tmp_path, st, engine.trials_view("e"))
    assert svg == tmp_path / "pareto.svg"
    dom = xml.dom.minidom.parse(str(svg))
    circles = dom.getElementsByTagName("circle")
    assert len(circles) == 4
    red = [c for c in circles if c.getAttribute("fill") == "#d62728"]
    assert len(red) == 3  # the front's trials are highlighted
    assert "accuracy (maximize)" in svg.read_text() and "size (minimize)" in svg.read_text()
    lines = format_pareto(st)
    assert lines[0] == "pareto front: 3 trial(s) on accuracy (maximize), size (minimize)"
    assert "pareto front 3 trial(s)" in format_progress(st, 5.0, 10)


def test_single_objective_status_json_has_no_multi_objective_keys(tmp_path: Path):
    e = Engine(Store(tmp_path / "so.sqlite"))
    e.register("s", "so", ExperimentConfig.model_validate({"searchSpace": SPACE, "tuner": {"name": "Random"}}))
    st = build_status(e.summary("s"), Phase.RUNNING, "", 0.0, None)
    write_status(tmp_path, st)
    data = json.loads((tmp_path / "status.json").read_text())
    assert not {"objectives", "paretoFront", "bestTrials"} & set(data)
    assert write_pareto_plot(tmp_path, st, []) is None and not (tmp_path / "pareto.svg").exists()


def test_plot_uses_a_log_axis_for_values_spanning_decades():
    from autotune_operator.pareto_plot import nice_ticks, pareto_svg

    objs = [("accuracy", "maximize"), ("size", "minimize")]
    wide = pareto_svg([("a", 0.5, 10.0), ("b", 0.9, 50_000.0)], {"a", "b"}, objs)
    assert "size (minimize, log scale)" in wide and "accuracy (maximize)</text>" in wide
    assert ">10000</text>" in wide and ">100</text>" in wide  # decade ticks
    narrow = pareto_svg([("a", 0.5, 10.0), ("b", 0.9, 50.0)], {"a"}, objs)
    assert "log scale" not in narrow
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    xml.dom.minidom.parseString(pareto_svg([], set(), objs))  # no trial yet: still a valid SVG
