"""Warm start (spec.warmStart): before its first trial, an experiment imports the completed
trials of earlier experiments into its tuner, as observations.

Finding the earlier experiments differs (local mode reads an earlier run's autotune.db, the
operator asks the API server for the AutoTuneExperiment's uid and the tuner server for its
trials), so it is passed in as ``resolve``. What to do with what was found is decided here
without I/O (:func:`plan`): a source that is gone is a warning and the experiment goes on
without it (a deleted old experiment must not block a new one); a source that optimizes
something else is an error (its results would steer the search the wrong way); the rest is
imported. The tuner server skips (and counts) trials that do not fit the search space.

A source's tuner may write keys of its own into its trials' parameters (PBTTuner's
load_checkpoint_dir and save_checkpoint_dir): they are no search-space parameters of the
source (its validation refuses such names), so they are left out here, and the trial is
matched against the new search space by the source's search-space parameters alone. A
parameter the user named so under another tuner is one of theirs and is kept.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from autotune_operator.spec import NAME_RE, WarmStartSpec
from tuner_server.client import TunerClient, TunerServerError
from tuner_server.engine import Engine, EngineError, InvalidConfig, NotFound
from tuner_server.history import OptimizeMode
from tuner_server.objectives import Objective
from tuner_server.store import Store
from tuner_server.tuners import tuner_class
from tuner_server.warm_start import ImportRequest, ImportSource, objective_mismatch

# Trials that carry a result a tuner can learn from (a failed or stopped one has none).
_COMPLETED = ("SUCCEEDED", "EARLY_STOPPED")


@dataclass(frozen=True)
class SourceHistory:
    """An earlier experiment as found: what it optimized and its trials (trial views)."""

    name: str  # as listed in spec.warmStart.experiments
    optimize_mode: OptimizeMode
    objectives: list[Objective] | None
    trials: list[dict[str, Any]]
    max_budget: int | None = None  # an advisor's largest budget (None without an advisor)
    tuner: str | None = None  # the algorithm that ran it (its trials carry the keys it adds)


@dataclass(frozen=True)
class Missing:
    """An earlier experiment that could not be found, and why."""

    name: str
    reason: str


Lookup = SourceHistory | Missing


@dataclass(frozen=True)
class WarmStartPlan:
    request: ImportRequest | None  # None: nothing to import
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # the experiment cannot start as asked
    notes: list[str] = field(default_factory=list)  # what was done to the trials offered, for the report


@dataclass
class WarmStartOutcome:
    imported: int = 0  # trials imported now
    total: int = 0  # imported trials the experiment holds
    skipped: int = 0
    first_skip_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    line: str = ""  # the one-line report for the user
    earlier: bool = False  # the experiment had started already: nothing was imported now


def import_source(src: SourceHistory) -> ImportSource:
    """The source's completed trials, most recent first, as the tuner server takes them.

    From a multi-fidelity source only the runs at its largest budget are results of a whole
    training; the others are skipped and counted (a tuner here would read a 1-epoch accuracy
    as the accuracy of the configuration). Likewise a trial that went on training another
    trial's model (a later PBT generation: :meth:`Tuner.not_own_result`). The keys the
    source's tuner added to the parameters are left out (:func:`added_keys`)."""
    algo = tuner_class(src.tuner)
    added = added_keys(src)
    done = [t for t in src.trials
            if t.get("kind", "search") == "search" and t.get("state") in _COMPLETED and t.get("value") is not None]
    done.sort(key=lambda t: (t.get("ended") or 0.0, t.get("sequence", 0)), reverse=True)
    keep: list[dict[str, Any]] = []
    skipped, reason = 0, None
    for t in done:
        budget = t.get("budget")
        if src.max_budget is not None and budget is not None and budget < src.max_budget:
            skipped += 1
            reason = reason or f"{t['name']}: trained {budget} of {src.max_budget} epochs"
            continue
        params = t.get("parameters") or {}
        why = algo.not_own_result(params) if algo is not None and isinstance(params, Mapping) else None
        if why is not None:
            skipped += 1
            reason = reason or f"{t['name']}: {why}"
            continue
        if added and isinstance(params, Mapping):
            params = {k: v for k, v in params.items() if k not in added}
        metrics = t.get("metrics")
        keep.append({
            "id": t["name"],
            "parameters": params,
            "metric": metrics if isinstance(metrics, Mapping) else t["value"],
            "state": t["state"],
            "intermediate": list(t.get("intermediate") or []),
            "ended": t.get("ended"),
        })
    return ImportSource.model_validate({
        "name": src.name, "optimizeMode": src.optimize_mode, "objectives": src.objectives, "trials": keep,
        "skipped": skipped, "firstSkipReason": reason,
    })


