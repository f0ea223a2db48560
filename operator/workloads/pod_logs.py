"""Reading a container's log in pieces, as ``kubectl logs --timestamps --since-time`` does:
pure functions over the API's answers (no I/O).

``GET .../pods/{pod}/log?timestamps=true`` prefixes every line with the time the
container runtime read it (RFC 3339 with up to nine fractional digits, then a space), and
``sinceTime`` returns only the lines at or after a time. The API server passes sinceTime
on to the kubelet in whole seconds, and several lines may carry the same timestamp, so a
resumed read repeats lines: the cursor keeps the last timestamp returned and how many
lines carried exactly it, and the next read drops what is older and that many of the
equal ones. A new pod (a different uid: the Job's pod was replaced) is read from its start.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class PodLogCursor:
    """Where the next read of a pod's log resumes. Opaque to the controller."""

    uid: str  # the pod read; another uid starts from the start
    last_ns: int | None = None  # timestamp of the last line returned (ns since the epoch)
    at_last: int = 0  # how many lines returned so far carried exactly ``last_ns``


def parse_timestamp(text: str) -> int | None:
    """RFC 3339 (nano) -> ns since the epoch, or None when ``text`` is not one."""
    m = _RFC3339.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    frac = (m.group(7) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac or 0)


def since_time(cursor: PodLogCursor) -> str | None:
    """The ``sinceTime`` to ask for: the last line's second (the API's own precision)."""
    if cursor.last_ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cursor.last_ns // 1_000_000_000))


def resume(data: bytes, cursor: PodLogCursor, final: bool = False) -> tuple[list[str], PodLogCursor]:
    """The lines of a timestamped log answer that come after ``cursor``, without their
    timestamps, and the cursor after them.

    ``data`` answered a read with ``sinceTime=since_time(cursor)`` (or none). The text
    after the last newline is a line still being written; it is left for the next read
    unless ``final`` (the container has ended: its last line may lack a newline).
    """
    pieces = data.decode("utf-8", errors="replace").split("\n")
    tail = pieces.pop()
    if tail and final:
        pieces.append(tail)
    out: list[str] = []
    last, count = cursor.last_ns, cursor.at_last
    skipped_equal = 0
    prev: int | None = None
    for piece in pieces:
        stamp, sep, line = piece.partition(" ")
        ts = parse_timestamp(stamp) if sep else None
        if ts is None:  # no timestamp (not expected from a kubelet): the line keeps its place
            ts, line = (prev if prev is not None else (cursor.last_ns or 0)), piece
        prev = ts
        if cursor.last_ns is not None:
            if ts < cursor.last_ns:
                continue
            if ts == cursor.last_ns and skipped_equal < cursor.at_last:
                skipped_equal += 1
                continue
        out.append(line)
        if ts == last:
            count += 1
        else:
            last, count = ts, 1
    return out, PodLogCursor(cursor.uid, last, count)
