"""Warm start in the operator and local mode: the pure decision (what to import, warn about,
or refuse), which of a source's trials are offered, the one-line report, and finding
earlier local runs on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotune_operator.spec import SpecError, WarmStartSpec, load_experiment_text
from autotune_operator.warm_start import (
    Missing,
    SourceHistory,
    from_local_run,
    from_server,
    import_source,
    local_finder,
    merge_status,
    plan,
    report_line,
    run_warm_start,
)
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine, ExperimentConfig, NotNow
from tuner_server.history import OptimizeMode
from tuner_server.objectives import Objective
from tuner_server.store import Store

MAX, MIN = OptimizeMode.MAXIMIZE, OptimizeMode.MINIMIZE
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}


def view(name: str, state: str = "SUCCEEDED", value: float | None = 0.5, ended: float = 1.0, **kw: Any) -> dict[str, Any]:
    return {"name": name, "sequence": int(name.rsplit("-", 1)[1]), "parameters": {"x": 0.5}, "state": state, "value": value,
            "metrics": None, "intermediate": [0.1, value], "ended": ended, "kind": "search", "budget": None, **kw}


def source(name: str = "old", mode: OptimizeMode = MAX, trials: list[dict[str, Any]] | None = None, **kw: Any) -> SourceHistory:
    return SourceHistory(name, mode, kw.pop("objectives", None), trials if trials is not None else [view("old-0")], **kw)


# ----- plan: the decision -----
def test_missing_source_warns_and_the_rest_is_imported() -> None:
    p = plan(WarmStartSpec(experiments=["gone", "old"]), MAX, None, [Missing("gone", "no AutoTuneExperiment 'gone'"), source()])
    assert p.error is None
    assert p.warnings == ["warm start: experiment 'gone' not found (no AutoTuneExperiment 'gone'); continuing without it"]
    assert p.request is not None and [s.name for s in p.request.sources] == ["old"]


def test_every_source_missing_starts_cold() -> None:
    p = plan(WarmStartSpec(experiments=["gone"]), MAX, None, [Missing("gone", "x")])
    assert p.request is None and p.error is None and len(p.warnings) == 1


def test_another_objective_is_an_error_naming_both() -> None:
    p = plan(WarmStartSpec(experiments=["old"]), MAX, None, [source(mode=MIN)])
    assert p.request is None
    assert p.error == ("spec.warmStart: experiment 'old' cannot guide this one: it optimizes one objective (minimize) "
                       "but this experiment one objective (maximize)")
    objs = [Objective(name="acc", optimizeMode=MAX), Objective(name="size", optimizeMode=MIN)]
    p = plan(WarmStartSpec(experiments=["old"]), MAX, objs, [source()])
    assert p.error is not None and "objectives acc maximize, size minimize" in p.error
    assert plan(WarmStartSpec(experiments=["old"]), MAX, objs, [source(objectives=objs)]).error is None


def test_max_trials_reaches_the_request() -> None:
    p = plan(WarmStartSpec(experiments=["old"], maxTrials=3), MAX, None, [source()])
    assert p.request is not None and p.request.maxTrials == 3


# ----- which trials of a source are offered -----
def test_only_completed_search_trials_most_recent_first() -> None:
    trials = [
        view("old-0", ended=10.0),
        view("old-1", state="FAILED", value=None),
        view("old-2", state="EARLY_STOPPED", value=0.3, ended=30.0),
        view("old-3", state="STOPPED", value=None),
        view("old-4", ended=20.0, metrics={"default": 0.7, "loss": 0.2}, value=0.7),
        view("old-final-5", kind="final", ended=40.0),
        view("old-6", state="RUNNING", value=None),
    ]
    s = import_source(source(trials=trials))
    assert [t.id for t in s.trials] == ["old-2", "old-4", "old-0"]
    assert s.trials[1].metric == {"default": 0.7, "loss": 0.2}  # the dict as reported
    assert s.trials[0].metric == 0.3 and s.trials[0].state == "EARLY_STOPPED"
    assert s.skipped == 0 and s.firstSkipReason is None


def test_lower_rungs_of_an_advisor_are_skipped_and_counted() -> None:
    trials = [view("old-0", budget=1, ended=1.0), view("old-1", budget=3, ended=2.0), view("old-2", budget=9, ended=3.0)]
    s = import_source(source(trials=trials, max_budget=9))
    assert [t.id for t in s.trials] == ["old-2"]
    assert s.skipped == 2 and s.firstSkipReason == "old-1: trained 3 of 9 epochs"


def test_report_line() -> None:
    result = {"imported": 5, "total": 5, "sources": [
        {"name": "a", "imported": 3, "skipped": 1, "firstSkipReason": "a-2: parameter 'x' is missing", "overLimit": 0},
        {"name": "b", "imported": 2, "skipped": 2, "firstSkipReason": "b-0: x", "overLimit": 4},
    ]}
    assert report_line(result) == ("warm start: imported 5 trials from a, b, skipped 3 (first: a-2: parameter 'x' is missing); "
                                   "4 more left out by maxTrials")


def test_merge_status_keeps_what_only_the_importing_pass_knew() -> None:
    first = {"imported": 4, "sources": {"a": 4}, "skipped": 1, "message": "warm start: imported 4 trials from a, skipped 1"}
    later = {"imported": 4, "sources": {"a": 4}, "skipped": None, "message": None}
    assert merge_status(first, later) == first
    assert merge_status(first, None) == first
    assert merge_status(None, None) is None


# ----- run_warm_start against a real engine -----
def config(mode: str = "maximize") -> ExperimentConfig:
    return ExperimentConfig.model_validate({"searchSpace": json.dumps(SPACE), "tuner": {"name": "TPE", "classArgs": {"optimize_mode": mode}},
                                            "optimizeMode": mode})


def test_imports_once_before_the_first_trial() -> None:
    engine = Engine(Store(":memory:"))
    engine.register("n", "n", config())
    client = InProcessClient(engine)
    ws = WarmStartSpec(experiments=["old"])
    trials = [view(f"old-{i}", ended=float(i)) for i in range(3)]
    trials[1]["parameters"] = {"x": 3.0}
    out = run_warm_start(ws, MAX, None, client, "n", lambda name: source(trials=trials))
    assert (out.imported, out.total, out.skipped, out.error) == (2, 2, 1, None)
    assert out.line == "warm start: imported 2 trials from old, skipped 1 (first: old-1: parameter 'x' = 3.0 is outside [0, 1])"
    again = run_warm_start(ws, MAX, None, client, "n", lambda name: source(trials=trials))  # crash before the first trial
    assert (again.imported, again.total) == (0, 2)
    # this pass's line replaces the first one's in status.warmStart.message: it must not read as "nothing imported"
    assert again.line == "warm start: imported 0 trials from old (2 imported before), skipped 1 (first: old-1: parameter 'x' = 3.0 is outside [0, 1])"
    engine.suggest("n")
    later = run_warm_start(ws, MAX, None, client, "n", lambda name: pytest.fail("looked up after the experiment started"))
    assert later.earlier and later.total == 2 and later.line == "warm start: 2 trials imported when the experiment started"


# ----- sources whose tuner adds parameters of its own (PBT) -----
def run_pbt(engine: Engine, exp_id: str, generations: int = 2) -> None:
    """A real PBTTuner experiment of population 2: generation 0 from scratch, later ones
    going on from a checkpoint (their parameters carry load/save_checkpoint_dir)."""
    engine.register(exp_id, exp_id, ExperimentConfig.model_validate({
        "searchSpace": json.dumps(SPACE), "optimizeMode": "maximize",
        "tuner": {"name": "PBTTuner", "classArgs": {"population_size": 2, "all_checkpoint_dir": "/ck"}}}))
    for g in range(generations):
        for m in range(2):
            a = engine.suggest(exp_id)
            assert a is not None and not isinstance(a, NotNow)
            engine.started(exp_id, a.trial_id)
            engine.report_final(exp_id, a.trial_id, 0.1 * (2 * g + m + 1))
            engine.end(exp_id, a.trial_id, 0)


def test_a_pbt_sources_trials_are_imported_without_the_keys_pbt_added() -> None:
    """PBT trials carry load_checkpoint_dir and save_checkpoint_dir, which no search space
    has: every trial was skipped ("parameter(s) [...] are not in the search space") and a
    warm start from a PBT experiment imported nothing. Those keys are left out now; a later
    generation's trial (it went on from another's model) is skipped and counted, as an
    advisor's lower rungs are."""
    engine = Engine(Store(":memory:"))
    run_pbt(engine, "pbt")
    engine.register("n", "n", config())
    client = InProcessClient(engine)
    found = from_server(client, "pbt", "pbt")  # the tuner server's summary names the source's tuner
    assert isinstance(found, SourceHistory) and found.tuner == "PBTTuner"
    out = run_warm_start(WarmStartSpec(experiments=["pbt"]), MAX, None, client, "n", lambda name: found)
    assert (out.imported, out.skipped, out.error) == (2, 2, None), out.line
    assert out.line.startswith("warm start: imported 2 trials from pbt, skipped 2 (first: pbt-3: went on training the "
                               "model of an earlier PBT generation (load_checkpoint_dir '/ck/"), out.line
    assert out.line.endswith("; pbt's trials taken without the keys PBTTuner adds "
                             "(load_checkpoint_dir, save_checkpoint_dir)"), out.line
    imported = engine.summary("n")["imported"]
    assert imported == {"total": 2, "sources": {"pbt": 2}}
    held = {t.trial_id: t.parameters for t in engine.get("n").imported}
    assert sorted(held) == ["imported:pbt:pbt-0", "imported:pbt:pbt-1"], held
    assert all(set(p) == {"x"} for p in held.values()), held


