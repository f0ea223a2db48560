"""Every manifest in tests/invalid/ is refused before anything starts, with a message that
names the field or search-space parameter and the problem.

Each corpus file starts with one or more ``# expect: <substring>`` lines; every substring
must appear on stderr. The manifests' trial command would create ``started.marker`` next
to the manifest (the working directory of a local trial), so the file is copied into the
test's tmp dir and the marker's absence proves no trial process ran.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autotune_operator.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))
MARKER = "started.marker"


def expectations(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# expect:"):
            break
        out.append(line[len("# expect:") :].strip())
    return out


def run_in_tmp(path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Copy the manifest into tmp_path; return (the copy, the --output dir)."""
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    return copy, tmp_path / "out"


def assert_nothing_started(tmp_path: Path, out: Path) -> None:
    assert not (tmp_path / MARKER).exists(), "a trial process ran"
    assert not (out.exists() and list(out.rglob("trials"))), "a trials/ directory was created"


def test_corpus_is_large_enough():
    assert len(FILES) >= 30, f"only {len(FILES)} files in {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file_has_expectations(path: Path):
    expects = expectations(path)
    assert expects, f"{path.name} needs a first-line '# expect: <substring>' comment"
    assert all(expects), f"{path.name} has an empty expect line"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_run_refuses_invalid_manifest(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    manifest, out = run_in_tmp(path, tmp_path)
    code = main(["run", str(manifest), "--output", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    for expected in expectations(path):
        assert expected in err, f"{path.name}: expected {expected!r} in:\n{err}"
    assert_nothing_started(tmp_path, out)
    assert not out.exists(), "the output directory was created for an invalid experiment"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validate_refuses_invalid_manifest(path: Path, capsys: pytest.CaptureFixture[str]):
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    for expected in expectations(path):
        assert expected in err, f"{path.name}: expected {expected!r} in:\n{err}"


def test_marker_command_really_runs_for_a_valid_manifest(tmp_path: Path):
    """Control: with the one mistake fixed, the same manifest starts a trial that writes the
    marker, so the marker's absence above really means nothing ran."""
    text = (CORPUS / "max-trial-num-zero.yaml").read_text(encoding="utf-8")
    manifest = tmp_path / "valid.yaml"
    manifest.write_text(text.replace("maxTrialNum: 0", "maxTrialNum: 1"), encoding="utf-8")
    out = tmp_path / "out"
    main(["run", str(manifest), "--output", str(out), "--quiet"])
    assert (tmp_path / MARKER).exists()


def _autotune_command() -> list[str]:
    script = shutil.which("autotune", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "autotune_operator.cli"]


@pytest.mark.parametrize("name", ["bad-json-search-space", "max-trial-num-zero", "unknown-tuner"])
def test_console_script_exits_2_with_message(name: str, tmp_path: Path):
    manifest, out = run_in_tmp(CORPUS / f"{name}.yaml", tmp_path)
    proc = subprocess.run(
        [*_autotune_command(), "run", str(manifest), "--output", str(out)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    for expected in expectations(manifest):
        assert expected in proc.stderr
    assert proc.stdout == ""
    assert_nothing_started(tmp_path, out)
