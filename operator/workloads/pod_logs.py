"""Reading a container's log in pieces, as ``kubectl logs --timestamps --since-time`` does:
pure functions over the API's answers (no I/O).

``GET .../pods/{pod}/log?timestamps=true`` prefixes every line with the time the
container runtime read it (RFC 3339 with up to nine fractional digits, then a space), and
``sinceTime`` returns only the lines at or after a time, in the log's order. The API server
passes sinceTime on to the kubelet in whole seconds, so a resumed read repeats the lines
already returned from that second on: the cursor keeps the greatest timestamp returned and
how many lines of the log from its second on were returned, and the next read (from that
second) drops that many lines first. Counting lines, not comparing timestamps, matters
because timestamps are not in the log's order: the runtime stamps stdout and stderr lines
in two threads, so a stderr line may follow a stdout line stamped a little later (dropping
every line older than the last one returned lost such a line; keeping every newer one
returned a line twice). A line stamped after every line returned is new whatever its
position (the log was rotated). A new pod (a different uid: the Job's pod was replaced) is
read from its start.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

from autotune_operator.relay_marks import Taken

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class PodLogCursor:
    """Where the next read of a pod's log resumes. Opaque to the controller."""

    uid: str  # the pod read; another uid starts from the start
    max_ns: int | None = None  # the greatest timestamp of a line returned (ns since the epoch)
    seen: int = 0  # how many lines from ``max_ns``'s whole second on were returned


@dataclass(frozen=True)
class SidecarCursor:
    """A metrics sidecar's log read so far, and the positions in the trial's files its lines
    came from (relay_marks.py: what a restarted sidecar relays again is not taken twice)."""

    log: PodLogCursor
    taken: Taken = field(default_factory=Taken)


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
    if cursor.max_ns is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cursor.max_ns // 1_000_000_000))


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
    stamped: list[tuple[int, str]] = []
    prev = cursor.max_ns or 0
    for piece in pieces:
        stamp, sep, line = piece.partition(" ")
        ts = parse_timestamp(stamp) if sep else None
        if ts is None:  # no timestamp (not expected from a kubelet): the line keeps its place
            ts, line = prev, piece
        prev = ts
        # A CRLF line (a container with a TTY) reads as locally (LocalExecutor.read_log).
        stamped.append((ts, line.removesuffix("\r")))
    # The answer begins with the lines returned before (those from the cursor's second on).
    skip = 0
    if cursor.max_ns is not None:
        while skip < min(cursor.seen, len(stamped)) and stamped[skip][0] <= cursor.max_ns:
            skip += 1
    if not stamped:
        return [], cursor
    top = max(cursor.max_ns or 0, *(ts for ts, _ in stamped))
    second = top - top % 1_000_000_000
    # The next answer (from that second) begins with this one's lines from that second on.
    seen = sum(1 for ts, _ in stamped if ts >= second)
    return [line for _, line in stamped[skip:]], PodLogCursor(cursor.uid, top, seen)
