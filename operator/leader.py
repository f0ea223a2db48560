"""Leader election on a coordination.k8s.io/v1 Lease: what one replica should do next, as a
pure function of the Lease it observed, its identity and the time. No I/O, no clock of its
own: leader_election.py reads and writes the Lease and calls these functions.

The rules are client-go's (what controller-runtime operators use):

- no Lease, or one nobody holds (released): **acquire** it;
- a Lease this replica holds: **renew** it;
- a Lease another replica holds: **wait**, unless this replica has watched it stay
  unchanged for the lease's whole duration: then the holder stopped renewing and its lease
  has **expired**: acquire it.

Expiry is measured on the observer's own monotonic clock, from the moment it first saw
the Lease's current version (a renewal changes the version), never by comparing the
holder's renewTime with this replica's clock: the two run on different nodes, and a node
whose clock is ahead by more than the lease duration would otherwise take a lease from a
leader that is still renewing it. The price is that a replica that starts while a dead
leader's Lease is still there waits one lease duration before taking it (client-go's too).

The leader side stops acting when it has not renewed for ``renew_deadline`` seconds,
measured from when it *sent* its last successful renewal. That is before any observer can
call the lease expired (``lease_duration`` after it *saw* that renewal, which is later), by
at least ``lease_duration - renew_deadline`` seconds: the margin for clock-rate differences
and the time the process takes to stop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Mapping


class Action(str, Enum):
    ACQUIRE = "acquire"  # create the Lease (none yet) or take it over (released or expired)
    RENEW = "renew"  # we hold it: write a fresh renewTime
    WAIT = "wait"  # another replica holds a lease that has not expired


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec as read (or to be written), plus its metadata.resourceVersion."""

    holder: str = ""  # spec.holderIdentity; "" (or absent): nobody holds it
    duration_seconds: int = 0  # spec.leaseDurationSeconds, the holder's setting
    acquire_time: str | None = None  # MicroTime text, kept as written
    renew_time: str | None = None
    transitions: int = 0  # spec.leaseTransitions: how many times the holder changed
    resource_version: str | None = None

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> "LeaseRecord":
        """From a Lease as the API returns it (JSON)."""
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def spec(self) -> dict[str, Any]:
        """spec of a Lease that says this (for create / replace)."""
        return {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }

    def version(self) -> tuple[Any, ...]:
        """What tells one version of the Lease from the next: the resourceVersion, and the
        spec too (a store without versions still changes its renewTime on every renewal)."""
        return (self.resource_version, self.holder, self.renew_time, self.acquire_time, self.transitions)


@dataclass(frozen=True)
class Observation:
    """What this replica knows of the Lease: the record (None: there is no Lease) and the
    time on its own monotonic clock when it first saw this version of it."""

    record: LeaseRecord | None
    seen_at: float


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """The new observation after reading ``record`` at ``now``: the time of first sight is
    kept while the Lease has not changed, and restarts when it has."""
    if previous is not None and _same(previous.record, record):
        return Observation(record, previous.seen_at)
    return Observation(record, now)


def _same(a: LeaseRecord | None, b: LeaseRecord | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.version() == b.version()


@dataclass(frozen=True)
class Decision:
    action: Action
    write: LeaseRecord | None = None  # for ACQUIRE / RENEW: the Lease to create or replace with
    # For WAIT: when (monotonic) the holder's lease expires if it is not renewed first.
    expires_at: float | None = None
    reason: str = ""


def micro_time(t: dt.datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits (the API
    refuses the shorter form Python's isoformat() writes when the microseconds are 0)."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decide(seen: Observation, identity: str, now: float, wall: dt.datetime, duration_seconds: int) -> Decision:
    """What the replica ``identity`` should do, having observed ``seen``; ``now`` is its
    monotonic clock, ``wall`` the time to write into the Lease, ``duration_seconds`` its own
    lease duration (written when it acquires or renews)."""
    if not identity:
        raise ValueError("a leader-election identity must not be empty")
    stamp = micro_time(wall)
    rec = seen.record
    if rec is None:
        return Decision(Action.ACQUIRE, LeaseRecord(identity, duration_seconds, stamp, stamp, 0),
                        reason="no Lease yet")
    if rec.holder == identity:
        return Decision(Action.RENEW, replace(rec, duration_seconds=duration_seconds, renew_time=stamp,
                                              acquire_time=rec.acquire_time or stamp),
                        reason="held by us")
    took = replace(rec, holder=identity, duration_seconds=duration_seconds, acquire_time=stamp, renew_time=stamp,
                   transitions=rec.transitions + 1)
    if not rec.holder:
        return Decision(Action.ACQUIRE, took, reason="released")
    # The holder's own duration: it renews within that, whatever ours is. A Lease that
    # says 0 (written by hand, or by a tool that leaves it out) counts as ours.
    expires_at = seen.seen_at + (rec.duration_seconds or duration_seconds)
    if now >= expires_at:
        return Decision(Action.ACQUIRE, took, reason=f"expired: {rec.holder} did not renew it for "
                                                      f"{rec.duration_seconds or duration_seconds}s")
    return Decision(Action.WAIT, expires_at=expires_at, reason=f"held by {rec.holder}")


def release(record: LeaseRecord, identity: str, wall: dt.datetime) -> LeaseRecord | None:
    """The Lease to write on a clean shutdown: nobody holds it, so a standby takes it at
    its next look instead of after the lease duration. None when it is not ours to release."""
    if record.holder != identity:
        return None
    stamp = micro_time(wall)
    # leaseDurationSeconds 1 (client-go's): a reader that does not treat an empty holder
    # as free still sees it expire at once.
    return replace(record, holder="", duration_seconds=1, renew_time=stamp)


def lost_after(last_renewed: float, renew_deadline: float, now: float) -> bool:
    """The leader's rule: it must stop acting once ``renew_deadline`` seconds have passed
    since it sent its last renewal that succeeded (``last_renewed``, monotonic)."""
    return now - last_renewed >= renew_deadline


@dataclass(frozen=True)
class Timing:
    """The three durations of leader election (client-go's names and defaults: the Lease
    lasts 15 s; the leader renews every 2 s and gives up after 10 s without a renewal;
    a standby looks every 2 s)."""

    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not (isinstance(self.lease_duration, int) and self.lease_duration >= 1):
            raise ValueError(f"the lease duration must be a whole number of seconds >= 1, not {self.lease_duration!r}")
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration, not "
                             f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}")

    @classmethod
    def for_lease(cls, lease_duration: int, renew_deadline: float | None = None,
                  retry_period: float | None = None) -> "Timing":
        """The lease duration, and the other two (when not given) in client-go's proportions:
        renew deadline 2/3 of it, retry period 1/5 of the renew deadline."""
        deadline = renew_deadline if renew_deadline is not None else lease_duration * 2 / 3
        return cls(lease_duration, deadline, retry_period if retry_period is not None else deadline / 5)
