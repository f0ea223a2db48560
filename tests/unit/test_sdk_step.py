"""report_intermediate_result(metric, step=k): a resumed script names the step it goes on at.
The step must be a non-negative integer; anything else is refused before any report, naming
the argument (in a process not connected to a tuner server too, so a script fails the same way
when run by hand)."""

from __future__ import annotations

import numpy as np
import pytest

import autotune


@pytest.fixture
def by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTOTUNE_SERVER_URL", "AUTOTUNE_TOKEN", "AUTOTUNE_EXPERIMENT_ID", "AUTOTUNE_TRIAL_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(autotune._state, "step", 0)


@pytest.mark.parametrize("step, error", [(-1, ValueError), (True, TypeError), (1.0, TypeError), ("2", TypeError)])
def test_a_step_that_is_not_a_non_negative_int_is_refused_naming_it(by_hand: None, step: object,
                                                                    error: type[Exception]) -> None:
    with pytest.raises(error, match=r"step must be a non-negative int .*got"):
        autotune.report_intermediate_result(0.5, step=step)  # type: ignore[arg-type]
    assert autotune._state["step"] == 0  # nothing taken


def test_the_reports_after_a_given_step_follow_it(by_hand: None, capsys: pytest.CaptureFixture[str]) -> None:
    autotune.report_intermediate_result(0.5, step=np.int64(4))  # an epoch counter of numpy's counts
    autotune.report_intermediate_result(0.6)
    assert capsys.readouterr().err.splitlines() == ["[autotune] intermediate result 4: 0.5",
                                                    "[autotune] intermediate result 5: 0.6"]
