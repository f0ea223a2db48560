"""What wakes an experiment's reconcile loop (operator/runtime.py), without a cluster."""

from __future__ import annotations

from kubernetes import client

from autotune_operator.runtime import OperatorRuntime, Settings
from tuner_server.client import HttpClient


def runtime() -> OperatorRuntime:
    settings = Settings(server_url="http://127.0.0.1:9", admin_token="t", trial_server_url="http://127.0.0.1:9")
    return OperatorRuntime(settings, client.ApiClient(), HttpClient(settings.server_url, "t"))


def test_a_spec_edit_wakes_the_loop_and_a_status_write_does_not():
    rt = runtime()
    ev = rt.waker("ns", "exp")
    rt.experiment_seen("ns", "exp", 1)  # first sight (the loop reads the spec itself)
    ev.clear()
    rt.experiment_seen("ns", "exp", 1)  # our own status write: same generation
    assert not ev.is_set()
    rt.experiment_seen("ns", "exp", 2)  # kubectl edit of the spec
    assert ev.is_set()


def test_workload_events_wake_only_their_experiment():
    rt = runtime()
    a, b = rt.waker("ns", "a"), rt.waker("ns", "b")
    rt.wake("ns", "a")
    assert a.is_set() and not b.is_set()
    rt.wake("ns", "unknown")  # a workload whose experiment has no loop: nothing happens
