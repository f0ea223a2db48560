"""`autotune run` that can no longer write its results (a full disk, a broken folder) stops
its trials and says why and how to continue, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import manifest, run_autotune, write_manifest


def test_an_unwritable_status_file_ends_the_run_with_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", manifest(name="unwritable", max_trials=2))
    (out / "unwritable" / "status.json").mkdir(parents=True)  # os.replace onto it fails (EISDIR)
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert f"autotune: cannot record results in {out / 'unwritable'}" in r.stderr, r.stderr
    assert "run the same command again to continue" in r.stderr, r.stderr
