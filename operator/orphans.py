"""Tuner-server state that outlived its AutoTuneExperiment, deleted again in the background.

An experiment's finalizer removes its tuner-server state, but only tries for a bounded
time (an unreachable tuner server must not block `kubectl delete`). When that fails the
experiment is deleted anyway and its id lands here; a background thread retries with a
growing delay until the server forgets it. The list lives in memory and gives fast
retries only: the durable backstop is the orphan sweep (orphan_sweep.py), which at every
operator start and then periodically deletes tuner-server state whose AutoTuneExperiment
is gone, so nothing is leaked when the operator restarts with deletes still pending.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("autotune.operator")


def retry_delay(attempt: int, first: float = 5.0, cap: float = 300.0) -> float:
    """Seconds before retry number ``attempt`` (0-based): 5, 10, 20, ... up to 5 minutes."""
    return min(first * 2 ** min(attempt, 16), cap)


class PendingDeletes:
    """Retries ``delete(exp_id)`` for each added id until it returns (any exception: later)."""

    def __init__(self, delete: Callable[[str], object], delay: Callable[[int], float] = retry_delay) -> None:
        self._delete = delete
        self._delay = delay
        self._pending: dict[str, str] = {}  # exp id -> what to call it in the log
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, exp_id: str, label: str) -> None:
        with self._lock:
            self._pending[exp_id] = label
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="autotune-pending-deletes", daemon=True)
                self._thread.start()

    def pending(self) -> dict[str, str]:
        with self._lock:
            return dict(self._pending)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.wait(self._delay(attempt)):
            attempt += 1
            for exp_id, label in self.pending().items():
                try:
                    self._delete(exp_id)
                except Exception as e:  # still unreachable: the next round
                    log.info("tuner-server state of deleted experiment %s (%s) still not removed: %s", label, exp_id, e)
                    continue
                log.info("removed the tuner-server state of deleted experiment %s (%s)", label, exp_id)
                with self._lock:
                    self._pending.pop(exp_id, None)
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
