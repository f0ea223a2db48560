"""A finished `autotune run` leaves autotune.db whole: the file alone holds the history.

The README names `autotune.db` as the run's full history. SQLite in WAL mode keeps new
pages in `autotune.db-wal` until a checkpoint, which happens when the last connection
closes. `autotune run` never closed its store, so after a normal run autotune.db was a
4 KiB shell and the history (3.5 MB for examples/digits-hyperband.yaml) sat in the -wal
file: a user who copied or attached autotune.db alone had no tables at all.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.integration.conftest import manifest, read_status, run_autotune, write_manifest


def test_the_history_is_in_autotune_db_alone_after_a_run(tmp_path: Path) -> None:
    exp = write_manifest(tmp_path / "e.yaml", manifest(name="whole", max_trials=3, concurrency=1))
    out = tmp_path / "out"
    r = run_autotune(["run", str(exp), "--output", str(out), "--quiet"])
    assert r.returncode == 0, r.stderr
    assert read_status(out, "whole")["phase"] == "DONE"

    folder = out / "whole"
    assert not (folder / "autotune.db-wal").exists(), "the run left its history in the write-ahead log"
    copy = tmp_path / "copy.db"  # what a user copying the file alone gets
    shutil.copy(folder / "autotune.db", copy)
    db = sqlite3.connect(copy)
    try:
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 3
    finally:
        db.close()
