"""The File / TensorFlowEvent collectors' sidecar in trial pod templates (pure, no cluster)."""

from __future__ import annotations

import copy

import pytest

from autotune_operator.workloads import WorkloadError, build
from autotune_operator.workloads.metrics_sidecar import (
    PATH_ENV,
    SIDECAR,
    STATE_DIR,
    STATE_VOLUME,
    Collector,
    default_image,
    inject,
    inject_workload,
)
from tests.unit.test_workloads import pod_specs, spec_of, trial

STATE = {"name": STATE_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}  # the sidecar's own (its cursor)
FILE = Collector("File", "/var/log/katib/metrics.log", "reg/autotune/operator:1")
EVENTS = Collector("TensorFlowEvent", "/var/log/katib/tfevent", "reg/autotune/operator:1")


def template(**container) -> dict:
    return {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "main", "image": "train:1", "command": ["python", "train.py"], **container},
                                    {"name": "helper", "image": "helper:1"}]}}


def sidecar_of(t: dict) -> dict:
    (c,) = [c for c in t["spec"].get("initContainers") or [] if c["name"] == SIDECAR]
    return c


def test_file_collector_gets_an_empty_dir_shared_with_a_native_sidecar():
    t = template()
    out = inject(t, FILE)
    assert t == template(), "the input template is not changed"
    assert out["spec"]["volumes"] == [{"name": SIDECAR, "emptyDir": {}}, STATE]
    main, helper = out["spec"]["containers"]
    assert main["volumeMounts"] == [{"name": SIDECAR, "mountPath": "/var/log/katib"}]
    assert {"name": PATH_ENV, "value": "/var/log/katib/metrics.log"} in main["env"]
    assert "volumeMounts" not in helper and "env" not in helper  # only the primary (first) container
    side = sidecar_of(out)
    assert side["restartPolicy"] == "Always"  # native sidecar: does not block the Job's completion
    assert side["image"] == "reg/autotune/operator:1"
    assert side["command"] == ["autotune", "collect-metrics", "--kind", "File", "--path", "/var/log/katib/metrics.log",
                               "--state-dir", STATE_DIR]
    assert side["volumeMounts"] == [{"name": SIDECAR, "mountPath": "/var/log/katib", "readOnly": True},
                                    {"name": STATE_VOLUME, "mountPath": STATE_DIR}]
    assert side["resources"]["requests"] and side["resources"]["limits"]["memory"]


def test_sidecar_meets_the_restricted_pod_security_standard():
    sc = sidecar_of(inject(template(), FILE))["securityContext"]
    assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int) and sc["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged")


def test_tensorflow_event_collector_shares_the_directory_itself():
    out = inject(template(), EVENTS)
    assert out["spec"]["containers"][0]["volumeMounts"] == [{"name": SIDECAR, "mountPath": "/var/log/katib/tfevent"}]
    assert sidecar_of(out)["command"][-6:-2] == ["--kind", "TensorFlowEvent", "--path", "/var/log/katib/tfevent"]