def test_a_pbt_run_on_disk_is_a_source_with_its_tuner(tmp_path: Path) -> None:
    e = Engine(Store(tmp_path / "runs" / "pbt" / "autotune.db"))
    run_pbt(e, "local.pbt", generations=1)
    e.store.close()
    found = from_local_run("pbt", tmp_path / "runs", tmp_path)
    assert isinstance(found, SourceHistory) and found.tuner == "PBTTuner"
    s = import_source(found)
    assert [t.parameters for t in s.trials] == [{"x": t["parameters"]["x"]} for t in reversed(found.trials)]


def test_a_users_own_parameter_named_like_pbts_is_kept() -> None:
    """Only the keys the source's own tuner added are left out: under TPE a parameter named
    save_checkpoint_dir is the user's, and a space without it must not take the trial."""
    trials = [view("old-0", parameters={"x": 0.5, "save_checkpoint_dir": "/a"})]
    s = import_source(source(trials=trials, tuner="TPE"))
    assert s.trials[0].parameters == {"x": 0.5, "save_checkpoint_dir": "/a"}
    assert plan(WarmStartSpec(experiments=["old"]), MAX, None, [source(trials=trials, tuner="TPE")]).notes == []
    engine = Engine(Store(":memory:"))
    engine.register("n", "n", config())
    out = run_warm_start(WarmStartSpec(experiments=["old"]), MAX, None, InProcessClient(engine), "n",
                         lambda name: source(trials=trials, tuner="TPE"))
    assert (out.imported, out.skipped) == (0, 1)
    assert out.first_skip_reason == "old-0: parameter(s) ['save_checkpoint_dir'] are not in the search space"


