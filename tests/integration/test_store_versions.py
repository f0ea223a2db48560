"""autotune.db across AutoTune versions, with real `autotune run` and tuner server processes
training scikit-learn models: a history written by an older version (its first schema) is
migrated and resumed; one written by a newer version (a schema version above this one's) is
refused, saying so, before anything is written to it (an AutoTune rolled back by a `pip
install` or `helm rollback` must not write rows a newer schema does not expect)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port, manifest, read_status, run_autotune, write_manifest
from tuner_server.store import SCHEMA_VERSION, Store

REPO = Path(__file__).resolve().parents[2]
NAME = "digits-versions"


def digits(max_trials: int) -> dict:
    return manifest(name=NAME, tuner="Random", max_trials=max_trials, concurrency=2,
                    space={"hidden_units": {"_type": "choice", "_value": [16, 32]},
                           "learning_rate": {"_type": "loguniform", "_value": [0.001, 0.1]}},
                    command=[sys.executable, str(REPO / "examples" / "digits_mlp.py"), "--epochs", "2"])


def files_of(folder: Path) -> tuple[str, int]:
    """The database file's digest, and the size of its write-ahead log (checkpointed into the
    file before the comparisons, so all of the history is in the file and none in the log)."""
    wal = folder / "autotune.db-wal"
    return hashlib.sha256((folder / "autotune.db").read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else 0


def version(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("PRAGMA user_version").fetchone()[0])


def test_a_history_of_a_newer_version_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(2))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    db = out / NAME / "autotune.db"
    assert version(db) == SCHEMA_VERSION
    con = sqlite3.connect(db)  # as a newer AutoTune would leave it
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file itself, to compare
    con.close()
    before = files_of(db.parent)

    write_manifest(path, digits(4))  # a resume: it would add trials to the newer history
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"was written by a newer AutoTune (schema version {SCHEMA_VERSION + 1}" in r.stderr, r.stderr
    assert "not an AutoTune history" not in r.stderr
    assert files_of(db.parent) == before
    assert read_status(out, NAME)["trials"]["total"] == 2

    # The tuner server (the operator's, on its volume) refuses it too, and writes nothing.
    server = subprocess.run([sys.executable, "-m", "tuner_server", "--db", str(db), "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "AUTOTUNE_ADMIN_TOKEN": "x" * 20})
    assert server.returncode == 2 and "was written by a newer AutoTune" in server.stderr, server.stderr
    assert files_of(db.parent) == before


def test_a_history_of_the_first_schema_is_migrated_and_resumed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(2))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    db = out / NAME / "autotune.db"
    # Back to the first release's schema: no budget/info/kind, no owner, no warm start table,
    # no lifecycle index, no schema version.
    con = sqlite3.connect(db)
    for table, col in (("trials", "budget"), ("trials", "info"), ("trials", "kind"), ("experiments", "owner")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    con.execute("DROP TABLE imported_trials")
    con.execute("DROP INDEX events_lifecycle")
    con.execute("PRAGMA user_version = 0")
    con.commit()
    con.close()

    write_manifest(path, digits(4))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    s = read_status(out, NAME)
    assert s["phase"] == "DONE" and s["trials"]["total"] == 4 and s["trials"]["succeeded"] == 4, s
    assert version(db) == SCHEMA_VERSION
    with sqlite3.connect(db) as con:
        kinds = [k for (k,) in con.execute("SELECT kind FROM trials ORDER BY sequence")]
    assert kinds == ["search"] * 4


def test_a_history_another_program_holds_locked_is_called_locked_not_foreign(tmp_path: Path) -> None:
    """An sqlite3 shell (or a backup) in a write transaction on autotune.db: `autotune run`
    said '... is not an AutoTune history (database is locked); use another --output', which
    invites throwing a good history away."""
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "e.yaml", digits(2))
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
    assert r.returncode == 0, r.stderr
    db = out / NAME / "autotune.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        write_manifest(path, digits(3))
        r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)
        assert r.returncode == 2, r.stderr
        assert f"{db} is locked by another program (database is locked)" in r.stderr, r.stderr
        assert "not an AutoTune history" not in r.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], timeout=300)  # once it is free
    assert r.returncode == 0, r.stderr
    assert read_status(out, NAME)["trials"]["total"] == 3


def test_a_first_schema_history_opened_read_only_says_how_to_update_it(tmp_path: Path) -> None:
    """Read-only (autotune ui, a warm start's source) nothing can be migrated: it says so
    rather than failing on the first query with 'no such column: budget'."""
    db = tmp_path / "autotune.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, "
                      "token TEXT NOT NULL, created REAL NOT NULL);"
                      "CREATE TABLE trials (exp_id TEXT, trial_id TEXT, sequence INTEGER, parameters TEXT, state TEXT, "
                      "value REAL, metrics TEXT, stop_requested INTEGER, created REAL, started REAL, ended REAL, "
                      "exit_code INTEGER, message TEXT);"
                      "CREATE TABLE intermediate (exp_id TEXT, trial_id TEXT, step INTEGER, value REAL, metrics TEXT, ts REAL);"
                      "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, exp_id TEXT, trial_id TEXT, kind TEXT, "
                      "payload TEXT, ts REAL);")
    con.close()
    with pytest.raises(sqlite3.DatabaseError, match=r"lacks imported_trials, trials.budget, trials.info, trials.kind, "
                                                    r"experiments.owner: written by an older AutoTune"):
        Store(db, readonly=True)
    Store(db).close()  # where it can be written it is migrated
    Store(db, readonly=True).close()