def added_keys(src: SourceHistory) -> frozenset[str]:
    """The parameter keys the source's own tuner added to its trials (not the user's)."""
    algo = tuner_class(src.tuner)
    return algo.added_parameters if algo is not None else frozenset()


def added_note(src: SourceHistory) -> str | None:
    """What the report says of the keys left out of a source's trials (None: none were)."""
    keys = added_keys(src)
    if not keys:
        return None
    return f"{src.name}'s trials taken without the keys {src.tuner} adds ({', '.join(sorted(keys))})"


def plan(ws: WarmStartSpec, mode: OptimizeMode, objectives: Sequence[Objective] | None, found: Sequence[Lookup]) -> WarmStartPlan:
    """What to import, what to warn about, and whether the experiment must end ERROR."""
    warnings: list[str] = []
    notes: list[str] = []
    sources: list[ImportSource] = []
    for src in found:
        if isinstance(src, Missing):
            warnings.append(f"warm start: experiment '{src.name}' not found ({src.reason}); continuing without it")
            continue
        why = objective_mismatch(mode, objectives, src.optimize_mode, src.objectives)
        if why is not None:
            return WarmStartPlan(None, warnings, f"spec.warmStart: experiment '{src.name}' cannot guide this one: {why}")
        sources.append(import_source(src))
        note = added_note(src)
        if note is not None:
            notes.append(note)
    request = ImportRequest(sources=sources, maxTrials=ws.maxTrials) if sources else None
    return WarmStartPlan(request, warnings, notes=notes)


def report_line(result: Mapping[str, Any], notes: Sequence[str] = ()) -> str:
    """'warm start: imported 12 trials from a, b, skipped 3 (a-4: parameter 'x' is missing)',
    then ``notes`` (what was done to the trials offered: :func:`added_note`)."""
    srcs = result.get("sources") or []
    skipped = sum(s["skipped"] for s in srcs)
    reason = next((s["firstSkipReason"] for s in srcs if s.get("firstSkipReason")), None)
    over = sum(s.get("overLimit", 0) for s in srcs)
    names = ", ".join(s["name"] for s in srcs)
    # A pass repeated after a crash before the first trial imports nothing new; its line
    # replaces the first pass's in status.warmStart.message, so it says what is held.
    before = sum(s.get("alreadyImported", 0) for s in srcs)
    line = f"warm start: imported {result['imported']} trials from {names}"
    if before:
        line += f" ({before} imported before)"
    line += f", skipped {skipped}"
    if reason:
        line += f" (first: {reason})"
    if over:
        line += f"; {over} more left out by maxTrials"
    return "; ".join([line, *notes])


def run_warm_start(
    ws: WarmStartSpec, mode: OptimizeMode, objectives: Sequence[Objective] | None,
    client: TunerClient, exp_id: str, resolve: Callable[[str], Lookup],
) -> WarmStartOutcome:
    """Import once, before the experiment's first trial. Once it has issued trials (a restart
    of the controller or of ``autotune run``) nothing is imported again: the imports made
    then are in the tuner server. Importing is idempotent, so a crash between importing and
    the first trial only repeats it."""
    summary = client.summary(exp_id)
    held = int((summary.get("imported") or {}).get("total", 0))
    if summary["trials"]["total"] > 0:
        return WarmStartOutcome(total=held, earlier=True, line=f"warm start: {held} trials imported when the experiment started")
    p = plan(ws, mode, objectives, [resolve(name) for name in ws.experiments])
    out = WarmStartOutcome(total=held, warnings=list(p.warnings), error=p.error)
    if p.error is not None:
        out.line = p.error
        return out
    if p.request is None:
        out.line = "warm start: no earlier experiment found; starting cold"
        return out
    try:
        result = client.import_trials(exp_id, p.request)
    except (EngineError, TunerServerError) as e:
        if isinstance(e, TunerServerError) and not 400 <= e.status < 500:
            raise  # the server is in trouble, not the request: the caller retries
        out.error = out.line = f"spec.warmStart: the tuner server refused the import: {e}"
        return out
    out.imported, out.total = result["imported"], result["total"]
    out.skipped = sum(s["skipped"] for s in result["sources"])
    out.first_skip_reason = next((s["firstSkipReason"] for s in result["sources"] if s.get("firstSkipReason")), None)
    out.line = report_line(result, p.notes)
    return out


