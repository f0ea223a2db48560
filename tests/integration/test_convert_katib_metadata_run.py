"""A Katib experiment whose trial template uses trial metadata (${trialSpec.Name},
${trialSpec.Namespace}, ${trialSpec.Kind}, ${trialSpec.Labels[key]}) in its command and env,
converted by `autotune convert` and run by `autotune run`: each real trial process sees its own
id, the manifest's namespace and the template's label, in argv and in env."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import TRIALS, read_status, run_autotune
from tests.integration.test_convert_run import katib_experiment


def test_katib_trial_metadata_reaches_each_trials_argv_and_env(tmp_path: Path) -> None:
    rec = tmp_path / "records.jsonl"
    command = [sys.executable, str(TRIALS / "toy.py"),
               "--echo=${trialParameters.ns}/${trialParameters.name}/${trialParameters.team}"]
    exp = katib_experiment("katib-meta", command)
    exp["metadata"]["namespace"] = "team-a"
    exp["spec"].update(maxTrialCount=2, parallelTrialCount=2)
    tt = exp["spec"]["trialTemplate"]
    tt["trialParameters"] += [{"name": "ns", "reference": "${trialSpec.Namespace}"},
                              {"name": "name", "reference": "${trialSpec.Name}"},
                              {"name": "kind", "reference": "${trialSpec.Kind}"},
                              {"name": "team", "reference": "${trialSpec.Labels[team]}"}]
    tt["trialSpec"]["metadata"] = {"labels": {"team": "vision"}}
    container = tt["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--steps=1"]
    container["env"] = [{"name": "TOY_FROM_SPEC", "value": "${trialParameters.ns}:${trialParameters.name}:"
                                                           "${trialParameters.kind}"}]
    src = tmp_path / "katib.yaml"
    src.write_text(yaml.safe_dump(exp))
    out = tmp_path / "meta.yaml"
    c = run_autotune(["convert", str(src), "-o", str(out)])
    assert c.returncode == 0, c.stderr
    assert run_autotune(["validate", str(out)]).returncode == 0

    r = run_autotune(["run", str(out), "--output", str(tmp_path / "runs"), "--quiet"], env={"TOY_RECORD": str(rec)})
    assert r.returncode == 0, r.stderr
    s = read_status(tmp_path / "runs", "katib-meta")
    assert s["phase"] == "DONE" and s["trials"]["total"] == 2 and s["trials"]["failed"] == 0
    records = [json.loads(line) for line in rec.read_text().splitlines()]
    assert len(records) == 2 and len({r["trial"] for r in records}) == 2
    for r in records:
        assert r["echo"] == f"team-a/{r['trial']}/vision"
        assert r["env"]["TOY_FROM_SPEC"] == f"team-a:{r['trial']}:Job"