def test_a_volume_the_container_already_mounts_over_the_path_is_reused():
    t = template(volumeMounts=[{"name": "data", "mountPath": "/var"},
                               {"name": "logs", "mountPath": "/var/log/", "subPath": "trial-logs"}])
    t["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "logs", "persistentVolumeClaim": {"claimName": "c"}}]
    out = inject(t, FILE)
    assert out["spec"]["volumes"] == t["spec"]["volumes"] + [STATE]  # no emptyDir shared with the trial added
    assert out["spec"]["containers"][0]["volumeMounts"] == t["spec"]["containers"][0]["volumeMounts"]
    # The deepest covering mount, as the container sees the file.
    assert sidecar_of(out)["volumeMounts"][0] == {"name": "logs", "mountPath": "/var/log/", "subPath": "trial-logs",
                                                  "readOnly": True}


def test_a_mount_that_only_shares_a_prefix_does_not_cover_the_path():
    t = template(volumeMounts=[{"name": "v", "mountPath": "/var/log/kat"}])
    t["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    out = inject(t, FILE)
    assert {"name": SIDECAR, "emptyDir": {}} in out["spec"]["volumes"]
    assert sidecar_of(out)["volumeMounts"][0]["name"] == SIDECAR


def test_relative_path_is_resolved_against_the_working_dir_or_refused():
    out = inject(template(workingDir="/work"), Collector("File", "out/metrics.txt", "i"))
    assert out["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/work/out"
    assert sidecar_of(out)["command"][5] == "/work/out/metrics.txt"
    with pytest.raises(WorkloadError, match="relative.*workingDir"):
        inject(template(), Collector("File", "out/metrics.txt", "i"))


def test_a_file_in_the_root_directory_is_refused():
    with pytest.raises(WorkloadError, match="root directory"):
        inject(template(), Collector("File", "/metrics.log", "i"))


def test_names_taken_by_the_user_are_refused():
    t = template()
    t["spec"]["volumes"] = [{"name": SIDECAR, "emptyDir": {}}]
    with pytest.raises(WorkloadError, match="volume named"):
        inject(t, FILE)
    t = template()
    t["spec"]["initContainers"] = [{"name": SIDECAR, "image": "x"}]
    with pytest.raises(WorkloadError, match="container named"):
        inject(t, FILE)
    t = template()
    t["spec"]["volumes"] = [{"name": STATE_VOLUME, "emptyDir": {}}]
    with pytest.raises(WorkloadError, match="volume named 'autotune-metrics-state'"):
        inject(t, FILE)


def test_the_users_init_containers_run_before_the_sidecar_and_env_is_kept():
    t = template(env=[{"name": PATH_ENV, "value": "/mine"}])
    t["spec"]["initContainers"] = [{"name": "setup", "image": "x"}]
    out = inject(t, FILE)
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["setup", SIDECAR]
    assert out["spec"]["containers"][0]["env"] == [{"name": PATH_ENV, "value": "/mine"}]


def test_no_collector_leaves_the_template_alone():
    assert inject(template(), None) == template()


def collector_spec(kind: str, **extra):
    def mutate(doc):
        doc["spec"]["metricsCollector"] = {"kind": kind, **extra}
        doc["spec"]["primaryMetric"] = "accuracy"
    return mutate


@pytest.mark.parametrize("family", ["job", "kubeflow", "t9k"])
def test_stdout_and_no_collector_build_the_same_templates(family):
    plain = build(family, spec_of(), trial())
    stdout = build(family, spec_of(mutate=collector_spec("StdOut")), trial())
    assert pod_specs(stdout) == pod_specs(plain)
    assert SIDECAR not in str(plain)


def two_tasks(doc):
    tmpl = doc["spec"]["trainingConfig"]["tasks"][0]["template"]
    doc["spec"]["trainingConfig"]["tasks"] = [
        {"type": "worker", "replicas": 2, "template": copy.deepcopy(tmpl)},
        {"type": "chief", "replicas": 1, "template": copy.deepcopy(tmpl)},
    ]


@pytest.mark.parametrize("family", ["kubeflow", "t9k"])
def test_training_jobs_get_the_sidecar_in_the_primary_replica_and_the_volume_everywhere(family):
    def mutate(doc):
        collector_spec("File", path="/var/log/katib/metrics.log")(doc)
        two_tasks(doc)
    m = build(family, spec_of(mutate=mutate), trial(collector_image="img:2"))
    spec = m["spec"]
    by_type = ({rs["type"]: rs["template"] for rs in spec["replicaSpecs"]} if family == "t9k"
               else {k.lower(): rs["template"] for k, rs in spec["tfReplicaSpecs"].items()})
    assert set(by_type) == {"worker", "chief"}
    for rtype, t in by_type.items():
        assert {"name": SIDECAR, "emptyDir": {}} in t["spec"]["volumes"]
        assert {"name": SIDECAR, "mountPath": "/var/log/katib"} in t["spec"]["containers"][0]["volumeMounts"]
        has = [c for c in t["spec"].get("initContainers") or [] if c["name"] == SIDECAR]
        assert len(has) == (1 if rtype == "chief" else 0), rtype  # chief's log is the one read
    assert sidecar_of(by_type["chief"])["image"] == "img:2"


def test_batch_job_gets_the_sidecar_with_the_default_image():
    m = build("job", spec_of(mutate=collector_spec("TensorFlowEvent", path="/logs/tb")), trial())
    t = m["spec"]["template"]
    side = sidecar_of(t)
    assert side["image"] == default_image() and default_image().startswith("autotune/operator:")
    assert side["volumeMounts"][0] == {"name": SIDECAR, "mountPath": "/logs/tb", "readOnly": True}
    # The Job's own behaviour is unchanged: one pod, never restarted, disruptions replaced.
    assert t["spec"]["restartPolicy"] == "Never" and m["spec"]["backoffLimit"] == 0


def test_inject_workload_copies_and_refuses_unknown_families():
    body = {"spec": {"template": template()}}
    out = inject_workload("job", body, ["worker"], FILE)
    assert body == {"spec": {"template": template()}} and sidecar_of(out["spec"]["template"])
    with pytest.raises(WorkloadError, match="unknown workload family"):
        inject_workload("other", body, ["worker"], FILE)


def test_read_log_reads_the_sidecars_log_of_the_primary_pod() -> None:
    from autotune_operator.executors.kubernetes import ExperimentRef, KubernetesExecutor
    from autotune_operator.spec import validate_manifest
    from tests.unit.test_k8s_read_log import Api, Cluster, iso, lines_at, manifest, pod
    from tests.unit.test_k8s_trial_start import UID, Events, job
    from tests.unit.test_trial_start import T0

    m = manifest()
    m["spec"]["metricsCollector"] = {"kind": "File", "path": "/var/log/katib/metrics.log"}
    cluster = Cluster(jobs=[job("q-0")])
    p = pod("q-0-a", "q-0", "u0")
    p["spec"]["initContainers"] = [{"name": SIDECAR, "restartPolicy": "Always"}]
    p["status"]["initContainerStatuses"] = [{"name": SIDECAR, "state": {"waiting": {"reason": "PodInitializing"}}}]
    cluster.pods = [p]
    lines_at(cluster, "q-0-a", "c", (0.1, "accuracy=0.1"))  # the trial's own output: not what is read
    lines_at(cluster, "q-0-a", SIDECAR, (0.2, "epoch=0 accuracy=0.5"))
    ex = KubernetesExecutor(Api(cluster), ExperimentRef("ns", "q", UID), validate_manifest(m).spec, "job",
                            events=Events(), clock=lambda: 0.0)  # type: ignore[arg-type]
    ex.custom = cluster  # type: ignore[assignment]
    ex.core = cluster  # type: ignore[assignment]
    ex.poll()
    assert ex.read_log("q-0", None) is None and cluster.log_gets == []  # the sidecar has not run: no GET
    p["status"]["initContainerStatuses"] = [{"name": SIDECAR, "state": {"running": {"startedAt": iso(T0 + 1)}}}]
    ex._pods = None  # a new pass lists the pods again
    chunk = ex.read_log("q-0", None)
    assert chunk is not None and chunk.lines == ("epoch=0 accuracy=0.5",)
    assert [q["container"] for _, q in cluster.log_gets] == [SIDECAR]


@pytest.mark.parametrize("major,minor,ok", [("1", "29", True), ("1", "34", True), ("1", "30+", True), ("2", "0", True),
                                            ("1", "28", False), ("1", "28+", False), ("1", "27", False),
                                            ("", "", True), ("1", "x", True)])
def test_native_sidecars_need_kubernetes_1_29(major, minor, ok):
    from autotune_operator.workloads.metrics_sidecar import version_problem

    why = version_problem(major, minor)
    assert (why is None) == ok
    if why:
        assert "Kubernetes >= 1.29" in why and f"{major}.{minor}" in why and "StdOut" in why


def test_the_operator_setting_names_the_sidecars_image() -> None:
    from autotune_operator.__main__ import add_arguments, environment
    from autotune_operator.runtime import Settings

    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t", "AUTOTUNE_COLLECTOR_IMAGE": " reg/op:2 "}).collector_image == "reg/op:2"
    assert Settings.from_env({"AUTOTUNE_ADMIN_TOKEN": "t", "AUTOTUNE_COLLECTOR_IMAGE": ""}).collector_image is None
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    env = environment(p.parse_args(["--collector-image", "reg/op:3"]), {"AUTOTUNE_COLLECTOR_IMAGE": "reg/op:2"})
    assert env["AUTOTUNE_COLLECTOR_IMAGE"] == "reg/op:3"  # the flag wins


def test_a_covering_mount_with_a_sub_path_expr_gets_the_variables_it_names():
    """subPathExpr is expanded from the container's own env: without the variables it names
    (a per-trial directory of a shared PVC, $(AUTOTUNE_TRIAL_ID)), the sidecar mounted
    another directory than the trial writes ('$(AUTOTUNE_TRIAL_ID)' literally) and relayed nothing."""
    env = [{"name": "AUTOTUNE_TRIAL_ID", "value": "exp-3"},
           {"name": "AUTOTUNE_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    t = template(env=env, volumeMounts=[{"name": "runs", "mountPath": "/var/log/katib",
                                         "subPathExpr": "$(AUTOTUNE_TRIAL_ID)/$(POD)"}])
    side = sidecar_of(inject(t, FILE))
    assert side["volumeMounts"][0] == {"name": "runs", "mountPath": "/var/log/katib",
                                       "subPathExpr": "$(AUTOTUNE_TRIAL_ID)/$(POD)", "readOnly": True}
    names = [e["name"] for e in side["env"]]
    assert names[-2:] == ["AUTOTUNE_TRIAL_ID", "POD"] and "AUTOTUNE_TOKEN" not in names  # only what it names
    plain = sidecar_of(inject(template(env=env, volumeMounts=[{"name": "v", "mountPath": "/var/log/katib"}]), FILE))
    assert [e["name"] for e in plain["env"]] == ["PYTHONUNBUFFERED"]


def test_an_empty_dir_that_would_hide_the_working_dir_is_refused():
    """path: metrics.log with workingDir /app put the emptyDir over /app: the image's code
    there was hidden and the trial failed with 'can't open file train.py'."""
    for path in ("metrics.log", "/app/metrics.log"):
        with pytest.raises(WorkloadError, match="workingDir /app"):
            inject(template(workingDir="/app"), Collector("File", path, "i"))
    with pytest.raises(WorkloadError, match="workingDir /app/run"):
        inject(template(workingDir="/app/run"), Collector("TensorFlowEvent", "/app", "i"))
    # A directory of its own below it is fine; so is the user's own volume there.
    assert inject(template(workingDir="/app"), Collector("File", "logs/metrics.log", "i"))
    own = template(workingDir="/app", volumeMounts=[{"name": "w", "mountPath": "/app"}])
    assert sidecar_of(inject(own, Collector("File", "metrics.log", "i")))["volumeMounts"][0]["name"] == "w"
