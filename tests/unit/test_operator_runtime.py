"""Pure parts of the operator runtime: settings from the environment, status conditions."""

from __future__ import annotations

import re

import pytest

from autotune_operator.decide import Phase
from autotune_operator.runtime import Settings, conditions


def test_settings_from_env():
    s = Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t" * 20, "AUTOTUNE_SERVER_URL": "http://s:1",
                           "AUTOTUNE_NAMESPACES": "a, b,", "AUTOTUNE_WORKLOAD_KIND": "auto"})
    assert s.namespaces == ("a", "b") and s.workload_kind is None
    assert s.trial_server_url == "http://s:1" and s.resync_seconds == 2.0
    s = Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "x", "AUTOTUNE_WORKLOAD_KIND": "kubeflow",
                           "AUTOTUNE_TRIAL_SERVER_URL": "http://public",
                           "AUTOTUNE_ACCELERATOR_NODE_SELECTORS": '{"nvidia.com/gpu": {"gpu": "yes"}}',
                           "AUTOTUNE_ACCELERATOR_TOLERATIONS": "false"})
    assert s.workload_kind == "kubeflow" and s.trial_server_url == "http://public"
    assert s.accelerators.node_selectors == {"nvidia.com/gpu": {"gpu": "yes"}} and not s.accelerators.tolerate
    with pytest.raises(SystemExit, match="AUTOTUNE_ADMIN_TOKEN"):
        Settings.from_env({})


@pytest.mark.parametrize("text,refused", [
    ('{"nvidia.com/gpu": "a100"}', "'nvidia.com/gpu' must map to an object of node labels"),
    ('{"nvidia.com/gpu": {"gpu": {"model": "a100"}}}', "'nvidia.com/gpu': label 'gpu' must have a text value"),
    ('{"nvidia.com/gpu": {"gpu": null}}', "'nvidia.com/gpu': label 'gpu' must have a text value, not null"),
    ('[["nvidia.com/gpu", "a100"]]', "must be a JSON object of resource name"),
    ("{nvidia.com/gpu: a100}", "is not valid JSON"),
])
def test_accelerator_node_selectors_of_the_wrong_shape_stop_the_operator_naming_the_entry(text, refused):
    """Before, any JSON was taken: a string where the labels belong crashed every GPU
    experiment's start (dict.update('a100')), a null or number broke every trial's workload."""
    with pytest.raises(SystemExit, match=re.escape(f"AUTOTUNE_ACCELERATOR_NODE_SELECTORS {refused}")):
        Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "x", "AUTOTUNE_ACCELERATOR_NODE_SELECTORS": text})


def test_accelerator_node_selector_values_written_as_numbers_or_booleans_are_label_text():
    # The Helm chart renders a values.yaml mapping with toJson: accelerator: true stays a boolean.
    s = Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "x",
                           "AUTOTUNE_ACCELERATOR_NODE_SELECTORS": '{"nvidia.com/gpu": {"gpu": true, "gen": 3}}'})
    assert s.accelerators.node_selectors == {"nvidia.com/gpu": {"gpu": "true", "gen": "3"}}


def test_settings_token_file(tmp_path):
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN_FILE": str(f)}).admin_token == "from-file"


def test_conditions_follow_the_phase_and_keep_transition_times():
    c1 = conditions(Phase.RUNNING, "", [], "t1", reason="Running")
    assert c1 == [{"type": "Running", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": "t1"}]
    assert conditions(Phase.RUNNING, "", c1, "t2", reason="Running") == c1  # unchanged: same time
    c3 = {c["type"]: c for c in conditions(Phase.TIMEOUT, "maxExecSeconds reached", c1, "t3", reason="MaxExecSecondsReached")}
    assert c3["Running"]["status"] == "False" and c3["Running"]["lastTransitionTime"] == "t3"
    assert c3["Running"]["reason"] == "Running"  # an off condition keeps the reason it had
    assert c3["TimedOut"] == {"type": "TimedOut", "status": "True", "reason": "MaxExecSecondsReached",
                              "message": "maxExecSeconds reached", "lastTransitionTime": "t3"}
    assert "Succeeded" not in c3 and "Failed" not in c3


def test_a_condition_takes_the_status_reason_or_a_default_per_phase():
    done = {c["type"]: c for c in conditions(Phase.DONE, "objectiveGoal (0.9) reached", [], "t1", reason="GoalReached")}
    assert done["Succeeded"]["reason"] == "GoalReached"
    # a status written without a reason (an older operator, or an invalid spec's ERROR)
    assert conditions(Phase.DONE, "", [], "t1")[0]["reason"] == "Succeeded"
    assert conditions(Phase.ERROR, "", [], "t1")[0]["reason"] == "ExperimentError"


def test_crd_enums_name_only_existing_algorithms():
    """The CRD refuses unknown tuner/assessor names at apply time; it must never accept one
    the tuner server does not have. (A new algorithm also needs adding to the CRD's enum.)"""
    from pathlib import Path

    import yaml

    from tuner_server.assessors import assessor_names
    from tuner_server.tuners import tuner_names

    root = Path(__file__).resolve().parents[2]
    crd = yaml.safe_load((root / "crds" / "autotuneexperiments.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    tuners = spec["tuner"]["properties"]["builtinTunerName"]["enum"]
    assessors = spec["assessor"]["properties"]["builtinAssessorName"]["enum"]
    # exactly the algorithms the server hosts: none refused at apply time, none unknown to it
    assert sorted(tuners) == tuner_names()
    assert sorted(assessors) == assessor_names()
    assert (root / "helm/autotune/crds/autotuneexperiments.yaml").read_text() == (root / "crds/autotuneexperiments.yaml").read_text()


def test_a_failed_startup_leaves_no_sweeper_thread_behind(monkeypatch):
    # kopf retries a startup handler that raises (every minute, with a new runtime each time):
    # a taken metrics port must fail it before the orphan sweep's thread is started, or each
    # retry leaves one more sweeper running.
    import socket
    import threading

    import kopf
    from kubernetes import client

    from autotune_operator import kopf_handlers

    monkeypatch.setattr(kopf_handlers, "_api_client", lambda: client.ApiClient())
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        ours = Settings(server_url="http://127.0.0.1:9", admin_token="x" * 20, trial_server_url="http://127.0.0.1:9",
                        sweep_seconds=600, metrics_endpoint=f"http://127.0.0.1:{taken.getsockname()[1]}/metrics")
        memo = kopf.Memo(settings=ours)
        before = {t.ident for t in threading.enumerate()}
        with pytest.raises(OSError):
            kopf_handlers.startup(settings=kopf.OperatorSettings(), memo=memo)
        new = [t.name for t in threading.enumerate() if t.ident not in before]
        assert not any("sweep" in n for n in new), new
    finally:
        taken.close()
        runtime = memo.get("runtime")
        if runtime is not None:
            runtime.stop_sweeper()
