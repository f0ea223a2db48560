"""A maxTrialSeconds stop's reason, recognised again by a run started after the one that
made it died (decide.overdue_reason; the local executor keeps a kill's reason on disk)."""

from __future__ import annotations

from autotune_operator.decide import is_overdue_reason, overdue_reason


def test_an_overdue_stop_is_recognised_from_its_reason_with_any_limit() -> None:
    assert is_overdue_reason(overdue_reason(30))
    assert is_overdue_reason(overdue_reason(7200))  # the limit may have been raised since
    assert not is_overdue_reason("stopped early by the assessor")
    assert not is_overdue_reason("maxExecSeconds (60) reached")
    assert not is_overdue_reason("interrupted by the user; run the same command again to continue")
    assert not is_overdue_reason(None)
