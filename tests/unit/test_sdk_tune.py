"""autotune.tune() in the SDK file: standard library only, as a trial sees it (the single
file local mode puts on a trial's PYTHONPATH, no site-packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import autotune


def sdk_only(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "autotune").mkdir()
    shutil.copyfile(autotune.__file__, tmp_path / "autotune" / "__init__.py")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")}
    # -S: no site-packages, so neither AutoTune's other packages nor any dependency is importable.
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={**clean, "PYTHONPATH": str(tmp_path), "PYTHONSAFEPATH": "1", **env})


def test_sdk_without_autotune_installed_says_what_tune_needs(tmp_path: Path) -> None:
    r = sdk_only(tmp_path, "import autotune\nautotune.tune(len, {})")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("ImportError: autotune.tune() needs AutoTune itself installed, "
                                                 "not only the trial SDK"), r.stderr


def test_tune_inside_a_trial_asks_for_the_main_guard_before_importing_anything(tmp_path: Path) -> None:
    r = sdk_only(tmp_path, "import autotune\nautotune.tune(len, {})", AUTOTUNE_TRIAL_ID="exp-3")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last == (
        "RuntimeError: autotune.tune() was called inside a trial process, which imports the function's file: "
        "put the tune() call under 'if __name__ == \"__main__\":' so that importing the file does not run it")
