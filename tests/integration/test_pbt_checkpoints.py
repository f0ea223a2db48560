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


def pbt_manifest(name: str, record: Path) -> dict:
    return manifest(name=name, space=SPACE, command=[sys.executable, str(TRIALS / "pbt_sgd.py")], tuner="PBTTuner",
                    class_args={"optimize_mode": "maximize", "population_size": 2, "fraction": 0.5}, max_trials=6,
                    concurrency=2, env=[{"name": "PBT_RECORD", "value": str(record)}, {"name": "PBT_TAG", "value": name}])


def test_two_pbt_experiments_at_once_keep_their_checkpoints_apart(tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    env = {**os.environ, "AUTOTUNE_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    procs = []
    try:
        for name in ("pbt-a", "pbt-b"):
            path = write_manifest(tmp_path / f"{name}.yaml", pbt_manifest(name, record))
            # Own sessions: the runs and their trials are ended by group below, never pytest's.
            procs.append(subprocess.Popen(autotune_cmd() + ["run", str(path), "--output", str(tmp_path / "out")], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for name in ("pbt-a", "pbt-b"):
        s = read_status(tmp_path / "out", name)
        assert s["phase"] == "DONE", s["message"]
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 12
    saves = {name: {r["save"] for r in runs if r["tag"] == name} for name in ("pbt-a", "pbt-b")}
    # 3 generations x 2 members, each trial its own directory, none shared between the runs
    assert len(saves["pbt-a"]) == len(saves["pbt-b"]) == 6
    assert not saves["pbt-a"] & saves["pbt-b"]
    assert all(d.startswith(str(tmp_path / "ckpt")) for s in saves.values() for d in s)
    # every later generation loaded a model its own experiment saved
    loaded = [r for r in runs if r["load"]]
    assert len(loaded) == 8
    assert all(r["loaded_tag"] == r["tag"] and r["load"] in saves[r["tag"]] for r in loaded)


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
