"""Durable history of every experiment: SQLite, written before anything is acknowledged.

Each mutation is one transaction that updates the current state (experiments, trials,
intermediate metrics) and appends to an event log, with ``synchronous=FULL`` so that a
SIGKILL (or power loss) after an acknowledgement loses nothing. On start the tuner
server reads the state back and rebuilds every experiment's tuner from it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tuner_server.history import TrialRecord, TrialState
from tuner_server.retention import Lifecycle

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    token TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    exp_id TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    metrics TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    message TEXT,
    budget INTEGER,
    info TEXT,
    kind TEXT NOT NULL DEFAULT 'search',
    PRIMARY KEY (exp_id, trial_id),
    UNIQUE (exp_id, sequence)
);
CREATE TABLE IF NOT EXISTS intermediate (
    exp_id TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    metrics TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (exp_id, trial_id, step)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exp_id TEXT NOT NULL,
    trial_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_exp ON events (exp_id, id);
-- Experiments' registrations and deletions only (a partial index: the other events, most of
-- the log, cost it nothing): the purge of deleted experiments' events finds them here
-- without scanning the log (Store.deleted_lifecycles). Built once on an older database.
CREATE INDEX IF NOT EXISTS events_lifecycle ON events (exp_id, kind, id)
    WHERE kind IN ('experiment_registered', 'experiment_deleted');
-- Warm start: completed trials of earlier experiments, observations for the tuner only
-- (not trials of this experiment). Keyed by source and source trial id, so importing the
-- same source again adds nothing. A table of its own (created here on old databases too,
-- so no column migration is needed) keeps the trials table's sequences this experiment's.
CREATE TABLE IF NOT EXISTS imported_trials (
    exp_id TEXT NOT NULL,
    source TEXT NOT NULL,
    source_trial TEXT NOT NULL,
    position INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL NOT NULL,
    metrics TEXT,
    intermediate TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (exp_id, source, source_trial)
);
"""

# The schema this version writes, kept in the file (PRAGMA user_version): a database of a
# newer one is refused (NewerDatabase) before anything is written to it, as an AutoTune rolled
# back (pip, helm rollback) would write rows that schema does not expect. 0: written before
# versions were kept (migrated by Store._migrate, then marked with this one).
SCHEMA_VERSION = 1

# Columns added after the first release: (name, declaration), added by Store._migrate.
_TRIAL_COLUMNS_ADDED = (("budget", "INTEGER"), ("info", "TEXT"), ("kind", "TEXT NOT NULL DEFAULT 'search'"))
# owner: JSON {namespace, name, uid} of the AutoTuneExperiment that created the experiment
# (NULL for local mode and for experiments an older operator created).
_EXPERIMENT_COLUMNS_ADDED = (("owner", "TEXT"),)


@dataclass
class StoredExperiment:
    id: str
    name: str
    config: dict[str, Any]
    token: str
    created: float
    owner: dict[str, str] | None = None


@dataclass
class ImportedTrial:
    """A completed trial of an earlier experiment, imported as an observation (warm start)."""

    source: str
    source_trial: str
    position: int  # order in the tuner's history: imported trials come first, oldest first
    parameters: dict[str, Any]
    state: TrialState
    value: float
    metrics: Any  # the final metric as reported (a number or a dict)
    intermediate: list[float]


@dataclass
class StoredTrial:
    record: TrialRecord
    stop_requested: bool
    created: float
    started: float | None
    ended: float | None
    exit_code: int | None
    message: str | None


class NewerDatabase(sqlite3.DatabaseError):
    """The database was written by a newer AutoTune (its schema version is above ours)."""


def open_problem(path: str | Path, e: sqlite3.DatabaseError) -> str:
    """What to tell the user when :class:`Store` cannot open ``path``. A history another
    program holds locked (an sqlite3 shell or a backup in a transaction) is not called 'not
    an AutoTune history': its owner might then throw it away."""
    if isinstance(e, NewerDatabase):
        return str(e)
    if getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return f"{path} is locked by another program ({e}); end that program's use of it and try again"
    return f"{path} is not an AutoTune history ({e})"


