"""A finished run's results folder that cannot be written (an archive, a read-only share, a
colleague's folder): `autotune ui` shows it and warm start imports from it. Real `autotune
run` / `autotune ui` processes; the folder is made read-only by a read-only bind mount (the
tests run as root, whom file permissions would not stop), skipped where mounting is not allowed."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, read_status, run_autotune, write_manifest


def toy(name: str, max_trials: int, warm: list[str] | None = None) -> dict:
    doc = manifest(name=name, tuner="TPE", max_trials=max_trials, concurrency=2,
                   space={"x": {"_type": "uniform", "_value": [-2, 2]}, "y": {"_type": "uniform", "_value": [-2, 2]}},
                   command=[sys.executable, str(TRIALS / "toy.py"), "--steps", "1"])
    if warm is not None:
        doc["spec"]["warmStart"] = {"experiments": warm}
    return doc


@pytest.fixture
def read_only_results(tmp_path: Path) -> Iterator[Path]:
    """tmp/out holding a finished run 'first', seen read-only at tmp/ro."""
    out, ro = tmp_path / "out", tmp_path / "ro"
    r = run_autotune(["run", str(write_manifest(tmp_path / "first.yaml", toy("first", 4))), "--output", str(out), "--quiet"])
    assert r.returncode == 0, r.stderr
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(out), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root in a namespace that may mount)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot make the bind mount read-only here")
        with pytest.raises(OSError):
            (ro / "first" / "probe").write_text("x")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_warm_start_imports_from_a_read_only_folder(tmp_path: Path, read_only_results: Path) -> None:
    """It said "experiment '.../ro/first' not found (cannot open ... as an AutoTune history
    (unable to open database file))" and started cold."""
    doc = toy("second", 2, warm=[str(read_only_results / "first")])
    r = run_autotune(["run", str(write_manifest(tmp_path / "second.yaml", doc)), "--output", str(tmp_path / "new"), "--quiet"])
    assert r.returncode == 0, r.stderr
    assert f"autotune: warm start: imported 4 trials from {read_only_results / 'first'}, skipped 0" in r.stderr, r.stderr
    assert read_status(tmp_path / "new", "second")["warmStart"]["imported"] == 4


def test_autotune_ui_shows_a_read_only_folder(read_only_results: Path) -> None:
    """It said '... is not an AutoTune history (unable to open database file)' and exited 2."""
    proc = subprocess.Popen(autotune_cmd() + ["ui", str(read_only_results / "first"), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stderr is not None
        link, deadline, said = None, time.monotonic() + 60, ""
        while link is None and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 1.0)[0]:
                line = proc.stderr.readline()
                said += line
                m = re.search(r"(http://127\.0\.0\.1:\d+/\S+)", line)
                link = m.group(1) if m else None
        assert link is not None, (proc.poll(), said)
        with httpx.Client(follow_redirects=True, timeout=10) as c:
            page = c.get(link)
            assert page.status_code == 200 and "local.first" in str(page.url)
            base = link.split("/ui/")[0]
            trials = c.get(f"{base}/ui/api/experiments/local.first/trials")
            assert trials.status_code == 200 and len(trials.json()) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
