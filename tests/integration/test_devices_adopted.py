"""`autotune run --devices 0,1` killed and run again: the trials it adopts keep their devices
busy, so no trial of the new run is given a device an adopted one still uses (two trials on
one GPU). Real processes: SGDClassifier on digits (ledger_sgd.py), killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, read_status, write_manifest

NAME = "devices-adopted"
# The device and the wall-clock start and end of each trial process, from the trial's side.
# Trials on device 0 take longer, so the adopted one on device 1 ends first: a new trial given
# "the first device no running trial marks" would then land on device 0, still in use.
SCRIPT = ('echo "$CUDA_VISIBLE_DEVICES $(date +%s.%N) start" >> "$AUTOTUNE_TRIAL_DIR/device.txt"; '
          'if [ "$CUDA_VISIBLE_DEVICES" = 0 ]; then sleep 5; fi; '
          '"$0" "$@"; code=$?; echo "$CUDA_VISIBLE_DEVICES $(date +%s.%N) end" >> "$AUTOTUNE_TRIAL_DIR/device.txt"; '
          'exit $code')


def intervals(out: Path) -> list[tuple[str, str, float, float]]:
    rows = []
    for f in sorted((out / NAME / "trials").glob("*/device.txt")):
        lines = [ln.split() for ln in f.read_text().splitlines()]
        start = next(float(t) for _, t, ev in lines if ev == "start")
        end = next(float(t) for _, t, ev in lines if ev == "end")
        rows.append((f.parent.name, lines[0][0], start, end))
    return rows


def test_adopted_trials_keep_their_devices(tmp_path: Path) -> None:
    doc = manifest(name=NAME, max_trials=5, concurrency=2,
                   space={"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-2]}},
                   command=["sh", "-c", SCRIPT, sys.executable, str(TRIALS / "ledger_sgd.py"), "--epochs", "3",
                            "--sleep", "1.5"],
                   class_args={"optimize_mode": "maximize"})
    path = write_manifest(tmp_path / "e.yaml", doc)
    out = tmp_path / "out"
    cmd = autotune_cmd() + ["run", str(path), "--output", str(out), "--devices", "0,1", "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / NAME / "trials").glob("*/device.txt"))) < 2:  # both devices busy
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start 2 trials"
            time.sleep(0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # its trials run on, to be adopted
        first.wait()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"autotune: resuming {NAME}: 2 trials so far"), r.stderr
    assert read_status(out, NAME)["trials"]["succeeded"] == 5
    rows = intervals(out)
    assert len(rows) == 5 and {d for _, d, _, _ in rows} == {"0", "1"}, rows
    for i, (a, dev_a, s_a, e_a) in enumerate(rows):
        for b, dev_b, s_b, e_b in rows[i + 1:]:
            if dev_a == dev_b:
                assert e_a <= s_b or e_b <= s_a, f"{a} and {b} ran on device {dev_a} at once: {rows}"