# ----- finding earlier experiments -----
def from_server(client: TunerClient, exp_id: str, name: str) -> Lookup:
    """An experiment the tuner server hosts (the operator's, or local mode's with --server)."""
    try:
        summary = client.summary(exp_id)
        trials = client.trials(exp_id)
    except NotFound:
        return Missing(name, "the tuner server has no history for it")
    except InvalidConfig as e:  # stored by an older version, refused by today's checks
        return Missing(name, str(e))
    except TunerServerError as e:
        if e.status == 404:
            return Missing(name, "the tuner server has no history for it")
        if e.status == 422:  # as InvalidConfig, over HTTP: the source's problem, not this experiment's
            return Missing(name, str(e))
        raise
    objectives = [Objective.model_validate(o) for o in summary["objectives"]] if summary.get("objectives") else None
    return SourceHistory(name, OptimizeMode(summary["optimizeMode"]), objectives, trials, summary.get("maxBudget"),
                         summary.get("tuner"))


def local_run_dir(entry: str, output: Path, cwd: Path) -> Path:
    """Where an earlier local run of ``entry`` left its results: a folder (or its autotune.db)
    given as a path, else ``<output>/<entry>``, the folder `autotune run --output` wrote."""
    if "/" in entry or entry.startswith("."):
        p = Path(entry).expanduser()
        p = p if p.is_absolute() else cwd / p
        return p.parent if p.name == "autotune.db" else p
    return output / entry


def from_local_run(entry: str, output: Path, cwd: Path) -> Lookup:
    """An earlier `autotune run` from its results folder (its autotune.db)."""
    run = local_run_dir(entry, output, cwd)
    db = run / "autotune.db"
    if not db.is_file():
        return Missing(entry, f"no {db}")
    try:
        store = Store(db, readonly=True)  # a source is read, never changed (its folder may be read-only)
    except sqlite3.DatabaseError as e:  # another file by that name, an older one: a missing source, not a crash
        return Missing(entry, f"cannot open {db} as an AutoTune history ({e})")
    try:
        try:
            engine = Engine(store)
        except (EngineError, sqlite3.DatabaseError) as e:  # written by a version with other algorithms or settings
            return Missing(entry, f"cannot read {db}: {e}")
        hosted = engine.list()
        h = hosted[0] if len(hosted) == 1 else next((x for x in hosted if x.stored.id == f"local.{run.name}"), None)
        if h is None:
            return Missing(entry, f"{db} holds {len(hosted)} experiments, none named local.{run.name}")
        exp_id = h.stored.id
        return SourceHistory(entry, h.mode, list(h.objectives) or None, engine.trials_view(exp_id), engine.max_budget(exp_id),
                             h.tuner.name)
    finally:
        store.close()


def merge_status(previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """status.warmStart after a restart: the counts are the tuner server's, the message and the
    skipped count of the pass that imported are kept (a later pass does not know them)."""
    if current is None:
        return dict(previous) if previous else None
    out = dict(previous or {})
    out.update({k: v for k, v in current.items() if v is not None})
    return out


def local_finder(output: Path, cwd: Path, own: Path, server: TunerClient | None = None) -> Callable[[str], Lookup]:
    """How `autotune run` finds an earlier run: its folder on disk; with ``--server``, else the
    server's experiment ``local.<name>``. Its own results folder is never a source."""

    def find(entry: str) -> Lookup:
        if local_run_dir(entry, output, cwd).resolve() == own.resolve():
            return Missing(entry, "that is this experiment's own results folder")
        found = from_local_run(entry, output, cwd)
        if isinstance(found, Missing) and server is not None and "/" not in entry:
            on_server = from_server(server, f"local.{entry}", entry)
            return on_server if isinstance(on_server, SourceHistory) else Missing(entry, f"{found.reason}; {on_server.reason}")
        return found

    return find


def cluster_finder(get_experiment: Callable[[str], Mapping[str, Any] | None], client: TunerClient,
                   namespace: str) -> Callable[[str], Lookup]:
    """How the operator finds an earlier AutoTuneExperiment of ``namespace``: its uid from the
    API server (``get_experiment`` gives None for a 404 and raises on other errors, which the
    reconcile loop retries), then its trials from the tuner server, which keys them by uid."""

    def find(name: str) -> Lookup:
        if not NAME_RE.match(name) or len(name) > 253:
            return Missing(name, "not an AutoTuneExperiment name (a folder path only works in local mode)")
        obj = get_experiment(name)
        if obj is None:
            return Missing(name, f"no AutoTuneExperiment '{name}' in namespace {namespace}")
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if not uid:
            return Missing(name, "it has no uid")
        return from_server(client, uid, name)

    return find