# ----- local runs on disk -----
def test_local_runs_by_name_and_by_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    e = Engine(Store(out / "old" / "autotune.db"))
    e.register("local.old", "old", config("minimize"))
    a = e.suggest("local.old")
    e.started("local.old", a.trial_id)
    e.report_final("local.old", a.trial_id, 0.25)
    e.end("local.old", a.trial_id, 0)
    e.store.close()
    by_name = from_local_run("old", out, tmp_path)
    by_path = from_local_run("runs/old", out, tmp_path)
    by_db = from_local_run(str(out / "old" / "autotune.db"), out, Path("/"))
    for found in (by_name, by_path, by_db):
        assert isinstance(found, SourceHistory) and found.optimize_mode is MIN
        assert [t["name"] for t in found.trials] == ["old-0"] and found.trials[0]["value"] == 0.25
    missing = from_local_run("nope", out, tmp_path)
    assert isinstance(missing, Missing) and str(out / "nope" / "autotune.db") in missing.reason
    own = local_finder(out, tmp_path, out / "old")("old")
    assert isinstance(own, Missing) and "own results folder" in own.reason


def test_a_source_folder_whose_autotune_db_is_not_a_history_is_missing(tmp_path: Path) -> None:
    # A missing source is a warning; an unreadable one must not crash `autotune run` with a traceback.
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "autotune.db").write_text("not a database\n")
    found = from_local_run("old", tmp_path / "runs", tmp_path)
    assert isinstance(found, Missing) and "cannot open" in found.reason and "not a database" in found.reason, found
    assert (tmp_path / "runs" / "old" / "autotune.db").read_text() == "not a database\n"  # left as it was


# ----- the spec -----
MANIFEST = """
apiVersion: tensorstack.dev/v1beta1
kind: AutoTuneExperiment
metadata: {name: new}
spec:
  searchSpace: '{"x": {"_type": "uniform", "_value": [0, 1]}}'
  trainingConfig:
    type: pytorch
    tasks: [{type: master, template: {spec: {containers: [{name: t, image: i, command: [python3, t.py]}]}}}]
  tuner: {builtinTunerName: %s}
  warmStart: %s
"""


def test_spec_accepts_warm_start() -> None:
    exp = load_experiment_text(MANIFEST % ("TPE", "{experiments: [old, runs/older], maxTrials: 50}"))
    assert exp.spec.warmStart == WarmStartSpec(experiments=["old", "runs/older"], maxTrials=50)


