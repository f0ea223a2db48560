"""The tuner server's sweep that purges deleted experiments' events (``--deleted-retention``).

What is due comes from retention.py (pure); the SQL is in store.py. A purge of millions of
events is cut into small transactions, with a pause after each as long as it held the write
lock, so trials' reports (each its own transaction, fsynced) get the lock at least half of
the time while it runs (bench/store_retention.py measures both). The space freed is given
back to the file system a few pages at a time on databases that allow it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tuner_server.retention import purge_plan, sweep_interval
from tuner_server.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeSettings:
    retention: float | None  # seconds after a deletion; 0: at once; None: never
    # Events per transaction: ~1.5 ms of write lock each (bench/store_retention.py); a few
    # batches hold it longer when their commit runs SQLite's automatic WAL checkpoint.
    batch: int = 1000
    reclaim_pages: int = 128  # pages (4 KiB) per incremental-vacuum step: under 1 ms each
    rest: float = 1.0  # pause after a step, as a multiple of how long it held the write lock


@dataclass
class SweepResult:
    experiments: int = 0  # deleted experiments whose events are all purged now
    events: int = 0
    steps: int = 0  # transactions (purge batches, vacuum steps, the checkpoint)
    longest_hold: float = 0.0  # seconds: the longest any one step held the write lock
    longest_batch: float = 0.0  # of those, the longest purge batch
    longest_reclaim: float = 0.0  # and the longest vacuum step or checkpoint
    free_pages: int = 0  # pages freed but kept in the file (databases without incremental vacuum)

    def held(self, seconds: float, batch: bool = False) -> None:
        self.steps += 1
        self.longest_hold = max(self.longest_hold, seconds)
        if batch:
            self.longest_batch = max(self.longest_batch, seconds)
        else:
            self.longest_reclaim = max(self.longest_reclaim, seconds)


def sweep(store: Store, settings: PurgeSettings, now: float, pause: Callable[[float], None] = time.sleep,
          on_purged: Callable[[int], None] | None = None, stopping: Callable[[], bool] = lambda: False) -> SweepResult:
    """Purge every deleted experiment's events that are due at ``now``, then reclaim the space.
    ``on_purged(n)`` after each batch (the Prometheus counter); ``stopping()`` ends it between
    two steps (what is left is due again at the next sweep)."""
    result = SweepResult()
    for p in purge_plan(store.deleted_lifecycles(), now, settings.retention):
        while not stopping():
            n, held = store.purge_events(p.exp_id, p.before, p.marker, settings.batch)
            result.held(held, batch=True)
            result.events += n
            if n and on_purged is not None:
                on_purged(n)
            pause(held * settings.rest)
            if n < settings.batch:
                result.experiments += 1
                break
    if result.events:
        left = None
        while store.reclaims_space() and not stopping():
            before, (left, held) = left, store.reclaim(settings.reclaim_pages)
            result.held(held)
            pause(held * settings.rest)
            if left == 0 or left == before:  # all given back, or nothing more can be
                break
        result.held(store.checkpoint())
        result.free_pages = store.reclaim(0)[0]
    return result


class Sweeper:
    """Runs :func:`sweep` in a thread of its own: when started, every
    :func:`~tuner_server.retention.sweep_interval`, and when woken (each deletion, so a
    retention of 0 purges at deletion)."""

    def __init__(self, store: Store, settings: PurgeSettings, clock: Callable[[], float] = time.time,
                 on_purged: Callable[[int], None] | None = None) -> None:
        self.store, self.settings, self.clock, self.on_purged = store, settings, clock, on_purged
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.retention is None:  # never: nothing will ever be due
            return
        self._thread = threading.Thread(target=self._run, name="autotune-purge", daemon=True)
        self._thread.start()

    def wake(self, _exp_id: str | None = None) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = sweep_interval(self.settings.retention)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                r = sweep(self.store, self.settings, self.clock(), pause=self._stop.wait, on_purged=self.on_purged,
                          stopping=self._stop.is_set)
                if r.events:
                    log.info("purged %d events of %d deleted experiments in %d steps (longest write lock %.1f ms)",
                             r.events, r.experiments, r.steps, r.longest_hold * 1000)
            except sqlite3.Error as e:  # a full disk, a locked file: kept, and tried again next time
                log.error("purging deleted experiments' events failed: %s", e)
            self._wake.wait(interval)
