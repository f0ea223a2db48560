"""Which events of deleted experiments to purge, and when (pure: no I/O, no clock).

Deleting an experiment removes its rows from the state tables at once, but its events stay:
the event log is the audit trail of what happened. On a long-lived server, with MLflow-logging
or metrics-collecting trials writing up to a million events each, that log grows without
bound; so the events of a deleted experiment are purged once ``--deleted-retention`` has
passed since its deletion (tuner_server/purge.py runs the plan).

An experiment id may be registered again after a deletion (``autotune run --server`` names its
experiment ``local.<name>``). Event ids only grow, so the events of the deleted generations of
an id are exactly those older than its newest registration; a live re-registered experiment
keeps everything from that registration on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

DEFAULT_RETENTION = "7d"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_retention(text: str) -> float | None:
    """``7d``, ``12h``, ``90m``, ``3600s`` or ``3600`` (seconds), ``0`` (purge at deletion) ->
    seconds; ``never`` -> None (keep every event for ever). Raises ValueError saying what is
    accepted."""
    t = text.strip().lower()
    if t == "never":
        return None
    m = _DURATION.fullmatch(t)
    if m is None:
        raise ValueError(f"{text!r} is not a duration: give a number with an optional unit s, m, h, d or w "
                         f"(e.g. 7d, 12h, 0 to purge at deletion), or never to keep every event")
    return float(m[1]) * _UNITS[m[2] or "s"]


@dataclass(frozen=True)
class Lifecycle:
    """What the event log says of one experiment id that was deleted at least once."""

    exp_id: str
    last_deleted: int  # id of its newest experiment_deleted event
    deleted_at: float  # when that deletion was recorded (epoch seconds)
    last_registered: int | None  # id of its newest experiment_registered event (None: none left)
    newest_event: int  # id of its newest event of any kind


@dataclass(frozen=True)
class Purge:
    """Purge the events of ``exp_id`` whose id is below ``before``: its deleted generations.
    ``marker`` (the newest deletion event) goes last, so a purge cut short by a crash is
    found and finished by the next sweep, still timed from that deletion."""

    exp_id: str
    before: int
    marker: int
    deleted_at: float


def purge_plan(deleted: Sequence[Lifecycle], now: float, retention: float | None) -> list[Purge]:
    """The purges due at ``now``, oldest deletion first. ``retention`` None: none ever.

    Re-registered (its newest registration is after its newest deletion): the events before
    that registration. Still deleted: every event up to the newest one seen now, so a
    registration made while the purge runs keeps its own events."""
    if retention is None:
        return []
    due: list[Purge] = []
    for d in deleted:
        if d.deleted_at + retention > now:
            continue
        live = d.last_registered is not None and d.last_registered > d.last_deleted
        before = d.last_registered if live and d.last_registered is not None else d.newest_event + 1
        due.append(Purge(d.exp_id, before, d.last_deleted, d.deleted_at))
    return sorted(due, key=lambda p: (p.deleted_at, p.exp_id))


def sweep_interval(retention: float | None, longest: float = 600.0) -> float:
    """Seconds between sweeps: the retention itself when shorter than ``longest`` (a short
    retention is kept to within about itself), at least 1 s; ``longest`` otherwise and for 0
    (which the server also wakes on each deletion) and never (a sweep then does nothing)."""
    if retention is None or retention <= 0:
        return longest
    return min(max(retention, 1.0), longest)
