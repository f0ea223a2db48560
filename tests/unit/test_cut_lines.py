"""Which ended trials may have been cut in the middle of their last line (cut_lines.py)."""

from __future__ import annotations

import pytest

from autotune_operator.cut_lines import killed_mid_write


@pytest.mark.parametrize(("exit_code", "killed", "cut"), [
    (0, False, False),  # exited by itself: its exit flushed whole lines
    (1, False, False),
    (0, True, True),  # stopped by the experiment (an assessor, maxTrialSeconds, its end)
    (None, False, True),  # gone without an exit code (its workload deleted)
    (-9, False, True),  # a local process killed by SIGKILL
    (137, False, True),  # 128 + 9 from a shell or a container
    (143, False, True),  # 128 + 15
    (192, False, True),  # 128 + 64, SIGRTMAX
    (193, False, False),  # past every signal: a code the script chose
    (255, False, False),  # `exit 255`, sys.exit(-1)
])
def test_only_a_kill_or_a_signals_exit_code_means_the_last_line_may_be_cut(
        exit_code: int | None, killed: bool, cut: bool) -> None:
    assert killed_mid_write(exit_code, killed) is cut
