"""Leader election: the pure rules (operator/leader.py) for every transition, and the
Elector (operator/leader_election.py) over an in-memory Lease store with the API's
optimistic concurrency (a write carrying a stale resourceVersion is a 409 Conflict).
The same Elector against the real kube-apiserver: tests/e2e/test_operator_leader_election.py."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

from autotune_operator.leader import (
    Action,
    LeaseRecord,
    Observation,
    Timing,
    decide,
    lost_after,
    micro_time,
    observe,
    release,
)
from autotune_operator.leader_election import Conflict, ElectionSettings, Elector, run_elected
from autotune_operator.metrics import OperatorMetrics

T0 = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.timezone.utc)


def held(holder: str, *, duration: int = 15, rv: str = "7", renewed: dt.datetime = T0, transitions: int = 2) -> LeaseRecord:
    return LeaseRecord(holder, duration, micro_time(T0), micro_time(renewed), transitions, rv)


# ----- the rules -----
def test_absent_lease_is_acquired_by_creating_it():
    d = decide(Observation(None, 100.0), "me", 100.0, T0, 15)
    assert d.action is Action.ACQUIRE
    assert d.write == LeaseRecord("me", 15, "2026-11-24T12:00:00.000000Z", "2026-11-24T12:00:00.000000Z", 0, None)


def test_held_by_us_is_renewed_keeping_acquire_time_and_transitions():
    rec = held("me")
    later = T0 + dt.timedelta(seconds=5, microseconds=250)
    d = decide(Observation(rec, 0.0), "me", 1000.0, later, 15)  # however long ago we first saw it
    assert d.action is Action.RENEW
    assert d.write == replace(rec, renew_time="2026-11-24T12:00:05.000250Z")


def test_held_by_another_is_waited_for_until_it_expires_on_our_clock():
    rec = held("other", duration=10)
    seen = observe(None, rec, 50.0)
    d = decide(seen, "me", 59.9, T0, 15)
    assert d.action is Action.WAIT and d.expires_at == 60.0 and "other" in d.reason  # its duration, not ours
    d = decide(observe(seen, rec, 60.0), "me", 60.0, T0 + dt.timedelta(seconds=10), 15)
    assert d.action is Action.ACQUIRE
    # Taken over: a new holder, our duration, a transition more, the version it replaces.
    assert d.write == LeaseRecord("me", 15, "2026-11-24T12:00:10.000000Z", "2026-11-24T12:00:10.000000Z", 3, "7")


def test_a_renewal_restarts_the_observers_count():
    rec = held("other", duration=10)
    seen = observe(None, rec, 50.0)
    renewed = replace(rec, renew_time=micro_time(T0 + dt.timedelta(seconds=9)), resource_version="8")
    seen = observe(seen, renewed, 59.0)
    assert seen.seen_at == 59.0
    assert decide(seen, "me", 68.0, T0, 15).action is Action.WAIT
    assert observe(seen, renewed, 69.0).seen_at == 59.0  # unchanged: the first sight stays
    assert decide(observe(seen, renewed, 69.0), "me", 69.0, T0, 15).action is Action.ACQUIRE


@pytest.mark.parametrize("holder_clock_offset_hours", [-2, 2])
def test_clock_skew_between_nodes_neither_steals_nor_delays(holder_clock_offset_hours):
    """The holder's renewTime is written by its node's clock, hours off ours either way:
    while it keeps renewing, we wait; once it stops, we take over one lease duration after
    the last renewal we saw, as with synchronized clocks."""
    skew = dt.timedelta(hours=holder_clock_offset_hours)
    seen = None
    for i in range(10):  # renewals every 2 s for 20 s
        rec = held("other", rv=str(i), renewed=T0 + skew + dt.timedelta(seconds=2 * i))
        seen = observe(seen, rec, 2.0 * i)
        assert decide(seen, "me", 2.0 * i + 1.5, T0 + dt.timedelta(seconds=2 * i + 1.5), 15).action is Action.WAIT
    assert seen is not None and seen.seen_at == 18.0
    assert decide(seen, "me", 18.0 + 14.9, T0, 15).action is Action.WAIT
    assert decide(seen, "me", 18.0 + 15.0, T0, 15).action is Action.ACQUIRE


def test_a_released_lease_is_taken_at_once():
    rec = replace(held("other"), holder="", duration_seconds=1)
    d = decide(observe(None, rec, 5.0), "me", 5.0, T0, 15)
    assert d.action is Action.ACQUIRE and d.write is not None and d.write.holder == "me" and d.write.transitions == 3


def test_release_clears_only_our_own_lease():
    rec = held("me")
    freed = release(rec, "me", T0 + dt.timedelta(seconds=1))
    assert freed == replace(rec, holder="", duration_seconds=1, renew_time="2026-11-24T12:00:01.000000Z")
    assert freed.spec()["holderIdentity"] is None
    assert release(held("other"), "me", T0) is None


def test_a_lease_without_duration_counts_with_ours():
    rec = held("other", duration=0)
    assert decide(observe(None, rec, 0.0), "me", 14.0, T0, 15).action is Action.WAIT
    assert decide(observe(None, rec, 0.0), "me", 15.0, T0, 15).action is Action.ACQUIRE


def test_leader_gives_up_at_the_renew_deadline():
    assert not lost_after(100.0, 10.0, 109.99)
    assert lost_after(100.0, 10.0, 110.0)


def test_timing_defaults_and_validation():
    assert Timing() == Timing(15, 10.0, 2.0) == Timing.for_lease(15)
    assert Timing.for_lease(3) == Timing(3, 2.0, 0.4)
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timing(15, 15.0, 2.0)
    with pytest.raises(ValueError, match="whole number"):
        Timing(0, 0.5, 0.1)


def test_record_round_trips_through_a_lease():
    lease = {"metadata": {"resourceVersion": "42"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2026-11-24T12:00:00.000000Z",
                      "renewTime": "2026-11-24T12:00:02.000000Z", "leaseTransitions": 4}}
    rec = LeaseRecord.from_lease(lease)
    assert rec == LeaseRecord("a", 15, "2026-11-24T12:00:00.000000Z", "2026-11-24T12:00:02.000000Z", 4, "42")
    assert rec.spec() == lease["spec"]
    assert LeaseRecord.from_lease({"metadata": {}, "spec": {}}) == LeaseRecord()
    with pytest.raises(ValueError, match="identity"):
        decide(Observation(None, 0.0), "", 0.0, T0, 15)


# ----- the Elector over a store with optimistic concurrency -----
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.t - 1000.0)


class MemoryLeases:
    """One Lease as the API server keeps it: every write bumps resourceVersion; create of an
    existing Lease, or replace with a stale resourceVersion, is a Conflict (409)."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.rv = 0
        self.lock = threading.Lock()
        self.before_write: Callable[[], None] | None = None  # runs between a read and the write: a racer
        self.fail: BaseException | None = None
        self.hang = threading.Event()  # set: every call blocks (a partitioned API server)
        self.writes = 0

    def _enter(self, timeout: float) -> None:
        if self.hang.is_set():
            time.sleep(timeout)
            raise TimeoutError("read timed out")
        if self.fail is not None:
            raise self.fail

    def get(self, timeout: float) -> LeaseRecord | None:
        self._enter(timeout)
        return self.record

    def _stored(self, record: LeaseRecord) -> LeaseRecord:
        self.rv += 1
        self.writes += 1
        self.record = replace(record, resource_version=str(self.rv))
        return self.record

    def create(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._race()
        self._enter(timeout)
        with self.lock:
            if self.record is not None:
                raise Conflict("AlreadyExists")
            return self._stored(record)

    def replace(self, record: LeaseRecord, timeout: float) -> LeaseRecord:
        self._race()
        self._enter(timeout)
        with self.lock:
            if self.record is None or self.record.resource_version != record.resource_version:
                raise Conflict("the object has been modified")
            return self._stored(record)

    def _race(self) -> None:
        racer, self.before_write = self.before_write, None
        if racer is not None:
            racer()


def test_two_replicas_race_to_create_and_one_wins():
    store, clock = MemoryLeases(), FakeClock()
    a, b = Elector(store, "a", Timing(), clock), Elector(store, "b", Timing(), clock)
    store.before_write = lambda: a.try_once()  # a creates it between b's read and b's create
    d = b.try_once()
    assert d.action is Action.WAIT and not b.leading
    assert a.leading and store.record is not None and store.record.holder == "a"


def test_a_stale_takeover_loses_with_409_and_the_winner_holds():
    store, clock = MemoryLeases(), FakeClock()
    old = Elector(store, "old", Timing(), clock)
    old.try_once()
    a, b = Elector(store, "a", Timing(), clock), Elector(store, "b", Timing(), clock)
    a.try_once(), b.try_once()
    clock.t += 15  # old stopped renewing: expired for both standbys
    store.before_write = lambda: a.try_once()  # a takes it over between b's read and b's replace
    d = b.try_once()
    assert d.action is Action.WAIT and not b.leading
    assert store.record is not None and store.record.holder == "a" and store.record.transitions == 1
    assert a.leading
    # b saw a new version of the Lease: it waits a whole duration again.
    clock.t += 1
    assert b.try_once().action is Action.WAIT


def test_renewal_finds_another_holder_and_reports_the_loss():
    store, clock = MemoryLeases(), FakeClock()
    a = Elector(store, "a", Timing(), clock)
    a.try_once()
    assert store.record is not None
    store.record = replace(store.record, holder="b", resource_version="99")  # taken (e.g. a's clock paused)
    assert a.renew_once() is False and not a.leading
    assert a.release() is False and store.record.holder == "b"  # never clears someone else's


def test_renewal_after_our_own_lost_response_goes_on():
    store, clock = MemoryLeases(), FakeClock()
    a = Elector(store, "a", Timing(), clock)
    a.try_once()
    assert store.record is not None
    store.record = replace(store.record, resource_version="50")  # our write landed but we never saw its answer
    assert a.renew_once() is True and a.leading
    assert a.renew_once() is True and store.record.resource_version not in ("50", None)


def test_failed_renewals_are_fatal_only_at_the_deadline():
    store, clock = MemoryLeases(), FakeClock()
    a = Elector(store, "a", Timing(15, 10.0, 2.0), clock)
    a.try_once()
    store.fail = ConnectionRefusedError("api server down")
    for _ in range(4):
        clock.t += 2
        assert a.renew_once() is True and not a.deadline_passed()
    clock.t += 2
    assert a.deadline_passed()


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_a_leader_that_cannot_renew_stops_before_its_lease_expires(how):
    """Real threads and the real clock: the API server goes away (calls fail, or hang as in
    a network partition); on_lost fires once, after the renew deadline and before the
    lease's duration since the last renewal that landed, which is the earliest a standby
    could take over."""
    store = MemoryLeases()
    timing = Timing(6, 3.0, 0.2)  # generous: a loaded machine must not starve a healthy renewal
    e = Elector(store, "a", timing)
    assert e.try_once().action is Action.ACQUIRE
    lost: list[tuple[float, str]] = []
    fired = threading.Event()

    def on_lost(reason: str) -> None:
        lost.append((time.monotonic(), reason))
        fired.set()

    e.start_renewing(on_lost)
    try:
        time.sleep(0.5)
        assert not fired.is_set()  # renewing fine
        writes = store.writes
        assert writes >= 2
        last_landed = time.monotonic()
        if how == "refused":
            store.fail = ConnectionRefusedError("api server down")
        else:
            store.hang.set()
        assert fired.wait(15)
        at, reason = lost[0]
        assert "could not renew" in reason
        assert at < last_landed + timing.lease_duration, "stopped only after a standby could have taken over"
        time.sleep(0.3)
        assert len(lost) == 1
    finally:
        store.hang.clear()
        e.stop_renewing()


def test_run_elected_acts_only_while_holding_and_releases_after():
    store = MemoryLeases()
    store.record = LeaseRecord("other", 1, None, None, 0, "1")  # another holds it, 1 s lease, never renewed
    store.rv = 1
    e = Elector(store, "me", Timing(6, 3.0, 0.05))
    states: list[bool] = []
    seen: dict[str, object] = {}

    def operate() -> None:
        seen["holder"] = store.record.holder if store.record else None
        seen["leading"] = e.leading
        time.sleep(0.3)  # renewals happen meanwhile

    assert run_elected(e, operate, on_leader=states.append, on_lost=lambda r: seen.setdefault("lost", r)) == 0
    assert seen == {"holder": "me", "leading": True}
    assert states == [False, True, False]
    assert store.record is not None and store.record.holder == "" and store.record.transitions == 1
    assert store.writes >= 3  # acquired, renewed, released


def test_run_elected_serves_a_health_endpoint_while_standby(tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = MemoryLeases()
    store.record = LeaseRecord("other", 15, None, None, 0, "1")
    e = Elector(store, "me", Timing(15, 10.0, 0.05))
    answers: list[str] = []

    def probe_then_stop() -> None:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read().decode()
        answers.append(body)
        store.record = replace(store.record, holder="", resource_version="2")  # released: we take it

    threading.Timer(0.3, probe_then_stop).start()
    ran = threading.Event()
    assert run_elected(e, ran.set, health_endpoint=f"http://127.0.0.1:{port}/healthz") == 0
    assert answers and answers[0].startswith("standby") and ran.is_set()
    with socket.socket() as s:  # the standby's server is gone: the port is free for kopf's (which
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # binds as this does: the probe left TIME_WAIT)
        s.bind(("127.0.0.1", port))


# ----- settings -----
def test_settings_off_by_default_and_explicit_on():
    assert ElectionSettings.from_env({}) is None
    assert ElectionSettings.from_env({"AUTOTUNE_LEADER_ELECTION": "false"}) is None
    s = ElectionSettings.from_env({"AUTOTUNE_LEADER_ELECTION": "true", "POD_NAMESPACE": "autotune",
                                   "POD_NAME": "autotune-operator-5d9c-x2"}, suffix=lambda: "abc123")
    assert s == ElectionSettings("autotune", "autotune-operator", "autotune-operator-5d9c-x2_abc123", Timing())


def test_settings_namespace_from_the_service_account_and_timing(tmp_path: Path):
    ns_file = tmp_path / "namespace"
    ns_file.write_text("ops\n")
    s = ElectionSettings.from_env({"AUTOTUNE_LEADER_ELECTION": "1", "AUTOTUNE_LEADER_ELECTION_LEASE": "mine",
                                   "AUTOTUNE_LEADER_ELECTION_IDENTITY": "x", "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS": "3"},
                                  sa_namespace_file=str(ns_file))
    assert s == ElectionSettings("ops", "mine", "x", Timing(3, 2.0, 0.4))


@pytest.mark.parametrize("env,message", [
    ({"AUTOTUNE_LEADER_ELECTION": "maybe"}, "AUTOTUNE_LEADER_ELECTION must be true or false"),
    ({"AUTOTUNE_LEADER_ELECTION": "true"}, "set AUTOTUNE_LEADER_ELECTION_NAMESPACE"),
    ({"AUTOTUNE_LEADER_ELECTION": "true", "POD_NAMESPACE": "n", "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS": "2.5"},
     "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS must be a whole number"),
    ({"AUTOTUNE_LEADER_ELECTION": "true", "POD_NAMESPACE": "n", "AUTOTUNE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "20"},
     "retry period < renew deadline < lease duration"),
    ({"AUTOTUNE_LEADER_ELECTION": "true", "POD_NAMESPACE": "n", "AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS": "nan"},
     "AUTOTUNE_LEADER_ELECTION_RETRY_SECONDS must be a number of seconds > 0"),
])
def test_settings_refuse_bad_values(env, message, tmp_path: Path):
    with pytest.raises(SystemExit, match=message):
        ElectionSettings.from_env(env, sa_namespace_file=str(tmp_path / "none"))


def test_flags_become_the_environment():
    import argparse

    from autotune_operator.__main__ import add_arguments, environment

    p = argparse.ArgumentParser()
    add_arguments(p)
    env = environment(p.parse_args(["--leader-election", "--lease-seconds", "3", "--leader-election-namespace", "n"]), {})
    assert env == {"AUTOTUNE_LEADER_ELECTION": "true", "AUTOTUNE_LEADER_ELECTION_LEASE_SECONDS": "3",
                   "AUTOTUNE_LEADER_ELECTION_NAMESPACE": "n"}
    env = environment(p.parse_args(["--no-leader-election"]), {"AUTOTUNE_LEADER_ELECTION": "true"})
    assert env["AUTOTUNE_LEADER_ELECTION"] == "false"


def test_leader_gauge():
    m = OperatorMetrics()
    assert b"autotune_operator_leader 0.0" in m.exposition()
    m.set_leader(True)
    assert b"autotune_operator_leader 1.0" in m.exposition()
