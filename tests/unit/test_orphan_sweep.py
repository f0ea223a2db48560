"""The orphan sweep: which tuner-server experiments it deletes (only those whose owner is
provably gone), the I/O wrapper around that decision, its setting, and the store's owner
column (migrated into an old database)."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from autotune_operator.__main__ import add_arguments, environment
from autotune_operator.orphan_sweep import Found, LookupFailed, Missing, decide, kubernetes_lookup, sweep_once, to_look_up
from autotune_operator.runtime import OperatorRuntime, Settings
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.store import Store

WATCHED = frozenset({"team-a"})
CONFIG = ExperimentConfig.model_validate({"searchSpace": '{"x": {"_type": "uniform", "_value": [0, 1]}}',
                                          "tuner": {"name": "Random"}})


def listed(exp_id: str, ns: str | None = "team-a", name: str = "exp", uid: str | None = None) -> dict[str, Any]:
    """One entry of GET /api/v1/experiments (the fields the sweep reads)."""
    owner = None if ns is None else {"namespace": ns, "name": name, "uid": uid or exp_id}
    return {"experimentId": exp_id, "name": name, "owner": owner}


def verdicts(experiments, lookups, watched=WATCHED) -> dict[str, bool]:
    return {v.exp_id: v.delete for v in decide(experiments, lookups, watched)}


def test_a_404_deletes():
    assert verdicts([listed("u1")], {("team-a", "exp"): Missing()}) == {"u1": True}


def test_an_object_with_another_uid_deletes():
    # deleted and created again under the same name: the old state is the orphan
    assert verdicts([listed("u1")], {("team-a", "exp"): Found("u2")}) == {"u1": True}


def test_the_same_uid_keeps():
    assert verdicts([listed("u1")], {("team-a", "exp"): Found("u1")}) == {"u1": False}


def test_an_api_error_or_no_lookup_keeps():
    exps = [listed("u1", name="a"), listed("u2", name="b")]
    got = decide(exps, {("team-a", "a"): LookupFailed("HTTP 403: Forbidden")}, WATCHED)
    assert [(v.exp_id, v.delete) for v in got] == [("u1", False), ("u2", False)]
    assert "403" in got[0].reason and "not looked up" in got[1].reason


def test_no_owner_keeps_even_if_a_lookup_says_missing():
    exps = [listed("old-uid", ns=None), {"experimentId": "u3", "owner": {"namespace": "team-a", "name": "exp"}}]
    assert verdicts(exps, {("team-a", "exp"): Missing()}) == {"old-uid": False, "u3": False}


def test_an_unwatched_namespace_keeps_and_is_not_looked_up():
    exps = [listed("u1", ns="team-b")]
    assert to_look_up(exps, WATCHED) == set()
    assert verdicts(exps, {("team-b", "exp"): Missing()}) == {"u1": False}


def test_cluster_wide_watches_every_namespace():
    exps = [listed("u1", ns="team-b")]
    assert to_look_up(exps, None) == {("team-b", "exp")}
    assert verdicts(exps, {("team-b", "exp"): Missing()}, watched=None) == {"u1": True}


def test_local_mode_ids_keep():
    exps = [{"experimentId": "local.digits", "name": "digits", "owner": None}]
    assert to_look_up(exps, None) == set()
    assert verdicts(exps, {}, watched=None) == {"local.digits": False}


def test_an_owner_uid_other_than_the_id_keeps():
    # the operator registers under the CR's uid; anything else is not its to judge
    assert verdicts([listed("some-id", uid="u1")], {("team-a", "exp"): Missing()}) == {"some-id": False}


class RecordingTuner:
    """The two tuner-server calls the sweep makes, recorded (the real HTTP path is in the e2e test)."""

    def __init__(self, experiments: list[dict[str, Any]], fail_delete: set[str] = frozenset()) -> None:
        self.experiments = experiments
        self.fail_delete = fail_delete
        self.deleted: list[str] = []

    def list_experiments(self) -> list[dict[str, Any]]:
        return self.experiments

    def delete_experiment(self, exp_id: str) -> bool:
        if exp_id in self.fail_delete:
            raise OSError("connection refused")
        self.deleted.append(exp_id)
        return True


def test_sweep_once_deletes_only_the_orphans_and_survives_a_failed_delete():
    exps = [listed("gone1", name="g1"), listed("gone2", name="g2"), listed("live", name="l"), listed("legacy", ns=None)]
    answers = {("team-a", "g1"): Missing(), ("team-a", "g2"): Found("newer"), ("team-a", "l"): Found("live")}
    asked: list[tuple[str, str]] = []

    def lookup(ns: str, name: str):
        asked.append((ns, name))
        return answers[(ns, name)]

    tuner = RecordingTuner(exps, fail_delete={"gone1"})
    got = sweep_once(tuner.list_experiments, tuner.delete_experiment, lookup, WATCHED)
    assert tuner.deleted == ["gone2"]  # gone1's delete failed: left for the next sweep
    assert sorted(asked) == [("team-a", "g1"), ("team-a", "g2"), ("team-a", "l")]
    assert {v.exp_id for v in got if v.delete} == {"gone1", "gone2"}


def test_sweep_once_deletes_nothing_when_the_list_fails():
    class Down(RecordingTuner):
        def list_experiments(self):
            raise OSError("connection refused")

    tuner = Down([])
    with pytest.raises(OSError):
        sweep_once(tuner.list_experiments, tuner.delete_experiment, lambda ns, name: Missing(), WATCHED)
    assert tuner.deleted == []


def test_the_sweep_interval_setting():
    base = {"AUTOTUNE_ADMIN_TOKEN": "t" * 20}
    assert Settings.from_env(base).sweep_seconds == 600
    assert Settings.from_env({**base, "AUTOTUNE_ORPHAN_SWEEP_SECONDS": "0"}).sweep_seconds == 0
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(SystemExit, match="AUTOTUNE_ORPHAN_SWEEP_SECONDS"):
            Settings.from_env({**base, "AUTOTUNE_ORPHAN_SWEEP_SECONDS": bad})


def test_the_owner_is_stored_and_survives_a_restart(tmp_path: Path):
    db = tmp_path / "t.db"
    owner = {"namespace": "team-a", "name": "exp", "uid": "u1"}
    e = Engine(Store(db))
    e.register("u1", "exp", CONFIG, owner=owner)
    e.register("local.exp", "exp", CONFIG)
    again = {h.stored.id: h.stored.owner for h in Engine(Store(db)).list()}
    assert again == {"u1": owner, "local.exp": None}


def test_an_old_database_gains_the_owner_column(tmp_path: Path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, "
        "token TEXT NOT NULL, created REAL NOT NULL);"
        f"INSERT INTO experiments VALUES ('old', 'old', '{CONFIG.model_dump_json()}', 'tok', 1);"
    )
    con.commit()
    con.close()
    e = Engine(Store(db))
    assert e.get("old").stored.owner is None  # an older operator's: the sweep leaves it alone
    e.register("new", "new", CONFIG, owner={"namespace": "n", "name": "new", "uid": "new"})
    assert Engine(Store(db)).get("new").stored.owner == {"namespace": "n", "name": "new", "uid": "new"}


def test_the_kubernetes_lookup_reads_only_a_404_as_missing():
    def answering(status: int | None, obj: dict | None = None):
        def get(ns: str, name: str):
            if status is not None:
                raise ApiException(status=status, reason="nope")
            return obj
        return kubernetes_lookup(get)

    assert answering(404)("n", "e") == Missing()
    for status in (403, 500, 503):
        assert isinstance(answering(status)("n", "e"), LookupFailed)
    assert answering(None, {"metadata": {"uid": "u1"}})("n", "e") == Found("u1")
    assert isinstance(answering(None, {"metadata": {}})("n", "e"), LookupFailed)

    def timeout(ns: str, name: str):
        raise TimeoutError("read timed out")
    assert isinstance(kubernetes_lookup(timeout)("n", "e"), LookupFailed)


def test_a_zero_interval_starts_no_sweep_and_the_flag_sets_it():
    p = argparse.ArgumentParser()
    add_arguments(p)
    env = environment(p.parse_args(["--orphan-sweep-seconds", "0"]), {"AUTOTUNE_ADMIN_TOKEN": "t" * 20})
    settings = Settings.from_env(env)
    assert settings.sweep_seconds == 0
    rt = OperatorRuntime(settings, client.ApiClient())  # nothing is contacted before a sweep
    rt.start_sweeper()
    assert rt.sweeper is None
