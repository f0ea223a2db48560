"""The part of an Executor (autotune_operator/executors/base.py) that the unit tests'
in-process fakes have in common: no capacity limit, trials that start when launched (no
start times to report, no replaced attempts), nothing to wait for or shut down. A fake
subclasses FakeExecutor and writes only what its trials do: launch, active, poll, kill (and
read_log where output is read); it overrides the rest where it differs (a queued cluster)."""

from __future__ import annotations

from typing import Mapping


class FakeExecutor:
    starts_on_launch = True

    def capacity(self) -> int | None:
        return None

    def started(self) -> Mapping[str, float]:
        return {}

    def attempt_starts(self) -> Mapping[str, float | None]:
        return {}

    def wait(self, timeout: float) -> None:
        pass

    def shutdown(self) -> None:
        pass
