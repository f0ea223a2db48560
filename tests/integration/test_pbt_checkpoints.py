"""PBT's checkpoints under real `autotune run` processes: two experiments left at the
default seed, running at once (trialConcurrency 2 each), must not share checkpoint
directories (the default root was keyed by the seed: both wrote <root>/0/<member>/<gen>,
and a member could load the other experiment's model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import TRIALS, autotune_cmd, manifest, read_status, write_manifest

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
