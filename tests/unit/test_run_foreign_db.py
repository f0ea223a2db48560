"""`autotune run` on a folder whose autotune.db is not an AutoTune history refuses it and
leaves the folder as it was: it said 'left untouched' but had already written its spec
there as experiment.json (the record a later resume compares the spec with: once the
user put their own history back, any change to the spec passed unchecked) and the SDK."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autotune_operator.cli import main

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed-001-example.yaml"


def test_a_folder_with_a_foreign_database_is_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    manifest = tmp_path / "exp.yaml"
    shutil.copyfile(SEED, manifest)
    folder = tmp_path / "out" / "experiment-sample"
    folder.mkdir(parents=True)
    (folder / "autotune.db").write_bytes(b"not sqlite, someone's file")
    before = sorted(p.name for p in folder.iterdir())
    code = main(["run", str(manifest), "--output", str(tmp_path / "out"), "--workdir", str(tmp_path), "--quiet"])
    assert code == 2
    assert "is not an AutoTune history" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == before