@pytest.mark.parametrize("tuner, warm, problem", [
    ("TPE", "{experiments: [new]}", "spec.warmStart.experiments[0]: 'new' is this experiment itself"),
    ("TPE", "{experiments: [old], maxTrial: 3}", "spec.warmStart.maxTrial: unknown field"),
    ("TPE", "{experiments: old}", "spec.warmStart.experiments: Input should be a valid list"),
    ("TPE", "{experiments: ['']}", "spec.warmStart.experiments[0]: must name an earlier experiment, not be blank"),
    # Whitespace only was taken, and the operator then gave a Warning Event for 'experiment '  ''.
    ("TPE", "{experiments: [old, '  ']}", "spec.warmStart.experiments[1]: must name an earlier experiment, not be blank"),
    ("TPE", "{experiments: [\"\\t\\n\"]}", "spec.warmStart.experiments[0]: must name an earlier experiment, not be blank"),
    ("TPE", "{experiments: [old], maxTrials: true}", "spec.warmStart.maxTrials: must be an integer, not a boolean"),
    ("Batch", "{experiments: [old]}", "spec.warmStart: Batch takes no imported trials"),
    ("PBTTuner", "{experiments: [old]}", "spec.warmStart: PBTTuner takes no imported trials"),
])
def test_spec_names_the_warm_start_field(tuner: str, warm: str, problem: str) -> None:
    text = MANIFEST % (tuner, warm)
    if tuner == "Batch":
        text = text.replace('{"x": {"_type": "uniform", "_value": [0, 1]}}', '{"p": {"_type": "choice", "_value": [{"x": 1}]}}')
    with pytest.raises(SpecError) as e:
        load_experiment_text(text)
    assert any(problem in p for p in e.value.problems), e.value.problems


# ----- the operator's lookup: API server (uid), then tuner server -----
def test_cluster_finder() -> None:
    from autotune_operator.warm_start import cluster_finder

    engine = Engine(Store(":memory:"))
    engine.register("uid-old", "old", config("minimize"))
    objects = {"old": {"metadata": {"name": "old", "uid": "uid-old"}}, "stale": {"metadata": {"name": "stale", "uid": "uid-gone"}}}
    asked: list[str] = []

    def get(name: str) -> dict[str, Any] | None:
        asked.append(name)
        return objects.get(name)

    find = cluster_finder(get, InProcessClient(engine), "team-a")
    found = find("old")
    assert isinstance(found, SourceHistory) and found.name == "old" and found.optimize_mode is MIN
    gone = find("deleted")
    assert isinstance(gone, Missing) and gone.reason == "no AutoTuneExperiment 'deleted' in namespace team-a"
    stale = find("stale")  # the object exists but the tuner server has no state for its uid
    assert isinstance(stale, Missing) and "no history" in stale.reason
    path = find("runs/old")
    assert isinstance(path, Missing) and "local mode" in path.reason
    assert asked == ["old", "deleted", "stale"]  # a path never reaches the API server


def test_local_mode_with_server_finds_local_runs_there(tmp_path: Path) -> None:
    engine = Engine(Store(":memory:"))
    engine.register("local.old", "old", config())
    find = local_finder(tmp_path / "runs", tmp_path, tmp_path / "runs" / "new", server=InProcessClient(engine))
    found = find("old")  # no folder on this machine: the server's local.old
    assert isinstance(found, SourceHistory) and found.name == "old"
    missing = find("other")
    assert isinstance(missing, Missing) and "no history" in missing.reason and "autotune.db" in missing.reason


def test_a_source_the_tuner_server_can_no_longer_load_is_missing_not_an_error(tmp_path: Path) -> None:
    # An earlier experiment stored by an older server whose config newer checks refuse: the
    # server answers 422 for it. That must leave the new experiment to start without it (a
    # Warning), not end it ERROR as if the server had refused the new experiment itself.
    from autotune_operator.warm_start import cluster_finder, from_server
    from tuner_server.client import HttpClient
    from tuner_server.embedded import EmbeddedServer
    from tuner_server.store import StoredExperiment

    store = Store(tmp_path / "t.db")
    bad = {"searchSpace": json.dumps(SPACE), "tuner": {"name": "Random", "classArgs": {}},
           "assessor": {"name": "Curvefitting", "classArgs": {"threshold": float("nan")}}}
    store.add_experiment(StoredExperiment("uid-old", "old", bad, "t" * 32, 1.0))
    engine = Engine(store)
    find = cluster_finder(lambda name: {"metadata": {"name": name, "uid": "uid-old"}}, InProcessClient(engine), "ns")
    found = find("old")
    assert isinstance(found, Missing) and "no longer loads" in found.reason, found
    admin = "a" * 32
    with EmbeddedServer(engine, admin) as server:
        over_http = from_server(HttpClient(server.url, admin), "uid-old", "old")
    assert isinstance(over_http, Missing) and "no longer loads" in over_http.reason, over_http
