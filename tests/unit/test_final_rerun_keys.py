"""Which parameters are left out when telling whether a configuration was final-trained.

PBTTuner gives a final rerun its own save_checkpoint_dir, so a rerun is matched to its
configuration without that key. The key was left out under every tuner, so a user's own
search-space parameter named save_checkpoint_dir (under GridSearch, TPE, ...) was ignored:
two chosen configurations differing only in it looked like one, and only one was
final-trained. Now only the keys the experiment's own tuner gives reruns afresh are left out.

A real tuner-server engine and the real controller; the executor stands in for trial
processes (each launched trial reports a fixed result and ends at the next poll).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from autotune_operator.controller import ExperimentController
from autotune_operator.decide import Phase, final_pending, final_trained, rerun_own_keys
from autotune_operator.executors.base import TrialExit
from autotune_operator.progress import format_progress
from autotune_operator.resume import ended_run
from autotune_operator.spec import SpecError, load_experiment_text
from autotune_operator.status import ExperimentStatus
from tests.unit.fake_executor import FakeExecutor
from tuner_server.client import InProcessClient
from tuner_server.engine import Engine
from tuner_server.store import Store

SAVE = "save_checkpoint_dir"

MANIFEST = """
apiVersion: tensorstack.dev/v1beta1
kind: AutoTuneExperiment
metadata: {name: e}
spec:
  maxTrialNum: %(trials)d
  trialConcurrency: 1
  searchSpace: '%(space)s'
  trainingConfig:
    type: pytorch
    tasks: [{type: master, replicas: 1, template: {spec: {containers: [{name: t, image: i, command: [python3, t.py]}]}}}]
  tuner: {builtinTunerName: %(tuner)s, classArgs: '%(args)s'}
  finalTraining: {enabled: true}
%(extra)s
"""


class ReportingExecutor(FakeExecutor):
    """Every launched trial reports ``metric`` and ends at the next poll (no process)."""

    def __init__(self, engine: Engine, exp_id: str, metric: Any) -> None:
        self.engine, self.exp_id, self.metric = engine, exp_id, metric
        self.running: list[str] = []
        self.launched: list[dict[str, Any]] = []

    def launch(self, trial: Any) -> None:
        self.running.append(trial.trial_id)
        self.launched.append(dict(trial.parameters))

    def active(self) -> set[str]:
        return set(self.running)

    def poll(self) -> list[TrialExit]:
        out = []
        for tid in self.running:
            self.engine.report_final(self.exp_id, tid, self.metric)
            out.append(TrialExit(tid, 0))
        self.running = []
        return out

    def kill(self, trial_id: str, reason: str, cause: object = None) -> None:
        pass


def run(text: str, metric: Any) -> tuple[ExperimentStatus, ReportingExecutor]:
    exp = load_experiment_text(text)
    engine = Engine(Store(":memory:"))
    executor = ReportingExecutor(engine, "local.e", metric)
    c = ExperimentController(exp, "local.e", InProcessClient(engine), executor, "http://x")
    return c.run(tick=0.0), executor


def test_a_users_own_save_checkpoint_dir_tells_configurations_apart() -> None:
    """Two Pareto-front members (equal results) differing only in the user's parameter
    save_checkpoint_dir, final-trained one at a time (trialConcurrency 1): after the first
    rerun the second looked trained too, and final training ended with one of the two."""
    space = json.dumps({SAVE: {"_type": "choice", "_value": ["/a", "/b"]}})
    objectives = "  objectives: [{name: acc, optimizeMode: maximize}, {name: size, optimizeMode: minimize}]"
    st, ex = run(MANIFEST % {"trials": 2, "space": space, "tuner": "GridSearch", "args": "{}", "extra": objectives},
                 {"acc": 1.0, "size": 1.0})
    assert st.phase is Phase.DONE, st.message
    assert sorted(p.parameters[SAVE] for p in st.paretoFront) == ["/a", "/b"]
    assert sorted(f.parameters[SAVE] for f in st.finalTraining or []) == ["/a", "/b"], st.finalTraining
    assert "final training ended" in st.message
    # What `autotune run` shows and what a resume decides read the same rule.
    assert "final 2/2 done" in format_progress(st, 1.0, 2, rerun_own=rerun_own_keys("GridSearch"))
    status = json.loads(st.model_dump_json())
    status["finalTraining"] = status["finalTraining"][:1]
    run_ = ended_run(status, rerun_own_keys("GridSearch"))
    assert run_ is not None and run_.final_pending


def test_pbt_reruns_still_count_as_their_configurations_final_training() -> None:
    """Under PBTTuner the rerun's save_checkpoint_dir is <root>/final/<sequence>, never the
    chosen trial's: it is still matched without it (else final training reran the best forever)."""
    space = json.dumps({"lr": {"_type": "choice", "_value": [0.1, 0.2]}})
    args = json.dumps({"population_size": 2, "all_checkpoint_dir": "/ck"})
    st, ex = run(MANIFEST % {"trials": 4, "space": space, "tuner": "PBTTuner", "args": args, "extra": ""}, 0.5)
    assert st.phase is Phase.DONE, st.message
    (final,) = st.finalTraining or []
    assert st.bestTrial is not None and final.parameters[SAVE] == "/ck/final/4" != st.bestTrial.parameters[SAVE]
    assert len(ex.launched) == 5
    status = json.loads(st.model_dump_json())
    run_ = ended_run(status, rerun_own_keys("PBT"))
    assert run_ is not None and not run_.final_pending


@pytest.mark.parametrize("tuner, keys", [
    ("PBTTuner", {SAVE}), ("pbt", {SAVE}),  # by its name or alias, as builtinTunerName takes them
    ("TPE", set()), ("GridSearch", set()), ("Hyperband", set()), (None, set()), (3, set()),
])
def test_rerun_own_keys_are_the_tuners_own(tuner: Any, keys: set[str]) -> None:
    assert rerun_own_keys(tuner) == keys


def test_final_pending_compares_a_users_save_checkpoint_dir() -> None:
    chosen = [{"x": 1, SAVE: "/b"}]
    trained = final_trained([{"parameters": {"x": 1, SAVE: "/a"}, "state": "SUCCEEDED"}])
    assert final_pending(chosen, trained, rerun_own_keys("TPE"))
    assert not final_pending(chosen, trained, rerun_own_keys("PBTTuner"))


@pytest.mark.parametrize("name", ["save_checkpoint_dir", "load_checkpoint_dir"])
def test_a_search_space_parameter_named_like_pbts_keys_is_refused_under_pbt(name: str) -> None:
    """PBTTuner writes these keys into every trial's parameters: a user parameter so named
    would be overwritten silently, so validation refuses it and names it."""
    space = json.dumps({name: {"_type": "choice", "_value": ["/a", "/b"]}, "lr": {"_type": "uniform", "_value": [0, 1]}})
    with pytest.raises(SpecError) as e:
        load_experiment_text(MANIFEST % {"trials": 4, "space": space, "tuner": "PBTTuner", "args": "{}", "extra": ""})
    assert f"spec.tuner: tuner PBTTuner: parameter name '{name}' is reserved for checkpoint paths" in str(e.value)