class Store:
    """One SQLite database; a lock serialises writers (SQLite would anyway)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        """``readonly``: read a history without writing to it or its folder (`autotune ui`, a
        warm start's source), which may then be read-only (an archive, a colleague's folder):
        no pragma, schema or migration is applied, and every write raises."""
        self.path = str(path)
        if readonly:
            self._db = _open_read_only(Path(self.path))
        else:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            found = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:  # first, before the pragmas below change the file
                self._db.close()
                raise NewerDatabase(f"{self.path} was written by a newer AutoTune (schema version {found}; this one "
                                    f"reads up to {SCHEMA_VERSION}): upgrade AutoTune to use it; it was left as it was")
            if readonly:
                self._check_readable()
                return
            # Space freed by purging deleted experiments' events (purge.py) is given back to the
            # file system page by page (Store.reclaim). Takes effect only on a new, empty
            # database: an older one keeps auto_vacuum NONE, its freed pages reused by new
            # writes, until converted offline (docs/kubernetes.md).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._migrate()
            if found < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_readable(self) -> None:
        """A history opened read-only cannot be migrated: refuse one that lacks what the reads use."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in ("experiments", "trials", "intermediate", "events", "imported_trials") if t not in tables]
        for table, added in (("trials", _TRIAL_COLUMNS_ADDED), ("experiments", _EXPERIMENT_COLUMNS_ADDED)):
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
            missing += [f"{table}.{col}" for col, _ in added if have and col not in have]
        if missing:
            self._db.close()
            raise sqlite3.DatabaseError(f"it lacks {', '.join(missing)}: written by an older AutoTune, it is updated "
                                        f"when opened where it can be written (autotune run on its folder)")

    def _migrate(self) -> None:
        """Add the columns a database written by an older version lacks (budget, info, kind; owner)."""
        for table, added in (("trials", _TRIAL_COLUMNS_ADDED), ("experiments", _EXPERIMENT_COLUMNS_ADDED)):
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
            for col, decl in added:
                if col not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ----- writes: each is one transaction plus an event -----
    def _tx(self, exp_id: str, trial_id: str | None, kind: str, payload: Mapping[str, Any], stmts: list[tuple[str, tuple]],
            also: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> None:
        """``stmts`` and the event (kind, payload), then the events ``also`` (kind, payload)
        of the same trial, in one transaction."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in stmts:
                    cur.execute(sql, args)
                now = time.time()
                for k, p in ((kind, payload), *also):
                    cur.execute(
                        "INSERT INTO events (exp_id, trial_id, kind, payload, ts) VALUES (?, ?, ?, ?, ?)",
                        (exp_id, trial_id, k, json.dumps(p, default=str), now),
                    )
                cur.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) has rolled back already: a second ROLLBACK would
                # raise "no transaction is active" and hide why the write failed.
                if self._db.in_transaction:
                    cur.execute("ROLLBACK")
                raise

    def add_experiment(self, exp: StoredExperiment) -> None:
        self._tx(
            exp.id,
            None,
            "experiment_registered",
            {"name": exp.name, "config": exp.config, **({"owner": exp.owner} if exp.owner else {})},
            [
                (
                    "INSERT INTO experiments (id, name, config, token, created, owner) VALUES (?, ?, ?, ?, ?, ?)",
                    (exp.id, exp.name, json.dumps(exp.config), exp.token, exp.created,
                     json.dumps(exp.owner) if exp.owner else None),
                )
            ],
        )

    def delete_experiment(self, exp_id: str) -> None:
        self._tx(
            exp_id,
            None,
            "experiment_deleted",
            {},
            [
                ("DELETE FROM intermediate WHERE exp_id = ?", (exp_id,)),
                ("DELETE FROM trials WHERE exp_id = ?", (exp_id,)),
                ("DELETE FROM imported_trials WHERE exp_id = ?", (exp_id,)),
                ("DELETE FROM experiments WHERE id = ?", (exp_id,)),
            ],
        )

    def add_trial(self, exp_id: str, t: TrialRecord, created: float) -> None:
        self._tx(
            exp_id,
            t.trial_id,
            "trial_issued",
            {"sequence": t.sequence, "parameters": t.parameters, "budget": t.budget, "info": t.info, "kind": t.kind},
            [
                (
                    "INSERT INTO trials (exp_id, trial_id, sequence, parameters, state, created, budget, info, kind) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (exp_id, t.trial_id, t.sequence, json.dumps(t.parameters), t.state.value, created, t.budget,
                     json.dumps(t.info) if t.info is not None else None, t.kind),
                )
            ],
        )

    def add_imported(self, exp_id: str, trials: list[ImportedTrial], ts: float) -> None:
        """Import trials in one transaction (all or none); a key seen before is ignored."""
        per_source: dict[str, int] = {}
        for t in trials:
            per_source[t.source] = per_source.get(t.source, 0) + 1
        self._tx(
            exp_id,
            None,
            "trials_imported",
            {"sources": per_source},
            [
                (
                    "INSERT OR IGNORE INTO imported_trials (exp_id, source, source_trial, position, parameters, state, "
                    "value, metrics, intermediate, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (exp_id, t.source, t.source_trial, t.position, json.dumps(t.parameters), t.state.value, t.value,
                     json.dumps(t.metrics), json.dumps(t.intermediate), ts),
                )
                for t in trials
            ],
        )

    def set_started(self, exp_id: str, trial_id: str, ts: float) -> None:
        self._tx(
            exp_id,
            trial_id,
            "trial_started",
            {},
            [("UPDATE trials SET state = ?, started = COALESCE(started, ?) WHERE exp_id = ? AND trial_id = ?",
              (TrialState.RUNNING.value, ts, exp_id, trial_id))],
        )

    def set_start_time(self, exp_id: str, trial_id: str, ts: float) -> None:
        """Correct when a trial began (its state unchanged): the executor saw it start
        earlier than first recorded, e.g. before the trial's first metric report."""
        self._tx(
            exp_id,
            trial_id,
            "trial_start_time",
            {"started": ts},
            [("UPDATE trials SET started = ? WHERE exp_id = ? AND trial_id = ?", (ts, exp_id, trial_id))],
        )

    def add_intermediate(self, exp_id: str, trial_id: str, step: int, value: float, metrics: Any, ts: float,
                         also: tuple[str, Mapping[str, Any]] | None = None, source: str | None = None,
                         replacing: Mapping[str, Any] | None = None, session: str | None = None,
                         restarting: Mapping[str, Any] | None = None) -> None:
        """A curve point; with ``also``, the event (kind, payload) that logged it in the same
        transaction: an MLflow or collected metric (mlflow_runs.py) recorded in a transaction
        of its own before its point was lost the point for ever when the server died between
        the two commits (replayed, the event made the retry look done). ``source``: the
        channel it came by (curve_source.py), kept in its event for a restarted server.
        ``replacing``: the payload of the event ``curve_source`` when this point replaces the
        trial's curve so far (a lower ranked channel's, curve_source.py): those points are
        deleted in this point's transaction. Dropped in a transaction of their own, a server
        killed before the point's commit left the trial with no curve at all.
        ``session``: the SDK process that sent it (report_session.py), kept in its event.
        ``restarting``: the payload of the event ``curve_restarted`` when this point is a new
        run's (report_session.py): the points after its step go in its transaction too (the
        one at its step it replaces), their events staying, and the trial's final result when
        the payload's ``droppedFinal`` says the replaced run had reported one."""
        point = ("intermediate_metric",
                 {"step": step, "value": value, "metrics": metrics, **({"source": source} if source else {}),
                  **({"session": session} if session else {})})
        events = [*([("curve_source", dict(replacing))] if replacing is not None else []),
                  *([("curve_restarted", dict(restarting))] if restarting is not None else []), point,
                  *([also] if also is not None else [])]
        drop: list[tuple[str, tuple]] = []
        if replacing is not None:
            drop = [("DELETE FROM intermediate WHERE exp_id = ? AND trial_id = ?", (exp_id, trial_id))]
        elif restarting is not None:
            drop = [("DELETE FROM intermediate WHERE exp_id = ? AND trial_id = ? AND step > ?", (exp_id, trial_id, step))]
            if restarting.get("droppedFinal") is not None:  # the replaced run's final result
                drop.append(("UPDATE trials SET value = NULL, metrics = NULL WHERE exp_id = ? AND trial_id = ?",
                             (exp_id, trial_id)))
        self._tx(
            exp_id,
            trial_id,
            *events[0],
            [
                *drop,
                (
                    "INSERT OR REPLACE INTO intermediate (exp_id, trial_id, step, value, metrics, ts) VALUES (?, ?, ?, ?, ?, ?)",
                    (exp_id, trial_id, step, value, json.dumps(metrics), ts),
                ),
            ],
            events[1:],
        )

    def set_final(self, exp_id: str, trial_id: str, value: float, metrics: Any,
                  also: tuple[str, Mapping[str, Any]] | None = None, session: str | None = None) -> None:
        """The trial's final result; with ``also``, the event (kind, payload) that made it in
        the same transaction: mlflow_runs.py's ``mlflow_final``, which tells a final result
        taken from MLflow from the SDK's (written apart, a crash between the two commits left
        MLflow's result looking like the SDK's, which later logged values never replace).
        ``session``: the SDK process that sent it (report_session.py), kept in its event."""
        self._tx(
            exp_id,
            trial_id,
            "final_metric",
            {"value": value, "metrics": metrics, **({"session": session} if session else {})},
            [("UPDATE trials SET value = ?, metrics = ? WHERE exp_id = ? AND trial_id = ?",
              (value, json.dumps(metrics), exp_id, trial_id))],
            [also] if also is not None else (),
        )

    def set_stop_requested(self, exp_id: str, trial_id: str, reason: str) -> None:
        self._tx(
            exp_id,
            trial_id,
            "stop_requested",
            {"reason": reason},
            [("UPDATE trials SET stop_requested = 1 WHERE exp_id = ? AND trial_id = ?", (exp_id, trial_id))],
        )

    def add_event(self, exp_id: str, trial_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        """An event with no table of its own (a trial's MLflow run: tuner_server/mlflow_runs.py),
        read back with :meth:`trial_events`."""
        self._tx(exp_id, trial_id, kind, payload, [])

    def set_ended(
        self, exp_id: str, trial_id: str, state: TrialState, value: float | None, exit_code: int | None, message: str | None, ts: float
    ) -> None:
        self._tx(
            exp_id,
            trial_id,
            "trial_ended",
            {"state": state.value, "value": value, "exitCode": exit_code, "message": message},
            [
                (
                    "UPDATE trials SET state = ?, value = ?, exit_code = ?, message = ?, ended = ? WHERE exp_id = ? AND trial_id = ?",
                    (state.value, value, exit_code, message, ts, exp_id, trial_id),
                )
            ],
        )

    def requeue_trial(self, exp_id: str, trial_id: str, message: str, ts: float, dropped: Mapping[str, Any]) -> None:
        """The trial's attempt was interrupted by the user: WAITING again, its curve, result,
        times and stop request of that attempt dropped (the event keeps what was dropped, the
        curve's points stay in their own events), created anew at ``ts`` so its MLflow run
        starts anew too (mlflow_runs.py keys runs by the trial's creation)."""
        self._tx(
            exp_id,
            trial_id,
            "trial_requeued",
            {"message": message, "dropped": dict(dropped)},
            [
                ("DELETE FROM intermediate WHERE exp_id = ? AND trial_id = ?", (exp_id, trial_id)),
                ("UPDATE trials SET state = ?, value = NULL, metrics = NULL, stop_requested = 0, created = ?, started = NULL, "
                 "ended = NULL, exit_code = NULL, message = ? WHERE exp_id = ? AND trial_id = ?",
                 (TrialState.WAITING.value, ts, message, exp_id, trial_id)),
            ],
        )

    # ----- reads -----
    def experiments(self) -> Iterator[StoredExperiment]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, config, token, created, owner FROM experiments ORDER BY created").fetchall()
        for r in rows:
            yield StoredExperiment(r[0], r[1], json.loads(r[2]), r[3], r[4], json.loads(r[5]) if r[5] else None)

    def trials(self, exp_id: str) -> list[StoredTrial]:
        with self._lock:
            rows = self._db.execute(
                "SELECT trial_id, sequence, parameters, state, value, metrics, stop_requested, created, started, ended, "
                "exit_code, message, budget, info, kind FROM trials WHERE exp_id = ? ORDER BY sequence",
                (exp_id,),
            ).fetchall()
            inter = self._db.execute(
                "SELECT trial_id, value FROM intermediate WHERE exp_id = ? ORDER BY trial_id, step", (exp_id,)
            ).fetchall()
        curves: dict[str, list[float]] = {}
        for tid, v in inter:
            curves.setdefault(tid, []).append(v)
        out = []
        for r in rows:
            rec = TrialRecord(
                sequence=r[1],
                trial_id=r[0],
                parameters=json.loads(r[2]),
                state=TrialState(r[3]),
                value=r[4],
                # The engine keeps only a dict here (a plain number is the value): a number read
                # back made a restarted run's trials.csv differ from an uninterrupted one's.
                metrics=_dict_or_none(json.loads(r[5]) if r[5] else None),
                intermediate=curves.get(r[0], []),
                budget=r[12],
                info=json.loads(r[13]) if r[13] else None,
                kind=r[14] or "search",
            )
            out.append(StoredTrial(rec, bool(r[6]), r[7], r[8], r[9], r[10], r[11]))
        return out

    def imported(self, exp_id: str) -> list[ImportedTrial]:
        with self._lock:
            rows = self._db.execute(
                "SELECT source, source_trial, position, parameters, state, value, metrics, intermediate "
                "FROM imported_trials WHERE exp_id = ? ORDER BY position",
                (exp_id,),
            ).fetchall()
        return [ImportedTrial(r[0], r[1], r[2], json.loads(r[3]), TrialState(r[4]), r[5], json.loads(r[6] or "null"),
                              json.loads(r[7] or "[]")) for r in rows]

    def intermediate(self, exp_id: str, trial_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT step, value, metrics, ts FROM intermediate WHERE exp_id = ? AND trial_id = ? ORDER BY step",
                (exp_id, trial_id),
            ).fetchall()
        return [{"step": r[0], "value": r[1], "metrics": json.loads(r[2]) if r[2] else None, "ts": r[3]} for r in rows]

    def trial_events(self, exp_id: str, trial_id: str, prefix: str, newest: bool = False) -> list[dict[str, Any]]:
        """One trial's events whose kind starts with ``prefix``, oldest first, since the
        experiment's newest registration: an id registered again after a deletion has trials
        of the same names, and its runs neither inherit the deleted ones' events nor read
        them (up to a million per trial) until they are purged. ``newest``: only the last one.
        Each with its ``id``, the order events of several kinds were written in."""
        with self._lock:
            # The kind IN (...) term lets SQLite use the partial index events_lifecycle.
            (since,) = self._db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM events WHERE exp_id = ? "
                "AND kind IN ('experiment_registered', 'experiment_deleted') AND kind = 'experiment_registered'",
                (exp_id,),
            ).fetchone()
            rows = self._db.execute(
                "SELECT kind, payload, id FROM events WHERE exp_id = ? AND id > ? AND trial_id = ? AND substr(kind, 1, ?) = ? "
                + ("ORDER BY id DESC LIMIT 1" if newest else "ORDER BY id"),
                (exp_id, since, trial_id, len(prefix), prefix),
            ).fetchall()
        return [{"kind": r[0], "payload": json.loads(r[1] or "null"), "id": r[2]} for r in rows]

    def last_event_id(self, exp_id: str) -> int:
        """The newest event's id for this experiment (0 if none): a cheap change marker."""
        with self._lock:
            row = self._db.execute("SELECT MAX(id) FROM events WHERE exp_id = ?", (exp_id,)).fetchone()
        return int(row[0] or 0)

    def events(self, exp_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, trial_id, kind, payload, ts FROM events WHERE exp_id = ? AND id > ? ORDER BY id LIMIT ?",
                (exp_id, after, limit),
            ).fetchall()
        return [{"id": r[0], "trialId": r[1], "kind": r[2], "payload": json.loads(r[3] or "null"), "ts": r[4]} for r in rows]

    # ----- purging deleted experiments' events (tuner_server/purge.py decides what and when) -----
    def deleted_lifecycles(self) -> list[Lifecycle]:
        """Every experiment id with a deletion still in the event log, from the partial index
        events_lifecycle (registrations and deletions only, not the whole log)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT exp_id, kind, MAX(id), ts FROM events WHERE kind IN ('experiment_registered', 'experiment_deleted') "
                "GROUP BY exp_id, kind"
            ).fetchall()
            newest = {r[0]: self._db.execute("SELECT MAX(id) FROM events WHERE exp_id = ?", (r[0],)).fetchone()[0]
                      for r in rows if r[1] == "experiment_deleted"}
        registered = {r[0]: int(r[2]) for r in rows if r[1] == "experiment_registered"}
        return [Lifecycle(r[0], int(r[2]), float(r[3]), registered.get(r[0]), int(newest[r[0]]))
                for r in rows if r[1] == "experiment_deleted"]

    def purge_events(self, exp_id: str, before: int, marker: int, limit: int) -> tuple[int, float]:
        """Delete at most ``limit`` events of ``exp_id`` with an id below ``before``, oldest first,
        in one transaction; ``marker`` (its deletion event) only with the last of them, so a
        purge cut short is found again. Returns (events deleted, seconds the write lock was
        held): fewer than ``limit`` deleted means none is left."""
        with self._lock:
            start = time.perf_counter()
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                n = cur.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE exp_id = ? AND id < ? AND id <> ? "
                    "ORDER BY id LIMIT ?)", (exp_id, before, marker, limit)).rowcount
                if n < limit:
                    n += cur.execute("DELETE FROM events WHERE id = ? AND exp_id = ? AND id < ?",
                                     (marker, exp_id, before)).rowcount
                cur.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            return n, time.perf_counter() - start

    def reclaims_space(self) -> bool:
        """Whether freed pages can be given back to the file system (auto_vacuum=INCREMENTAL:
        databases created by this version; older ones reuse them for new writes instead)."""
        with self._lock:
            return int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2

    def reclaim(self, pages: int) -> tuple[int, float]:
        """Give at most ``pages`` free pages back to the file system (incremental vacuum: a
        few pages per call, so the write lock is never held long). Returns (free pages left,
        seconds held); nothing is done unless :meth:`reclaims_space`."""
        with self._lock:
            start = time.perf_counter()
            if self.reclaims_space():
                # executescript steps the pragma to its end: execute() stopped after its first step,
                # which frees one page (the pragma returns no row to fetch).
                self._db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
            left = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
            return left, time.perf_counter() - start

    def checkpoint(self) -> float:
        """Copy the write-ahead log into the database (the truncation done by :meth:`reclaim`
        reaches the file only so). PASSIVE: the log file is reused, not truncated, which held
        the write lock ~5x longer (bench/store_retention.py). Returns the seconds held."""
        with self._lock:
            start = time.perf_counter()
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return time.perf_counter() - start


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path``. SQLite reads a WAL database through a shared-memory
    file beside it, which a read-only folder cannot hold: there the file is read as it is
    (immutable), which holds the whole history once its run ended (the last connection
    copies the log into it) -- unless a log is left over (a run that died), then refused."""
    if not path.is_file():
        raise sqlite3.OperationalError("unable to open database file")
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA user_version").fetchone()
        return db
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False, isolation_level=None)


def _dict_or_none(v: Any) -> dict[str, Any] | None:
    return v if isinstance(v, dict) else None
