"""The web UI's change feed: nothing when nothing changed, only changed trials otherwise."""

from __future__ import annotations

import json

from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store
from tuner_server.ui_changes import MAX_EVENTS, Revision, trials_since

CONFIG = ExperimentConfig(searchSpace=json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), tuner={"name": "Random"})


def _engine(now: list[float]) -> Engine:
    return Engine(Store(":memory:"), clock=lambda: now[0])


def test_unchanged_then_only_the_changed_trial_then_everything_after_recreation() -> None:
    now = [100.0]
    e = _engine(now)
    e.register("exp", "exp", CONFIG)
    a, b = e.suggest("exp"), e.suggest("exp")
    first = trials_since(e, "exp", None)
    assert first["full"] and [t["name"] for t in first["trials"]] == [a.trial_id, b.trial_id]
    assert trials_since(e, "exp", first["revision"]) == {"revision": first["revision"], "unchanged": True}

    e.report_intermediate("exp", b.trial_id, 0.5)
    part = trials_since(e, "exp", first["revision"])
    assert part["full"] is False and [t["name"] for t in part["trials"]] == [b.trial_id]
    assert part["trials"][0]["intermediate"] == [0.5]
    c = e.suggest("exp")
    assert [t["name"] for t in trials_since(e, "exp", part["revision"])["trials"]] == [c.trial_id]

    # Deleted and registered again under the same id: the old revision must not be trusted.
    e.delete("exp")
    now[0] = 200.0
    e.register("exp", "exp", CONFIG)
    again = trials_since(e, "exp", part["revision"])
    assert again["full"] and again["trials"] == []


def test_a_foreign_or_garbled_revision_gets_everything() -> None:
    e = _engine([1.0])
    e.register("exp", "exp", CONFIG)
    e.suggest("exp")
    for rev in ["", "abc", "1.2.3", "999999.0"]:
        assert trials_since(e, "exp", rev)["full"] is True
    assert Revision.parse("12.34") == Revision(12, 34) and str(Revision(12, 34)) == "12.34"
    assert MAX_EVENTS > 1000
