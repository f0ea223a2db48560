"""The progress line on a real terminal (a pty 80 columns wide): each rewrite must fit on
one row, since "\\r\\033[K" goes back to the start of, and clears, only the cursor's row."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios

from autotune_operator.decide import Phase
from autotune_operator.progress import Progress
from autotune_operator.status import BestTrial, ExperimentStatus, TrialCounts


def _status(succeeded: int) -> ExperimentStatus:
    return ExperimentStatus(
        phase=Phase.RUNNING,
        trials=TrialCounts(total=succeeded + 5, succeeded=succeeded, failed=1, earlyStopped=2, running=2),
        bestTrial=BestTrial(name="local.digits-mlp-classifier-12", sequence=12, parameters={"lr": 0.01}, value=0.9611111),
    )


def test_each_rewrite_of_the_line_fits_the_terminal_width() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    stream = os.fdopen(slave, "w", encoding="utf-8")
    chunks = []
    try:
        p = Progress(50, stream=stream)
        assert p.tty
        for k in range(3):
            p.update(_status(10 + k))
        stream.close()  # then the master reads everything written, and EIO at its end
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if not stream.closed:
            stream.close()
        os.close(master)
    written = b"".join(chunks).decode()
    lines = [x for x in written.split("\r\x1b[K") if x]
    assert len(lines) == 3
    # Before the fix each was the whole ~110-character line: it wrapped onto a second
    # row, which the next rewrite left behind, so the terminal filled with stale lines.
    assert all(len(x) < 80 for x in lines), [len(x) for x in lines]
    assert all(x.startswith("[00:00] RUNNING | trials") for x in lines)
    # What gives way first is the per-state counts and the best trial's name, not its value.
    assert lines[-1].endswith("done, 2 running | best 0.961111")
