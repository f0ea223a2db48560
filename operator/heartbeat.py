"""A local run's heartbeat: when it was last alive, for a resume after it died unended.

`autotune run` killed outright (SIGKILL, power loss, a reboot) writes no end. The run
started again must know when the dead one stopped, so that the time nothing could run is
not counted against maxExecSeconds (resume.paused_after_crash). Each pass writes the wall
clock into ``<output>/heartbeat``, at most every :data:`HEARTBEAT_SECONDS` (a few bytes, no
fsync: a beat lost with the page cache makes the gap only a few seconds longer).
The trials' process records (``trials/*/process.json``, written when a trial starts and
ends, by its supervisor even after the run died) are signs of life too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_SECONDS = 5.0


class Heartbeat:
    """Writes the heartbeat of the run using ``out`` (call :meth:`beat` every pass)."""

    def __init__(self, out: Path, every: float = HEARTBEAT_SECONDS) -> None:
        self.path = out / HEARTBEAT_FILE
        self.every = every
        self._last = -math.inf

    def beat(self, now: float) -> None:
        if now - self._last < self.every:
            return
        tmp = self.path.with_name(f".{HEARTBEAT_FILE}.tmp")
        try:  # replaced whole: a torn number would read as no heartbeat at all
            tmp.write_text(f"{now:.3f}\n", encoding="ascii")
            os.replace(tmp, self.path)
        except OSError:
            return  # a full disk: the results' own writes say so; the next beat tries again
        self._last = now


def last_sign_of_life(out: Path) -> float | None:
    """When the run that last used ``out`` (or one of its trials) was last seen alive: the
    later of its heartbeat and its trials' newest process record. None if it left no heartbeat."""
    try:
        beat = float((out / HEARTBEAT_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    if not math.isfinite(beat):
        return None
    latest = beat
    for record in (out / "trials").glob("*/process.json"):
        try:
            latest = max(latest, record.stat().st_mtime)
        except OSError:
            pass
    return latest
