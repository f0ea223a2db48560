"""Purging deleted experiments' events: the pure plan (retention.py), and the sweep (purge.py)
over a real SQLite store: what goes, what stays (a re-registered experiment's own events),
a purge cut short and finished later, and the space given back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.purge import PurgeSettings, sweep
from tuner_server.retention import Lifecycle, Purge, parse_retention, purge_plan, sweep_interval
from tuner_server.store import Store

DAY = 86400.0
CONFIG = ExperimentConfig.model_validate({"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}),
                                          "tuner": {"name": "Random"}})


# ----- the setting -----
@pytest.mark.parametrize("text,seconds", [("7d", 7 * DAY), ("12h", 43200.0), ("90m", 5400.0), ("3600s", 3600.0),
                                          ("3600", 3600.0), ("0", 0.0), (" 1.5D ", 1.5 * DAY), ("2w", 14 * DAY),
                                          ("never", None), ("NEVER", None)])
def test_retention_values(text: str, seconds: float | None) -> None:
    assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "7 days", "d", "inf", "nan", "1e3", "forever", "7d2h"])
def test_bad_retention_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration.*s, m, h, d or w.*never"):
        parse_retention(text)


def test_sweep_interval() -> None:
    assert sweep_interval(7 * DAY) == 600.0
    assert sweep_interval(60.0) == 60.0
    assert sweep_interval(0.2) == 1.0
    assert sweep_interval(0.0) == 600.0 and sweep_interval(None) == 600.0


# ----- the plan -----
def test_plan_purges_only_what_is_past_the_retention_oldest_first() -> None:
    gone = Lifecycle("gone", last_deleted=50, deleted_at=1000.0, last_registered=1, newest_event=52)
    recent = Lifecycle("recent", last_deleted=60, deleted_at=1000.0 + DAY, last_registered=2, newest_event=60)
    older = Lifecycle("older", last_deleted=40, deleted_at=500.0, last_registered=3, newest_event=40)
    now = 1000.0 + 7 * DAY
    assert purge_plan([gone, recent, older], now, 7 * DAY) == [Purge("older", 41, 40, 500.0), Purge("gone", 53, 50, 1000.0)]
    assert purge_plan([gone], now - 0.001, 7 * DAY) == []  # not a moment before
    assert purge_plan([gone, recent, older], 1e12, None) == []  # never
    assert [p.exp_id for p in purge_plan([gone, recent, older], 1000.0, 0.0)] == ["older", "gone"]


def test_plan_keeps_a_re_registered_experiment_s_events_from_its_registration_on() -> None:
    again = Lifecycle("again", last_deleted=50, deleted_at=1000.0, last_registered=70, newest_event=90)
    assert purge_plan([again], 1e9, DAY) == [Purge("again", 70, 50, 1000.0)]
    # Registered before its newest deletion: deleted now, every event it has goes.
    deleted = Lifecycle("deleted", last_deleted=95, deleted_at=1000.0, last_registered=70, newest_event=96)
    assert purge_plan([deleted], 1e9, DAY) == [Purge("deleted", 97, 95, 1000.0)]
    # Its registration purged already (a purge cut short): still everything up to the newest.
    assert purge_plan([Lifecycle("x", 9, 1.0, None, 12)], 1e9, 0.0) == [Purge("x", 13, 9, 1.0)]


# ----- the sweep over a real store -----
def fill(engine: Engine, exp_id: str, events: int) -> None:
    engine.register(exp_id, exp_id, CONFIG)
    tid = engine.suggest(exp_id).trial_id  # type: ignore[union-attr]
    for i in range(events):
        engine.store.add_event(exp_id, tid, "mlflow_metrics", {"metrics": [{"key": "a", "value": i}], "created": 1.0})


def kinds(db: Path, exp_id: str) -> list[str]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT kind FROM events WHERE exp_id = ? ORDER BY id", (exp_id,))]


def test_sweep_purges_deleted_generations_and_keeps_the_live_ones(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    engine = Engine(Store(db))
    fill(engine, "gone", 30)
    fill(engine, "again", 20)
    fill(engine, "live", 5)
    engine.delete("gone")
    engine.delete("again")
    fill(engine, "again", 7)  # registered again under the same id: a new generation
    live_before = kinds(db, "live")
    purged: list[int] = []
    waits: list[float] = []
    r = sweep(engine.store, PurgeSettings(retention=DAY, batch=8), now=engine.clock() + DAY - 60,
              pause=waits.append, on_purged=purged.append)
    assert r.events == 0 and purged == [] and len(kinds(db, "gone")) == 33  # not yet due
    r = sweep(engine.store, PurgeSettings(retention=DAY, batch=8), now=engine.clock() + DAY + 1,
              pause=waits.append, on_purged=purged.append)
    # gone: registered, trial issued, 30 metrics, deleted; again's first generation: 1 + 1 + 20 + 1.
    assert kinds(db, "gone") == []
    assert kinds(db, "again") == ["experiment_registered", "trial_issued"] + ["mlflow_metrics"] * 7
    assert kinds(db, "live") == live_before
    assert r.events == sum(purged) == 33 + 23 and r.experiments == 2
    assert max(purged) == 8 and len(waits) >= r.steps - 1 and all(w >= 0 for w in waits)
    assert engine.store.deleted_lifecycles() == []  # nothing left to find
    again = Engine(Store(db))  # and the store still loads, the new generation whole
    assert [t.record.trial_id for t in again.store.trials("again")] == ["again-0"]
    assert sweep(again.store, PurgeSettings(retention=0.0), now=1e12).events == 0


def test_a_purge_cut_short_is_found_and_finished_by_the_next_sweep(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    engine = Engine(Store(db))
    fill(engine, "gone", 50)
    engine.delete("gone")
    steps = iter(range(100))
    r = sweep(engine.store, PurgeSettings(retention=0.0, batch=10), now=engine.clock(), pause=lambda _: None,
              stopping=lambda: next(steps) >= 2)  # stops after two batches, as a server stopped mid-purge
    assert r.events == 20 and r.experiments == 0
    assert kinds(db, "gone")[-1] == "experiment_deleted"  # the marker stays until the end
    engine.store.close()
    store = Store(db)  # a restarted server
    (lc,) = store.deleted_lifecycles()
    assert lc.exp_id == "gone" and lc.last_registered is None
    r = sweep(store, PurgeSettings(retention=0.0, batch=10), now=lc.deleted_at, pause=lambda _: None)
    assert r.events == 53 - 20 and r.experiments == 1 and kinds(db, "gone") == []


def test_space_is_given_back_on_a_new_database(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    engine = Engine(Store(db))
    assert engine.store.reclaims_space()
    fill(engine, "keep", 10)
    big = "x" * 2000
    engine.register("gone", "gone", CONFIG)
    for i in range(400):
        engine.store.add_event("gone", None, "note", {"text": big, "i": i})
    engine.delete("gone")
    engine.store.checkpoint()
    before = db.stat().st_size
    r = sweep(engine.store, PurgeSettings(retention=0.0, batch=50, reclaim_pages=20), now=engine.clock() + 1,
              pause=lambda _: None)
    assert r.events == 402 and r.free_pages == 0
    after = db.stat().st_size
    assert after < before / 4, (before, after)
    assert len(kinds(db, "keep")) == 12


def test_an_older_database_without_incremental_vacuum_loads_and_reuses_its_freed_pages(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:  # as an older version created it: auto_vacuum NONE
        con.execute("CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, "
                    "token TEXT NOT NULL, created REAL NOT NULL)")
    engine = Engine(Store(db))
    assert not engine.store.reclaims_space()
    engine.register("gone", "gone", CONFIG)
    for i in range(300):
        engine.store.add_event("gone", None, "note", {"text": "x" * 2000, "i": i})
    engine.delete("gone")
    engine.store.checkpoint()
    size = db.stat().st_size
    r = sweep(engine.store, PurgeSettings(retention=0.0, batch=100), now=engine.clock() + 1, pause=lambda _: None)
    assert r.events == 302 and r.free_pages > 100
    assert db.stat().st_size == size  # kept in the file ...
    engine.register("next", "next", CONFIG)
    for i in range(300):
        engine.store.add_event("next", None, "note", {"text": "x" * 2000, "i": i})
    engine.store.checkpoint()
    assert db.stat().st_size <= size * 1.05  # ... and reused, not grown


def test_delete_hooks_run_after_the_deletion(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "t.db"))
    engine.register("e", "e", CONFIG)
    seen: list[tuple[str, bool]] = []
    engine.delete_hooks.append(lambda exp_id: seen.append((exp_id, engine.find(exp_id) is None)))
    engine.delete("e")
    assert seen == [("e", True)]


def test_the_documented_one_off_conversion_makes_an_older_database_give_space_back(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:  # auto_vacuum NONE, as an older version created it
        con.execute("CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, "
                    "token TEXT NOT NULL, created REAL NOT NULL)")
    engine = Engine(Store(db))
    engine.register("gone", "gone", CONFIG)
    for i in range(300):
        engine.store.add_event("gone", None, "note", {"text": "x" * 2000, "i": i})
    engine.delete("gone")
    engine.store.close()
    # docs/kubernetes.md's command, with the server stopped
    con = sqlite3.connect(db)
    con.execute("PRAGMA auto_vacuum=INCREMENTAL")
    con.execute("VACUUM")
    con.close()
    store = Store(db)
    assert store.reclaims_space()
    size = db.stat().st_size
    r = sweep(store, PurgeSettings(retention=0.0), now=2e9, pause=lambda _: None)
    assert r.events == 302 and r.free_pages == 0 and db.stat().st_size < size / 4


def test_a_re_registered_experiment_s_trial_events_start_at_its_registration(tmp_path: Path) -> None:
    """Before the purge, the deleted generation's events of a trial of the same name are not
    even read (they were filtered after parsing: up to a million per trial)."""
    engine = Engine(Store(tmp_path / "t.db"))
    fill(engine, "e", 5)
    assert len(engine.store.trial_events("e", "e-0", "mlflow_")) == 5
    engine.delete("e")
    engine.register("e", "e", CONFIG)
    engine.suggest("e")
    assert engine.store.trial_events("e", "e-0", "mlflow_") == []
    engine.store.add_event("e", "e-0", "mlflow_tags", {"tags": {"a": "b"}, "created": 2.0})
    assert [e["kind"] for e in engine.store.trial_events("e", "e-0", "mlflow_")] == ["mlflow_tags"]
