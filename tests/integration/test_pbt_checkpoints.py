"""PBT's checkpoints under real `autotune run` processes: two experiments left at the
default seed, running at once (trialConcurrency 2 each), must not share checkpoint
directories (the default root was keyed by the seed: both wrote <root>/0/<member>/<gen>,
and a member could load the other experiment's model); final training must not write into
the best member's folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, read_status, run_autotune, write_manifest

SPACE = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-1]}}


def pbt_manifest(name: str, record: Path, tag: str | None = None) -> dict:
    return manifest(name=name, space=SPACE, command=[sys.executable, str(TRIALS / "pbt_sgd.py")], tuner="PBTTuner",
                    class_args={"optimize_mode": "maximize", "population_size": 2, "fraction": 0.5}, max_trials=6,
                    concurrency=2, env=[{"name": "PBT_RECORD", "value": str(record)},
                                        {"name": "PBT_TAG", "value": tag or name}])


def run_at_once(tmp_path: Path, runs: list[tuple[str, dict, Path]]) -> None:
    """``autotune run`` of each (tag, manifest, --output) at the same time; each must exit 0.
    $AUTOTUNE_CHECKPOINT_DIR is set to <tmp>/ckpt: what a local run no longer uses."""
    env = {**os.environ, "AUTOTUNE_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    procs = []
    try:
        for tag, doc, out in runs:
            path = write_manifest(tmp_path / f"{tag}.yaml", doc)
            # Own sessions: the runs and their trials are ended by group below, never pytest's.
            procs.append(subprocess.Popen(autotune_cmd() + ["run", str(path), "--output", str(out)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def assert_apart(record: Path, folders: dict[str, Path]) -> None:
    """Each tagged run's 6 trials saved in its own directories under ``folders[tag]`` (its
    output folder's checkpoints/), none shared, and every later generation loaded a model its
    own run saved."""
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 12
    saves = {tag: {r["save"] for r in runs if r["tag"] == tag} for tag in folders}
    # 3 generations x 2 members, each trial its own directory, none shared between the runs
    assert all(len(s) == 6 for s in saves.values())
    a, b = saves.values()
    assert not a & b
    assert all(d.startswith(str(folders[tag] / "checkpoints") + os.sep) for tag, s in saves.items() for d in s)
    loaded = [r for r in runs if r["load"]]
    assert len(loaded) == 8
    assert all(r["loaded_tag"] == r["tag"] and r["load"] in saves[r["tag"]] for r in loaded)


def test_two_pbt_experiments_at_once_keep_their_checkpoints_apart(tmp_path: Path) -> None:
    record, out = tmp_path / "runs.jsonl", tmp_path / "out"
    run_at_once(tmp_path, [(name, pbt_manifest(name, record), out) for name in ("pbt-a", "pbt-b")])
    for name in ("pbt-a", "pbt-b"):
        s = read_status(out, name)
        assert s["phase"] == "DONE", s["message"]
    assert_apart(record, {name: out / name for name in ("pbt-a", "pbt-b")})


def test_two_local_runs_of_one_experiment_into_two_output_folders_keep_their_checkpoints_apart(tmp_path: Path) -> None:
    """Both runs' experiment id is local.pbt-same: the default root, keyed by it alone
    ($AUTOTUNE_CHECKPOINT_DIR/local.pbt-same), was one folder for both, so they overwrote and
    loaded each other's models. A local run's default root is now under its output folder."""
    record = tmp_path / "runs.jsonl"
    outs = {tag: tmp_path / tag for tag in ("out-1", "out-2")}
    run_at_once(tmp_path, [(tag, pbt_manifest("pbt-same", record, tag), out) for tag, out in outs.items()])
    for out in outs.values():
        s = read_status(out, "pbt-same")
        assert s["phase"] == "DONE", s["message"]
    assert_apart(record, {tag: out / "pbt-same" for tag, out in outs.items()})
    assert not (tmp_path / "ckpt").exists()


def test_pbt_final_training_keeps_the_best_members_checkpoint(tmp_path: Path) -> None:
    """Final training reruns the best trial's parameters, which with PBT name its checkpoint
    folder: the rerun saved into the best trial's own save_checkpoint_dir, overwriting the model
    it was meant to reproduce (a crash mid-rerun would leave it half-written). The rerun now
    loads what the best trial loaded and saves to a folder of its own; a second run of the same
    command (resume) counts it as the best's final training and trains nothing again."""
    record = tmp_path / "runs.jsonl"
    doc = pbt_manifest("pbt-final", record)
    doc["spec"]["maxTrialNum"] = 4
    doc["spec"]["finalTraining"] = {"enabled": True}
    path = write_manifest(tmp_path / "e.yaml", doc)
    out = tmp_path / "out"
    env = {"AUTOTUNE_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(out, "pbt-final")
    assert s["phase"] == "DONE" and s["trials"]["succeeded"] == 5, s
    best = s["bestTrial"]
    (final,) = s["finalTraining"]
    assert final["state"] == "SUCCEEDED", final
    runs = {json.loads(line)["trial"]: json.loads(line) for line in record.read_text().splitlines()}
    assert set(runs) == {f"pbt-final-{i}" for i in range(4)} | {final["name"]}
    best_save = best["parameters"]["save_checkpoint_dir"]
    assert runs[best["name"]]["save"] == best_save
    # The best member's model is the one its own trial wrote, untouched by final training.
    assert (Path(best_save) / "writer.txt").read_text() == best["name"]
    digest = hashlib.sha256((Path(best_save) / "model.pkl").read_bytes()).hexdigest()
    assert digest == runs[best["name"]]["sha256"]
    # The rerun: the best's hyper-parameters and starting checkpoint, its own save folder.
    rerun = runs[final["name"]]
    root = os.path.dirname(os.path.dirname(best_save))  # <root>/<member>/<generation>
    assert rerun["save"] == final["parameters"]["save_checkpoint_dir"] == os.path.join(root, "final", "4")
    assert rerun["save"] not in {runs[f"pbt-final-{i}"]["save"] for i in range(4)}
    assert rerun["load"] == best["parameters"]["load_checkpoint_dir"]
    assert {k: v for k, v in final["parameters"].items() if k != "save_checkpoint_dir"} == \
        {k: v for k, v in best["parameters"].items() if k != "save_checkpoint_dir"}
    assert (Path(rerun["save"]) / "writer.txt").read_text() == final["name"]

    # Resumed, the experiment knows its best was final-trained: no second rerun.
    r = run_autotune(["run", str(path), "--output", str(out), "--quiet"], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    s = read_status(out, "pbt-final")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 5, s
    assert [f["name"] for f in s["finalTraining"]] == [final["name"]]
    assert len(record.read_text().splitlines()) == 5
