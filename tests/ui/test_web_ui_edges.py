"""AutoTune Web in headless Chromium on edge cases: an experiment re-created under the same
id while its page is open, parameters and metrics whose values are objects (nested search
spaces, per-class scores).
A tuner server process of its own, no pre-built history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import ServerProcess, free_port
from tests.ui.conftest import VIEWER, UiPage, UiServer
from tests.ui.test_web_ui import _register, _run_trial, rows, show, wait_until


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui-edges") / "tuner.db", free_port(), extra_env={"AUTOTUNE_VIEWER_TOKEN": VIEWER})
    proc.start()
    try:
        yield UiServer(proc, {}, [])
    finally:
        proc.stop()


CONFIG = {"searchSpace": json.dumps({"lr": {"_type": "uniform", "_value": [0.0, 1.0]}}), "tuner": {"name": "Random"},
          "optimizeMode": "maximize"}


def test_an_experiment_recreated_while_its_page_is_open_drops_the_old_best(ui_page: UiPage, ui_server: UiServer) -> None:
    with ui_server.admin() as c:
        _register(c, "again", CONFIG).raise_for_status()
        old = _run_trial(c, "again", [0.5], 0.75)
        ui_page.login(VIEWER, "/ui/experiments/again")
        ui_page.wait_loaded()
        assert old in ui_page.page.inner_text("#best")
        c.delete("/api/v1/experiments/again").raise_for_status()
        _register(c, "again", CONFIG).raise_for_status()
        wait_until(ui_page, "autotuneUI.summary.bestTrial === null && autotuneUI.trials.length === 0")
        # Before the fix the card kept the deleted experiment's best trial and its value.
        best = ui_page.page.inner_text("#best")
        assert old not in best and "0.75" not in best
        assert "no trial has succeeded yet" in best
        c.delete("/api/v1/experiments/again").raise_for_status()
    assert ui_page.errors == []


NESTED = {"searchSpace": json.dumps({"model": {"_type": "choice", "_value": [
    {"_name": "svm", "C": {"_type": "uniform", "_value": [0.1, 1.0]}},
    {"_name": "tree", "depth": {"_type": "choice", "_value": [2, 4]}}]}}),
    "tuner": {"name": "Random"}, "optimizeMode": "maximize", "seed": 7}


def test_a_nested_parameter_column_sorts_by_its_values(ui_page: UiPage, ui_server: UiServer) -> None:
    with ui_server.admin() as c:
        _register(c, "nested", NESTED).raise_for_status()
        for k in range(6):
            _run_trial(c, "nested", [0.1 * k], 0.1 * k)
        ui_page.login(VIEWER, "/ui/experiments/nested")
        ui_page.wait_loaded()
        show(ui_page, "trials")
        ui_page.page.click("#trials th[data-key='param:model']")
        cells = ui_page.page.eval_on_selector_all(
            "#trials tbody tr", "trs => trs.map(t => t.children[4].textContent)")
        assert len(cells) == 6 and len(set(cells)) > 1
        # Before the fix every object compared equal ("[object Object]"): the rows stayed in
        # trial order, svm and tree configurations mixed.
        assert cells == sorted(cells)
        c.delete("/api/v1/experiments/nested").raise_for_status()
    assert ui_page.errors == []


def test_the_best_trial_card_shows_structured_metrics_as_json(ui_page: UiPage, ui_server: UiServer) -> None:
    final = {"default": 0.9, "per_class": {"cat": 0.8, "dog": 1.0}, "confusion": [[5, 1], [0, 6]]}
    with ui_server.admin() as c:
        _register(c, "structured", CONFIG).raise_for_status()
        _run_trial(c, "structured", [0.5], final)
        ui_page.login(VIEWER, "/ui/experiments/structured")
        ui_page.wait_loaded()
        best = ui_page.page.inner_text("#best")
        # Before the fix: "per_class (metric) [object Object]" and "confusion (metric) 5,1,0,6".
        assert "[object Object]" not in best
        assert '{"cat":0.8,"dog":1}' in best and "[[5,1],[0,6]]" in best
        c.delete("/api/v1/experiments/structured").raise_for_status()
    assert ui_page.errors == []
