"""PBTTuner: classArgs, generations (TryLater until one ends), exploit/explore, checkpoint paths."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.unit.tuner_helpers import record
from tuner_server.engine import Engine, ExperimentConfig
from tuner_server.history import OptimizeMode, TrialState
from tuner_server.searchspace import parse_search_space
from tuner_server.store import Store
from tuner_server.tuners import TryLater, TunerArgsError, create_tuner

SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1.0]},
    "bs": {"_type": "choice", "_value": [16, 32, 64, 128]},
    "opt": {"_type": "choice", "_value": ["sgd", "adam"]},
    "layers": {"_type": "randint", "_value": [1, 8]},
}


def pbt(args, space=SPACE, seed=0):
    return create_tuner("PBTTuner", parse_search_space(space), args, seed)


def test_class_args_and_defaults(monkeypatch):
    monkeypatch.setenv("AUTOTUNE_CHECKPOINT_DIR", "/shared/ckpt")
    t = pbt({}, seed=7)
    assert t.mode is OptimizeMode.MAXIMIZE and t.checkpoint_dir == "/shared/ckpt/7"
    assert (t.population_size, t.factor, t.resample_probability, t.fraction, t.n_exploit) == (10, 0.2, 0.25, 0.2, 2)
    monkeypatch.delenv("AUTOTUNE_CHECKPOINT_DIR")
    assert pbt({}, seed=3).checkpoint_dir == os.path.join(os.path.expanduser("~"), "autotune-checkpoints", "3")
    t = pbt({"all_checkpoint_dir": "/mnt/c", "population_size": 4, "factor": 0.5, "resample_probability": 0, "fraction": 0.25})
    assert (t.checkpoint_dir, t.population_size, t.n_exploit) == ("/mnt/c", 4, 1)


@pytest.mark.parametrize(
    "args, words",
    [({"all_checkpoint_dir": 3}, "all_checkpoint_dir"), ({"all_checkpoint_dir": " "}, "all_checkpoint_dir"),
     ({"population_size": 1}, "population_size"), ({"factor": 1.5}, "factor"),
     ({"resample_probability": -0.1}, "resample_probability"), ({"fraction": 0.8}, "fraction"),
     ({"frobnicate": 1}, "frobnicate")],
)
def test_bad_class_args(args, words):
    with pytest.raises(TunerArgsError, match=words):
        pbt(args)


def test_unsupported_and_reserved_names():
    with pytest.raises(TunerArgsError, match="layer_choice"):
        pbt({}, {"ops": {"_type": "layer_choice", "_value": ["a", "b"]}})
    with pytest.raises(TunerArgsError, match="save_checkpoint_dir"):
        pbt({}, {"save_checkpoint_dir": {"_type": "uniform", "_value": [0, 1]}})


def score(p):
    return -abs(np.log10(p["lr"]) + 2) - (p["opt"] != "adam") + p["layers"] / 10


def run_generation(t, hist, seed, finish=True):
    g0 = len(hist)
    for m in range(t.population_size):
        hist.append(record(g0 + m, t.suggest(hist, np.random.default_rng([seed, g0 + m])), None, TrialState.RUNNING))
    if finish:
        for i in range(g0, len(hist)):
            hist[i] = record(i, hist[i].parameters, score(hist[i].parameters))
    return hist[g0:]


def test_generations_checkpoints_exploit_and_explore():
    t = pbt({"all_checkpoint_dir": "/ckpt", "population_size": 10, "optimize_mode": "maximize"})
    hist = []
    gen0 = run_generation(t, hist, 0, finish=False)
    assert [p.parameters["load_checkpoint_dir"] for p in gen0] == [""] * 10
    assert [p.parameters["save_checkpoint_dir"] for p in gen0] == [f"/ckpt/{m}/0" for m in range(10)]
    with pytest.raises(TryLater):  # generation 0 is still running: nothing to give
        t.suggest(hist, np.random.default_rng(0))
    for i in range(9):
        hist[i] = record(i, hist[i].parameters, score(hist[i].parameters))
    hist[9] = record(9, hist[9].parameters, None, TrialState.FAILED)  # a failed member ranks last
    with pytest.raises(TryLater):
        hist[8] = record(8, hist[8].parameters, None, TrialState.RUNNING)
        t.suggest(hist, np.random.default_rng(0))
    hist[8] = record(8, hist[8].parameters, score(hist[8].parameters))
    gen1 = run_generation(t, hist, 1)
    vals = [score(h.parameters) for h in gen0[:9]] + [-np.inf]
    ranking = sorted(range(10), key=lambda i: (-vals[i], i))
    top, bottom = ranking[:2], ranking[-2:]
    strip = lambda p: {k: v for k, v in p.items() if not k.endswith("checkpoint_dir")}
    for m, h in enumerate(gen1):
        p = h.parameters
        assert p["save_checkpoint_dir"] == f"/ckpt/{m}/1"
        if m in bottom:
            src = int(p["load_checkpoint_dir"].split("/")[2])
            assert src in top and p["load_checkpoint_dir"] == f"/ckpt/{src}/0"
            assert parse_search_space(SPACE).contains(strip(p))
        else:
            assert p["load_checkpoint_dir"] == f"/ckpt/{m}/0"
            assert strip(p) == strip(gen0[m].parameters)


def test_explore_perturbs_and_resamples():
    t = pbt({"resample_probability": 0.0, "factor": 0.2})
    flat = {"lr": 0.01, "bs": 1, "opt": 0, "layers": 4}
    rng = np.random.default_rng(0)
    outs = [t.explore(flat, rng) for _ in range(200)]
    assert all(abs(o["lr"] / 0.01 - 1) == pytest.approx(0.2) for o in outs)
    assert {o["bs"] for o in outs} == {0, 2} and {o["opt"] for o in outs} == {0, 1}
    assert {o["layers"] for o in outs} <= {3, 5}
    t = pbt({"resample_probability": 1.0})
    outs = [t.explore(flat, rng)["lr"] for _ in range(50)]
    assert len(set(outs)) == 50  # fresh prior draws


def test_deterministic_and_improves_over_generations():
    t = pbt({"population_size": 8, "resample_probability": 0.25})
    hist = []
    means = []
    for g in range(8):
        gen = run_generation(t, hist, 0)
        means.append(np.mean([h.value for h in hist[-8:]]))
    assert means[-1] > means[0]
    a = pbt({"population_size": 8}).suggest(hist, np.random.default_rng(3))
    b = pbt({"population_size": 8}).suggest(list(hist), np.random.default_rng(3))
    assert a == b


def test_default_root_is_keyed_by_the_experiment_and_a_resume_keeps_the_first_trials_root(monkeypatch):
    monkeypatch.setenv("AUTOTUNE_CHECKPOINT_DIR", "/shared/ckpt")
    a, b = pbt({"population_size": 2}), pbt({"population_size": 2})
    a.bind_experiment("exp-a")
    b.bind_experiment("team/exp b")  # not a path: one directory level, safe characters
    rng = np.random.default_rng(0)
    assert a.suggest([], rng)["save_checkpoint_dir"] == "/shared/ckpt/exp-a/0/0"
    assert b.suggest([], rng)["save_checkpoint_dir"] == "/shared/ckpt/team_exp_b/0/0"
    given = pbt({"all_checkpoint_dir": "/mnt/c"})
    given.bind_experiment("exp-a")  # an explicit root is the user's choice
    assert given.checkpoint_dir == "/mnt/c"
    # trials recorded under another root (an experiment started before this default, or
    # with another $AUTOTUNE_CHECKPOINT_DIR) go on under that root, where their models are
    hist = [record(i, {**pbt({}).space.to_parameters(pbt({}).space.sample_flat(rng)), "load_checkpoint_dir": "",
                       "save_checkpoint_dir": f"/old/0/{i}/0"}, float(i)) for i in range(2)]
    nxt = a.suggest(hist, rng)
    assert nxt["save_checkpoint_dir"] == "/old/0/0/1" and nxt["load_checkpoint_dir"].startswith("/old/0/")


def test_a_member_whose_trial_failed_never_loads_a_checkpoint_it_did_not_write():
    # More failures than the bottom fraction: a failed member outside the bottom used to
    # "continue from its own checkpoint", which its failed trial never saved (and a failed
    # member could be an exploit source when most failed), so every later generation of it
    # failed loading. Now it exploits a member with a result, or starts afresh if none has.
    t = pbt({"all_checkpoint_dir": "/ckpt", "population_size": 4, "fraction": 0.25})
    hist = []
    gen0 = run_generation(t, hist, 0, finish=False)
    for i in range(4):
        ok = i >= 2
        hist[i] = record(i, gen0[i].parameters, score(gen0[i].parameters) if ok else None,
                         TrialState.SUCCEEDED if ok else TrialState.FAILED)
    gen1 = run_generation(t, hist, 1, finish=False)
    written = {"/ckpt/2/0", "/ckpt/3/0"}
    assert all(p.parameters["load_checkpoint_dir"] in written for p in gen1)
    assert [p.parameters["load_checkpoint_dir"] for p in gen1[2:]] == ["/ckpt/2/0", "/ckpt/3/0"]  # they go on
    for i in range(4, 8):
        hist[i] = record(i, hist[i].parameters, None, TrialState.FAILED)
    gen2 = run_generation(t, hist, 2, finish=False)
    assert [p.parameters["load_checkpoint_dir"] for p in gen2] == [""] * 4  # nothing to load: from scratch
    assert [p.parameters["save_checkpoint_dir"] for p in gen2] == [f"/ckpt/{m}/2" for m in range(4)]
    assert all(parse_search_space(SPACE).contains({k: v for k, v in p.parameters.items() if not k.endswith("checkpoint_dir")})
               for p in gen2)


def test_a_final_rerun_loads_what_the_trial_loaded_and_saves_to_its_own_folder():
    t = pbt({"population_size": 2, "all_checkpoint_dir": "/mnt/c"})
    rng = np.random.default_rng(0)
    hist = [record(i, {**t.space.to_parameters(t.space.sample_flat(rng)), "load_checkpoint_dir": "",
                       "save_checkpoint_dir": f"/old/{i}/0"}, float(i)) for i in range(2)]
    best = t.suggest(hist, rng)  # generation 1, member 0: loads a generation-0 folder
    hist.append(record(2, best, 5.0))
    again = t.final_parameters(best, 3, hist)
    # the trials' own root (trial 0's), a folder no member writes; the rest as the trial had it
    assert again["save_checkpoint_dir"] == "/old/final/3" != best["save_checkpoint_dir"]
    assert {k: v for k, v in again.items() if k != "save_checkpoint_dir"} == \
        {k: v for k, v in best.items() if k != "save_checkpoint_dir"}
    assert best["save_checkpoint_dir"] == "/old/0/1"  # the trial's own parameters are untouched


def test_an_engine_with_a_checkpoint_base_keeps_an_older_experiments_root_on_resume(tmp_path, monkeypatch):
    """A local run's engine puts PBT's default root under its output folder; an experiment
    whose trials were given the older default ($AUTOTUNE_CHECKPOINT_DIR/<id>) goes on there,
    where its models are, when the run resumes with the new engine."""
    monkeypatch.setenv("AUTOTUNE_CHECKPOINT_DIR", str(tmp_path / "shared"))
    cfg = ExperimentConfig.model_validate({"searchSpace": '{"x": {"_type": "uniform", "_value": [0, 1]}}',
                                           "tuner": {"name": "PBTTuner", "classArgs": {"population_size": 2}}})
    db, out = tmp_path / "autotune.db", str(tmp_path / "out" / "checkpoints")
    new = Engine(Store(tmp_path / "new.db"), checkpoint_base=out)
    new.register("local.e", "e", cfg)
    assert new.suggest("local.e", 0).parameters["save_checkpoint_dir"] == os.path.join(out, "local.e", "0", "0")
    old = Engine(Store(db))  # before: no base, so the default under $AUTOTUNE_CHECKPOINT_DIR
    old.register("local.e", "e", cfg)
    for i in range(2):
        a = old.suggest("local.e", i)
        assert a.parameters["save_checkpoint_dir"] == str(tmp_path / "shared" / "local.e" / str(i) / "0")
        old.report_final("local.e", a.trial_id, float(i))
        old.end("local.e", a.trial_id, 0)
    old.store.close()
    resumed = Engine(Store(db), checkpoint_base=out)
    nxt = resumed.suggest("local.e", 2).parameters
    assert nxt["save_checkpoint_dir"] == str(tmp_path / "shared" / "local.e" / "0" / "1")
    assert nxt["load_checkpoint_dir"].startswith(str(tmp_path / "shared" / "local.e"))
