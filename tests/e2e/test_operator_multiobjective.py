"""A multi-objective experiment (spec.objectives, MOTPE) through the operator on a real
kube-apiserver + controller-manager: batch/v1 Job trials that the harness's fake nodes run
as local processes, each training a real scikit-learn decision tree on digits and reporting
{"accuracy": .., "n_leaves": ..}. The status's Pareto front is checked against a front
computed here from what the trials themselves recorded (not from the server's answer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kube_harness.experiments import ENDED, experiment_manifest, wait_for_phase
from tests.e2e.test_operator_helpers import apply_manifest, jobs, operator_env

# Accuracy against model size: deeper trees with smaller leaves fit digits better but have
# more leaves, so the front has several points. Each run appends what it reported to a
# JSON-lines file named on its command line: the test's independent record.
TREE_SCRIPT = '''\
import json
import os
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

import autotune

p = autotune.get_next_parameter()
X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
model = DecisionTreeClassifier(max_depth=int(p["max_depth"]), min_samples_leaf=int(p["min_samples_leaf"]),
                               random_state=0).fit(X_tr, y_tr)
metric = {"accuracy": float(model.score(X_va, y_va)), "n_leaves": int(model.get_n_leaves())}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"trial": os.environ["AUTOTUNE_TRIAL_ID"], "sequence": int(os.environ["AUTOTUNE_SEQUENCE_ID"]),
                        "parameters": p, **metric}) + "\\n")
autotune.report_final_result(metric)
'''

SPACE = json.dumps({
    "max_depth": {"_type": "choice", "_value": [1, 2, 3, 4, 6, 8, 12]},
    "min_samples_leaf": {"_type": "choice", "_value": [1, 4, 16, 64]},
})
TRIALS = 10
OBJECTIVES = {"accuracy": "maximize", "n_leaves": "minimize"}


def mo_experiment(name: str, script: Path, record: Path) -> dict[str, Any]:
    """The trial script appends what it reports to `record`, its one argument."""
    return experiment_manifest(
        name, [sys.executable, str(script), str(record)], space=SPACE, max_trials=TRIALS, concurrency=2, seed=7,
        objectives=[{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "n_leaves", "optimizeMode": "minimize"}],
        tuner="MOTPE", tuner_args='{"tpe_args": {"n_startup_jobs": 4}}')


def losses(r: dict[str, Any]) -> tuple[float, float]:
    return (-r["accuracy"], r["n_leaves"])


def non_dominated(records: list[dict[str, Any]]) -> set[str]:
    """Trials no other trial matches-or-beats on both objectives while beating on one."""
    def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return {r["trial"] for r in records if not any(beats(losses(o), losses(r)) for o in records)}


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    with operator_env(kube_cluster, tmp_path_factory.mktemp("mo-operator"), "mo-op", {"AUTOTUNE_WORKLOAD_KIND": "auto"},
                      script=TREE_SCRIPT) as e:
        yield e


def test_multi_objective_experiment_reports_its_pareto_front(kube_cluster, env):
    ns, name = env["ns"], "tree-front"
    record = env["tmp"] / "reported.jsonl"
    apply_manifest(kube_cluster, ns, mo_experiment(name, env["script"], record))
    ate = wait_for_phase(kube_cluster, ns, name, *ENDED, timeout=300, log=env["op"].output)
    st = ate["status"]
    assert st["phase"] == "DONE", st
    assert st["trials"]["total"] == TRIALS and st["trials"]["succeeded"] == TRIALS, st
    assert st["workloadKind"] == "job"
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in st["conditions"])

    # Every trial really ran once, as a Job's pod, and wrote what it reported.
    reported = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(reported) == TRIALS and len({r["trial"] for r in reported}) == TRIALS, reported
    js = jobs(kube_cluster, ns, name)
    assert sorted(j["metadata"]["name"] for j in js) == sorted(r["trial"] for r in reported)
    # MOTPE proposes no configuration twice.
    assert len({json.dumps(r["parameters"], sort_keys=True) for r in reported}) == TRIALS

    # No single best trial; the objectives, the front and each objective's best instead.
    assert st.get("bestTrial") is None, st["bestTrial"]
    assert st["objectives"] == [{"name": k, "optimizeMode": v} for k, v in OBJECTIVES.items()]
    by_trial = {r["trial"]: r for r in reported}
    front = st["paretoFront"]
    expected = non_dominated(reported)
    assert {t["name"] for t in front} == expected, (front, reported)
    assert len(front) == len(expected), "each front trial listed once"
    assert st["paretoFrontSize"] == len(front)
    for t in front:
        r = by_trial[t["name"]]
        assert t["values"] == {"accuracy": pytest.approx(r["accuracy"]), "n_leaves": r["n_leaves"]}, (t, r)
        assert t["parameters"] == r["parameters"]
    # A front of one would not exercise the trade-off: the space guarantees several.
    assert len(front) >= 2, front

    bests = {b["objective"]: b for b in st["bestTrials"]}
    assert list(bests) == list(OBJECTIVES), st["bestTrials"]
    top_acc = max(r["accuracy"] for r in reported)
    fewest = min(r["n_leaves"] for r in reported)
    assert bests["accuracy"]["optimizeMode"] == "maximize"
    assert bests["accuracy"]["values"]["accuracy"] == pytest.approx(top_acc)
    assert bests["n_leaves"]["optimizeMode"] == "minimize"
    assert bests["n_leaves"]["values"]["n_leaves"] == fewest
    # Ties broken by the earliest trial, and each best is also on the front.
    first = lambda ok: min((r for r in reported if ok(r)), key=lambda r: r["sequence"])  # noqa: E731
    assert bests["accuracy"]["name"] == first(lambda r: r["accuracy"] == top_acc)["trial"]
    assert bests["n_leaves"]["name"] == first(lambda r: r["n_leaves"] == fewest)["trial"]
    assert {b["name"] for b in bests.values()} <= expected

    # kubectl get ate: a multi-objective experiment has no Best value; the Front column
    # gives the front's size instead.
    out = kube_cluster.kubectl("get", "ate", name, "-n", ns).stdout
    cols = table_row(out)
    assert list(cols) == ["NAME", "PHASE", "TRIALS", "BEST", "FRONT", "AGE"], out
    assert (cols["NAME"], cols["PHASE"], cols["TRIALS"]) == (name, "DONE", str(TRIALS)), out
    assert cols["BEST"] == "" and cols["FRONT"] == str(len(expected)), out
    wide = table_row(kube_cluster.kubectl("get", "ate", name, "-n", ns, "-o", "wide").stdout)
    assert wide["SUCCEEDED"] == str(TRIALS) and wide["BEST-TRIAL"] == "", wide


def table_row(out: str) -> dict[str, str]:
    """kubectl's table (one row) as {column: cell}, cut at the header's column starts, since
    an empty cell is blank (not "<none>") and splitting on whitespace would shift the rest."""
    header, row = out.splitlines()[:2]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    ends = starts[1:] + [max(len(header), len(row))]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends)}
