"""Pure parts of the tuner server's metrics (the HTTP side is tests/integration/test_metrics.py)."""

from __future__ import annotations

import json
import threading

from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.metrics import UNMATCHED, ServerMetrics, route_of
from tuner_server.store import Store


class _Route:
    path = "/api/v1/experiments/{exp_id}"


def test_route_label_is_the_template_the_mount_or_unmatched():
    assert route_of({"route": _Route()}, "") == "/api/v1/experiments/{exp_id}"
    assert route_of({"root_path": "/ui/static"}, "") == "/ui/static/{path}"
    assert route_of({"root_path": "/proxy/ui/static"}, "/proxy") == "/ui/static/{path}"
    assert route_of({"root_path": ""}, "") == UNMATCHED
    assert route_of({"root_path": "/proxy"}, "/proxy") == UNMATCHED


def test_concurrent_ends_of_one_trial_count_once(tmp_path):
    engine = Engine(Store(tmp_path / "t.db"))
    config = ExperimentConfig.model_validate({"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}),
                                              "tuner": {"name": "Random"}})
    engine.register("e", "e", config)
    a = engine.suggest("e", 0)
    m = ServerMetrics(engine)
    go = threading.Barrier(8)

    def end() -> None:
        go.wait()
        with m.trial_end(engine, "e", a.trial_id):
            engine.end("e", a.trial_id, 1)

    threads = [threading.Thread(target=end) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.registry.get_sample_value("autotune_trials_ended_total", {"algorithm": "Random", "state": "FAILED"}) == 1


def test_a_suggestion_that_raises_counts_as_error_and_a_replay_not_at_all(tmp_path):
    m = ServerMetrics(Engine(Store(tmp_path / "t.db")))
    try:
        with m.suggestion("TPE"):
            raise RuntimeError("tuner bug")
    except RuntimeError:
        pass
    with m.suggestion("TPE", counted=False) as outcome:
        outcome("trial")
    assert m.registry.get_sample_value("autotune_suggestions_total", {"algorithm": "TPE", "outcome": "error"}) == 1
    assert m.registry.get_sample_value("autotune_suggestions_total", {"algorithm": "TPE", "outcome": "trial"}) is None
    text = m.exposition().decode()
    assert 'autotune_suggestion_duration_seconds_count{algorithm="TPE"} 1.0' in text
