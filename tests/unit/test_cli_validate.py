"""`autotune validate FILE`: exit 0 and a one-line summary for a valid experiment, 2 otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autotune_operator.cli import main

TESTS = Path(__file__).resolve().parents[1]
SEED = TESTS / "fixtures" / "seed-001-example.yaml"


def test_validate_seed_example(capsys: pytest.CaptureFixture[str]):
    assert main(["validate", str(SEED)]) == 0
    out, err = capsys.readouterr()
    assert out == (
        f"{SEED}: valid AutoTuneExperiment 'experiment-sample' "
        "(2 parameters, 20 configurations, tuner TPE, objective minimize)\n"
    )
    assert err == ""


def test_validate_prints_warnings_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    text = SEED.read_text(encoding="utf-8")
    text = text[: text.index("  tuner:")] + "  tuner:\n    builtinTunerName: Random\n"
    (tmp_path / "e.yaml").write_text(text, encoding="utf-8")
    assert main(["validate", str(tmp_path / "e.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "valid AutoTuneExperiment 'experiment-sample'" in out
    assert "tuner Random, objective maximize" in out
    assert "autotune: warning: no optimize_mode given anywhere" in err


def test_validate_infinite_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    text = SEED.read_text(encoding="utf-8").replace(
        '"_type": "choice", "_value": [0.0001, 0.001, 0.01, 0.1]', '"_type": "loguniform", "_value": [0.0001, 0.1]'
    )
    (tmp_path / "e.yaml").write_text(text, encoding="utf-8")
    assert main(["validate", str(tmp_path / "e.yaml")]) == 0
    assert "(2 parameters, infinite configurations," in capsys.readouterr().out


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot read" in err and "nope.yaml" in err


def test_console_script_validate(tmp_path: Path):
    script = shutil.which("autotune", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "autotune_operator.cli"]
    proc = subprocess.run([*cmd, "validate", str(SEED)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid AutoTuneExperiment 'experiment-sample' (2 parameters" in proc.stdout
