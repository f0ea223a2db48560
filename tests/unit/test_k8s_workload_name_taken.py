"""A trial whose workload name an earlier experiment of the same name still holds (its
workload being deleted by the garbage collector): it waits, WAITING, never adopts, reads or
touches that workload, is created once the name is free, and an experiment that stops
meanwhile ends it without a PATCH or DELETE of the other's workload. The real path is
tests/e2e/test_operator_recreate.py."""

from __future__ import annotations

from pathlib import Path

from autotune_operator.controller import ExperimentController
from autotune_operator.spec import API_GROUP, API_VERSION, KIND
from tests.unit.test_k8s_stop_restart import Stopping, operator
from tests.unit.test_k8s_trial_start import UID, Events, job
from tuner_server.engine import Engine
from tuner_server.store import Store


def _old_job() -> dict:
    old = job("q-0")
    old["metadata"]["ownerReferences"] = [{"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": "q",
                                           "uid": "the-earlier-q"}]
    return old


def _started(tmp_path: Path) -> tuple[Stopping, dict, Engine, ExperimentController, Events]:
    """An experiment 'q' started, its first pass done, while the earlier q's workload q-0 is there."""
    cluster = Stopping()
    old = _old_job()
    cluster.jobs.append(old)
    engine = Engine(Store(tmp_path / "t.db"), clock=cluster.clock)
    c, events = operator(cluster, engine)
    c.start()
    c.step()
    return cluster, old, engine, c, events


def test_a_trial_waits_for_its_name_and_is_created_once_free(tmp_path: Path) -> None:
    cluster, old, engine, c, events = _started(tmp_path)
    c.step()
    assert engine.trial("q", "q-0").record.state.value == "WAITING"
    assert events.emitted == [("TrialWaitsForWorkloadName", False)]  # once, not per pass
    assert c.executor.active() == {"q-0"} and c.executor.read_log("q-0", None, True) is None
    cluster.jobs.remove(old)  # the garbage collector got to it
    c.step()
    assert events.emitted[-1] == ("TrialCreated", False)
    (new,) = cluster.jobs
    assert new["metadata"]["ownerReferences"][0]["uid"] == UID  # this experiment's


def test_a_waiting_trial_stopped_by_the_experiment_leaves_the_other_workload_alone(tmp_path: Path) -> None:
    cluster, old, engine, c, events = _started(tmp_path)
    c.state.error = "tuner failed: boom"  # the experiment ends ERROR, stopping what it runs
    c.step()
    d = c.step()
    assert engine.trial("q", "q-0").record.state.value == "STOPPED"
    assert d.finished and c.executor.active() == set()
    assert [x for x in cluster.calls if x[0] != "create"] == [] and cluster.jobs == [old]
